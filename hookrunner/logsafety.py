"""The hook rules for what is not a hook: the log file records are appended to, and masks.

Apart from ``safety.py`` because every login imports that one, and these are needed only
with a ``log_file`` or a mask (or by ``check``): their code is memory each login would pay.
"""

from __future__ import annotations

import os
import stat

from .safety import (
    Checked,
    UnsafeError,
    _check_directories,
    _check_mode,
    _parts,
    _resolve,
    _top_for,
    check_file,
    printable,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: every login pays imports
if TYPE_CHECKING:
    from pathlib import Path


APPEND = (os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
          | os.O_NOCTTY)


def check_append(path: str, root: Path | str = "/") -> str | None:
    """Why :func:`open_append` would refuse ``path``, or None; creates and writes nothing."""
    try:
        checked = _open_append(path, root, probe=True)
    except UnsafeError as e:
        return str(e)
    if checked is not None:
        os.close(checked.fd)
    return None


def open_append(path: str, root: Path | str = "/") -> Checked | None:
    """Open ``path`` to append records (``log_file``), under the hook rules; None for
    ``/dev/null`` (the path, or a symlink to it: a mask, as for hooks). Raises UnsafeError.

    The file, its symlink target and every directory on the way (up to ``root`` when the file
    lies below it) are checked *before* it is opened, so nothing is opened in a directory
    others can write: no FIFO (whose open would wait for a reader) and no device (whose open
    may act: a watchdog) that someone else put there. Then it is opened with ``O_NOFOLLOW``
    and ``O_NONBLOCK`` and checked again on the descriptor (``fstat``): a regular file,
    root-owned, not group/other-writable. A missing file is created (by root only), mode
    0600, ``O_EXCL``, in its checked directory.
    """
    return _open_append(path, root, probe=False)


def _open_append(path: str, root: Path | str, *, probe: bool) -> Checked | None:
    """``probe``: a missing file whose directory passes is fine (None), and is not created."""
    shown = "/" + "/".join(_parts(path))
    parent, _, name = shown.rpartition("/")
    if not name or name == ".." or path.endswith("/"):
        raise UnsafeError(f"{printable(path)} is not a file name")
    top = _top_for(shown, root)
    try:
        try:
            real, directories = _resolve(shown)
        except FileNotFoundError:  # a missing file (else: a missing directory, raised below)
            real_parent, directories = _resolve(parent or "/")
            _check_directories([*directories, real_parent], top)
            if os.path.lexists(os.path.join(real_parent, name)):
                raise UnsafeError(f"{printable(shown)}: dangling symlink") from None
            if probe:
                return None
            if os.geteuid() != 0:
                raise UnsafeError(f"{printable(shown)} does not exist (created only by root)") from None
            real = os.path.join(real_parent, name)
            fd = os.open(real, APPEND | os.O_CREAT | os.O_EXCL, 0o600)
        else:
            if real == "/dev/null":
                return None
            _check_directories(directories, top)
            if not stat.S_ISREG(os.lstat(real).st_mode):  # before open: FIFOs, devices
                raise UnsafeError(f"{printable(real)} is not a regular file")
            fd = os.open(real, APPEND)
    except OSError as e:
        raise UnsafeError(f"cannot open {printable(shown)}: {e.strerror}") from None
    try:  # the descriptor is what counts: what was checked by name could have been replaced
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeError(f"{printable(real)} is not a regular file")
        _check_mode(st, "file", printable(real))
    except UnsafeError:
        os.close(fd)
        raise
    return Checked(real, fd)



def check_mask(path: str, top: Path | str = "/") -> str | None:
    """The reason a mask (an empty file, or a symlink to /dev/null) may not mask, or None.

    A mask switches a hook off, a packaged deny hook included: it must pass the same rules
    as a hook, or anyone who can write a layer directory could silence one. An empty file is
    checked like a hook file; a symlink's own owner must be root (its mode means nothing),
    and every directory above it (up to ``top``) must pass."""
    if not os.path.islink(path):
        return check_file(path, top)
    shown = "/" + "/".join(_parts(path if path.startswith("/") else os.path.join(os.getcwd(), path)))
    try:
        real_dir, directories = _resolve(os.path.dirname(shown))
        st = os.lstat(os.path.join(real_dir, os.path.basename(shown)))
        if st.st_uid != 0:
            raise UnsafeError(f"symlink {printable(shown)} is owned by uid {st.st_uid}, not root")
        _check_directories([*directories, real_dir], os.path.realpath(top))
    except OSError as e:
        return f"cannot check {printable(shown)}: {e.strerror}"
    except UnsafeError as e:
        return str(e)
    return None


def log_file_refused(path: str, why: Exception | str) -> str:
    """The one line logged (each run) and printed by ``check`` for a refused ``log_file``."""
    return f"log_file {printable(path)} not used (records go to syslog only): {why}"


SYSLOG_SOCKET = "dev/log"  # below the root: syslog(3) writes there, and nowhere else
JOURNAL_SOCKETS = ("run/systemd/journal/socket", "run/systemd/journal/dev-log")


def lost_records(root: str, log_file: str | None) -> str | None:
    """Why this machine (``root``) would drop hookrunner's records, for ``check``; else None.

    They go to syslog through ``ROOT/dev/log`` and, if configured, to ``log_file``. Without a
    log file, a ``dev/log`` that is missing, not a socket, or a socket nobody listens on (a
    dead daemon's) means every record is lost: minimal images and containers often have no
    syslog daemon. journald's own sockets do not help: syslog(3) never writes to them."""
    if log_file:
        return None
    import socket  # check only: never on a login
    import stat

    path = os.path.join(root, SYSLOG_SOCKET)
    fix = "set log_file in hookrunner.toml, or run a syslog daemon (rsyslog, systemd-journald)"
    try:
        is_socket = stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        is_socket = False
    if not is_socket:
        journals = [os.path.join(root, j) for j in JOURNAL_SOCKETS]
        journal = next((j for j in journals if os.path.exists(j)), None)
        if journal is not None:
            return (f"{printable(path)}: no syslog socket, though journald's {printable(journal)} exists: "
                    f"syslog(3) writes only to /dev/log, so hookrunner's records are lost; link "
                    f"/dev/log to /run/systemd/journal/dev-log (systemd-journald-dev-log.socket), "
                    f"or set log_file in hookrunner.toml")
        return f"{printable(path)}: no syslog socket, so hookrunner's records are lost; {fix}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(path)
        except OSError as e:
            return (f"{printable(path)}: nobody receives on this syslog socket ({e.strerror}), so "
                    f"hookrunner's records are lost; {fix}")
    return None
