"""Find the hooks of a phase: layered directories merged by name, like systemd's.

Layers, highest precedence first (each below ``--root``):
``/etc/security``, ``/run/hookrunner``, ``/usr/local/lib/hookrunner``, ``/usr/lib/hookrunner``.
"""

from __future__ import annotations

import errno
import os
import stat

from .phases import DEV_NULL, LAYERS, hook_name, valid_name
from .record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: every login pays imports
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence
    from typing import Literal

    Kind = Literal["exec", "python", "entrypoint"]
    Action = Literal["run", "skip", "mask"]

__all__ = ["LAYERS", "Candidate", "EntryPoint", "discover", "hook_name", "layer_dirs",
           "valid_name"]

# Out of descriptors or memory: not a fact about the directory. Skipping the layer would run
# a phase without its deny hooks (fail-open); raised instead, the phase fails (exit 3).
RESOURCE_ERRORS = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOMEM))


class Candidate(Record):
    """One entry found for a phase, with what will be done with it and why.

    A plain class with slots (``typing.NamedTuple`` costs every login 2 ms); ``path`` is a
    ``str`` (``pathlib`` costs as much again). A candidate found by a directory scan keeps
    the directory (one string per layer, shared) and its file name, and builds ``path`` when
    asked: a phase of 1000 hooks holds 1000 names, not 1000 full paths as well (-100 KiB).
    """

    __slots__ = ("_dir", "_file", "action", "kind", "name", "reason")
    _fields = ("name", "path", "kind", "action", "reason")

    def __init__(self, name: str, path: str, kind: Kind, action: Action, reason: str) -> None:
        self.name = name  # the hook's name: file name, without ".py" for a plugin file
        self.path = path  # the file (or, for an entry point, the module it names)
        self.kind = kind
        self.action = action
        self.reason = reason

    @classmethod
    def scanned(cls, directory: str, file_name: str, name: str, kind: Kind, action: Action,
                reason: str) -> Candidate:
        """The candidate of ``directory``'s entry ``file_name`` (``path`` = both joined)."""
        self = cls(name, "", kind, action, reason)
        self._dir, self._file = directory, file_name
        return self

    @property
    def path(self) -> str:
        return self._file if self._dir is None else os.path.join(self._dir, self._file)

    @path.setter
    def path(self, value: str) -> None:
        self._dir: str | None = None
        self._file = value

    @property
    def file_name(self) -> str:
        """The directory entry's name (for an entry point: the module it names)."""
        return self._file if self._dir is not None else os.path.basename(self._file)

    @property
    def sort_key(self) -> bytes:
        file_name = self.name + ".py" if self.kind == "python" else self.name
        return os.fsencode(file_name)


class EntryPoint(Record):
    """An installed plugin: ``name = value`` in the ``hookrunner`` entry-point group."""

    __slots__ = ("dist", "name", "value")
    _fields = ("name", "value", "dist")

    def __init__(self, name: str, value: str, dist: str = "") -> None:
        self.name = name
        self.value = value  # "package.module" or "package.module:attr"
        self.dist = dist


def layer_dirs(phase: str, root: str | os.PathLike[str] = "/") -> list[str]:
    return [os.path.join(root, layer, phase + ".d") for layer in LAYERS]


