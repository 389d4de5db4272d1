"""The admin side of the ``hookrunner`` command: argparse's parser, list, check and simulate.

``cli._main`` imports this module only when the arguments are not ``run`` as PAM lines spell
it, so a login never loads argparse or these commands; an unusual spelling of ``run`` is
parsed here, and ``cli`` runs it. This module imports nothing of ``cli`` (what both need is
in ``invocation``). Errors are raised (``UsageError``, ``ConfigError``, anything else) and
``invocation.guarded`` turns them into the exit status.
"""

from __future__ import annotations

import os
import sys

from .invocation import EXIT_FAIL, EXIT_OK, UsageError, need_phase, new_dispatch, read_config

TYPE_CHECKING = False  # as in cli.py: typing only for the type checker
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from typing import NoReturn

    from .dispatch import Dispatch, Ran


def parse_args(args: list[str]) -> argparse.Namespace:
    """``args`` parsed with argparse; ``ns.command`` names the command (``run`` is cli's)."""
    ns = _parser().parse_args(args)
    if ns.command is None:
        raise UsageError("missing command (run, list, check, simulate, config, serve); see --help")
    ns.root = os.path.abspath(ns.root)  # hooks run with cwd /: a relative root would break
    return ns


def run_command(ns: argparse.Namespace) -> int:
    """Run the admin command ``ns`` names: list, check, simulate, config or serve."""
    command = {"list": cmd_list, "check": cmd_check, "simulate": cmd_simulate, "config": cmd_config,
               "serve": cmd_serve}
    return command[ns.command](ns)


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
    for option in ("--user", "--service", "--rhost"):
        lst.add_argument(option, help="decide the hooks' conditions for this PAM " + option[2:])
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
    cfg = sub.add_parser("config", help="print the merged configuration and where each value came from")
    common(cfg)
    srv = sub.add_parser("serve", help="the warm dispatcher: run phases for pam_hookrunner.so "
                         "over a UNIX socket")
    srv.add_argument("--socket", metavar="PATH",
                     help="listen here (default /run/hookrunner/dispatch.sock; ignored "
                          "under systemd socket activation)")
    srv.add_argument("--idle-exit", type=float, metavar="SECONDS",
                     help="exit after SECONDS without a request (socket activation starts "
                          "it again)")
    common(srv)
    return parser


def cmd_serve(ns: argparse.Namespace) -> int:
    from .serve import serve

    return serve(ns)


def _checked_candidates(dispatch: Dispatch) -> list[tuple[str, ...]]:
    """(name, path, kind, action, reason) with the safety rules applied to runnable files;
    a plugin with ``runas`` stays ``run`` (it is tried, and fails) with reason ``fails: ...``."""
    from .dispatch import runas_refused
    from .entrypoints import check_module
    from .safety import check_file

    rows: list[tuple[str, ...]] = []
    for c in dispatch.candidates():
        action: str = c.action
        reason = c.reason
        if action == "run":
            if c.kind == "entrypoint":
                problem = check_module(c.path)
            else:
                problem = check_file(c.path, dispatch.root)
            runas = dispatch.config.hook(c.name).runas
            if problem:
                action, reason = "skip", f"refused: {problem}"
            elif runas and c.kind != "exec":
                reason = f"fails: {runas_refused(runas)}"
        if action == "run":
            action, reason = _decision(dispatch, c.name, reason)
        rows.append((c.name, c.path, c.kind, action, reason))
    return rows


def _decision(dispatch: Dispatch, name: str, reason: str) -> tuple[str, str]:
    """A runnable hook's conditions, decided for the PAM items given (``list --user ...``)."""
    hook_cfg = dispatch.config.hook(name)
    notes = [reason] if reason else []
    if hook_cfg.background:
        notes.append("in the background")
    if hook_cfg.conditions is not None:
        unmet = dispatch.unmet(hook_cfg) if dispatch.items else None
        if unmet is not None:
            return "skip", f"condition not met: {unmet}"
        when = hook_cfg.conditions.describe()
        notes.append(f"conditions hold: {when}" if dispatch.items else f"only if {when}")
    return "run", "; ".join(notes)


def cmd_list(ns: argparse.Namespace) -> int:
    phase = need_phase(ns.phase)
    items = {var: os.fsencode(value) for var, value in (
        (b"PAM_USER", ns.user), (b"PAM_SERVICE", ns.service), (b"PAM_RHOST", ns.rhost))
        if value is not None}
    dispatch = new_dispatch(ns, phase, items)
    rows = _checked_candidates(dispatch)
    if ns.json:
        print(list_json(rows))
        return EXIT_OK
    from .log import escape

    print(_table(("NAME", "KIND", "ACTION", "PATH", "REASON"),
                 [(escape(n), k, a, escape(p), r) for n, p, k, a, r in rows]))
    return EXIT_OK


