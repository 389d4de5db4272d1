"""hookrunner.toml: read, parsed with tomllib (or taken from the parse cache), validated, frozen.

The records (Config, HookConfig, PhaseConfig), ConfigError and the name rules are here;
the validation of the parsed TOML is in schema.py, imported only when a file with settings
is read. Errors name the file, the key and (where TOML lets us find it) the line:
``/etc/security/hookrunner.toml:7: hook."50-slow".timeout: expected a positive number``.
"""

from __future__ import annotations

import os

from .environment import forbidden
from .phases import CONFIG
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
    from .schema import toml_message, validate  # here: a phase without a config never loads it

    cache = data = None
    if cache_root is not None:
        cache = os.path.join(cache_root, CACHE)
        data = _cached_parse(cache, cache_root, raw)
    if data is not None:
        return validate(path, raw.decode("utf-8"), data)
    import tomllib

    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text)
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 (byte {e.start})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}:{toml_message(e, text)}") from None
    except RecursionError:  # tomllib recurses into nested arrays and inline tables
        raise ConfigError(f"{path}: values nested too deeply") from None
    config = validate(path, text, data)  # only a valid config is worth keeping
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
