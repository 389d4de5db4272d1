"""Audit PAM stacks that run hookrunner (``hookrunner check --pam-dir DIR``).

Each file in the PAM directory is a service; its stack is resolved through ``@include``,
``include`` and ``substack`` as Linux-PAM reads it (``#`` comments, backslash continuations,
``-type``, ``[...]`` controls); include loops and missing files are skipped. A service that
runs hookrunner (``pam_exec.so ... hookrunner ...`` or ``pam_hookrunner.so``) is flagged for
``pam_env.so user_readenv=1``, a ``sufficient`` hookrunner line, an unsafe command, script or
``dispatcher=`` path, and Python without ``-I``: one ``FILE:LINE: problem (why)`` each, once.
A ``pam_hookrunner.so`` line is read with the module's own option rules (it starts
``PYTHON -I -S DISPATCHER`` itself): its ``python=``, ``dispatcher=``, ``root=`` and ``config=``
paths (defaults included) are checked, and an option the module would refuse is flagged.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple, final

__all__ = ["audit_pam_dir"]

_TYPES = frozenset({"auth", "account", "password", "session"})
_INCLUDES = frozenset({"include", "substack"})
# pam_exec.c takes options until the first word that starts with "/" or is not one of these.
_EXEC_FLAGS = frozenset({"debug", "stdout", "seteuid", "quiet", "quiet_log", "expose_authtok"})
_EXEC_PREFIXES = ("log=", "type=")
_TOKEN = re.compile(r"\[(?:\\.|[^\]\\])*\]?|[^\s\[]\S*")
_PYTHON = re.compile(r"python[0-9.]*")
_READENV = "a user's ~/.pam_environment can put LD_PRELOAD into a root hook's environment"
_NO_I = "runs without -I (PYTHON* variables or user site-packages could run code as root)"
_SUFFICIENT = "a hook's success would skip the rest of the stack, e.g. the password check"
_RELATIVE = "use an absolute one: what it names depends on the caller's working directory"
# pam_hookrunner.c's options: path-valued ones (with the module's defaults), flags, timeout=.
_NATIVE_PATHS: dict[str, str | None] = {
    "python": "/usr/bin/python3",
    "dispatcher": "/usr/lib/python3/dist-packages/hookrunner/__main__.py",
    "root": None,
    "config": None,
}
_NATIVE_FLAGS = frozenset({"expose_authtok", "quiet", "debug", "nosocket"})
# socket=: absolute, but need not exist (no daemon: the module execs; it checks the rest itself).
_NATIVE_SOCKET = "socket"
_NATIVE_MAX_TIMEOUT = 86400
_REFUSED = "pam_hookrunner.so refuses the whole line: PAM_SYSTEM_ERR, no hook runs"


@final
class Rule(NamedTuple):
    """One logical PAM line; ``where`` is ``FILE:LINE``, ``type`` is ``*`` for ``@include``."""

    where: str
    type: str
    control: str
    module: str
    args: tuple[str, ...]

    @property
    def name(self) -> str:
        return posixpath.basename(self.module)


def audit_pam_dir(pam_dir: Path, *, root: Path | None = None) -> list[str]:
    """Return one problem per string for the services in ``pam_dir`` that run hookrunner.

    Paths named in PAM lines are looked up under ``root`` when given (``root/usr/bin/...``).
    """
    try:
        services = sorted(pam_dir.iterdir())
    except OSError as err:
        return [f"{pam_dir}: cannot read the PAM directory ({err.strerror})"]
    problems: dict[str, None] = {}
    for service in services:
        stack = _resolve(service, None, frozenset(), pam_dir, root)
        for problem in _audit_stack(stack, root):
            problems.setdefault(problem)
    return list(problems)


def _read_text(path: Path, limit: int = 1 << 20) -> str | None:
    """The text of a regular file (bounded), or None; never blocks on a FIFO or device."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
    with contextlib.suppress(OSError, ValueError), open(os.open(path, flags), "rb") as f:
        if stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return f.read(limit).decode("utf-8", "replace")
    return None


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Yield (first line number, line) with comments cut and backslash continuations joined."""
    start, parts = 1, list[str]()
    for number, physical in enumerate(text.split("\n"), 1):
        line = physical.split("#", 1)[0].rstrip()
        parts.append(line[:-1] + " " if line.endswith("\\") else line)
        if not line.endswith("\\"):
            yield start, "".join(parts)
            start, parts = number + 1, []
    if parts:
        yield start, "".join(parts)


def _parse(where: str, line: str) -> Rule | None:
    """A Rule for one logical line, or None for a blank or malformed one."""
    tokens: list[str] = _TOKEN.findall(line)
    if len(tokens) >= 2 and tokens[0] == "@include":
        return Rule(where, "*", "include", tokens[1], ())
    if len(tokens) < 3 or tokens[0].lower().lstrip("-") not in _TYPES:
        return None
    kind, control, module, *args = tokens
    return Rule(where, kind.lower().lstrip("-"), control.lower(), module, tuple(args))


def _resolve(
    path: Path, want: str | None, chain: frozenset[Path], pam_dir: Path, root: Path | None
) -> list[Rule]:
    """The flattened rules of ``path`` (only type ``want`` if given), includes expanded."""
    chain = chain | {path}
    stack: list[Rule] = []
    for number, line in _logical_lines(_read_text(path) or ""):
        rule = _parse(f"{path}:{number}", line)
        if rule is None or (want not in (None, rule.type) and rule.type != "*"):
            continue
        if rule.control not in _INCLUDES:
            stack.append(rule)
            continue
        name = rule.module
        target = _on_disk(name, root) if name.startswith("/") else pam_dir / name
        if target not in chain:
            kind = want if rule.type == "*" else rule.type
            stack += _resolve(target, kind, chain, pam_dir, root)
    return stack


def _on_disk(path: str, root: Path | None) -> Path:
    """The file an absolute path names, looked up under ``root`` when given."""
    return (root or Path("/")) / path.lstrip("/")


def _exec_argv(rule: Rule) -> list[str]:
    """The command pam_exec.so would run: its arguments after pam_exec's own options."""
    for i, arg in enumerate(rule.args):
        low = arg.lower()
        if arg.startswith("/") or (low not in _EXEC_FLAGS and not low.startswith(_EXEC_PREFIXES)):
            return list(rule.args[i:])
    return []


