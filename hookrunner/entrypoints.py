"""Installed plugins (entry-point group ``hookrunner``), found without paying for them.

Scanning every distribution with importlib.metadata costs several times the interpreter's
start-up, and every login would pay it. So the result (names and module paths, no code) is
cached in ``ROOT/var/cache/hookrunner/entry_points`` (plain text: ``json`` alone would cost a
millisecond on every login), keyed by the interpreter and the
modification times of the directories distributions are found in (installing, upgrading or
removing one adds or removes a ``*.dist-info`` directory there, which changes the time).
The cache is used only if it is root-owned and writable by nobody else, like a hook file;
it is not written while a directory's time is too recent to tell a later change apart
(file system clocks tick coarsely), so a stale cache cannot survive an install.

The dispatcher runs as ``python3 -I -S``: no ``site``, so no site-packages on ``sys.path``
and (Python 3.11) no virtual environment either. :func:`site_packages` finds the directories
``site`` would add, without running ``.pth`` files (so editable installs are not seen).
"""

from __future__ import annotations

import os
import sys
import time

from .safety import UnsafeError, check_file, read_checked, write_root_only

TYPE_CHECKING = False  # no typing, pathlib or discovery imports on the empty-phase path
if TYPE_CHECKING:
    from pathlib import Path

    from .discovery import EntryPoint

GROUP = "hookrunner"
CACHE = "var/cache/hookrunner/entry_points"  # below --root
MAGIC = "hookrunner-entry-points 3"
RACY_NS = 50_000_000  # a directory changed less than this before the scan: don't cache


def _venv() -> tuple[str, bool] | None:
    """(prefix, include-system-site-packages) of the venv ``site`` would have noticed."""
    if sys.prefix != sys.base_prefix:
        return None  # site ran: sys.prefix is already the venv
    exe_dir = os.path.dirname(os.path.abspath(sys.executable))
    prefix = os.path.dirname(exe_dir)
    for conf in (os.path.join(exe_dir, "pyvenv.cfg"), os.path.join(prefix, "pyvenv.cfg")):
        try:
            with open(conf, encoding="utf-8") as f:
                lines = f.read(65536).splitlines()
        except OSError:
            continue
        system = True
        for line in lines:
            key, eq, value = line.partition("=")
            if eq and key.strip().lower() == "include-system-site-packages":
                system = value.strip().lower() == "true"
        return prefix, system
    return None


def site_packages() -> list[str]:
    """The site directories ``site`` would add for this interpreter, venv included."""
    import site

    venv = _venv()
    if venv is None:
        dirs = site.getsitepackages()
    else:
        prefix, system = venv
        version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
        dirs = [os.path.join(prefix, libdir, version, "site-packages")
                for libdir in dict.fromkeys([sys.platlibdir, "lib"])]
        if system:
            dirs += site.getsitepackages()
    return [d for d in dict.fromkeys(dirs) if os.path.isdir(d)]


def ensure_site_path() -> None:
    """Append the site directories to ``sys.path`` (the dispatcher runs with ``-S``)."""
    for directory in site_packages():
        if directory not in sys.path:
            sys.path.append(directory)


def search_dirs() -> list[str]:
    """Where distributions are looked for: the site directories, then ``sys.path``.

    ``sys.path[0]`` (the script's directory, or the source tree ``__main__`` put there) is
    left out: it is not where plugins are installed, and it changes with every edit.
    """
    dirs = [*site_packages(), *sys.path[1:]]
    return [d for d in dict.fromkeys(dirs) if d and os.path.isdir(d)]


def _key(dirs: list[str]) -> list[str]:
    """What the cache is valid for: the format, the interpreter, each directory and its time."""
    return [MAGIC, sys.executable, *(f"{os.stat(d).st_mtime_ns} {d}" for d in dirs)]


def scan(dirs: list[str]) -> list[EntryPoint]:
    """The cold path: ask importlib.metadata about every distribution in ``dirs``."""
    import importlib.metadata

    from .discovery import EntryPoint

    found: dict[str, EntryPoint] = {}
    for dist in importlib.metadata.distributions(path=dirs):
        for ep in dist.entry_points:
            if ep.group == GROUP and ep.name not in found:  # first on the path wins
                found[ep.name] = EntryPoint(ep.name, ep.value, dist.metadata["Name"] or "")
    return sorted(found.values(), key=lambda ep: (ep.name, ep.value, ep.dist))


