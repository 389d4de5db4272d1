"""hookrunner.toml: parsed with tomllib, validated, frozen.

Errors name the file, the key and (where TOML lets us find it) the line:
``/etc/security/hookrunner.toml:7: hook."50-slow".timeout: expected a positive number``.
"""

from __future__ import annotations

import math
import os

from .discovery import valid_name
from .environment import forbidden
from .phases import CONFIG, PHASES
from .record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: every login pays imports
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

# `re` (and `tomllib`, which imports it) only once a config file exists: most machines have none.
DEFAULT_PATH = CONFIG  # "etc/security/hookrunner.toml", below --root (default /)
_ENV_FIRST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_ENV_REST = _ENV_FIRST | frozenset("0123456789")


_USER_FIRST = _ENV_FIRST
_USER_REST = _ENV_REST | frozenset(".-")


def valid_user_name(name: str) -> bool:
    r"""``^[a-z_][a-z0-9_.-]*\$?$``, ASCII, any case (shadow-utils' rule, and Samba's "$"),
    without ``re``: the config of every login is validated."""
    stem = name[:-1] if name.endswith("$") else name
    return bool(stem) and stem[0] in _USER_FIRST and all(c in _USER_REST for c in stem)


def valid_env_name(name: str) -> bool:
    """``^[A-Za-z_][A-Za-z0-9_]*$``."""
    return bool(name) and name[0] in _ENV_FIRST and all(c in _ENV_REST for c in name)


def forbidden_env(name: str) -> bool:
    """Never passed to a hook, whatever the config says (sudo's env.c, glibc's UNSECURE_ENVVARS)."""
    return forbidden(name.encode("utf-8", "surrogateescape"))


class ConfigError(Exception):
    """A configuration problem; str() is the one line the user sees."""


class HookConfig(Record):
    __slots__ = ("args", "authtok", "optional", "runas", "show_output", "timeout")
    _fields = ("timeout", "optional", "runas", "authtok", "show_output", "args")

    def __init__(self, timeout: float | None = None, optional: bool = False,
                 runas: str | None = None, authtok: bool = False, show_output: bool = False,
                 args: tuple[str, ...] = ()) -> None:
        self.timeout = timeout  # None: the global timeout
        self.optional = optional
        self.runas = runas  # a user name, or "@user" for the PAM user
        self.authtok = authtok
        self.show_output = show_output
        self.args = args


class PhaseConfig(Record):
    __slots__ = ("stop_on_failure", "timeout")
    _fields = ("stop_on_failure", "timeout")

    def __init__(self, stop_on_failure: bool | None = None, timeout: float | None = None) -> None:
        self.stop_on_failure = stop_on_failure  # None: the phase's default
        self.timeout = timeout  # None: the global phase_timeout


_NO_PHASES: dict[str, PhaseConfig] = {}  # shared by default Configs: never written
_NO_HOOKS: dict[str, HookConfig] = {}


class Config(Record):
    __slots__ = ("hooks", "kill_grace", "log_file", "max_output", "pass_env", "path",
                 "phase_timeout", "phases", "timeout")
    _fields = ("path", "timeout", "phase_timeout", "kill_grace", "max_output", "pass_env",
               "log_file", "phases", "hooks")

    def __init__(self, path: str | os.PathLike[str] | None = None, timeout: float = 10.0,
                 phase_timeout: float = 30.0, kill_grace: float = 1.0, max_output: int = 65536,
                 pass_env: tuple[str, ...] = (), log_file: str | None = None,
                 phases: Mapping[str, PhaseConfig] = _NO_PHASES,
                 hooks: Mapping[str, HookConfig] = _NO_HOOKS) -> None:
        self.path = path
        self.timeout = timeout
        self.phase_timeout = phase_timeout
        self.kill_grace = kill_grace
        self.max_output = max_output
        self.pass_env = pass_env
        self.log_file = log_file
        self.phases = phases
        self.hooks = hooks

    def hook(self, name: str) -> HookConfig:
        return self.hooks.get(name, _DEFAULT_HOOK)

    def phase(self, name: str) -> PhaseConfig:
        return self.phases.get(name, _DEFAULT_PHASE)


_DEFAULT_HOOK = HookConfig()
_DEFAULT_PHASE = PhaseConfig()


CACHE = "var/cache/hookrunner/config"  # below --root: the parse of the last config seen
_CACHE_MAGIC = "hookrunner-config 1"