def _calls_hookrunner(rule: Rule) -> bool:
    argv = _exec_argv(rule) if rule.name == "pam_exec.so" else []
    return rule.name == "pam_hookrunner.so" or "hookrunner" in " ".join(argv)


def _audit_stack(stack: list[Rule], root: Path | None) -> list[str]:
    """All problems of one service's resolved stack (none unless it runs hookrunner)."""
    hooks = [rule for rule in stack if _calls_hookrunner(rule)]
    if not hooks:
        return []
    problems = [
        f"{rule.where}: pam_env.so user_readenv=1 in a stack that runs hookrunner ({_READENV})"
        for rule in stack
        if _reads_user_env(rule)
    ]
    for rule in hooks:
        problems += _control_problems(rule)
        if rule.name == "pam_exec.so":
            problems += _command_problems(rule.where, _exec_argv(rule), root)
        else:
            problems += _native_problems(rule, root)
    return problems


def _native_problems(rule: Rule, root: Path | None) -> list[str]:
    """pam_hookrunner.so's options as pam_hookrunner.c parses them; the paths it would use.

    No ``-I`` check: the module always starts ``PYTHON -I -S DISPATCHER``.
    """
    problems: list[str] = []
    paths = dict(_NATIVE_PATHS)
    for raw in rule.args:
        arg = _unbracket(raw)
        key, eq, value = arg.partition("=")
        if eq and key in paths:
            if not value.startswith("/"):
                problems += _path_problems(rule.where, value, root)  # "relative path"
            paths[key] = value
        elif eq and key == _NATIVE_SOCKET:
            if not value.startswith("/"):
                problems += _path_problems(rule.where, value, root)  # "relative path"
        elif eq and key == "timeout":
            if not _native_timeout_ok(value):
                problems.append(f"{rule.where}: bad option '{arg}' (1..{_NATIVE_MAX_TIMEOUT} "
                                f"whole seconds; {_REFUSED})")
        elif arg not in _NATIVE_FLAGS:
            problems.append(f"{rule.where}: unknown pam_hookrunner.so option '{arg}' ({_REFUSED})")
    for path in paths.values():
        if path is not None and path.startswith("/"):
            problems += _path_problems(rule.where, path, root)
    return problems


