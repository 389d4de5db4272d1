"""Run one executable hook: no shell, own session, bounded output, real timeouts.

Hooks are started with ``posix_spawn`` (glibc: ``clone(CLONE_VM|CLONE_VFORK)``), not
``subprocess``: that module and the ``signal`` enums it pulls in cost a PAM phase more than
a third of the interpreter's start-up. Only a ``runas`` hook, which needs setuid/setgroups
between fork and exec, is started with ``subprocess.Popen``.
"""

from __future__ import annotations

import errno
import os
import select
import time

from . import reaper
from .record import Record
from .spawnerror import start_failure  # up front: with no descriptor left, no module could load

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: every login pays imports
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Literal

    Outcome = Literal["ok", "fail", "signal", "timeout", "error", "deny", "refused", "skip",
                      "started"]

DRAIN_SECONDS = 0.05  # after the hook exits, how long leftover output may still trickle in
# Linux's numbers, the same on every architecture; not `import signal` (its enums are slow).
SIGKILL, SIGPIPE, SIGTERM, SIGXFSZ = 9, 13, 15, 25


class HookResult(Record):
    """What one hook did. A plain class: ``typing.NamedTuple`` costs every login 2 ms."""

    __slots__ = ("dropped", "duration", "message", "outcome", "signal", "status", "stderr",
                 "stdout")
    _fields = ("outcome", "message", "duration", "status", "signal", "stdout", "stderr", "dropped")

    def __init__(self, outcome: Outcome, message: str, duration: float = 0.0,
                 status: int | None = None, signal: int | None = None, stdout: bytes = b"",
                 stderr: bytes = b"", dropped: int = 0) -> None:
        self.outcome = outcome
        self.message = message  # "exited with status 3", "killed by signal 9 (SIGKILL)", ...
        self.duration = duration
        self.status = status
        self.signal = signal
        self.stdout = stdout
        self.stderr = stderr
        self.dropped = dropped  # output bytes beyond the bound, counted and thrown away

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


class RunAs(Record):
    """The user a ``runas`` hook runs as."""

    __slots__ = ("gid", "groups", "uid")
    _fields = ("uid", "gid", "groups")

    def __init__(self, uid: int, gid: int, groups: tuple[int, ...]) -> None:
        self.uid = uid
        self.gid = gid
        self.groups = groups


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
    import signal

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
    inherited: Sequence[int] | None = None,
) -> HookResult:
    """Run ``argv`` and wait for it at most ``timeout`` seconds (then TERM, KILL its group).

    The hook gets cwd ``/``, umask 022, a new session, stdin ``/dev/null`` (or a pipe holding
    ``stdin``), stdout and stderr on pipes, and no other file descriptor of ours.
    ``inherited``: ``inherited_fds()`` taken earlier (a phase lists them once), else listed now.
    """
    start = time.monotonic()
    reaper.become_subreaper()  # orphans it leaves come to us, not init
    born = reaper.clock()
    made: list[int] = []  # every descriptor made for this hook, closed if it cannot start
    try:
        out_r, out_w = _pipe(made)
        err_r, err_w = _pipe(made)
        in_r, in_w = _pipe(made) if stdin is not None else (None, None)
        spawn = _spawn if runas is None else _spawn_as
        pid = spawn(list(argv), dict(env), in_r, out_w, err_w, runas, inherited)
    except OSError as e:
        for ours in made:
            os.close(ours)
        return HookResult("error", f"could not be started: {start_failure(e, argv[0])}",
                          time.monotonic() - start)
    for fd in (out_w, err_w, in_r):  # the child's ends
        if fd is not None:
            os.close(fd)
    if in_w is not None:
        _feed(in_w, stdin or b"")
        os.close(in_w)
    capture = _Capture(max_output)
    try:
        timed_out, returncode = _wait(pid, (out_r, err_r), capture, start + timeout, grace)
    finally:
        os.close(out_r)
        os.close(err_r)
    duration = time.monotonic() - start

    def result(outcome: Outcome, message: str, status: int | None = None,
               sig: int | None = None) -> HookResult:
        return HookResult(outcome, message, duration, status, sig, capture.get(out_r),
                          capture.get(err_r), capture.dropped)

    if timed_out:
        _killpg(pid, SIGKILL)  # what is left of its group
        reaper.kill_leftovers(born)  # and what left the group (setsid, double fork)
        return result("timeout", f"timed out after {timeout:g} s",
                      sig=-returncode if returncode is not None and returncode < 0 else None)
    if returncode is None:
        return result("error", "ended, but its exit status was lost: something else in this "
                      "process reaped it (a plugin that waits for any child, or SIGCHLD ignored)")
    if returncode < 0:
        return result("signal", f"killed by signal {-returncode} ({signal_name(-returncode)})",
                      sig=-returncode)
    if returncode == 0:
        return result("ok", "exited with status 0", status=0)
    return result("fail", f"exited with status {returncode}", status=returncode)


