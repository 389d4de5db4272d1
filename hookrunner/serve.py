"""``hookrunner serve``: the warm dispatcher, one forked child per PAM call.

The daemon imports what a phase needs once (pluggy, hookrunner's modules), listens on a UNIX
stream socket (``/run/hookrunner/dispatch.sock``, 0600, in a root-owned 0755 directory; or
the one systemd passes, ``LISTEN_FDS``), accepts a connection only from a peer whose
``SO_PEERCRED`` uid is 0, and forks. The daemon itself never reads a request, never runs a
hook and keeps nothing from one request to the next: the child speaks the protocol of
wire.py and runs the phase with ``cli.run_phase``, exactly as ``hookrunner run`` does
(config, discovery, safety checks, environment, timeouts, policy, log records, messages).
"""

from __future__ import annotations

import os
import select
import signal
import socket
import stat
import struct
import sys
import time

from . import wire
from .cli import guarded, run_phase
from .config import ConfigError
from .invocation import EXIT_CONFIG, UsageError
from .log import Log, escape
from .quick import RunArgs

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import NoReturn

DEFAULT_SOCKET = "/run/hookrunner/dispatch.sock"
MAX_CHILDREN = 256  # requests served at once; beyond, connections wait (the module falls back)
SPARES = 2  # children forked ahead, waiting to accept: no fork on a login's path
BACKLOG = 512
SAFE_PATH = b"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # the module's
SIGIO = 29  # Linux


def serve(ns: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        raise UsageError("serve: must run as root (it runs hooks as root, for root peers only)")
    if ns.idle_exit is not None and ns.idle_exit <= 0:
        raise UsageError("serve: --idle-exit must be a positive number of seconds")
    _become_root()
    _preload()
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
        return Daemon(listener, ns, log, warm).loop()
    finally:
        listener.close()
        os.rmdir(warm)
        if owned is not None:
            _unlink_if_ours(*owned)


def _become_root() -> None:
    """Real, effective and saved uid and gid 0 and root's groups, as ``run`` does."""
    os.setresgid(0, 0, 0)
    os.setgroups([0])
    os.setresuid(0, 0, 0)


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
        commands,
        context,
        discovery,
        dispatch,
        environment,
        hookspecs,
        pluginio,
        plugins,
        reaper,
        runner,
        safety,
        schema,
    )

    gc.collect()
    gc.freeze()  # what is imported stays put: children do not copy it by collecting


