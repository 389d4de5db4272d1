"""Run one executable hook: no shell, own session, bounded output, real timeouts."""

from __future__ import annotations

import errno
import os
import select
import signal
import time
from collections.abc import Mapping, Sequence
from typing import Literal, NamedTuple

Outcome = Literal["ok", "fail", "signal", "timeout", "error", "deny"]
DRAIN_SECONDS = 0.05  # after the hook exits, how long leftover output may still trickle in


class HookResult(NamedTuple):
    outcome: Outcome
    message: str  # "exited with status 3", "killed by signal 9 (SIGKILL)", ...
    duration: float = 0.0
    status: int | None = None
    signal: int | None = None
    stdout: bytes = b""
    stderr: bytes = b""
    dropped: int = 0  # output bytes beyond the bound, counted and thrown away

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


class RunAs(NamedTuple):
    uid: int
    gid: int
    groups: tuple[int, ...]


class _Capture:
    """Keep the first ``limit`` bytes of each stream; count the rest."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data: dict[int, bytearray] = {}
        self.dropped = 0

    def read(self, fd: int) -> bool:
        """Read what is there; False at end of file."""
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return True
        except OSError:
            return False
        if not chunk:
            return False
        buf = self.data.setdefault(fd, bytearray())
        room = max(0, self.limit - len(buf))
        buf += chunk[:room]
        self.dropped += max(0, len(chunk) - room)
        return True

    def get(self, fd: int) -> bytes:
        return bytes(self.data.get(fd, b""))


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def run_exec(
    argv: Sequence[bytes],
    env: Mapping[bytes, bytes],
    *,
    timeout: float,
    grace: float = 1.0,
    max_output: int = 65536,
    stdin: bytes | None = None,
    runas: RunAs | None = None,
) -> HookResult:
    """Run ``argv`` and wait for it at most ``timeout`` seconds (then TERM, KILL its group)."""
    import subprocess

    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd="/",
            env=dict(env),
            start_new_session=True,
            close_fds=True,
            umask=0o022,
            user=runas.uid if runas else None,
            group=runas.gid if runas else None,
            extra_groups=list(runas.groups) if runas else None,
        )
    except OSError as e:
        return HookResult("error", f"could not be started: {e.strerror or e}",
                          time.monotonic() - start)
    assert proc.stdout is not None and proc.stderr is not None
    if proc.stdin is not None:
        _feed(proc.stdin.fileno(), stdin or b"")
        proc.stdin.close()
    out, err = proc.stdout.fileno(), proc.stderr.fileno()
    capture = _Capture(max_output)
    timed_out = _wait(proc, (out, err), capture, start + timeout, grace)
    proc.stdout.close()
    proc.stderr.close()
    returncode = proc.wait()
    duration = time.monotonic() - start

    def result(outcome: Outcome, message: str, status: int | None = None,
               sig: int | None = None) -> HookResult:
        return HookResult(outcome, message, duration, status, sig, capture.get(out),
                          capture.get(err), capture.dropped)

    if timed_out:
        _killpg(proc.pid, signal.SIGKILL)  # what is left of its group
        return result("timeout", f"timed out after {timeout:g} s",
                      sig=-returncode if returncode < 0 else None)
    if returncode < 0:
        return result("signal", f"killed by signal {-returncode} ({signal_name(-returncode)})",
                      sig=-returncode)
    if returncode == 0:
        return result("ok", "exited with status 0", status=0)
    return result("fail", f"exited with status {returncode}", status=returncode)


def _feed(fd: int, data: bytes) -> None:
    # At most PAM_MAX_RESP_SIZE bytes: fits the pipe buffer, so this cannot block.
    try:
        os.write(fd, data)
    except BrokenPipeError:
        pass


def _wait(proc: object, fds: tuple[int, ...], capture: _Capture, deadline: float,
          grace: float) -> bool:
    """Read output until the process exits (plus a short drain) or the deadline; True if killed."""
    import subprocess

    assert isinstance(proc, subprocess.Popen)
    pidfd = _pidfd(proc.pid)
    poller = select.poll()
    open_fds = set(fds)
    for fd in fds:
        os.set_blocking(fd, False)
        poller.register(fd, select.POLLIN)
    if pidfd is not None:
        poller.register(pidfd, select.POLLIN)
    killed = False
    kill_at: float | None = None
    try:
        while True:
            now = time.monotonic()
            if proc.poll() is not None:
                _drain(poller, open_fds, capture, now + DRAIN_SECONDS)
                return killed
            if now >= deadline and not killed:
                _killpg(proc.pid, signal.SIGTERM)
                killed, kill_at = True, now + grace
            if kill_at is not None and now >= kill_at:
                _killpg(proc.pid, signal.SIGKILL)
                kill_at = None
            wake = kill_at if killed else deadline
            tick = 0.05 if pidfd is None or wake is None else max(0.0, wake - now)
            for fd, _event in poller.poll(tick * 1000):
                if fd in open_fds and not capture.read(fd):
                    poller.unregister(fd)
                    open_fds.discard(fd)
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _drain(poller: select.poll, open_fds: set[int], capture: _Capture, until: float) -> None:
    """Take what is left in the pipes; a background child holding them open cannot hang us."""
    while open_fds and time.monotonic() < until:
        events = [(fd, ev) for fd, ev in poller.poll(0) if fd in open_fds]
        if not events:
            return
        for fd, _event in events:
            if not capture.read(fd):
                poller.unregister(fd)
                open_fds.discard(fd)


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except OSError as e:
        if e.errno != errno.ESRCH:
            raise
