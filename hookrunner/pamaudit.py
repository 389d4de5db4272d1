"""Audit PAM stacks that run hookrunner (``hookrunner check --pam-dir DIR``).

Each file in the PAM directory is a service; its stacks are read as libpam reads them
(``pamconf``: includes, substacks, ``[...]`` controls and arguments, continuations). A service
that runs hookrunner (``pam_exec.so ... hookrunner ...`` or ``pam_hookrunner.so``) is flagged
for ``pam_env.so user_readenv=N`` (N nonzero, ``[user_readenv=1]`` too); a hookrunner line
whose control lets a hook's success end the stack (``sufficient``, ``done``), jump over
modules (``success=N``, ``default=N``) or wipe out earlier failures (``reset``), whose
failure jumps or resets, or whose ``ok`` makes a hook's success alone enough to pass an auth
or account stack (``pamflow``); an unsafe command, script, ``--root``/``--config`` or ``dispatcher=``
path, and Python without ``-I``: one ``FILE:LINE: problem (why)`` each, once.
A ``pam_hookrunner.so`` line is read with the module's own option rules (it starts
``PYTHON -I -S DISPATCHER`` itself): its ``python=``, ``dispatcher=``, ``root=`` and ``config=``
paths (defaults included) are checked, and an option the module would refuse is flagged.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from .pamcommand import command_problems, exec_argv, native_problems
from .pamconf import DONE, OK, RESET, RETURNS, SUCCESS, TYPES, Entry, Line, Reader
from .pamflow import success_alone_passes

if TYPE_CHECKING:
    from .pamcommand import Parser

__all__ = ["audit_pam_dir"]

_READENV = "a user's ~/.pam_environment can put LD_PRELOAD into a root hook's environment"
_SUFFICIENT = "a hook's success would skip the rest of the stack, e.g. the password check"
_ALONE = ("a hook's success alone would let the stack pass: no module before it has decided "
          "and none after it must succeed; put it after the modules that decide, e.g. after "
          "@include common-auth")
# Where a stack's success lets someone in. An "ok" hook that decides a session or password
# stack skips no module, and that stack grants nothing that auth and account did not.
_GRANTING = ("auth", "account")
# The codes a hook's failure comes as, named first when a control's failure jumps or resets.
_FAILURES = ("system_err", "ignore", "auth_err", "perm_denied", "session_err", "authtok_err")


def audit_pam_dir(pam_dir: Path, *, root: Path | None = None, parser: Parser) -> list[str]:
    """Return one problem per string for the services in ``pam_dir`` that run hookrunner.

    Paths named in PAM lines are looked up under ``root`` when given (``root/usr/bin/...``).
    ``parser`` makes hookrunner's own argument parser (``commands``'s, passed in: this
    module is imported by ``commands``), with which the arguments a pam_exec line gives the
    dispatcher are read as the dispatcher reads them.
    """
    try:
        services = sorted(pam_dir.iterdir())
    except OSError as err:
        return [f"{pam_dir}: cannot read the PAM directory ({err.strerror})"]
    reader = Reader(pam_dir, root)
    problems: dict[str, None] = {}
    for service in services:
        stacks = [reader.stack(service, kind) for kind in TYPES]
        for problem in _audit_service(stacks, root, parser):
            problems.setdefault(problem)
    return list(problems)


def _calls_hookrunner(entry: Entry) -> bool:
    rule = entry.line
    if entry.kind != "module":
        return False
    argv = exec_argv(rule) if rule.name == "pam_exec.so" else []
    return rule.name == "pam_hookrunner.so" or "hookrunner" in " ".join(argv)


def _audit_service(stacks: list[list[Entry]], root: Path | None, parser: Parser) -> list[str]:
    """All problems of one service's stacks (none unless it runs hookrunner)."""
    hooks: dict[Line, list[tuple[list[Entry], int]]] = {}
    for stack in stacks:
        for index, entry in enumerate(stack):
            if _calls_hookrunner(entry):
                hooks.setdefault(entry.line, []).append((stack, index))
    if not hooks:
        return []
    problems = [
        f"{entry.line.where}: pam_env.so user_readenv=1 in a stack that runs hookrunner ({_READENV})"
        for stack in stacks
        for entry in stack
        if entry.kind == "module" and _reads_user_env(entry.line)
    ]
    for rule, places in hooks.items():
        alone = rule.type in _GRANTING and rule.actions[SUCCESS] == OK and any(
            success_alone_passes(stack, index) for stack, index in places)
        problems += _control_problems(rule, alone)
        if rule.name == "pam_exec.so":
            problems += command_problems(rule.where, exec_argv(rule), root, parser)
        else:
            problems += native_problems(rule, root)
    return problems


def _reads_user_env(rule: Line) -> bool:
    """pam_env.so whose last ``user_readenv=`` is nonzero as C's atoi() reads it (strtol,
    clamped to a long, then cut to an int); libpam has already taken ``[...]`` apart."""
    if rule.name != "pam_env.so":
        return False
    values = [a.removeprefix("user_readenv=") for a in rule.args if a.startswith("user_readenv=")]
    number = re.match(r"[ \t\n\v\f\r]*([+-]?[0-9]+)", values[-1] if values else "")
    if number is None:
        return False
    value = max(min(int(number[1]), 2**63 - 1), -(2**63))
    return value % 2**32 != 0


def _control_problems(rule: Line, alone: bool) -> list[str]:
    """What the control lets a hook's result do to the rest of the stack (``pamconf``)."""
    head = f"{rule.where}: hookrunner line is '{rule.control}'"
    if rule.error is not None:
        return [f"{head} (Linux-PAM cannot parse it: {rule.error}; every result then counts as "
                "a failure, a hook's success too)"]
    success, why = rule.actions[SUCCESS], []
    if success == DONE:
        why.append(f"{_SUFFICIENT}; use optional")
    elif success > 0:
        why.append(f"a hook's success would jump over the next {success} module(s), e.g. the "
                   "password check; use optional")
    elif success == RESET:
        why.append("a hook's success would wipe out the failures of the modules before it; "
                   "use optional")
    elif alone:
        why.append(_ALONE)
    failures = {RETURNS[c]: a for c, a in enumerate(rule.actions) if c != SUCCESS}
    jumps = sorted({a for a in failures.values() if a > 0})
    if jumps:
        names = _names([n for n, a in failures.items() if a > 0])
        why.append(f"a hook's failure ({names}) would jump over the next "
                   f"{'/'.join(map(str, jumps))} module(s) without failing the stack; use optional")
    if RESET in failures.values():
        names = _names([n for n, a in failures.items() if a == RESET])
        why.append(f"a hook's failure ({names}) would wipe out the failures of the modules "
                   "before it; use optional")
    return [f"{head} ({reason})" for reason in why]


def _names(codes: list[str]) -> str:
    """Return codes for a message, the ones hooks fail with first, at most three."""
    codes = sorted(codes, key=lambda c: _FAILURES.index(c) if c in _FAILURES else len(_FAILURES))
    more = f" and {len(codes) - 3} more" if len(codes) > 3 else ""
    return ", ".join(codes[:3]) + more