class Daemon:
    """Keeps ``SPARES`` children forked ahead, each waiting to accept one connection; the
    daemon itself never accepts one. Its only state: the children's PIDs, to reap them."""

    def __init__(self, listener: socket.socket, ns: argparse.Namespace, log: Log,
                 warm: str) -> None:
        self.listener = listener
        self.warm = warm
        self.ns = ns
        self.log = log
        self.children: set[int] = set()  # every child: spares and busy ones
        self.spares: set[int] = set()
        self.stopping = False
        self.last = time.monotonic()
        self.pid = os.getpid()

    def loop(self) -> int:
        self.wakeup = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)  # signals wake poll up
        self.taken = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)  # a spare's PID: it took one
        signal.set_wakeup_fd(self.wakeup[1])
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._stop)
        poller = select.poll()
        for fd in (self.wakeup[0], self.taken[0]):
            poller.register(fd, select.POLLIN)
        try:
            while not self.stopping:
                self._reap()
                while len(self.spares) < SPARES and len(self.children) < MAX_CHILDREN + SPARES:
                    self._fork_spare()
                timeout = None
                if self.ns.idle_exit is not None and self.children == self.spares:
                    timeout = self.ns.idle_exit - (time.monotonic() - self.last)
                    if timeout <= 0:
                        self.log.info(f"serve: idle for {self.ns.idle_exit:g} s, exiting")
                        break
                try:
                    poller.poll(None if timeout is None else max(1, int(timeout * 1000)))
                except InterruptedError:
                    pass
                while _read_some(self.wakeup[0]):
                    pass
                self._taken()
        finally:
            for pid in self.spares:  # idle, waiting in poll: nothing of a login is lost
                _kill(pid)
        return 0

    def _stop(self, signum: int, frame: object) -> None:
        self.stopping = True

    def _reap(self) -> None:
        for pid in list(self.children):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self.children.discard(pid)
                self.spares.discard(pid)

    def _taken(self) -> None:
        try:
            data = os.read(self.taken[0], 4096)
        except BlockingIOError:
            return
        for (pid,) in struct.iter_unpack("i", data[: len(data) // 4 * 4]):
            self.spares.discard(pid)
            self.last = time.monotonic()

    def _fork_spare(self) -> None:
        pid = os.fork()
        if pid == 0:
            self._spare()
        self.children.add(pid)
        self.spares.add(pid)

    def _spare(self) -> NoReturn:
        status = 0
        try:
            self._serve_one()
        except BaseException as e:  # never back into the daemon's loop
            status = EXIT_CONFIG
            self.log.error(f"serve: internal error: {type(e).__name__}: {e}")
        finally:
            os._exit(status)

    def _serve_one(self) -> None:
        """A child: everything that does not depend on a request is done before accepting."""
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for fd in (*self.wakeup, self.taken[0]):
            os.close(fd)
        os.setsid()  # the daemon's terminal or group signals are not this login's
        from . import reaper

        reaper._subreaper = None  # prctl's flag is not inherited by fork: set it again
        reaper.become_subreaper()
        reaper.set_parent_death_signal(signal.SIGKILL)  # a spare dies with the daemon
        if os.getppid() != self.pid:
            return
        self._warm_up()
        conn = self._accept()
        reaper.set_parent_death_signal(0)  # a request in progress outlives the daemon
        os.write(self.taken[1], struct.pack("i", os.getpid()))
        os.close(self.taken[1])
        self.listener.close()
        with conn:
            pid, uid, _gid = struct.unpack(
                "3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
            if uid != 0:
                self.log.warning(f"serve: refused a connection from pid {pid} uid {uid}: "
                                 "only root may ask")
                _send_quietly(conn, wire.REFUSED + b"only root may connect\n")
                return
            Request(conn, self.ns, self.log).serve()

    def _warm_up(self) -> None:
        """Before accepting: every phase over the daemon's own empty directory, so that this
        child has taken the copy-on-write faults of the code a request runs (~1 ms) before
        a login waits for it. Nothing is found, run or logged; no request is involved."""
        from . import entrypoints
        from .config import Config
        from .dispatch import Dispatch
        from .phases import PHASES

        entrypoints.cached(self.warm)
        for phase in PHASES:
            Dispatch(phase, {b"PAM_USER": b"-"}, Config(), Log(use_syslog=False), root=self.warm,
                     entry_points=list).run(keep=False)

    def _accept(self) -> socket.socket:
        """One connection; the listener is non-blocking (shared with the daemon and the
        other spares): wait for one, and try again if another spare took it."""
        while True:
            select.select([self.listener], [], [])
            try:
                conn, _ = self.listener.accept()
                return conn
            except (BlockingIOError, InterruptedError):
                continue


class _Gone(Exception):
    pass


class Request:
    """One connection, in the child: the handshake of wire.py, then the phase."""

    def __init__(self, conn: socket.socket, ns: argparse.Namespace, log: Log) -> None:
        self.conn = conn
        self.ns = ns
        self.log = log

    def serve(self) -> None:
        conn = self.conn
        conn.setblocking(True)
        fds: list[int] = []
        try:
            data, fds = self.receive()
            request = wire.parse(data)
            msg_fd = self.message_pipe(fds)
        except _Gone:
            return
        except wire.BadRequest as e:
            for fd in fds:
                os.close(fd)
            self.log.warning(f"serve: refused a request: {e}")
            _send_quietly(conn, wire.REFUSED + str(e).encode("ascii", "replace") + b"\n")
            return
        try:
            conn.sendall(wire.READY)
            conn.settimeout(wire.GO_SECONDS)
            go = conn.recv(1)
            if go != wire.GO:
                return  # the module gave up (and ran the phase itself) or spoke nonsense
            conn.settimeout(None)
            conn.sendall(wire.STARTED)  # EPIPE if the module has gone: then nothing runs
        except OSError:
            return
        _hangup_terminates(conn)
        status = guarded(lambda: self.run(request, msg_fd))
        _send_quietly(conn, bytes([status & 0xFF]))

    def receive(self) -> tuple[bytes, list[int]]:
        """The request's bytes and the descriptors that came with it, within the bounds."""
        deadline = time.monotonic() + wire.REQUEST_SECONDS
        data, fds = b"", list[int]()
        space = socket.CMSG_SPACE(4 * 4)
        while not wire.complete(data):
            left = deadline - time.monotonic()
            if left <= 0:
                raise wire.BadRequest(f"request incomplete after {wire.REQUEST_SECONDS:g} s")
            self.conn.settimeout(left)
            try:
                chunk, ancillary, flags, _ = self.conn.recvmsg(
                    wire.MAX_REQUEST + 1 - len(data), space, socket.MSG_CMSG_CLOEXEC)
            except TimeoutError:
                continue
            except OSError as e:
                raise wire.BadRequest(f"receiving: {e.strerror}") from None
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds += struct.unpack(f"{len(payload) // 4}i", payload[: len(payload) // 4 * 4])
            if flags & socket.MSG_CTRUNC:
                raise wire.BadRequest("too many descriptors")
            if not chunk and not data:
                raise _Gone  # connected and left (a probe): nothing to say
            if not chunk:
                raise wire.BadRequest("connection closed in the middle of the request")
            data += chunk
            if len(data) > wire.MAX_REQUEST:
                raise wire.BadRequest(f"request longer than {wire.MAX_REQUEST} bytes")
        return data, fds

    @staticmethod
    def message_pipe(fds: list[int]) -> int:
        """The one descriptor a request carries: the write end of the module's message pipe."""
        import fcntl

        if len(fds) != 1:
            raise wire.BadRequest(f"expected one descriptor (the message pipe), got {len(fds)}")
        fd = fds[0]
        if not stat.S_ISFIFO(os.fstat(fd).st_mode) or \
                fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE != os.O_WRONLY:
            raise wire.BadRequest("the descriptor is not the write end of a pipe")
        return fd

    def run(self, request: wire.Request, msg_fd: int) -> int:
        ns = RunArgs()
        ns.phase = request.phase.name
        if request.root is not None or request.config is not None:
            ns.root = os.path.abspath(request.root or "/")
            ns.config = request.config
        else:  # the daemon's own --root/--config apply to requests that name neither
            ns.root, ns.config = self.ns.root, self.ns.config
        ns.msg_fd = msg_fd
        ns.ignore_empty = True
        ns.verbose = self.ns.verbose
        items = dict(request.items)
        # What `run` sees in os.environ when pam_hookrunner.so starts it: the items, PAM_TYPE,
        # the fixed PATH, and LC_CTYPE from the interpreter's C-locale coercion (PEP 538).
        caller = {**items, b"PAM_TYPE": request.phase.pam_type.encode(), b"PATH": SAFE_PATH,
                  b"LC_CTYPE": b"C.UTF-8"}
        return run_phase(ns, request.phase, items, lambda: request.authtok,  # type: ignore[arg-type]
                         caller_env=caller)


def _hangup_terminates(conn: socket.socket) -> None:
    """If the module hangs up (its timeout), SIGTERM ourselves: ``run``'s handler then kills
    the running hook and what it left, as when pam_hookrunner.so times out an exec'd ``run``."""
    import fcntl

    def on_io(signum: int, frame: object) -> None:
        try:
            data = conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(SIGIO, on_io)
    fd = conn.fileno()
    fcntl.fcntl(fd, fcntl.F_SETOWN, os.getpid())
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_ASYNC)
    on_io(SIGIO, None)  # it may have hung up before we listened


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _send_quietly(conn: socket.socket, data: bytes) -> None:
    try:
        conn.send(data, socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL)
    except OSError:
        pass


def _read_some(fd: int) -> bool:
    try:
        return bool(os.read(fd, 512))
    except OSError:
        return False
