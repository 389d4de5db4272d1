"""The ``hookrunner`` command's entry and its ``run``. One place maps errors to exit codes.

``run`` as PAM lines spell it is parsed here without argparse; anything else (``--help``,
list, check, simulate, an unusual spelling of ``run``) is parsed by ``commands.py``, imported
only then: a login never loads argparse or the admin commands. What both need (exit codes,
``UsageError``, the phase, the config, a ready ``Dispatch``) is in ``invocation.py``: the imports
point one way, cli -> commands -> invocation and cli -> invocation.

Exit status: 0 success, 1 a hook failed or denied (or check found a problem), 2 usage error,
3 configuration or internal error; 4 only with ``run --ignore-empty``: no hook for the phase.
"""

from __future__ import annotations

import os
import sys

from .config import ConfigError
from .invocation import EXIT_CONFIG, EXIT_USAGE, UsageError, need_phase, new_dispatch
from .phases import pam_items
from .privileges import PrivilegeError, become_root
from .quick import EXIT_EMPTY, RunArgs, run_args

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: every login pays imports
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Mapping, Sequence

    from .phases import Phase

AUTHTOK_MAX = 512  # PAM_MAX_RESP_SIZE
AUTHTOK_WAIT = 2.0  # seconds to wait for pam_exec's expose_authtok pipe


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    status = guarded(lambda: _main(args))
    plugins = sys.modules.get("hookrunner.plugins")
    if plugins is not None and plugins.abandoned_threads():
        # A plugin ran past its timeout and still spins: leave without waiting for it.
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
        os._exit(status)
    return status


def guarded(command: Callable[[], int]) -> int:
    """Run ``command``; every error becomes its exit status and one clear line."""
    try:
        return command()
    except UsageError as e:
        print(f"hookrunner: {e}", file=sys.stderr)
        return EXIT_USAGE
    except (ConfigError, PrivilegeError) as e:
        print(f"hookrunner: {e}", file=sys.stderr)
        _syslog_error(str(e))
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return EXIT_CONFIG
    except Exception as e:
        import traceback

        print(f"hookrunner: internal error: {type(e).__name__}: {e}", file=sys.stderr)
        _syslog_error("internal error: " + traceback.format_exc())
        return EXIT_CONFIG


def _syslog_error(message: str) -> None:
    from .log import Log

    Log(stderr=None).error(message)


def _main(args: list[str]) -> int:
    become_root()  # su, passwd & co.: the caller's real uid must not reach a hook
    fast = run_args(args)  # what PAM lines use: no argparse (a third of the start-up)
    if fast is not None:
        return cmd_run(_RunArgs(fast))  # type: ignore[arg-type]
    from .commands import parse_args, run_command  # argparse, admin commands: never on a login

    ns = parse_args(args)
    return cmd_run(ns) if ns.command == "run" else run_command(ns)


class _RunArgs:
    """``run``'s arguments, as argparse would give them (same attribute names and types)."""

    def __init__(self, fast: RunArgs) -> None:
        self.command = "run"
        self.phase = fast.phase
        self.root = fast.root
        self.config = fast.config
        self.msg_fd = fast.msg_fd
        self.ignore_empty = fast.ignore_empty
        self.verbose = fast.verbose


def cmd_run(ns: argparse.Namespace) -> int:
    items, spoofed = pam_items()  # pam_exec's own, not what the PAM environment says
    pam_type = items.get(b"PAM_TYPE")
    phase = need_phase(ns.phase if ns.phase is not None
                       else None if pam_type is None else os.fsdecode(pam_type))
    return run_phase(ns, phase, items, lambda: read_authtok(0), spoofed=spoofed)


def run_phase(ns: argparse.Namespace, phase: Phase, items: dict[bytes, bytes],
              authtok: Callable[[], bytes | None], *,
              caller_env: Mapping[bytes, bytes] | None = None,
              spoofed: Sequence[bytes] = ()) -> int:
    """``run``'s work, shared with ``serve``'s per-request child (request.py): the PAM
    ``items`` and the caller's environment (``pass_env``) as given, the password fetched
    only if a hook of the phase asked for it."""
    items[b"PAM_TYPE"] = phase.pam_type.encode()
    dispatch = new_dispatch(ns, phase, items, msg_fd=ns.msg_fd, caller_env=caller_env)
    for name in spoofed:
        dispatch.log.warning(f"{phase.name}: {name.decode()} is also set in the PAM environment "
                             f"(pam_env?), not by PAM: ignored, a spoofing attempt? "
                             f"{dispatch.fields()}")
    if phase.authtok and any(h.authtok for h in dispatch.config.hooks.values()):
        dispatch.authtok = authtok()
    _kill_hooks_on_sigterm()
    status, _ = dispatch.run(keep=False)
    if ns.ignore_empty and not dispatch.ran:
        return EXIT_EMPTY
    return status


def _kill_hooks_on_sigterm() -> None:
    """pam_hookrunner.so's timeout= SIGTERMs our process group, but each hook runs in a
    session of its own: take the running hook (and what it left) down with us."""
    import _signal  # type: ignore[import-not-found]  # the C module: `signal` imports enum

    from . import reaper

    born = reaper.clock()

    def on_term(signum: int, frame: object) -> None:
        reaper.kill_leftovers(born, timeout=0.5)
        os._exit(EXIT_CONFIG)

    _signal.signal(reaper.SIGTERM, on_term)


def read_authtok(fd: int) -> bytes | None:
    """The password pam_exec's expose_authtok writes to our stdin: bounded, no newline assumed."""
    import select

    if os.isatty(fd):
        return None
    data = b""
    try:
        while len(data) <= AUTHTOK_MAX:
            ready, _, _ = select.select([fd], [], [], AUTHTOK_WAIT)
            if not ready:
                break
            chunk = os.read(fd, AUTHTOK_MAX + 1 - len(data))
            if not chunk:
                break
            data += chunk
    except OSError:
        return None
    if len(data) > AUTHTOK_MAX:
        return None  # not a password; never guess at one
    return data.rstrip(b"\0") or None
