"""What a hookrunner.toml may contain: validation of the parsed TOML into Config records.

Imported by dropins.py only when a config file with settings is read (not for a missing or
comment-only file); it imports config.py (the records), never the other way round. Errors
name the file, the key and (where TOML lets us find it) the line:
``/etc/security/hookrunner.toml:7: hook."50-slow".timeout: expected a positive number``;
with drop-ins, the file that set the key. ``re`` is imported only inside the functions that
run after ``tomllib`` or on an error: a cached parse is validated without it.
"""

from __future__ import annotations

import math

from .config import (
    Config,
    ConfigError,
    HookConfig,
    PhaseConfig,
    forbidden_env,
    valid_env_name,
    valid_user_name,
)
from .phases import PHASES, valid_name

CONDITIONS = frozenset(("services", "users", "groups", "rhosts"))  # conditions.KINDS

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: every login pays imports
if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Mapping
    from typing import Any

    from .conditions import Conditions

    Where = Callable[[tuple[str, ...]], tuple[str, str]]


def validate(path: str | os.PathLike[str] | None, data: Mapping[str, Any],
             where: Where | None = None) -> Config:
    """The Config that ``data`` (the merged TOML parse of the config files; ``path``: the main
    one) describes; ConfigError names the first problem. ``where(key)`` is the (path, text) of
    the file that set ``key``, to place an error; without it the error names ``path``."""
    return _Validator(path, where).config(data)


def toml_message(e: Exception, text: str) -> str:
    # "Invalid value (at line 3, column 11)" -> "3: invalid value (column 11)", to follow "FILE:"
    import re

    message = str(e)
    m = re.match(r"(.*) \(at line (\d+), column (\d+)\)\Z", message, re.S)
    if m:
        line, what = m[2], f"{m[1]} (column {m[3]})"
    elif m := re.match(r"(.*) \(at end of document\)\Z", message, re.S):
        line, what = str(text.count("\n") + 1), f"{m[1]} (at end of file)"
    else:
        return f" {message}"
    return f"{line}: {what[:1].lower()}{what[1:]}"


def line_of(text: str, dotted: str) -> int | None:
    """The line of ``text`` that sets ``dotted`` (as error messages spell a key), if found."""
    # Best effort: the key's last part, inside the table its other parts name.
    import re

    *table, last = _split_key(dotted)
    key_re = re.compile(r'^\s*("?)' + re.escape(last) + r'\1\s*=')
    current: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):  # only to place an error or a value
        stripped = line.strip()
        header = re.match(r"\[\[?(.*?)\]\]?\s*(#.*)?\Z", stripped)
        if header:
            current = _split_key(header[1])
            if current == [*table, last]:
                return number
        elif current == table and key_re.match(line):
            return number
    return None


