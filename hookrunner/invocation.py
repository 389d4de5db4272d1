"""What every command shares: the exit codes, ``UsageError``, the one place that maps errors to
them (``guarded``), and the steps from the command line's arguments to a ready ``Dispatch``
(the phase, the config, the log) and a phase run (``run_phase``: ``run`` and ``serve``).

``cli`` (the entry and ``run``, on every login) and ``commands`` (argparse, list, check,
simulate) both import this module and never each other's way back: ``cli`` imports
``commands`` (only for the admin commands), ``commands`` imports nothing of ``cli``. It is on
every login's path, so it imports what ``run`` needs anyway and the rest only when called.
"""

from __future__ import annotations

import os
import sys

from .config import Config, ConfigError
from .phases import CONFIG, DROPIN_DIR, LAYERS, Phase, phase_words, resolve_phase
from .privileges import PrivilegeError
from .quick import EXIT_EMPTY

# Where a config file could be (below --root): the main file and dropins.py's directories.
CONFIG_PATHS = (CONFIG, *(os.path.join(layer, DROPIN_DIR) for layer in LAYERS))

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: every login pays imports
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Mapping, Sequence

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
    """The drop-ins below --root, then the main file (``--config``, else the default)."""
    root = os.fspath(ns.root)
    if ns.config is None and not any(os.path.lexists(os.path.join(root, path))
                                     for path in CONFIG_PATHS):
        return Config()  # no config file at all: the loader is not even imported
    from .dropins import load

    return load(root, ns.config)


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


def guarded(command: Callable[[], int]) -> int:
    """Run ``command``; every error becomes its exit status and one clear line."""
    try:
        return command()
    except UsageError as e:
        print(f"hookrunner: {e}", file=sys.stderr)
        return EXIT_USAGE
    except (ConfigError, PrivilegeError) as e:
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


def run_phase(ns: argparse.Namespace, phase: Phase, items: dict[bytes, bytes],
              authtok: Callable[[], bytes | None], *,
              caller_env: Mapping[bytes, bytes] | None = None,
              spoofed: Sequence[bytes] = ()) -> int:
    """``run``'s work (cli.cmd_run), shared with ``serve``'s per-request child (request.py): the PAM
    ``items`` and the caller's environment (``pass_env``) as given, the password fetched
    only if a hook of the phase asked for it."""
    items[b"PAM_TYPE"] = phase.pam_type.encode()
    dispatch = new_dispatch(ns, phase, items, msg_fd=ns.msg_fd, caller_env=caller_env)
    for name in spoofed:
        dispatch.log.warning(f"{phase.name}: {name.decode()} is also set in the PAM environment "
                             f"(pam_env?), not by PAM: ignored, a spoofing attempt? "
                             f"{dispatch.fields()}")
    if phase.authtok and any(h.authtok for h in dispatch.config.hooks.values()):
        dispatch.authtok = authtok()
    kill_hooks_on_sigterm()
    status, _ = dispatch.run(keep=False)
    if ns.ignore_empty and not dispatch.ran:
        return EXIT_EMPTY
    return status


def kill_hooks_on_sigterm() -> None:
    """pam_hookrunner.so's timeout= SIGTERMs our process group, but each hook runs in a
    session of its own: take the running hook (and what it left) down with us."""
    import _signal  # type: ignore[import-not-found]  # the C module: `signal` imports enum

    from . import reaper

    born = reaper.clock()

    def on_term(signum: int, frame: object) -> None:
        reaper.kill_leftovers(born, timeout=0.5)
        os._exit(EXIT_CONFIG)

    _signal.signal(reaper.SIGTERM, on_term)
