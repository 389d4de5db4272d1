"""The five PAM phases: names, pam_exec spellings and default policy (DESIGN.md table)."""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: every login pays imports
if TYPE_CHECKING:
    from collections.abc import Mapping


class Phase:
    """One row of the table. A plain class: ``typing.NamedTuple`` costs 2 ms to import."""

    __slots__ = ("authtok", "name", "pam_type", "stop_on_failure")

    def __init__(self, name: str, pam_type: str, stop_on_failure: bool, authtok: bool) -> None:
        self.name = name  # onauth, ..., the directory is NAME.d
        self.pam_type = pam_type  # what pam_exec puts in PAM_TYPE
        self.stop_on_failure = stop_on_failure  # default policy: stop at the first failing hook
        self.authtok = authtok  # may a hook of this phase be given the password

    def __repr__(self) -> str:
        return f"Phase({self.name!r})"


# Where hooks live, highest precedence first (each below --root), like systemd's directories.
LAYERS: tuple[str, ...] = (
    "etc/security",
    "run/hookrunner",
    "usr/local/lib/hookrunner",
    "usr/lib/hookrunner",
)
CONFIG = "etc/security/hookrunner.toml"  # below --root

# run-parts' default rule (--lsbsysinit off), ^[A-Za-z0-9_-]+$, as a set of characters:
# `re` (and `pathlib`, `typing`) would cost every login a few milliseconds to import.
NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def valid_name(name: str) -> bool:
    """run-parts' ``^[A-Za-z0-9_-]+$``."""
    return bool(name) and NAME_CHARS.issuperset(name)


def hook_name(file_name: str) -> str | None:
    """The hook's name for a file name (``NAME`` or ``NAME.py``), or None if run-parts' rule
    refuses it."""
    if valid_name(file_name):
        return file_name
    if file_name.endswith(".py") and valid_name(file_name[:-3]):
        return file_name[:-3]
    return None


PHASES: tuple[Phase, ...] = (
    Phase("onauth", "auth", True, True),
    Phase("onaccount", "account", True, False),
    Phase("onpasswd", "password", True, True),
    Phase("onsessionopen", "open_session", False, False),
    Phase("onsessionclose", "close_session", False, False),
)

_BY_WORD = {p.name: p for p in PHASES} | {p.pam_type: p for p in PHASES}


# (attribute, environment variable) — the table of pam_exec.c's env_items.
PAM_ITEMS: tuple[tuple[str, bytes], ...] = (
    ("user", b"PAM_USER"),
    ("service", b"PAM_SERVICE"),
    ("rhost", b"PAM_RHOST"),
    ("ruser", b"PAM_RUSER"),
    ("tty", b"PAM_TTY"),
    ("pam_type", b"PAM_TYPE"),
)


def items_from_environ(environ: Mapping[bytes, bytes]) -> dict[bytes, bytes]:
    """The PAM items that pam_exec (or pam_hookrunner.so) put in our environment."""
    return {var: environ[var] for _, var in PAM_ITEMS if var in environ}


def resolve_phase(word: str | None) -> Phase | None:
    """The phase named by either spelling (``onsessionopen`` or ``open_session``)."""
    if word is None:
        return None
    return _BY_WORD.get(word)


def phase_words() -> str:
    return ", ".join(f"{p.name} ({p.pam_type})" for p in PHASES)