class _Validator:
    def __init__(self, path: str | os.PathLike[str] | None, where: Where | None) -> None:
        self.path = path
        self.where = where

    def error(self, key: str, problem: str) -> ConfigError:
        if self.where is None:
            source, text = str(self.path), ""
        else:
            source, text = self.where(tuple(_split_key(key)))
        line = line_of(text, key) if text else None
        return ConfigError(f"{source}:{line}: {key}: {problem}" if line else f"{source}: {key}: {problem}")

    def config(self, data: Mapping[str, Any]) -> Config:
        known = {"timeout", "phase_timeout", "kill_grace", "max_output", "pass_env",
                 "log_file", "phase", "hook"}
        self.unknown(data, known, "")
        return Config(
            path=self.path,
            timeout=self.seconds(data, "timeout", 10.0),
            phase_timeout=self.seconds(data, "phase_timeout", 30.0),
            kill_grace=self.seconds(data, "kill_grace", 1.0),
            max_output=self.integer(data, "max_output", 65536),
            pass_env=self.env_names(data),
            log_file=self.log_file(data),
            phases=self.phase_tables(data.get("phase", {})),
            hooks=self.hook_tables(data.get("hook", {})),
        )

    def unknown(self, table: Mapping[str, Any], known: set[str], prefix: str) -> None:
        for key in table:
            if key not in known:
                raise self.error(prefix + _quote(key), f"unknown key (known: {', '.join(sorted(known))})")

    def seconds(self, table: Mapping[str, Any], key: str, default: float, prefix: str = "") -> float:
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not (
            0 < value <= 86400 and math.isfinite(value)
        ):
            raise self.error(prefix + key, f"expected a number of seconds in (0, 86400], got {value!r}")
        return float(value)

    def integer(self, table: Mapping[str, Any], key: str, default: int) -> int:
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1 << 30:
            raise self.error(key, f"expected a whole number of bytes, got {value!r}")
        return value

    def boolean(self, table: Mapping[str, Any], key: str, prefix: str) -> bool:
        value = table.get(key, False)
        if not isinstance(value, bool):
            raise self.error(prefix + key, f"expected true or false, got {value!r}")
        return value

    def env_names(self, data: Mapping[str, Any]) -> tuple[str, ...]:
        value = data.get("pass_env", [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error("pass_env", "expected a list of variable names")
        for name in value:
            if not valid_env_name(name):
                raise self.error("pass_env", f"not a variable name: {name!r}")
        # Forbidden names are dropped here, whatever the config says; `check` reports them.
        return tuple(n for n in value if not forbidden_env(n))

    def log_file(self, data: Mapping[str, Any]) -> str | None:
        value = data.get("log_file")
        if value is not None and (not isinstance(value, str) or not value.startswith("/")
                                  or "\0" in value):
            raise self.error("log_file", "expected an absolute path")
        return value

    def phase_tables(self, value: Any) -> dict[str, PhaseConfig]:
        if not isinstance(value, dict):
            raise self.error("phase", "expected a table of phases")
        names = {p.name for p in PHASES}
        phases = {}
        for name, table in value.items():
            prefix = f"phase.{_quote(name)}."
            if name not in names:
                raise self.error(f"phase.{_quote(name)}", f"unknown phase (known: {', '.join(sorted(names))})")
            if not isinstance(table, dict):
                raise self.error(prefix[:-1], "expected a table")
            self.unknown(table, {"stop_on_failure", "timeout"}, prefix)
            stop = table.get("stop_on_failure")
            if stop is not None and not isinstance(stop, bool):
                raise self.error(prefix + "stop_on_failure", f"expected true or false, got {stop!r}")
            timeout = self.seconds(table, "timeout", 1.0, prefix) if "timeout" in table else None
            phases[name] = PhaseConfig(stop_on_failure=stop, timeout=timeout)
        return phases

    def hook_tables(self, value: Any) -> dict[str, HookConfig]:
        if not isinstance(value, dict):
            raise self.error("hook", "expected a table of hooks")
        hooks = {}
        known = {"timeout", "optional", "runas", "authtok", "show_output", "args", "background",
                 *CONDITIONS}
        for name, table in value.items():
            prefix = f"hook.{_quote(name)}."
            if not valid_name(name):
                raise self.error(prefix[:-1], "a hook name matches ^[A-Za-z0-9_-]+$ (file name without .py)")
            if not isinstance(table, dict):
                raise self.error(prefix[:-1], "expected a table")
            self.unknown(table, known, prefix)
            runas = table.get("runas")
            if runas is not None and (not isinstance(runas, str) or not (
                runas == "@user" or valid_user_name(runas)
            )):
                raise self.error(prefix + "runas", f"expected a user name or \"@user\", got {runas!r}")
            args = table.get("args", [])
            if not isinstance(args, list) or not all(isinstance(a, str) and "\0" not in a for a in args):
                raise self.error(prefix + "args", "expected a list of strings")
            hooks[name] = HookConfig(
                timeout=self.seconds(table, "timeout", 1.0, prefix) if "timeout" in table else None,
                optional=self.boolean(table, "optional", prefix),
                runas=runas,
                authtok=self.boolean(table, "authtok", prefix),
                show_output=self.boolean(table, "show_output", prefix),
                args=tuple(args),
                conditions=self.conditions(table, prefix) if not CONDITIONS.isdisjoint(table) else None,
                background=self.boolean(table, "background", prefix),
            )
        return hooks

    def conditions(self, table: Mapping[str, Any], prefix: str) -> Conditions:
        from .conditions import ConditionError, from_table  # only for a hook with conditions

        try:
            return from_table(table)
        except ConditionError as e:
            raise self.error(prefix + e.kind, e.problem) from None


_ESCAPES = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r", '"': '\\"', "\\": "\\\\"}


def _quote(key: str) -> str:
    """A key as TOML would spell it: bare, or a basic string, escaped so a message stays one line."""
    if valid_name(key):
        return key
    return '"' + "".join(_ESCAPES.get(c) or (c if c.isprintable() else f"\\U{ord(c):08x}")
                         for c in key) + '"'


quote_key = _quote


def _split_key(dotted: str) -> list[str]:
    import re

    return [a or b for a, b in re.findall(r'"((?:[^"\\]|\\.)*)"|([^.\s"]+)', dotted)]