def _unbracket(arg: str) -> str:
    """A module argument as libpam passes it: ``[a b]`` is ``a b``, ``\\]`` inside is ``]``."""
    if len(arg) >= 2 and arg.startswith("[") and arg.endswith("]"):
        return arg[1:-1].replace("\\]", "]")
    return arg


def _native_timeout_ok(value: str) -> bool:
    """``timeout=`` as the module's strtol(3) check takes it: a whole number, 1..86400."""
    number = re.fullmatch(r"[ \t\n\v\f\r]*[+-]?[0-9]+", value)
    return number is not None and 1 <= int(value) <= _NATIVE_MAX_TIMEOUT


def _option(rule: Rule, key: str) -> str | None:
    """The value of the rule's last ``key=VALUE`` argument, or None."""
    values = [a[len(key) + 1 :] for a in rule.args if a.startswith(f"{key}=")]
    return values[-1] if values else None


def _reads_user_env(rule: Rule) -> bool:
    """pam_env.so with user_readenv=N, N nonzero as C's atoi() reads it."""
    value = _option(rule, "user_readenv") if rule.name == "pam_env.so" else None
    number = re.match(r"\s*[+-]?\d+", value or "")
    return number is not None and int(number.group()) != 0


def _control_problems(rule: Rule) -> list[str]:
    """``sufficient`` (or ``[success=done]``) lets a hook's success end the stack early."""
    if rule.control != "sufficient" and "success=done" not in rule.control.strip("[]").split():
        return []
    return [f"{rule.where}: hookrunner line is '{rule.control}' ({_SUFFICIENT}; use optional)"]


def _command_problems(where: str, argv: list[str], root: Path | None) -> list[str]:
    """The command (and a Python script it runs) must be safe; Python must run with -I."""
    if not argv:
        return [f"{where}: pam_exec.so line without a command"]
    problems = _path_problems(where, argv[0], root)
    if _is_python(argv[0]):
        isolated, script = _python_options(argv)
        problems += [] if isolated else [f"{where}: {argv[0]} {_NO_I}"]
        problems += _path_problems(where, script, root) if script else []
    elif argv[0].startswith("/"):
        problems += _shebang_problems(where, argv[0], root)
    return problems


def _is_python(path: str) -> bool:
    return _PYTHON.fullmatch(posixpath.basename(path)) is not None


def _python_options(argv: list[str]) -> tuple[bool, str | None]:
    """Whether Python's options include -I, and the script it runs (None for -c, -m, -)."""
    isolated, i = False, 1
    while i < len(argv) and argv[i].startswith("-") and argv[i] not in ("-", "--"):
        cluster = argv[i][1:]
        for j, letter in enumerate(cluster):
            isolated = isolated or letter == "I"
            if letter in "cm":
                return isolated, None
            if letter in "WX":
                if j == len(cluster) - 1:
                    i += 1  # its value is the next word
                break
        i += 1
    if i < len(argv) and argv[i] == "--":
        i += 1
    script = argv[i] if i < len(argv) and argv[i] != "-" else None
    return isolated, script


def _shebang_problems(where: str, command: str, root: Path | None) -> list[str]:
    """A script whose ``#!`` line starts Python must pass -I there."""
    text = _read_text(_on_disk(command, root), limit=256) or ""
    words = text[2:].split("\n")[0].split() if text.startswith("#!") else []
    if words and posixpath.basename(words[0]) == "env":
        words = [w for w in words[1:] if w != "-S"]
    if not words or not _is_python(words[0]):
        return []
    isolated, _script = _python_options(words)
    return [] if isolated else [f"{where}: {command} (#!{' '.join(words)}) {_NO_I}"]


def _path_problems(where: str, path: str, root: Path | None) -> list[str]:
    """An absolute path whose file and directories above it are root's and not writable."""
    if not path.startswith("/"):
        return [f"{where}: '{path}' is a relative path ({_RELATIVE})"]
    path = posixpath.normpath(path)
    names = [path, *(str(p) for p in Path(path).parents)]
    problems: list[str] = []
    for name in names:
        try:
            st = os.stat(_on_disk(name, root))
        except (OSError, ValueError):
            return [f"{where}: {path} does not exist"] if name == path else problems
        if st.st_uid != 0:
            problems.append(f"{where}: {name} is owned by uid {st.st_uid}, not root")
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            mode = stat.S_IMODE(st.st_mode)
            problems.append(f"{where}: {name} is writable by group or others (mode {mode:04o})")
    return problems
