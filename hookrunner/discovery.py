"""Find the hooks of a phase: layered directories merged by name, like systemd's.

Layers, highest precedence first (each below ``--root``):
``/etc/security``, ``/run/hookrunner``, ``/usr/local/lib/hookrunner``, ``/usr/lib/hookrunner``.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal, NamedTuple

from .phases import LAYERS

__all__ = ["LAYERS", "Candidate", "EntryPoint", "discover", "hook_name", "layer_dirs"]

# run-parts' default (--lsbsysinit off); \Z, not $, which would also match before a final "\n"
NAME_RE = re.compile(r"^[A-Za-z0-9_-]+\Z")
DEV_NULL = "/dev/null"

Kind = Literal["exec", "python", "entrypoint"]
Action = Literal["run", "skip", "mask"]


class Candidate(NamedTuple):
    """One entry found for a phase, with what will be done with it and why."""

    name: str  # the hook's name: file name, without ".py" for a plugin file
    path: Path  # the file (or, for an entry point, the module it names)
    kind: Kind
    action: Action
    reason: str

    @property
    def sort_key(self) -> bytes:
        file_name = self.name + ".py" if self.kind == "python" else self.name
        return os.fsencode(file_name)


class EntryPoint(NamedTuple):
    """An installed plugin: ``name = value`` in the ``hookrunner`` entry-point group."""

    name: str
    value: str  # "package.module" or "package.module:attr"
    dist: str = ""


def layer_dirs(phase: str, root: Path = Path("/")) -> list[Path]:
    return [root / layer / f"{phase}.d" for layer in LAYERS]


def hook_name(file_name: str) -> str | None:
    """The hook's name for a file name, or None if run-parts' rule refuses it."""
    if NAME_RE.match(file_name):
        return file_name
    if file_name.endswith(".py") and NAME_RE.match(file_name[:-3]):
        return file_name[:-3]
    return None


def discover(
    phase: str,
    root: Path = Path("/"),
    entry_points: Iterable[EntryPoint] = (),
    dirs: Sequence[Path] | None = None,
) -> list[Candidate]:
    """Every candidate of all layers, in execution order (C-locale byte order of file name).

    The highest layer's entry of a name wins; the lower ones are listed as skipped.
    """
    found: dict[str, Candidate] = {}
    shadowed: list[Candidate] = []
    bad_names: list[Candidate] = []
    for directory in dirs if dirs is not None else layer_dirs(phase, root):
        for candidate in _scan(directory):
            if candidate.name.startswith("\0"):
                bad_names.append(candidate._replace(name=candidate.name[1:]))
            elif candidate.name in found:
                winner = found[candidate.name].path
                shadowed.append(candidate._replace(action="skip", reason=f"overridden by {winner}"))
            else:
                found[candidate.name] = candidate
    for ep in entry_points:
        if not NAME_RE.match(ep.name):
            bad_names.append(Candidate(ep.name, Path(ep.value), "entrypoint", "skip",
                                       "entry-point name does not match ^[A-Za-z0-9_-]+$"))
        elif ep.name in found:
            winner = found[ep.name].path
            shadowed.append(Candidate(ep.name, Path(ep.value), "entrypoint", "skip",
                                      f"overridden by {winner}"))
        else:
            found[ep.name] = Candidate(ep.name, Path(ep.value), "entrypoint", "run",
                                       f"entry point of {ep.dist or 'an installed package'}")
    everything = [*found.values(), *shadowed, *bad_names]
    return sorted(everything, key=lambda c: (c.sort_key, c.action != "run" and c.action != "mask"))


def _scan(directory: Path) -> Iterable[Candidate]:
    try:
        # Sorted, so that "50-x" beats "50-x.py" (the same hook name) whatever the file system's order.
        entries = sorted(os.scandir(directory), key=lambda e: os.fsencode(e.name))
    except FileNotFoundError:
        return  # a missing layer is normal
    except NotADirectoryError:
        yield Candidate("\0" + directory.name, directory, "exec", "skip",
                        "cannot read directory: not a directory (nothing in this layer runs)")
        return
    except OSError as e:
        yield Candidate("\0" + directory.name, directory, "exec", "skip",
                        f"cannot read directory: {e.strerror}")
        return
    for entry in entries:
        yield _classify(entry)


def _classify(entry: os.DirEntry[str]) -> Candidate:
    path = Path(entry.path)
    name = hook_name(entry.name)
    kind: Kind = "python" if entry.name.endswith(".py") else "exec"
    if name is None:
        return Candidate("\0" + entry.name, path, kind, "skip",
                         "name does not match ^[A-Za-z0-9_-]+$ (run-parts rule)")
    if entry.is_symlink() and os.path.realpath(path) == DEV_NULL:
        return Candidate(name, path, kind, "mask", "masked (symlink to /dev/null)")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return Candidate(name, path, kind, "skip", "dangling symlink")
    except OSError as e:
        return Candidate(name, path, kind, "skip", f"cannot stat: {e.strerror}")
    if stat.S_ISDIR(st.st_mode):
        return Candidate(name, path, kind, "skip", "is a directory")
    if not stat.S_ISREG(st.st_mode):
        return Candidate(name, path, kind, "skip", "not a regular file")
    if st.st_size == 0:
        return Candidate(name, path, kind, "mask", "masked (empty file)")
    if kind == "exec" and not st.st_mode & 0o111:
        return Candidate(name, path, kind, "skip", "not executable")
    return Candidate(name, path, kind, "run", "")
