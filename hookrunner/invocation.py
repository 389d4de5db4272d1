"""What every command shares: the exit codes, ``UsageError``, and the steps from the command
line's arguments to a ready ``Dispatch`` (the phase, the config, the log).

``cli`` (the entry and ``run``, on every login) and ``commands`` (argparse, list, check,
simulate) both import this module and never each other's way back: ``cli`` imports
``commands`` (only for the admin commands), ``commands`` imports nothing of ``cli``. It is on
every login's path, so it imports what ``run`` needs anyway and the rest only when called.
"""

from __future__ import annotations

import os
import sys

from .config import DEFAULT_PATH, Config, ConfigError, parse_config
from .phases import Phase, phase_words, resolve_phase

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: every login pays imports
if TYPE_CHECKING:
    import argparse
    from collections.abc import Mapping

    from .dispatch import Dispatch
    from .log import Log

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_CONFIG = 0, 1, 2, 3


class UsageError(Exception):
    """A command line that does not make sense: one line on stderr, exit 2."""


def need_phase(word: str | None) -> Phase:
    phase = resolve_phase(word)
    if phase is None:
        if word is None:
            raise UsageError("no phase given and PAM_TYPE is not set")
        raise UsageError(f"unknown phase {word!r} (expected one of: {phase_words()})")
    return phase


def read_config(ns: argparse.Namespace) -> Config:
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
               root=ns.root, debug=ns.verbose)


def _entry_points(root: str) -> object:
    from . import entrypoints

    return lambda: entrypoints.installed(root)


def new_dispatch(ns: argparse.Namespace, phase: Phase, items: dict[bytes, bytes],
                 authtok: bytes | None = None, msg_fd: int | None = None,
                 caller_env: Mapping[bytes, bytes] | None = None) -> Dispatch:
    """``caller_env``: where ``pass_env`` names are taken from (default our environment;
    ``serve`` gives what ``run`` would have had)."""
    from .dispatch import Dispatch, Messages

    config = read_config(ns)
    return Dispatch(phase, items, config, _log(ns, config), root=ns.root,
                    caller_env=os.environb if caller_env is None else caller_env,
                    authtok=authtok, messages=Messages(msg_fd),
                    entry_points=_entry_points(ns.root))  # type: ignore[arg-type]