def _pipe(made: list[int]) -> tuple[int, int]:
    """A close-on-exec pipe whose ends are above 2, so that dup2 onto 0-2 never clobbers one;
    both ends are added to ``made``."""
    fds = list(os.pipe())
    made += fds
    for i, fd in enumerate(fds):
        if fd <= 2:
            import fcntl

            fds[i] = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
            made[made.index(fd)] = fds[i]
            os.close(fd)
    return fds[0], fds[1]


def inherited_fds() -> list[int]:
    """Our descriptors above 2 that an exec would pass on (not close-on-exec).

    Only code that runs in this process can add one (hookrunner's own descriptors are all
    close-on-exec), so a phase lists them once and again after each plugin."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        names = [str(fd) for fd in range(3, os.sysconf("SC_OPEN_MAX"))]
    fds = []
    for name in names:
        fd = int(name)
        if fd > 2:
            try:
                if os.get_inheritable(fd):
                    fds.append(fd)
            except OSError:  # the directory listing's own descriptor, closed by now
                pass
    return fds


def _spawn(argv: list[bytes], env: dict[bytes, bytes], stdin: int | None, out: int, err: int,
           runas: RunAs | None, inherited: Sequence[int] | None = None) -> int:
    """posix_spawn in a new session; cwd and umask are the child's only through ours."""
    actions: list[tuple[int, ...] | tuple[int, int, str, int, int]] = [
        (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0) if stdin is None
        else (os.POSIX_SPAWN_DUP2, stdin, 0),
        (os.POSIX_SPAWN_DUP2, out, 1),
        (os.POSIX_SPAWN_DUP2, err, 2),
        *((os.POSIX_SPAWN_CLOSE, fd)
          for fd in (inherited_fds() if inherited is None else inherited)),
    ]
    # posix_spawn has no chdir or umask: set ours around the call (a few microseconds).
    try:
        cwd: int | None = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        if _has_cwd():  # out of descriptors, say: the hook cannot be started
            raise
        cwd = None  # a deleted or unreadable working directory: nothing to go back to
    old_umask = os.umask(0o022)
    try:
        os.chdir("/")
        return os.posix_spawn(argv[0], argv, env, file_actions=actions, setsid=True,
                              setsigdef=(SIGPIPE, SIGXFSZ), setsigmask=())
    finally:
        os.umask(old_umask)
        if cwd is not None:
            os.fchdir(cwd)
            os.close(cwd)


def _has_cwd() -> bool:
    try:
        os.stat(".")
    except OSError:
        return False
    return True


def _spawn_as(argv: list[bytes], env: dict[bytes, bytes], stdin: int | None, out: int, err: int,
              runas: RunAs | None, inherited: Sequence[int] | None = None) -> int:
    """fork + setgroups/setgid/setuid + exec: what posix_spawn cannot do."""
    import subprocess

    assert runas is not None
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL if stdin is None else stdin, stdout=out, stderr=err,
        cwd="/", env=env, start_new_session=True, close_fds=True, umask=0o022,
        user=runas.uid, group=runas.gid, extra_groups=list(runas.groups),
    )
    proc.returncode = 0  # we reap it ourselves (_wait); keep Popen from trying later
    return proc.pid


def _feed(fd: int, data: bytes) -> None:
    # At most PAM_MAX_RESP_SIZE bytes: fits the pipe buffer, so this cannot block.
    try:
        os.write(fd, data)
    except BrokenPipeError:
        pass


def _wait(pid: int, fds: tuple[int, ...], capture: _Capture, deadline: float,
          grace: float) -> tuple[bool, int | None]:
    """Read output until the process exits (plus a short drain) or the deadline.

    (killed by us, its exit code as Popen gives it: negative for a signal; None if someone
    else reaped it); reaps it.
    """
    pidfd = _pidfd(pid)
    poller = select.poll()
    open_fds = set(fds)
    for fd in fds:  # left blocking: each read follows a poll that found data or end of file
        poller.register(fd, select.POLLIN)
    if pidfd is not None:
        poller.register(pidfd, select.POLLIN)
    killed = False
    kill_at: float | None = None
    try:
        while True:
            now = time.monotonic()
            try:
                reaped, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # reaped by another thread, or by the kernel (SIGCHLD)
                _drain(poller, open_fds, capture, now + DRAIN_SECONDS)
                return killed, None
            if reaped:
                _drain(poller, open_fds, capture, now + DRAIN_SECONDS)
                return killed, os.waitstatus_to_exitcode(status)
            if now >= deadline and not killed:
                _killpg(pid, SIGTERM)
                killed, kill_at = True, now + grace
            if kill_at is not None and now >= kill_at:
                _killpg(pid, SIGKILL)
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
