"""OpenSSH safe_path grade checks: root-owned, not group/other-writable, up to the top.

Why checking by name is enough for executables: once the file and every directory above
it are root-owned and writable by nobody else, only root can swap the name between the
check and exec. Python plugin files are read from the very descriptor that was checked.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import NamedTuple


class Checked(NamedTuple):
    """A file that passed: its real path and an open descriptor on it (caller closes)."""

    real: Path
    fd: int


class UnsafeError(Exception):
    """Why a file may not be used; str() is the reason shown by list and check."""


def _check_mode(st: os.stat_result, what: str, where: str) -> None:
    if st.st_uid != 0:
        raise UnsafeError(f"{what} {where} is owned by uid {st.st_uid}, not root")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        who = "group" if st.st_mode & stat.S_IWGRP else "others"
        raise UnsafeError(f"{what} {where} is writable by {who} (mode {stat.S_IMODE(st.st_mode):04o})")


def _check_parents(path: Path, top: Path) -> None:
    """Every directory from path's parent up to top (inclusive), or to / if outside top."""
    directory = path.parent
    stop = top if directory.is_relative_to(top) else Path("/")
    while True:
        _check_mode(os.lstat(directory), "directory", str(directory))
        if directory == stop or directory == directory.parent:
            return
        directory = directory.parent


def open_checked(path: Path, top: Path = Path("/")) -> Checked:
    """Open ``path`` (following symlinks) and check the opened file and all directories.

    ``top`` is where the directory walk stops (``--root``); raises UnsafeError.
    """
    path = Path(os.path.abspath(path))
    top = Path(os.path.abspath(top))
    try:
        real = Path(os.path.realpath(path, strict=True))
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as e:
        raise UnsafeError(f"cannot open {path}: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeError(f"{real} is not a regular file")
        _check_mode(st, "file", str(real))
        _check_parents(real, top)
        if real != path:  # the symlink's own directories matter too
            _check_parents(path, top)
    except OSError as e:
        os.close(fd)
        raise UnsafeError(f"cannot check {path}: {e.strerror}") from None
    except UnsafeError:
        os.close(fd)
        raise
    return Checked(real, fd)


def check_file(path: Path, top: Path = Path("/")) -> str | None:
    """The reason ``path`` may not be used, or None if it is safe."""
    try:
        checked = open_checked(path, top)
    except UnsafeError as e:
        return str(e)
    os.close(checked.fd)
    return None
