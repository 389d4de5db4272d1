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


# Not a verdict on the file but the dispatcher running short: open_checked raises these as
# OSError (the caller fails the hook) instead of refusing the file (which would skip it).
RESOURCE_ERRORS = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOMEM))


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


class Verified:
    """Directories that already passed for one ``top``: a phase checks each directory once.

    Sound within one phase run: every directory kept here is a real directory (reached
    through no symlink) that passed the check, or lies above ``top``, as do all its
    ancestors; so only root can rename, replace or re-mode it meanwhile. Files are never
    kept: each one is still opened and fstat'ed.
    """

    __slots__ = ("dirs", "top", "top_real")

    def __init__(self, top: Path | str = "/") -> None:
        self.top = top
        self.top_real = os.path.realpath(top)
        self.dirs: set[str] = set()


def _resolve(path: str, known: set[str] | frozenset[str] = frozenset(),
             last: list[os.stat_result] | None = None) -> tuple[str, list[str]]:
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
        if candidate in known:  # a real directory, verified earlier in this phase
            current = candidate
            continue
        st = os.lstat(candidate)
        if last is not None and not pending:  # the final component: the caller may want it
            last[:] = [st]
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


def open_checked(path: Path | str, top: Path | str = "/", verified: Verified | None = None) -> Checked:
    """Open ``path`` (following symlinks) and check the opened file and all directories.

    ``top`` is where the directory walk stops (``--root``): the directories above it are
    trusted; every other directory on the way to the file is checked. Raises UnsafeError.
    ``verified`` (for this same ``top``) skips the directories an earlier call passed.
    """
    # Not normalised: "link/.." is resolved as the kernel does; shown as pathlib would.
    path = os.fspath(path)
    shown = "/" + "/".join(_parts(path if path.startswith("/") else os.path.join(os.getcwd(), path)))
    if verified is not None and verified.top != top:
        verified = None
    known: set[str] | frozenset[str] = verified.dirs if verified is not None else frozenset()
    top = verified.top_real if verified is not None else os.path.realpath(top)
    try:
        final: list[os.stat_result] = []
        real, directories = _resolve(shown, known, final)
        # Never open what is not a plain file (a tape rewinds, a FIFO wakes its writer): look
        # first (the walk's own lstat of it); the fstat below judges what was actually opened.
        if not stat.S_ISREG((final[0] if final else os.lstat(real)).st_mode):
            raise UnsafeError(f"{printable(real)} is not a regular file")
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as e:
        if e.errno in RESOURCE_ERRORS:
            raise
        raise UnsafeError(f"cannot open {printable(shown)}: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeError(f"{printable(real)} is not a regular file")
        _check_mode(st, "file", printable(real))
        _check_directories(directories, top, known)
    except OSError as e:
        os.close(fd)
        if e.errno in RESOURCE_ERRORS:
            raise
        raise UnsafeError(f"cannot check {printable(shown)}: {e.strerror}") from None
    except UnsafeError:
        os.close(fd)
        raise
    if verified is not None:
        verified.dirs.update(directories)
    return Checked(real, fd)


def _check_directories(directories: list[str], top: str,
                       known: set[str] | frozenset[str] = frozenset()) -> None:
    """Each directory looked into, nearest first, except those above ``top`` and ``known``."""
    for directory in reversed(dict.fromkeys(directories)):
        if directory in known:
            continue
        if _within(directory, top) or not _within(top, directory):
            _check_mode(os.lstat(directory), "directory", printable(directory))


def _top_for(path: str, root: Path | str) -> str:
    """Where the walk for ``path`` stops: ``root`` if the file really lies below it, else /."""
    real_root = os.path.realpath(root)
    return real_root if _within(os.path.realpath(path), real_root) else "/"


def read_checked(path: Path | str, root: Path | str = "/", limit: int = 1 << 20) -> bytes:
    """The bytes of ``path`` (at most ``limit``), read from the descriptor that passed the
    rules. The directory walk stops at ``root`` when the file really lies below it, else at
    ``/``. Raises UnsafeError, or OSError if the read itself fails."""
    fd = open_checked(path, _top_for(os.fspath(path), root)).fd
    try:  # os.read, not a buffered file: a few hundred bytes, read into a buffer their size
        data = b""
        want = min(limit, os.fstat(fd).st_size + 1)  # +1: see the end of a file that grew
        while want > 0 and (chunk := os.read(fd, want)):
            data += chunk
            want = min(limit - len(data), 1 << 16)
        return data
    finally:
        os.close(fd)


def write_root_only(path: str, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` atomically with ``data``: a cache that :func:`read_checked` accepts
    later. Only as root; a place that cannot be written (a read-only /var) means no cache."""
    if os.geteuid() != 0:
        return
    directory = os.path.dirname(path)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}")
    try:
        os.makedirs(directory, mode=0o755, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def check_file(path: Path | str, top: Path | str = "/") -> str | None:
    """The reason ``path`` may not be used, or None if it is safe."""
    try:
        checked = open_checked(path, top)
    except UnsafeError as e:
        return str(e)
    except OSError as e:  # RESOURCE_ERRORS: not the file's fault, but it cannot be checked now
        return f"cannot check {printable(os.fspath(path))} now: {e.strerror}"
    os.close(checked.fd)
    return None
