"""OpenSSH safe_path grade checks: root-owned, not group/other-writable, up to the top.

Why checking by name is enough for executables: once the file and every directory the name
resolves through (including those of any symlink's target) are root-owned and writable by
nobody else, only root can swap the name between the check and exec. Python plugin files
are read from the very descriptor that was checked.
"""

from __future__ import annotations

import errno
import os
import stat

TYPE_CHECKING = False  # without importing typing (or pathlib): the login path pays imports
if TYPE_CHECKING:
    from pathlib import Path


class Checked:
    """A file that passed: its real path and an open descriptor on it (caller closes)."""

    __slots__ = ("fd", "real")

    def __init__(self, real: str, fd: int) -> None:
        self.real = real
        self.fd = fd


class UnsafeError(Exception):
    """Why a file may not be used; str() is the reason shown by list and check."""


def printable(path: str) -> str:
    """A path as one printable line: a file name may hold newlines or terminal escapes, and a
    reason is printed by ``list`` and ``check`` (one problem a line) and logged."""
    if path.isprintable():
        return path
    return "".join(c if c.isprintable() else "".join(f"\\x{b:02x}" for b in os.fsencode(c)) for c in path)


def _check_mode(st: os.stat_result, what: str, where: str) -> None:
    if st.st_uid != 0:
        raise UnsafeError(f"{what} {where} is owned by uid {st.st_uid}, not root")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        who = "group" if st.st_mode & stat.S_IWGRP else "others"
        raise UnsafeError(f"{what} {where} is writable by {who} (mode {stat.S_IMODE(st.st_mode):04o})")


MAX_SYMLINKS = 40  # the kernel's limit (ELOOP)


def _parts(path: str) -> list[str]:
    """The components of ``path`` as pathlib gives them: no empty ones, no ".", ".." kept."""
    return [part for part in path.split("/") if part and part != "."]


def _resolve(path: str) -> tuple[str, list[str]]:
    """Resolve ``path`` (absolute) as the kernel does; the real path and every directory looked into.

    That is each directory of the path and of every symlink's target on the way, so that a
    link through a directory others can write (``hook -> /tmp/hop -> safe``) is caught.
    Plain strings, not pathlib: this runs for every hook of every PAM phase.
    """
    pending = _parts(path)[::-1]
    current = "/"
    looked_into: list[str] = []
    links = 0
    while pending:
        part = pending.pop()
        if part == "..":
            current = os.path.dirname(current)
            continue
        looked_into.append(current)
        candidate = current + part if current == "/" else f"{current}/{part}"
        st = os.lstat(candidate)
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > MAX_SYMLINKS:
                raise OSError(errno.ELOOP, os.strerror(errno.ELOOP))
            target = os.readlink(candidate)
            if target.startswith("/"):
                current = "/"
            pending.extend(_parts(target)[::-1])
        else:
            current = candidate
    return current, looked_into


def _within(path: str, top: str) -> bool:
    """``Path(path).is_relative_to(top)`` for normalised absolute paths."""
    return top == "/" or path == top or path.startswith(top + "/")


def open_checked(path: Path | str, top: Path | str = "/") -> Checked:
    """Open ``path`` (following symlinks) and check the opened file and all directories.

    ``top`` is where the directory walk stops (``--root``): the directories above it are
    trusted; every other directory on the way to the file is checked. Raises UnsafeError.
    """
    # Not normalised: "link/.." is resolved as the kernel does; shown as pathlib would.
    shown = "/" + "/".join(_parts(os.path.join(os.getcwd(), path)))
    top = os.path.realpath(top)
    try:
        real, directories = _resolve(shown)
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as e:
        raise UnsafeError(f"cannot open {printable(shown)}: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeError(f"{printable(real)} is not a regular file")
        _check_mode(st, "file", printable(real))
        for directory in reversed(dict.fromkeys(directories)):  # nearest first
            if _within(directory, top) or not _within(top, directory):
                _check_mode(os.lstat(directory), "directory", printable(directory))
    except OSError as e:
        os.close(fd)
        raise UnsafeError(f"cannot check {printable(shown)}: {e.strerror}") from None
    except UnsafeError:
        os.close(fd)
        raise
    return Checked(real, fd)


def check_file(path: Path | str, top: Path | str = "/") -> str | None:
    """The reason ``path`` may not be used, or None if it is safe."""
    try:
        checked = open_checked(path, top)
    except UnsafeError as e:
        return str(e)
    os.close(checked.fd)
    return None
