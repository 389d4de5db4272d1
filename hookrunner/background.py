"""``background = true``: a session hook that is started and not waited for.

Login notifications (mail, chat, webhooks) are the commonest pam_exec scripts, and each one
delays the login by a network round trip. A background hook still gets its timeout and its
one log record, but the phase goes on at once and the hook never affects the PAM result.

Something must outlive the dispatcher to enforce the timeout: a *supervisor*, a forked copy
of the dispatcher that starts the hook exactly as a foreground one (runner.run_exec: own
session, bounded output, SIGTERM then SIGKILL to its process group at the timeout, the
orphans it leaves killed), writes the record and exits. It is double-forked away from the
PAM application's process:

- the dispatcher waits only for the intermediate child, which exits right after the second
  fork, and the supervisor is in a session of its own;
- the supervisor first points 0, 1 and 2 at /dev/null and closes every other descriptor: it
  must not hold pam_exec's stdout pipe (``pam_exec.so stdout`` reads it to its end) nor the
  native module's ``--msg-fd`` pipe;
- the dispatcher is a child subreaper (reaper.py) and kills its leftovers at a timeout or a
  SIGTERM: with adoption switched off around the double fork, the supervisor is re-parented
  to init (or the nearest subreaper above the dispatcher), never to the dispatcher.

Only executables run in the background. A Python plugin runs in the dispatcher's process,
which is gone long before a slow plugin would end: ``background = true`` on a plugin is a
configuration error, as it is on a hook of a phase other than onsessionopen/onsessionclose
(auth, account and password answer a question: their hooks' results are the answer).
"""

from __future__ import annotations

import os

from .config import ConfigError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: every login pays imports
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from .config import Config
    from .discovery import Candidate
    from .log import Log
    from .phases import Phase
    from .runner import HookResult

SESSION_PHASES = ("onsessionopen", "onsessionclose")


def misuse(phase: Phase, candidate: Candidate) -> str | None:
    """Why ``candidate`` (configured ``background = true``) may not run in the background."""
    if phase.name not in SESSION_PHASES:
        return (f"hook.{candidate.name}.background: only hooks of onsessionopen and onsessionclose "
                f"run in the background, and {candidate.name} is a hook of {phase.name}")
    if candidate.kind != "exec":
        return (f"hook.{candidate.name}.background: a Python plugin runs inside the dispatcher "
                f"and cannot run in the background; make it an executable hook")
    return None


def refuse(phase: Phase, candidates: Sequence[Candidate], config: Config, root: str) -> None:
    """ConfigError, before any hook runs, if a hook of this phase may not be a background
    one; it names the file and line that set ``background``."""
    for candidate in candidates:
        if candidate.action == "run" and config.hook(candidate.name).background:
            problem = misuse(phase, candidate)
            if problem is not None:
                from .dropins import locate

                where = locate(root, config.path, ("hook", candidate.name, "background"))
                raise ConfigError(f"{where}: {problem}")


def start(run: Callable[[], HookResult], report: Callable[[HookResult, Log], None],
          log: Log) -> HookResult:
    """Fork the supervisor, which calls ``run()`` and then ``report(result, log)``; return at
    once with outcome ``started`` (or ``error`` if no process could be forked)."""
    from . import reaper
    from .runner import HookResult

    adopting = reaper.adopting()
    if adopting:
        reaper.adopt(False)  # the supervisor goes to init, not to us: see the module's doc
    try:
        pid = os.fork()
        if pid == 0:
            _intermediate(run, report, log)  # never returns
        _, status = os.waitpid(pid, 0)
    except OSError as e:
        return HookResult("error", f"could not be started in the background: {e.strerror}")
    finally:
        if adopting:
            reaper.adopt(True)
    if status != 0:
        return HookResult("error", "could not be started in the background: fork failed")
    return HookResult("started", "started in the background")


def _intermediate(run: Callable[[], HookResult], report: Callable[[HookResult, Log], None],
                  log: Log) -> None:
    code = 1
    try:
        os.setsid()
        if os.fork() == 0:
            _supervise(run, report, log)
        code = 0
    finally:
        os._exit(code)


def _supervise(run: Callable[[], HookResult], report: Callable[[HookResult, Log], None],
               log: Log) -> None:
    """The supervisor: whatever happens, it never returns into the dispatcher's code."""
    try:
        _detach(log)
        report(run(), log)
    finally:
        os._exit(0)


def _detach(log: Log) -> None:
    """Hold nothing of the PAM application's: stdio on /dev/null, every other descriptor
    closed (syslog's socket too: it is opened again for the record)."""
    if log.use_syslog:
        import syslog

        syslog.closelog()
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        if null != fd:
            os.dup2(null, fd)
    os.closerange(3, max(3, os.sysconf("SC_OPEN_MAX")))
    log._syslog_open = False  # openlog again, on a socket of our own
    log._fd = None  # log_file's descriptor was closed too: opened again (and checked) at the record
    log.stderr = None  # (a terminal's, or pam_exec's pipe: /dev/null now in any case)