def load_config(path: str | os.PathLike[str], *, required: bool = False,
                cache_root: str | None = None) -> Config:
    """Read and validate ``path``; a missing file is the defaults unless ``required``."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        if required:
            raise ConfigError(f"{path}: no such file") from None
        return Config()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    return parse_config(path, raw, cache_root=cache_root)


def parse_config(path: str | os.PathLike[str], raw: bytes, *,
                 cache_root: str | None = None) -> Config:
    """Validate the bytes of ``path``.

    With ``cache_root`` (the dispatcher's --root), the TOML parse is kept in
    ``cache_root/var/cache/hookrunner/config`` next to the exact bytes it was parsed from:
    importing tomllib costs 13 ms, and every PAM phase would pay it. The cache is used only
    when it holds these very bytes, and only if it is root-owned and writable by nobody else.
    """
    from .quick import only_comments

    if only_comments(raw):  # Debian's shipped file: validating it needs no TOML parser
        return Config(path=path)
    cache = None if cache_root is None else os.path.join(cache_root, CACHE)
    data = None if cache is None or cache_root is None else _cached_parse(cache, cache_root, raw)
    if data is not None:
        return _Validator(path, raw.decode("utf-8")).config(data)
    import tomllib

    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text)
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 (byte {e.start})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}:{_toml_message(e, text)}") from None
    except RecursionError:  # tomllib recurses into nested arrays and inline tables
        raise ConfigError(f"{path}: values nested too deeply") from None
    config = _Validator(path, text).config(data)  # only a valid config is worth keeping
    if cache is not None:
        _store_parse(cache, raw, data)
    return config


def _cached_parse(cache: str, root: str, raw: bytes) -> dict[str, Any] | None:
    import marshal  # built in: no import cost

    from .safety import UnsafeError, read_checked

    try:
        stored = marshal.loads(read_checked(cache, root))  # noqa: S302 — root-owned, checked like a hook
    except (UnsafeError, OSError, EOFError, ValueError, TypeError):
        return None
    if not (isinstance(stored, tuple) and len(stored) == 4):
        return None
    magic, version, source, data = stored
    if (magic, version, source) != (_CACHE_MAGIC, _python_version(), raw) or not isinstance(data, dict):
        return None
    return data


def _store_parse(cache: str, raw: bytes, data: dict[str, Any]) -> None:
    """A value marshal cannot hold (a TOML date) means no cache."""
    import marshal

    from .safety import write_root_only

    try:
        blob = marshal.dumps((_CACHE_MAGIC, _python_version(), raw, data))
    except ValueError:
        return
    write_root_only(cache, blob, 0o600)


def _python_version() -> str:
    import sys

    return sys.version  # marshal's format is the interpreter's


def _toml_message(e: Exception, text: str) -> str:
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


class _Validator:
    def __init__(self, path: str | os.PathLike[str], text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def error(self, key: str, problem: str) -> ConfigError:
        line = self._line_of(key)
        where = f"{self.path}:{line}" if line else str(self.path)
        return ConfigError(f"{where}: {key}: {problem}")

    def _line_of(self, dotted: str) -> int | None:
        # Best effort: the key's last part, inside the table its other parts name.
        import re

        *table, last = _split_key(dotted)
        key_re = re.compile(r'^\s*("?)' + re.escape(last) + r'\1\s*=')
        current: list[str] = []
        for number, line in enumerate(self.lines, 1):
            stripped = line.strip()
            header = re.match(r"\[\[?(.*?)\]\]?\s*(#.*)?\Z", stripped)
            if header:
                current = _split_key(header[1])
                if current == [*table, last]:
                    return number
            elif current == table and key_re.match(line):
                return number
        return None

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
        known = {"timeout", "optional", "runas", "authtok", "show_output", "args"}
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
            )
        return hooks


_ESCAPES = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r", '"': '\\"', "\\": "\\\\"}


def _quote(key: str) -> str:
    """A key as TOML would spell it: bare, or a basic string, escaped so a message stays one line."""
    if valid_name(key):
        return key
    return '"' + "".join(_ESCAPES.get(c) or (c if c.isprintable() else f"\\U{ord(c):08x}")
                         for c in key) + '"'


def _split_key(dotted: str) -> list[str]:
    import re

    return [a or b for a, b in re.findall(r'"((?:[^"\\]|\\.)*)"|([^.\s"]+)', dotted)]
