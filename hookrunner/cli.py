"""The ``hookrunner`` command: run, list, check, simulate. One place maps errors to exit codes.

Exit status: 0 success, 1 a hook failed or denied (or check found a problem), 2 usage error,
3 configuration or internal error; 4 only with ``run --ignore-empty``: no hook for the phase.
"""

from __future__ import annotations

import os
import sys

from .config import DEFAULT_PATH, Config, ConfigError, parse_config
from .phases import Phase, items_from_environ, phase_words, resolve_phase
from .quick import RunArgs, run_args

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: every login pays imports
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from typing import NoReturn

    from .dispatch import Dispatch, Ran
    from .log import Log

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_CONFIG, EXIT_EMPTY = 0, 1, 2, 3, 4
AUTHTOK_MAX = 512  # PAM_MAX_RESP_SIZE
AUTHTOK_WAIT = 2.0  # seconds to wait for pam_exec's expose_authtok pipe


class UsageError(Exception):
    pass


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    status = _guarded(args)
    plugins = sys.modules.get("hookrunner.plugins")
    if plugins is not None and plugins.abandoned_threads():
        # A plugin ran past its timeout and still spins: leave without waiting for it.
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
        os._exit(status)
    return status


def _guarded(args: list[str]) -> int:
    try:
        return _main(args)
    except UsageError as e:
        print(f"hookrunner: {e}", file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as e:
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
    fast = run_args(args)  # what PAM lines use: no argparse (a third of the start-up)
    if fast is not None:
        return cmd_run(_RunArgs(fast))  # type: ignore[arg-type]
    parser = _parser()
    ns = parser.parse_args(args)
    if ns.command is None:
        raise UsageError("missing command (run, list, check, simulate); see --help")
    ns.root = os.path.abspath(ns.root)  # hooks run with cwd /: a relative root would break
    command = {"run": cmd_run, "list": cmd_list, "check": cmd_check, "simulate": cmd_simulate}
    return command[ns.command](ns)


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


def _parser() -> argparse.ArgumentParser:
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> NoReturn:
            raise UsageError(f"{self.prog.removeprefix('hookrunner ')}: {message}"
                             if " " in self.prog else message)

    parser = Parser(prog="hookrunner", description="run-parts style hook directories for PAM")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--root", default="/", metavar="DIR",
                       help="prefix every default path with DIR (like systemctl --root)")
        p.add_argument("--config", metavar="FILE",
                       help="config file (default DIR/etc/security/hookrunner.toml)")
        p.add_argument("-v", "--verbose", action="store_true", help="log to stderr too")

    run = sub.add_parser("run", help="run the hooks of a phase (what the PAM module calls)")
    run.add_argument("phase", nargs="?", help="phase; default from $PAM_TYPE")
    run.add_argument("--msg-fd", type=int, metavar="N", help="write user messages to fd N")
    run.add_argument("--ignore-empty", action="store_true",
                     help="exit 4 when the phase has no hook at all")
    common(run)
    lst = sub.add_parser("list", help="show every candidate hook in execution order")
    lst.add_argument("phase")
    lst.add_argument("--json", action="store_true")
    common(lst)
    chk = sub.add_parser("check", help="audit hooks, config and PAM stacks")
    chk.add_argument("--pam-dir", metavar="DIR",
                     help="PAM configuration to audit (default DIR/etc/pam.d)")
    common(chk)
    sim = sub.add_parser("simulate", help="run a phase with a synthetic PAM context")
    sim.add_argument("phase")
    sim.add_argument("--user", required=True)
    sim.add_argument("--service", default="hookrunner-simulate")
    sim.add_argument("--rhost")
    sim.add_argument("--ruser")
    sim.add_argument("--tty")
    common(sim)
    return parser


def _phase(word: str | None) -> Phase:
    phase = resolve_phase(word)
    if phase is None:
        if word is None:
            raise UsageError("no phase given and PAM_TYPE is not set")
        raise UsageError(f"unknown phase {word!r} (expected one of: {phase_words()})")
    return phase


def _config(ns: argparse.Namespace) -> Config:
    from .safety import UnsafeError, read_checked

    path = ns.config if ns.config is not None else os.path.join(ns.root, DEFAULT_PATH)
    if not os.path.lexists(path):
        if ns.config is not None:
            raise ConfigError(f"{path}: no such file")
        return Config()
    try:
        raw = read_checked(path, ns.root)  # parsed from the very descriptor that was checked
    except UnsafeError as e:
        raise ConfigError(f"{path}: refused: {e}") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    return parse_config(path, raw, cache_root=os.fspath(ns.root))


def _log(ns: argparse.Namespace, config: Config) -> Log:
    from .log import Log

    tty = sys.stderr is not None and sys.stderr.isatty()
    return Log(stderr=sys.stderr if (ns.verbose or tty) else None, path=config.log_file,
               debug=ns.verbose)


def _entry_points(root: str) -> object:
    from . import entrypoints

    return lambda: entrypoints.installed(root)


