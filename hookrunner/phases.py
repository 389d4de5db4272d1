"""The five PAM phases: names, pam_exec spellings and default policy (DESIGN.md table)."""

from __future__ import annotations

import os
import stat

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
DROPIN_DIR = "hookrunner.toml.d"  # config fragments, in each layer
DEV_NULL = "/dev/null"


def is_mask(path: str) -> bool:
    """A symlink to /dev/null or an empty file (not a directory): what masks the same name in
    lower layers, for hooks and config fragments alike. False if it cannot be looked at (the
    caller's own check then says what is wrong)."""
    try:
        if os.path.islink(path) and os.path.realpath(path) == DEV_NULL:
            return True
        st = os.stat(path)
    except OSError:
        return False
    return st.st_size == 0 and not stat.S_ISDIR(st.st_mode)

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
    """The PAM items in a mapping (a test's, ``simulate``'s). The dispatcher reads its own
    environment with :func:`pam_items`, which tells pam_exec's items from spoofed ones."""
    return {var: environ[var] for _, var in PAM_ITEMS if var in environ}


ITEM_NAMES = frozenset(var for _, var in PAM_ITEMS)
# What pam_exec.c appends after the PAM environment list, in this order, each only when set
# (PAM_SERVICE always is), and PAM_TYPE last of all.
PAM_EXEC_TAIL = (b"PAM_SERVICE", b"PAM_USER", b"PAM_TTY", b"PAM_RHOST", b"PAM_RUSER")


_raw_environ: list[list[tuple[bytes, bytes]] | None] = []  # read once: it never changes


def raw_environ() -> list[tuple[bytes, bytes]] | None:
    """Our environment block as exec received it, in order, duplicates kept (``os.environ``
    keeps only the first of two equal names); None without /proc. Read once per process: the
    empty-phase check and ``run`` both need it."""
    if not _raw_environ:
        _raw_environ.append(_read_raw_environ())
    return _raw_environ[0]


def _read_raw_environ() -> list[tuple[bytes, bytes]] | None:
    try:
        fd = os.open("/proc/self/environ", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    chunks = []
    try:
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    return [(name, value) for name, eq, value in
            (entry.partition(b"=") for entry in b"".join(chunks).split(b"\0")) if eq]


def pam_exec_block(raw: list[tuple[bytes, bytes]]) -> int | None:
    """Where pam_exec's own items start in ``raw``, if ``raw`` ends exactly as pam_exec.c
    builds it: ``PAM_SERVICE [PAM_USER] [PAM_TTY] [PAM_RHOST] [PAM_RUSER] PAM_TYPE`` after
    the PAM environment list. Everything before that is the PAM environment (pam_env, a
    user's ~/.pam_environment with user_readenv=1): never an item."""
    if not raw or raw[-1][0] != b"PAM_TYPE":
        return None
    i, expect = len(raw) - 2, len(PAM_EXEC_TAIL) - 1
    while i >= 0 and expect >= 0:
        name = raw[i][0]
        while expect > 0 and PAM_EXEC_TAIL[expect] != name:
            expect -= 1  # an optional item pam_exec did not set
        if PAM_EXEC_TAIL[expect] != name:
            return None
        if expect == 0:
            return i
        i, expect = i - 1, expect - 1
    return None


def pam_items(raw: list[tuple[bytes, bytes]] | None = None,
              ) -> tuple[dict[bytes, bytes], list[bytes]]:
    """The PAM items of our environment, and the item names the PAM environment also set.

    pam_exec puts the PAM environment list first and its own items after it, so a
    ``PAM_USER`` from a user's ``~/.pam_environment`` comes first, and Python's
    ``os.environ`` would keep it. Here the items are pam_exec's block when the environment
    ends as pam_exec builds it (an item set only in the PAM environment is then ignored
    too), else the last occurrence of each name (pam_hookrunner.so's own environment,
    where no duplicate can occur). Names seen outside pam_exec's block, or twice, are
    returned for a warning: a spoofing attempt."""
    if raw is None:
        raw = raw_environ()
        if raw is None:
            return items_from_environ(os.environb), []
    start = pam_exec_block(raw)
    items: dict[bytes, bytes] = {}
    seen: list[bytes] = []
    spoofed: list[bytes] = []
    for index, (name, value) in enumerate(raw):
        if name not in ITEM_NAMES:
            continue
        if ((start is not None and index < start) or name in seen) and name not in spoofed:
            spoofed.append(name)
        seen.append(name)
        if start is None or index >= start:
            items[name] = value
    return items, spoofed


def resolve_phase(word: str | None) -> Phase | None:
    """The phase named by either spelling (``onsessionopen`` or ``open_session``)."""
    if word is None:
        return None
    return _BY_WORD.get(word)


def phase_words() -> str:
    return ", ".join(f"{p.name} ({p.pam_type})" for p in PHASES)
