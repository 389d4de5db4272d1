"""The five PAM phases: names, pam_exec spellings and default policy (DESIGN.md table)."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Mapping


class Phase(NamedTuple):
    name: str  # onauth, ..., the directory is NAME.d
    pam_type: str  # what pam_exec puts in PAM_TYPE
    stop_on_failure: bool  # default policy: stop at the first failing hook
    authtok: bool  # may a hook of this phase be given the password


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
