"""One connection to the warm dispatcher, in the child that accepted it: wire.py's handshake,
then the phase through ``invocation.run_phase``, as ``hookrunner run`` runs it."""

from __future__ import annotations

import os
import signal
import socket
import stat
import struct
import time

from . import wire
from .invocation import guarded, run_phase
from .quick import RunArgs

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

    from .log import Log

SAFE_PATH = b"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # the module's
SIGIO = 29  # Linux


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
            send_quietly(conn, wire.REFUSED + str(e).encode("ascii", "replace") + b"\n")
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
        _hangup_terminates(conn, True)
        status = guarded(lambda: self.run(request, msg_fd))
        # Done: what a hook that exited in time left running is left alone, as after `run`.
        _hangup_terminates(conn, False)
        send_quietly(conn, bytes([status & 0xFF]))

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


def _hangup_terminates(conn: socket.socket, on: bool) -> None:
    """While the phase runs (``on``): if the module hangs up (its timeout), SIGTERM ourselves:
    ``run``'s handler then kills the running hook and what it left, as when pam_hookrunner.so
    times out an exec'd ``run``. Off again once the phase is over."""
    import fcntl

    fd = conn.fileno()
    if not on:
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_ASYNC)
        signal.signal(SIGIO, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        return

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
    fcntl.fcntl(fd, fcntl.F_SETOWN, os.getpid())
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_ASYNC)
    on_io(SIGIO, None)  # it may have hung up before we listened


def send_quietly(conn: socket.socket, data: bytes) -> None:
    try:
        conn.send(data, socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL)
    except OSError:
        pass
