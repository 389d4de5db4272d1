"""The ``hookrunner`` command's entry and its ``run`` (errors map to exit codes in one place,
``invocation.guarded``).

``run`` as PAM lines spell it is parsed here without argparse; anything else (``--help``,
list, check, simulate, an unusual spelling of ``run``) is parsed by ``commands.py``, imported
only then: a login never loads argparse or the admin commands. What both need (exit codes,
``UsageError``, the phase, the config, a ready ``Dispatch``, the phase run ``serve`` shares)
is in ``invocation.py``: the imports
point one way, cli -> commands -> invocation and cli -> invocation.

Exit status: 0 success, 1 a hook failed or denied (or check found a problem), 2 usage error,
3 configuration or internal error; 4 only with ``run --ignore-empty``: no hook for the phase.
"""

from __future__ import annotations

import os
import sys

from .invocation import guarded, need_phase, run_phase
from .phases import pam_items
from .privileges import become_root
from .quick import RunArgs, run_args

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: every login pays imports
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

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
