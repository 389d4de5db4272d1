"""What a hookrunner PAM line runs, for ``hookrunner check --pam-dir``: pam_exec.so's command
(an absolute, root-owned, unwritable path; Python with ``-I``, also in a script's ``#!``; the
dispatcher's ``--root``/``--config`` as its own parser reads them) and pam_hookrunner.so's
options, read with the module's own rules (its ``python=``, ``dispatcher=``, ``root=`` and
``config=`` paths, defaults included; an option it would refuse).
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, final

from .pamconf import Line, on_disk, read_text

if TYPE_CHECKING:
    import argparse

Parser = Callable[[], "argparse.ArgumentParser"]  # hookrunner's own (commands._parser)

# pam_exec.c takes options until the first word that starts with "/" or is not one of these.
_EXEC_FLAGS = frozenset({"debug", "stdout", "seteuid", "quiet", "quiet_log", "expose_authtok"})
_EXEC_PREFIXES = ("log=", "type=")
_PYTHON = re.compile(r"python[0-9.]*")
_NO_I = "runs without -I (PYTHON* variables or user site-packages could run code as root)"
_RELATIVE = "use an absolute one: what it names depends on the caller's working directory"
# pam_hookrunner.c's options: path-valued ones (with the module's defaults), flags, timeout=.
NATIVE_PATHS: dict[str, str | None] = {
    "python": "/usr/bin/python3",
    "dispatcher": "/usr/lib/python3/dist-packages/hookrunner/__main__.py",
    "root": None,
    "config": None,
}
NATIVE_FLAGS = frozenset({"expose_authtok", "quiet", "debug", "nosocket"})
# socket=: absolute, but need not exist (no daemon: the module execs; it checks the rest itself).
NATIVE_SOCKET = "socket"
NATIVE_MAX_TIMEOUT = 86400
_REFUSED = "pam_hookrunner.so refuses the whole line: PAM_SYSTEM_ERR, no hook runs"


@final
class PythonCall(NamedTuple):
    """What ``python3 [options] ...`` runs: ``script`` (None for -c, -m and -), ``module``
    (for -m) and the arguments they get (None for -c)."""

    isolated: bool
    script: str | None
    module: str | None
    args: list[str] | None


def exec_argv(rule: Line) -> list[str]:
    """The command pam_exec.so would run: its arguments after pam_exec's own options."""
    for i, arg in enumerate(rule.args):
        low = arg.lower()
        if arg.startswith("/") or (low not in _EXEC_FLAGS and not low.startswith(_EXEC_PREFIXES)):
            return list(rule.args[i:])
    return []


def native_problems(rule: Line, root: Path | None) -> list[str]:
    """pam_hookrunner.so's options as pam_hookrunner.c parses them; the paths it would use.

    No ``-I`` check: the module always starts ``PYTHON -I -S DISPATCHER``.
    """
    problems: list[str] = []
    paths = dict(NATIVE_PATHS)
    for arg in rule.args:
        key, eq, value = arg.partition("=")
        if eq and key in paths:
            if not value.startswith("/"):
                problems += _path_problems(rule.where, value, root)  # "relative path"
            paths[key] = value
        elif eq and key == NATIVE_SOCKET:
            if not value.startswith("/"):
                problems += _path_problems(rule.where, value, root)  # "relative path"
        elif eq and key == "timeout":
            if not _native_timeout_ok(value):
                problems.append(f"{rule.where}: bad option '{arg}' (1..{NATIVE_MAX_TIMEOUT} "
                                f"whole seconds; {_REFUSED})")
        elif arg not in NATIVE_FLAGS:
            problems.append(f"{rule.where}: unknown pam_hookrunner.so option '{arg}' ({_REFUSED})")
    for path in paths.values():
        if path is not None and path.startswith("/"):
            problems += _path_problems(rule.where, path, root)
    return problems


def _native_timeout_ok(value: str) -> bool:
    """``timeout=`` as the module's strtol(3) check takes it: a whole number, 1..86400."""
    number = re.fullmatch(r"[ \t\n\v\f\r]*[+-]?[0-9]+", value)
    return number is not None and 1 <= int(value) <= NATIVE_MAX_TIMEOUT


