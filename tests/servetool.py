"""Test helpers for ``hookrunner serve``: a daemon started for a test and a client of wire.py.

``served(...)`` starts ``hookrunner serve --socket /run/hookrunner-test-<id>/dispatch.sock``
(a socket in /tmp could not be used: /tmp is writable by everyone) with the dispatcher's own
command line, waits until it listens, and stops it by PID and removes its directory
afterwards. ``ask(...)`` is the module's side of the protocol in Python: it returns what the
daemon answered, the exit status and the message lines. Import with
``from servetool import served, ask`` (tests/ and tests/e2e/ both put tests/ on sys.path).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from hooktree import MAIN, PYTHON

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from hookrunner import wire

SYSTEM_PYTHON = Path("/usr/bin/python3")


@dataclasses.dataclass
class Daemon:
    socket: Path
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def children(self) -> list[int]:
        """The daemon's children (its spares and the requests it serves)."""
        out = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == self.pid:
                    out.append(int(entry.name))
        return out


def wait_for(predicate: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():  # type: ignore[operator]
            return True
        if time.monotonic() >= deadline:
            return bool(predicate())  # type: ignore[operator]
        time.sleep(0.02)


def listening(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(str(path))
        except OSError:
            return False
    return True


def socket_dir() -> Path:
    """A new root-owned 0755 directory below /run for one test's socket."""
    d = Path("/run") / f"hookrunner-test-{secrets.token_hex(4)}"
    d.mkdir(mode=0o755)
    os.chmod(d, 0o755)
    return d


@contextlib.contextmanager
def served(*args: str, python: Path = PYTHON, directory: Path | None = None,
           wait: bool = True, argv: Sequence[str] | None = None) -> Iterator[Daemon]:
    """``hookrunner serve --socket DIR/dispatch.sock ARGS`` for the block."""
    own = directory is None
    d = socket_dir() if directory is None else directory
    path = d / "dispatch.sock"
    log = d.parent / f"{d.name}.log"
    command = [str(python), "-I", "-S", str(MAIN), "serve", "--socket", str(path), *args]
    with open(log, "wb") as out:
        process = subprocess.Popen(argv or command, stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT, cwd="/", start_new_session=True)
    daemon = Daemon(path, process, log)
    try:
        if wait and not wait_for(lambda: listening(path) or process.poll() is not None, 20):
            raise RuntimeError(f"serve did not start: {daemon.output()}")
        if wait and process.poll() is not None:
            raise RuntimeError(f"serve exited {process.returncode}: {daemon.output()}")
        yield daemon
    finally:
        stop(daemon)
        log.unlink(missing_ok=True)
        if own:
            shutil.rmtree(d, ignore_errors=True)


def stop(daemon: Daemon) -> None:
    """The daemon and its spares (its busy children finish on their own), by PID."""
    children = daemon.children()
    if daemon.process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(daemon.pid, signal.SIGCONT)
            daemon.process.terminate()
        try:
            daemon.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            daemon.process.kill()
            daemon.process.wait()
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


@dataclasses.dataclass
class Answer:
    replies: bytes  # what the daemon sent: b"RS\x00", b"E...\n", ...
    status: int | None  # the exit status byte, if one came
    messages: bytes  # the message pipe's lines

    @property
    def refusal(self) -> str:
        return self.replies[1:].decode(errors="replace").strip() if self.replies[:1] == b"E" else ""


def connect(path: Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(path))
    return s


def send_request(s: socket.socket, data: bytes, fds: Sequence[int]) -> None:
    ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                  b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds))] if fds else []
    s.sendmsg([data], ancillary)


@contextlib.contextmanager
def started(path: Path, phase: str, root: Path | str) -> Iterator[socket.socket]:
    """A connection whose phase the daemon has started (its "S" read): the module's side of
    the handshake, for tests that act while the phase runs. The message pipe is closed after."""
    r, w = os.pipe()
    try:
        with connect(path) as s:
            send_request(s, wire.encode(phase, {}, root=str(root)), [w])
            os.close(w)
            w = -1
            assert s.recv(1) == b"R"
            s.sendall(b"G")
            assert s.recv(1) == b"S"
            yield s
    finally:
        if w >= 0:
            os.close(w)
        os.close(r)


def ask(path: Path, phase: str, items: dict[bytes, bytes] | None = None, *,
        root: Path | str | None = None, config: Path | str | None = None,
        authtok: bytes | None = None, go: bool = True, timeout: float = 30.0,
        raw: bytes | None = None) -> Answer:
    """One PAM call as pam_hookrunner.so makes it (``go=False``: give up after "R")."""
    items = {b"PAM_USER": b"alice", b"PAM_SERVICE": b"servetest"} if items is None else items
    data = raw if raw is not None else wire.encode(
        phase, items, root=None if root is None else str(root),
        config=None if config is None else str(config), authtok=authtok)
    r, w = os.pipe()
    try:
        with connect(path) as s:
            s.settimeout(timeout)
            send_request(s, data, [w])
            os.close(w)
            w = -1
            replies = s.recv(1)
            if replies == b"E":
                while not replies.endswith(b"\n"):
                    chunk = s.recv(256)
                    if not chunk:
                        break
                    replies += chunk
            if replies == b"R" and go:
                s.sendall(b"G")
                while len(replies) < 3:
                    chunk = s.recv(3 - len(replies))
                    if not chunk:
                        break
                    replies += chunk
        status = replies[2] if replies[:2] == b"RS" and len(replies) == 3 else None
        os.set_blocking(r, False)
        try:
            messages = os.read(r, 1 << 20)
        except BlockingIOError:
            messages = b""
        return Answer(replies, status, messages)
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