def discover(
    phase: str,
    root: str | os.PathLike[str] = "/",
    entry_points: Iterable[EntryPoint] = (),
    dirs: Sequence[str | os.PathLike[str]] | None = None,
) -> list[Candidate]:
    """Every candidate of all layers, in execution order (C-locale byte order of file name).

    The highest layer's entry of a name wins; the lower ones are listed as skipped.
    """
    found: dict[str, Candidate] = {}
    shadowed: list[Candidate] = []
    bad_names: list[Candidate] = []
    unsafe_masks: list[Candidate] = []
    for directory in dirs if dirs is not None else layer_dirs(phase, root):
        for candidate in _scan(directory):
            if candidate.name.startswith("\0"):
                bad_names.append(candidate._replace(name=candidate.name[1:]))
            elif candidate.name in found:
                winner = found[candidate.name].path
                shadowed.append(candidate._replace(action="skip", reason=f"overridden by {winner}"))
            elif candidate.action == "mask" and (unsafe := _unsafe_mask(candidate, root)):
                # Masks nothing: the next layer's entry of that name (if any) stays in force.
                # Listed ahead of it (its layer is higher), so a run logs it before a denial.
                unsafe_masks.append(candidate._replace(action="skip", reason=unsafe))
            else:
                found[candidate.name] = candidate
    for ep in entry_points:
        if not valid_name(ep.name):
            bad_names.append(Candidate(ep.name, ep.value, "entrypoint", "skip",
                                       "entry-point name does not match ^[A-Za-z0-9_-]+$"))
        elif ep.name in found:
            winner = found[ep.name].path
            shadowed.append(Candidate(ep.name, ep.value, "entrypoint", "skip",
                                      f"overridden by {winner}"))
        else:
            found[ep.name] = Candidate(ep.name, ep.value, "entrypoint", "run",
                                       f"entry point of {ep.dist or 'an installed package'}")
    everything = [*unsafe_masks, *found.values(), *shadowed, *bad_names]
    # Stable: for one name, the winner (listed first) stays ahead of what it overrides.
    # Hook names are ASCII, where str order is byte order: sorted by the names themselves, no
    # key object per hook (1000 hooks: -60 KiB at the peak); bytes keys only for odd names.
    if all(c.name.isascii() for c in everything):
        everything.sort(key=lambda c: c.name + ".py" if c.kind == "python" else c.name)
    else:
        everything.sort(key=lambda c: c.sort_key)
    return everything


def _unsafe_mask(candidate: Candidate, root: str | os.PathLike[str]) -> str | None:
    """Why a mask may not mask (it fails the hook rules), or None. Masks are rare: the check
    costs nothing on a phase without one."""
    from .logsafety import check_mask

    problem = check_mask(candidate.path, os.fspath(root))
    return None if problem is None else f"refused: unsafe mask ignored: {problem}"


def _scan(directory: str | os.PathLike[str]) -> Iterator[Candidate]:
    directory = os.fspath(directory)
    try:
        # Classified as they come: a phase of 1000 hooks need not hold 1000 DirEntry objects.
        with os.scandir(directory) as entries:
            found = [_classify(directory, entry) for entry in entries]
    except FileNotFoundError:
        return  # a missing layer is normal
    except NotADirectoryError:
        yield Candidate("\0" + os.path.basename(directory), os.fspath(directory), "exec", "skip",
                        "cannot read directory: not a directory (nothing in this layer runs)")
        return
    except OSError as e:
        if e.errno in RESOURCE_ERRORS:
            raise
        yield Candidate("\0" + os.path.basename(directory), os.fspath(directory), "exec", "skip",
                        f"cannot read directory: {e.strerror}")
        return
    # Sorted, so that "50-x" beats "50-x.py" (the same hook name) whatever the file system's order.
    # (ASCII names, the only ones that can tie, sort the same as str and as bytes.)
    found.sort(key=lambda c: c.file_name)
    yield from found


def _classify(directory: str, entry: os.DirEntry[str]) -> Candidate:
    path, file_name = entry.path, entry.name
    name = hook_name(file_name)
    kind: Kind = "python" if file_name.endswith(".py") else "exec"

    def found(name: str, action: Action, reason: str) -> Candidate:
        return Candidate.scanned(directory, file_name, name, kind, action, reason)

    if name is None:
        return found("\0" + file_name, "skip", "name does not match ^[A-Za-z0-9_-]+$ (run-parts rule)")
    if entry.is_symlink() and os.path.realpath(path) == DEV_NULL:
        return found(name, "mask", "masked (symlink to /dev/null)")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return found(name, "skip", "dangling symlink")
    except OSError as e:
        if e.errno in RESOURCE_ERRORS:
            raise
        return found(name, "skip", f"cannot stat: {e.strerror}")
    if stat.S_ISDIR(st.st_mode):
        return found(name, "skip", "is a directory")
    if not stat.S_ISREG(st.st_mode):
        return found(name, "skip", "not a regular file")
    if st.st_size == 0:
        return found(name, "mask", "masked (empty file)")
    if kind == "exec" and not st.st_mode & 0o111:
        return found(name, "skip", "not executable")
    return found(name, "run", "")
