"""The configuration's records (Config, HookConfig, PhaseConfig), ConfigError and the name rules.

This module imports none of the others that deal with the config: the files are found,
read, parsed (or taken from the parse cache) and merged by dropins.py, which hands the
result to schema.py for validation into these records. Both import this module; nothing
here imports them (one direction). Errors name the file, the key and (where TOML lets us
find it) the line: ``/etc/security/hookrunner.toml:7: hook."50-slow".timeout: expected a
positive number``.
"""

from __future__ import annotations

import os

from .environment import forbidden
from .phases import CONFIG
from .record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: every login pays imports
if TYPE_CHECKING:
    from collections.abc import Mapping

    from .conditions import Conditions

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
    __slots__ = ("args", "authtok", "background", "conditions", "optional", "runas", "show_output",
                 "timeout")
    _fields = ("timeout", "optional", "runas", "authtok", "show_output", "args", "conditions",
               "background")

    def __init__(self, timeout: float | None = None, optional: bool = False,
                 runas: str | None = None, authtok: bool = False, show_output: bool = False,
                 args: tuple[str, ...] = (), conditions: Conditions | None = None,
                 background: bool = False) -> None:
        self.timeout = timeout  # None: the global timeout
        self.optional = optional
        self.runas = runas  # a user name, or "@user" for the PAM user
        self.authtok = authtok
        self.show_output = show_output
        self.args = args
        self.conditions = conditions  # services/users/groups/rhosts (conditions.py); None: always
        self.background = background  # session phases: started, not waited for (background.py)


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


CACHE = "var/cache/hookrunner/config"  # below --root: the parse of the last config set seen