def cached(root: str = "/") -> list[tuple[str, str, str]] | None:
    """The entry points the cache holds, if it is safe and still valid; else None. Cheap:
    what every login pays when no plugin is installed."""
    return _from_cache(_read(os.path.join(root, CACHE), root), _key(search_dirs()))


def installed(root: Path | str = "/", *, use_cache: bool = True) -> list[EntryPoint]:
    """The ``hookrunner`` entry points of the installed distributions, cached below ``root``."""
    from .discovery import EntryPoint

    dirs = search_dirs()
    key = _key(dirs)
    cache = os.path.join(root, CACHE)
    if use_cache:
        hit = _from_cache(_read(cache, root), key)
        if hit is not None:
            return [EntryPoint(*ep) for ep in hit]
    started = time.time_ns()
    eps = scan(dirs)
    racy = any(int(line.split(" ", 1)[0]) > started - RACY_NS for line in key[2:])
    if use_cache and not racy:
        _write(cache, key, [(ep.name, ep.value, ep.dist) for ep in eps])
    return eps


def _from_cache(lines: list[str] | None, key: list[str]) -> list[tuple[str, str, str]] | None:
    """Cache file: the key's lines, an empty line, then ``name TAB value TAB dist`` lines."""
    if lines is None or lines[: len(key) + 1] != [*key, ""]:
        return None
    eps = []
    for line in lines[len(key) + 1 :]:
        fields = line.split("\t")
        if len(fields) != 3:
            return None  # not what we write: scan again
        eps.append((fields[0], fields[1], fields[2]))
    return eps


def _read(cache: str, root: Path | str) -> list[str] | None:
    try:
        raw = read_checked(cache, root)
    except (UnsafeError, OSError):
        return None
    return raw.decode("utf-8", "surrogateescape").split("\n")[:-1]


def _write(cache: str, key: list[str], eps: list[tuple[str, str, str]]) -> None:
    lines = [*key, "", *("\t".join(ep) for ep in eps)]
    if any("\n" in line for line in lines) or any("\t" in f for ep in eps for f in ep):
        return  # a name we could not write back unambiguously: scan every time
    data = "".join(line + "\n" for line in lines).encode("utf-8", "surrogateescape")
    write_root_only(cache, data, 0o644)


def module_files(value: str) -> list[Path]:
    """The files ``import`` would run for an entry point's ``module[:attr]``, found without
    running any: each package's ``__init__.py`` from the top down, then the module (and
    their cached bytecode, when present). Raises ImportError when the module is not found.
    """
    from importlib.machinery import PathFinder
    from importlib.util import find_spec
    from pathlib import Path

    name = value.partition(":")[0].strip()
    files: list[Path] = []
    parts = name.split(".")
    spec = None
    search = [*sys.path, *(d for d in site_packages() if d not in sys.path)]
    for i, part in enumerate(parts):
        fullname = ".".join(parts[: i + 1])
        if fullname in sys.modules:  # already imported (a stdlib or hookrunner module)
            spec = find_spec(fullname)
        elif spec is None:
            spec = PathFinder.find_spec(part, search)
        else:
            spec = PathFinder.find_spec(fullname, spec.submodule_search_locations)
        if spec is None:
            raise ImportError(f"no module named {fullname!r}", name=fullname)
        if spec.has_location and spec.origin:
            files.append(Path(spec.origin))
            if spec.cached and os.path.exists(spec.cached):
                files.append(Path(spec.cached))
    return files


def check_module(value: str) -> str | None:
    """Why the entry point's code may not be run (the hook-file safety rules), or None."""
    try:
        files = module_files(value)
    except (ImportError, ValueError) as e:
        return f"cannot find module {value.partition(':')[0]!r}: {e}"
    for path in files:
        problem = check_file(path)
        if problem is not None:
            return problem
    return None
