"""The empty-phase fast path: most PAM phases on most machines have no hook at all.

Every login starts the dispatcher three to five times, once per phase, and typically only
one or two of those phases have hooks. For the others, ``run`` answers "nothing to do"
having imported only ``os``, ``sys`` and two small modules: it looks for any entry in the
four layer directories whose name could be a hook, for a config file or a config drop-in
(``hookrunner.toml.d/*.toml``) holding more than comments (which must be validated, so it
takes the full path), and asks the entry-point cache whether an installed
plugin exists. Anything unusual (``-v``, an unreadable directory, a cold cache) takes the
full path, which gives the same answer with all the checks and logging.
"""

from __future__ import annotations

import os

from .phases import CONFIG, DROPIN_DIR, LAYERS, hook_name, is_mask, pam_items, resolve_phase

EXIT_EMPTY = 4


class RunArgs:
    """``run``'s arguments; ``root`` is absolute (hooks run with cwd /)."""

    __slots__ = ("config", "ignore_empty", "msg_fd", "phase", "root", "verbose")

    def __init__(self) -> None:
        self.phase: str | None = None
        self.root = "/"
        self.config: str | None = None
        self.msg_fd: int | None = None
        self.ignore_empty = False
        self.verbose = False


def run_args(args: list[str]) -> RunArgs | None:
    """Parse the plain spellings of ``run [PHASE] [--root DIR] [--config FILE] [--msg-fd N]
    [--ignore-empty] [-v]``; None for anything else (help, abbreviations, errors): the CLI
    then hands the arguments to argparse, which costs a third of the start-up to import."""
    if not args or args[0] != "run":
        return None
    ns = RunArgs()
    rest = args[1:]
    while rest:
        arg = rest.pop(0)
        name, eq, value = arg.partition("=")
        if name in ("--root", "--config", "--msg-fd"):
            if not eq:
                if not rest or rest[0].startswith("-"):
                    return None
                value = rest.pop(0)
            if not value:
                return None
            if name == "--msg-fd":
                if not value.isdecimal() or not value.isascii():
                    return None
                ns.msg_fd = int(value)
            elif name == "--root":
                ns.root = os.path.abspath(value)
            else:
                ns.config = value
        elif arg == "--ignore-empty":
            ns.ignore_empty = True
        elif arg in ("-v", "--verbose"):
            ns.verbose = True
        elif arg.startswith("-") or ns.phase is not None:
            return None
        else:
            ns.phase = arg
    return ns


def could_be_hook(file_name: str) -> bool:
    """run-parts' ``^[A-Za-z0-9_-]+$``, or ``NAME.py``: discovery's own rule."""
    return hook_name(file_name) is not None


def only_comments(raw: bytes) -> bool:
    """A TOML document of nothing but blank lines and comments (an empty table), told apart
    without ``tomllib`` (which costs 13 ms to import). Anything else, including a control
    character that would make the file invalid TOML, is for tomllib to judge."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    if "\r" in text.replace("\r\n", ""):
        return False  # a carriage return is only allowed before a newline
    for line in text.split("\n"):
        line = line.removesuffix("\r").strip(" \t")
        if line and not line.startswith("#"):
            return False
        if any((c < " " and c != "\t") or c == "\x7f" for c in line):
            return False
    return True


def _config_is_empty(path: str, root: str) -> bool:
    """The config exists: it is the defaults if it passes the safety rules and holds only
    comments (the commented-out file Debian's package installs)."""
    from .safety import UnsafeError, read_checked

    try:
        return only_comments(read_checked(path, root))
    except (UnsafeError, OSError):
        return False


def _dropins_are_empty(root: str) -> bool:
    """No config fragment in any layer that could set anything: every ``*.toml`` entry is a
    mask (a symlink to /dev/null, an empty file) or holds only comments. Judged entry by
    entry, without the merge by name (dropins.py): a fragment masked by a higher layer's
    mask is read here anyway; if it holds settings, the full path gives the answer."""
    for layer in LAYERS:
        directory = os.path.join(root, layer, DROPIN_DIR)
        try:
            with os.scandir(directory) as entries:
                names = [entry.name for entry in entries if entry.name.endswith(".toml")]
        except FileNotFoundError:
            continue
        except OSError:
            return False
        for name in names:
            path = os.path.join(directory, name)
            if is_mask(path):
                from .logsafety import check_mask  # masks are rare

                if check_mask(path, root) is not None:
                    return False  # the full path says why
                continue
            if not _config_is_empty(path, root):
                return False
    return True


def nothing_to_run(ns: RunArgs) -> bool:
    """True only if the phase certainly has no hook, no plugin and no config to check."""
    if ns.verbose:
        return False
    items, spoofed = pam_items()
    if spoofed:
        return False  # the full path logs the spoofing attempt
    pam_type = items.get(b"PAM_TYPE")
    phase = resolve_phase(ns.phase if ns.phase is not None
                          else None if pam_type is None else os.fsdecode(pam_type))
    if phase is None:
        return False  # the full path gives the usage error
    for layer in LAYERS:  # first: a phase with hooks leaves before reading the config twice
        try:
            with os.scandir(os.path.join(ns.root, layer, phase.name + ".d")) as entries:
                if any(could_be_hook(entry.name) for entry in entries):
                    return False
        except FileNotFoundError:
            continue
        except OSError:
            return False
    config = ns.config if ns.config is not None else os.path.join(ns.root, CONFIG)
    if os.path.lexists(config) and not _config_is_empty(config, ns.root):
        return False
    if not _dropins_are_empty(ns.root):
        return False
    from .entrypoints import cached

    return cached(ns.root) == []


def main(args: list[str]) -> int | None:
    """The exit status of an empty ``run``, or None: take the full path."""
    ns = run_args(args)
    if ns is None or not nothing_to_run(ns):
        return None
    return EXIT_EMPTY if ns.ignore_empty else 0
