"""What a timed-out hook leaves behind: adopted as orphans, then killed and reaped.

A hook runs in its own session and a timeout kills that session's process group, but a
hook can leave the group (``setsid``, a double fork) and so outlive its timeout; a hook
that runs as a user (``runas``) could keep a process of that user alive after its login.

The dispatcher makes itself a *child subreaper* (``prctl(PR_SET_CHILD_SUBREAPER)``, Linux
3.4): every orphan among its descendants is re-parented to the dispatcher instead of init.
After a timeout it kills each child of its own that was born after the hook started —
round after round, since each kill orphans the next generation — and reaps it. A child
cannot be reaped by anyone else, so its PID cannot be reused while we look at it.

Left alone on purpose: the processes of a hook that exits in time (a hook may start a
daemon, as with run-parts or pam_exec), and whatever a hook asks another service to start
(``at``, ``systemd-run``, ``ssh localhost``): those are not our descendants.
"""

from __future__ import annotations

import os
import select
import time

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: every login pays imports
if TYPE_CHECKING:
    from collections.abc import Callable

PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>
PR_SET_PDEATHSIG = 1
SIGKILL = 9  # Linux's number; `import signal` (enums) would slow every PAM phase down
SIGTERM = 15
_subreaper: bool | None = None  # None: not tried yet


def become_subreaper() -> bool:
    """Adopt orphaned descendants from now on, and wait for our children ourselves (once per
    process; cheap after the first call)."""
    global _subreaper
    if _subreaper is None:
        _wait_for_children()
        try:
            _subreaper = _prctl()(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
        except (OSError, AttributeError, ImportError, MemoryError):  # no memory to load _ctypes:
            _subreaper = False  # then orphans go to init, and the hook still runs
    return _subreaper


def _wait_for_children() -> None:
    """SIGCHLD back to its default if the caller left it ignored: an ignored SIGCHLD survives
    exec, and then the kernel reaps every child at once and waitpid() finds none (ECHILD):
    no hook's exit status could be known."""
    import _signal  # type: ignore[import-not-found]  # the C module, loaded at start-up anyway

    if _signal.getsignal(_signal.SIGCHLD) == _signal.SIG_IGN:
        _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)


def set_parent_death_signal(signum: int) -> bool:
    """``prctl(PR_SET_PDEATHSIG)``: ``signum`` when our parent dies (0: nothing)."""
    try:
        return _prctl()(PR_SET_PDEATHSIG, signum, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def adopting() -> bool:
    """Whether :func:`become_subreaper` made us a subreaper."""
    return bool(_subreaper)


def adopt(on: bool) -> None:
    """Switch adoption off, and on again, around a fork whose descendants must not become
    ours (a background hook's supervisor, background.py). Only after become_subreaper()."""
    if _subreaper:
        _prctl()(PR_SET_CHILD_SUBREAPER, 1 if on else 0, 0, 0, 0)


def _prctl() -> Callable[..., int]:
    """libc's ``prctl``, called through ``_ctypes``, the C module: its ``dlsym`` and
    ``call_function`` need none of the classes ``import ctypes`` builds (~60 types, ``struct``,
    the endianness helpers: about 1.5 ms of every login), nor the two ``ctypes`` itself would
    build for one foreign function (0.4 ms more). Integer arguments reach C as in ``ctypes``:
    sign-extended to the register width. The plain ``ctypes`` route if anything here is not
    as expected."""
    try:
        import _ctypes

        address = _ctypes.dlsym(_ctypes.dlopen(None, 0), "prctl")  # type: ignore[arg-type]
        call = _ctypes.call_function

        def prctl(*args: int) -> int:
            result: int = call(address, args)
            return result

        return prctl
    except (ImportError, AttributeError, TypeError, OSError):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        function: Callable[..., int] = libc.prctl
        return function


def clock() -> int:
    """Now, in the unit of a process's start time in /proc/PID/stat (clock ticks since boot)."""
    return int(time.clock_gettime(time.CLOCK_BOOTTIME) * os.sysconf("SC_CLK_TCK"))


def children() -> list[tuple[int, int]]:
    """(pid, start time in clock ticks) of every child process of ours, zombies included."""
    me = os.getpid()
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:  # gone meanwhile
            continue
        # "pid (comm) state ppid ...": comm may hold anything, so split after its last ')'
        rest = data.rsplit(b")", 1)[1].split()
        if int(rest[1]) == me:
            out.append((int(name), int(rest[19])))  # fields 4 (ppid) and 22 (starttime)
    return out


def kill_leftovers(since: int, *, timeout: float = 2.0) -> list[int]:
    """SIGKILL and reap every child of ours born at or after ``since`` (a :func:`clock`
    reading), until none is left or ``timeout`` seconds passed; the PIDs killed."""
    deadline = time.monotonic() + timeout
    killed: list[int] = []
    while True:
        left = [pid for pid, born in children() if born >= since]
        if not left or time.monotonic() >= deadline:
            return killed
        for pid in left:
            try:
                os.kill(pid, SIGKILL)
            except ProcessLookupError:
                pass
            if pid not in killed:
                killed.append(pid)
        for pid in left:
            _reap(pid, deadline)


def _reap(pid: int, deadline: float) -> None:
    try:
        fd = os.pidfd_open(pid)
    except OSError:  # no pidfd (old kernel): a SIGKILLed child goes quickly
        fd = None
    try:
        if fd is not None:
            select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        os.waitpid(pid, 0 if fd is None else os.WNOHANG)
    except ChildProcessError:
        pass
    finally:
        if fd is not None:
            os.close(fd)