def list_json(rows: Sequence[tuple[str, ...]]) -> str:
    """``list --json``: valid UTF-8 text in every key (a byte that is not UTF-8 shows as U+FFFD),
    and the exact bytes of the name and the path in ``name_base64`` and ``path_base64``
    (RFC 4648 base64: ``jq -r '.[0].path_base64' | base64 -d`` gives the path back, byte for byte)."""
    import base64
    import json

    entries = []
    for name, path, kind, action, reason in rows:
        raw_name, raw_path = _raw(name, kind), _raw(path, kind)
        entries.append({
            "name": _text(name), "path": _text(path), "kind": kind, "action": action,
            "reason": _text(reason),
            "name_base64": base64.b64encode(raw_name).decode("ascii"),
            "path_base64": base64.b64encode(raw_path).decode("ascii"),
        })
    return json.dumps(entries, indent=2)  # ensure_ascii: the output is ASCII, whatever the locale


def _raw(value: str, kind: str) -> bytes:
    """The bytes ``value`` was decoded from: a file's name or path (os.fsdecode), or an entry
    point's name or module (UTF-8 text, surrogate-escaped where it was not, as the cache reads it)."""
    if kind == "entrypoint":
        return value.encode("utf-8", "surrogateescape")
    return os.fsencode(value)


def _text(value: str) -> str:
    """``value`` as text that any JSON tool takes: every lone surrogate becomes U+FFFD."""
    try:
        raw = value.encode("utf-8", "surrogateescape")  # a file name's undecodable bytes, back
    except UnicodeEncodeError:
        raw = value.encode("utf-8", "surrogatepass")  # any other lone surrogate
    return raw.decode("utf-8", "replace")


def cmd_check(ns: argparse.Namespace) -> int:
    from . import background, configview
    from .log import escape
    from .phases import PHASES

    config = read_config(ns)
    problems = configview.problems(ns.root, ns.config, config)
    log_file = config.log_file  # where records go besides syslog, if it is usable
    if log_file is not None:
        from .dropins import locate
        from .logsafety import check_append, log_file_refused

        problem = check_append(log_file, ns.root)
        if problem is not None:
            where = locate(ns.root, ns.config, ("log_file",))
            problems.append(f"{where}: {log_file_refused(log_file, problem)}")
        if problem is not None or os.path.realpath(log_file) == "/dev/null":
            log_file = None
    from .logsafety import lost_records

    lost = lost_records(ns.root, log_file)
    if lost is not None:
        problems.append(lost)
    for phase in PHASES:
        dispatch = new_dispatch(ns, phase, {})
        for c in dispatch.candidates():
            misuse = background.misuse(phase, c) if config.hook(c.name).background else None
            if c.action == "run" and misuse:
                problems.append(f"{escape(c.path)}: {phase.name}.d/{escape(c.name)}: {misuse}")
        for name, path, _kind, _action, reason in _checked_candidates(dispatch):
            if reason.startswith(("refused:", "cannot", "fails:")) or reason == "dangling symlink":
                problems.append(f"{escape(path)}: {phase.name}.d/{escape(name)}: {reason}")
    from pathlib import Path

    pam_dir = Path(ns.pam_dir) if ns.pam_dir is not None else Path(ns.root, "etc/pam.d")
    if pam_dir.is_dir():
        from .pamaudit import audit_pam_dir

        problems.extend(audit_pam_dir(pam_dir, root=Path(ns.root), parser=_parser))
    for problem in problems:
        print(problem)
    if not problems:
        print("hookrunner: no problems found", file=sys.stderr)
    return EXIT_FAIL if problems else EXIT_OK


def cmd_config(ns: argparse.Namespace) -> int:
    from .configview import show

    print(show(ns.root, ns.config))
    return EXIT_OK


def cmd_simulate(ns: argparse.Namespace) -> int:
    phase = need_phase(ns.phase)
    items = {b"PAM_TYPE": phase.pam_type.encode()}
    for var, value in ((b"PAM_USER", ns.user), (b"PAM_SERVICE", ns.service),
                       (b"PAM_RHOST", ns.rhost), (b"PAM_RUSER", ns.ruser), (b"PAM_TTY", ns.tty)):
        if value is not None:
            items[var] = os.fsencode(value)
    dispatch = new_dispatch(ns, phase, items)
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
