"""The warm dispatcher's accept loop (``hookrunner serve``): children forked ahead.

The daemon keeps ``SPARES`` children forked, each of which warms up (every phase over an
empty directory of the daemon's own: the copy-on-write faults a request would take), then
waits to accept one connection, tells the daemon it took one (so that it forks the next),
and serves it (request.py). The daemon never accepts, reads a request or runs a hook; its
only state is its children's PIDs. A spare dies with the daemon (``PR_SET_PDEATHSIG``); a
child serving a request does not.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import struct
import time

from . import wire
from .invocation import EXIT_CONFIG
from .log import Log
from .request import Request, send_quietly

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import NoReturn

MAX_CHILDREN = 256  # requests served at once; beyond, connections wait (the module falls back)
SPARES = 2  # children forked ahead, waiting to accept: no fork on a login's path


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
                send_quietly(conn, wire.REFUSED + b"only root may connect\n")
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


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _read_some(fd: int) -> bool:
    try:
        return bool(os.read(fd, 512))
    except OSError:
        return False