def _dispatch(ns: argparse.Namespace, phase: Phase, items: dict[bytes, bytes],
              authtok: bytes | None = None, msg_fd: int | None = None) -> Dispatch:
    from .dispatch import Dispatch, Messages

    config = _config(ns)
    return Dispatch(phase, items, config, _log(ns, config), root=ns.root,
                    caller_env=os.environb, authtok=authtok, messages=Messages(msg_fd),
                    entry_points=_entry_points(ns.root))  # type: ignore[arg-type]


def cmd_run(ns: argparse.Namespace) -> int:
    phase = _phase(ns.phase if ns.phase is not None else os.environ.get("PAM_TYPE"))
    items = items_from_environ(os.environb)
    items[b"PAM_TYPE"] = phase.pam_type.encode()
    dispatch = _dispatch(ns, phase, items, msg_fd=ns.msg_fd)
    if phase.authtok and any(h.authtok for h in dispatch.config.hooks.values()):
        dispatch.authtok = read_authtok(0)
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


def _checked_candidates(dispatch: Dispatch) -> list[tuple[str, ...]]:
    """(name, path, kind, action, reason) with the safety rules applied to runnable files."""
    from .entrypoints import check_module
    from .safety import check_file

    rows: list[tuple[str, ...]] = []
    for c in dispatch.candidates():
        action, reason = str(c.action), c.reason
        if action == "run":
            if c.kind == "entrypoint":
                problem = check_module(str(c.path))
            else:
                problem = check_file(c.path, dispatch.root)
            if problem:
                action, reason = "skip", f"refused: {problem}"
        rows.append((c.name, str(c.path), c.kind, action, reason))
    return rows


def cmd_list(ns: argparse.Namespace) -> int:
    phase = _phase(ns.phase)
    dispatch = _dispatch(ns, phase, {})
    rows = _checked_candidates(dispatch)
    if ns.json:
        import json

        keys = ("name", "path", "kind", "action", "reason")
        print(json.dumps([dict(zip(keys, row, strict=True)) for row in rows], indent=2))
        return EXIT_OK
    from .log import escape

    print(_table(("NAME", "KIND", "ACTION", "PATH", "REASON"),
                 [(escape(n), k, a, escape(p), r) for n, p, k, a, r in rows]))
    return EXIT_OK


def cmd_check(ns: argparse.Namespace) -> int:
    from .log import escape
    from .phases import PHASES

    problems: list[str] = []
    config = _config(ns)
    if config.path is not None:
        import tomllib

        from .config import forbidden_env

        with open(config.path, "rb") as f:
            raw = tomllib.load(f)
        for name in raw.get("pass_env", []):
            if forbidden_env(name):
                problems.append(f"{config.path}: pass_env: {name} is never passed to hooks")
    for phase in PHASES:
        dispatch = _dispatch(ns, phase, {})
        for name, path, _kind, action, reason in _checked_candidates(dispatch):
            if reason.startswith("refused:") or reason in ("dangling symlink",) or \
                    reason.startswith("cannot"):
                problems.append(f"{escape(path)}: {phase.name}.d/{escape(name)}: {reason}")
            del action
    from pathlib import Path

    pam_dir = Path(ns.pam_dir) if ns.pam_dir is not None else Path(ns.root, "etc/pam.d")
    if pam_dir.is_dir():
        from .pamaudit import audit_pam_dir

        problems.extend(audit_pam_dir(pam_dir, root=Path(ns.root)))
    for problem in problems:
        print(problem)
    if not problems:
        print("hookrunner: no problems found", file=sys.stderr)
    return EXIT_FAIL if problems else EXIT_OK


def cmd_simulate(ns: argparse.Namespace) -> int:
    phase = _phase(ns.phase)
    items = {b"PAM_TYPE": phase.pam_type.encode()}
    for var, value in ((b"PAM_USER", ns.user), (b"PAM_SERVICE", ns.service),
                       (b"PAM_RHOST", ns.rhost), (b"PAM_RUSER", ns.ruser), (b"PAM_TTY", ns.tty)):
        if value is not None:
            items[var] = os.fsencode(value)
    dispatch = _dispatch(ns, phase, items)
    status, ran = dispatch.run()
    print(_simulation_table(ran))
    for r in ran:
        for stream, data in (("stdout", r.result.stdout), ("stderr", r.result.stderr)):
            for line in data.decode("utf-8", "replace").splitlines()[:20]:
                print(f"  {r.candidate.name} {stream}: {line}")
    print(f"{phase.name}: {'success' if status == 0 else 'failure'} (exit {status})")
    return status


def _simulation_table(ran: list[Ran]) -> str:
    from .log import escape

    rows = [(escape(r.candidate.name), r.result.outcome + (" (optional)" if r.optional else ""),
             "-" if r.result.status is None else str(r.result.status),
             f"{r.result.duration * 1000:.0f} ms", r.result.message) for r in ran]
    return _table(("HOOK", "OUTCOME", "STATUS", "DURATION", "MESSAGE"), rows)


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    if not rows:
        return "(no hooks)"
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in [header, *rows])
