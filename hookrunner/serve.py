"""``hookrunner serve``: the warm dispatcher, one forked child per PAM call (this module: the
command, its socket and what is imported once; daemon.py: the loop; request.py: a request).

The daemon imports what a phase needs once (pluggy, hookrunner's modules), listens on a UNIX
stream socket (``/run/hookrunner/dispatch.sock``, 0600, in a root-owned 0755 directory; or
the one systemd passes, ``LISTEN_FDS``), accepts a connection only from a peer whose
``SO_PEERCRED`` uid is 0, and forks. The daemon itself never reads a request, never runs a
hook and keeps nothing from one request to the next: the child speaks the protocol of
wire.py and runs the phase with ``invocation.run_phase``, exactly as ``hookrunner run`` does
(config, discovery, safety checks, environment, timeouts, policy, log records, messages).
"""

from __future__ import annotations

import os
import socket
import stat
import sys

from .config import ConfigError
from .invocation import UsageError
from .log import Log, escape

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

DEFAULT_SOCKET = "/run/hookrunner/dispatch.sock"
BACKLOG = 512


def serve(ns: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        raise UsageError("serve: must run as root (it runs hooks as root, for root peers only)")
    if ns.idle_exit is not None and ns.idle_exit <= 0:
        raise UsageError("serve: --idle-exit must be a positive number of seconds")
    _preload()  # (cli._main made every uid and gid 0 first, privileges.become_root)
    log = Log(stderr=sys.stderr)
    listener = _from_systemd()
    owned = None
    if listener is None:
        listener, owned = _listen(ns.socket or DEFAULT_SOCKET)
    os.chdir("/")
    os.umask(0o022)
    where = escape(owned[0]) if owned else "the socket from systemd"
    log.info(f"serve: listening on {where} (pid {os.getpid()})")
    import tempfile

    warm = tempfile.mkdtemp(prefix="hookrunner-serve-")  # empty: see Daemon._warm_up
    try:
        from .daemon import Daemon

        return Daemon(listener, ns, log, warm).loop()
    finally:
        listener.close()
        os.rmdir(warm)
        if owned is not None:
            _unlink_if_ours(*owned)


def _from_systemd() -> socket.socket | None:
    """The listening socket of systemd socket activation (``sd_listen_fds``), if any."""
    fds, pid = os.environ.pop("LISTEN_FDS", None), os.environ.pop("LISTEN_PID", None)
    os.environ.pop("LISTEN_FDNAMES", None)
    if fds is None or pid != str(os.getpid()):
        return None
    if fds != "1":
        raise ConfigError(f"serve: systemd passed {escape(fds)} sockets; expected one")
    sock = socket.socket(fileno=3)
    if (sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM
            or not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)):
        raise ConfigError("serve: the socket from systemd is not a listening UNIX stream socket")
    sock.set_inheritable(False)
    sock.setblocking(False)
    return sock


def check_directory(path: str) -> None:
    """Every directory from ``path`` up to / is a directory (not a symlink), root-owned and
    not writable by group or others: what pam_hookrunner.so requires of the socket's."""
    while True:
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode):
            raise ConfigError(f"serve: {escape(path)} is not a directory")
        if st.st_uid != 0 or st.st_mode & 0o022:
            raise ConfigError(f"serve: {escape(path)} must be root-owned and writable by root "
                              f"only (uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):04o})")
        if path == "/":
            return
        path = os.path.dirname(path)


def _listen(path: str) -> tuple[socket.socket, tuple[str, int, int]]:
    """Bind ``path`` (mode 0600) in a safe directory, created 0755 if missing."""
    path = os.path.abspath(path)
    directory = os.path.dirname(path)
    try:
        os.mkdir(directory, 0o755)
    except FileExistsError:
        pass
    except OSError as e:
        raise ConfigError(f"serve: cannot create {escape(directory)}: {e.strerror}") from None
    check_directory(directory)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None:
        if not stat.S_ISSOCK(st.st_mode):
            raise ConfigError(f"serve: {escape(path)} exists and is not a socket")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(path)
            except OSError:
                os.unlink(path)  # stale: its daemon is gone
            else:
                raise ConfigError(f"serve: another daemon listens on {escape(path)}")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # born 0600: never reachable by others, not even for a moment
    try:
        sock.bind(path)
    except OSError as e:
        sock.close()
        raise ConfigError(f"serve: cannot bind {escape(path)}: {e.strerror}") from None
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(BACKLOG)
    sock.setblocking(False)
    st = os.lstat(path)
    return sock, (path, st.st_dev, st.st_ino)


def _unlink_if_ours(path: str, dev: int, ino: int) -> None:
    try:
        st = os.lstat(path)
        if (st.st_dev, st.st_ino) == (dev, ino):
            os.unlink(path)
    except OSError:
        pass


def _preload() -> None:
    """Import once what any phase may need, so that no child pays for it."""
    import _ctypes  # noqa: F401  # the subreaper's prctl (each child sets it: not inherited)
    import gc
    import importlib.machinery
    import importlib.util  # noqa: F401
    import logging  # noqa: F401  # ctx.log
    import pwd  # noqa: F401
    import subprocess  # noqa: F401  # runas hooks
    import syslog  # noqa: F401
    import tomllib  # noqa: F401
    import traceback  # noqa: F401

    from . import entrypoints

    entrypoints.ensure_site_path()  # as a plugin phase does, before pluggy
    from . import (  # noqa: F401
        context,
        discovery,
        dispatch,
        environment,
        hookspecs,
        logsafety,
        pluginio,
        plugins,
        reaper,
        runner,
        safety,
        schema,
        terminal,
    )

    gc.collect()
    gc.freeze()  # what is imported stays put: children do not copy it by collecting