def command_problems(where: str, argv: list[str], root: Path | None, parser: Parser) -> list[str]:
    """The command (and a Python script it runs) must be safe; Python must run with -I;
    the dispatcher's own ``--root``/``--config`` paths must be safe too."""
    if not argv:
        return [f"{where}: pam_exec.so line without a command"]
    problems = _path_problems(where, argv[0], root)
    if _is_python(argv[0]):
        call = _python_call(argv)
        problems += [] if call.isolated else [f"{where}: {argv[0]} {_NO_I}"]
        problems += _path_problems(where, call.script, root) if call.script else []
        dispatcher = call.module == "hookrunner" or _is_dispatcher(call.script)
    else:
        call = PythonCall(True, argv[0], None, argv[1:])
        problems += _shebang_problems(where, argv[0], root) if argv[0].startswith("/") else []
        dispatcher = _is_dispatcher(argv[0])
    if dispatcher and call.args is not None:
        problems += _run_problems(where, call.args, root, parser)
    return problems


def _is_python(path: str) -> bool:
    return _PYTHON.fullmatch(posixpath.basename(path)) is not None


def _is_dispatcher(script: str | None) -> bool:
    """``.../hookrunner/__main__.py`` or the ``hookrunner`` command."""
    if script is None:
        return False
    name, parent = posixpath.basename(script), posixpath.basename(posixpath.dirname(script))
    return name == "hookrunner" or (name == "__main__.py" and parent == "hookrunner")


def _python_call(argv: list[str]) -> PythonCall:
    """Python's options as it reads them: -I among them? then what it runs, with what."""
    isolated, i = False, 1
    while i < len(argv) and argv[i].startswith("-") and argv[i] not in ("-", "--"):
        cluster = argv[i][1:]
        for j, letter in enumerate(cluster):
            isolated = isolated or letter == "I"
            if letter == "c":
                return PythonCall(isolated, None, None, None)
            if letter == "m":
                if cluster[j + 1 :]:
                    return PythonCall(isolated, None, cluster[j + 1 :], argv[i + 1 :])
                module = argv[i + 1] if i + 1 < len(argv) else ""
                return PythonCall(isolated, None, module, argv[i + 2 :])
            if letter in "WX":
                if j == len(cluster) - 1:
                    i += 1  # its value is the next word
                break
        i += 1
    if i < len(argv) and argv[i] == "--":
        i += 1
    script = argv[i] if i < len(argv) and argv[i] != "-" else None
    return PythonCall(isolated, script, None, argv[i + 1 :])


def _run_problems(where: str, args: list[str], root: Path | None, parser: Parser) -> list[str]:
    """hookrunner's arguments as its own parser reads them: a ``--root`` or ``--config`` is
    checked like the native module's ``root=``/``config=``; arguments it refuses are flagged."""
    import contextlib
    import io

    from .invocation import UsageError

    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            ns = parser().parse_args(args)
    except UsageError as err:
        return [f"{where}: hookrunner refuses these arguments ({err}): it exits 2, no hook runs"]
    except SystemExit:
        return [f"{where}: hookrunner would print its help and exit 0: no hook runs"]
    if ns.command is None:
        return [f"{where}: hookrunner without a command: it exits 2, no hook runs"]
    if ns.command != "run":
        return [f"{where}: 'hookrunner {ns.command}' runs no hook (use run)"]
    problems = _path_problems(where, ns.root, root) if ns.root != "/" else []
    return problems + (_path_problems(where, ns.config, root) if ns.config is not None else [])


def _shebang_problems(where: str, command: str, root: Path | None) -> list[str]:
    """A script whose ``#!`` line starts Python must pass -I there."""
    text = read_text(on_disk(command, root), limit=256) or ""
    words = text[2:].split("\n")[0].split() if text.startswith("#!") else []
    if words and posixpath.basename(words[0]) == "env":
        words = [w for w in words[1:] if w != "-S"]
    if not words or not _is_python(words[0]):
        return []
    return [] if _python_call(words).isolated else [f"{where}: {command} (#!{' '.join(words)}) {_NO_I}"]


def _path_problems(where: str, path: str, root: Path | None) -> list[str]:
    """An absolute path whose file and directories above it are root's and not writable."""
    if not path.startswith("/"):
        return [f"{where}: '{path}' is a relative path ({_RELATIVE})"]
    path = posixpath.normpath(path)
    names = [path, *(str(p) for p in Path(path).parents)]
    problems: list[str] = []
    for name in names:
        try:
            st = os.stat(on_disk(name, root))
        except (OSError, ValueError):
            return [f"{where}: {path} does not exist"] if name == path else problems
        if st.st_uid != 0:
            problems.append(f"{where}: {name} is owned by uid {st.st_uid}, not root")
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            mode = stat.S_IMODE(st.st_mode)
            problems.append(f"{where}: {name} is writable by group or others (mode {mode:04o})")
    return problems
