"""Installed plugins (entry-point group ``hookrunner``), found without paying for them.

Scanning every distribution with importlib.metadata costs several times the interpreter's
start-up, and every login would pay it. So the result (names and module paths, no code) is
cached in ``ROOT/var/cache/hookrunner/entry_points.json``, keyed by the interpreter and the
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

import json
import os
import sys
import time
from pathlib import Path

from .discovery import EntryPoint
from .safety import UnsafeError, check_file, open_checked

GROUP = "hookrunner"
CACHE = Path("var/cache/hookrunner/entry_points.json")  # below --root
VERSION = 2
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


def _key(dirs: list[str]) -> dict[str, object]:
    return {"version": VERSION, "executable": sys.executable,
            "dirs": {d: os.stat(d).st_mtime_ns for d in dirs}}


def scan(dirs: list[str]) -> list[EntryPoint]:
    """The cold path: ask importlib.metadata about every distribution in ``dirs``."""
    import importlib.metadata

    found: dict[str, EntryPoint] = {}
    for dist in importlib.metadata.distributions(path=dirs):
        for ep in dist.entry_points:
            if ep.group == GROUP and ep.name not in found:  # first on the path wins
                found[ep.name] = EntryPoint(ep.name, ep.value, dist.metadata["Name"] or "")
    return sorted(found.values())


def installed(root: Path = Path("/"), *, use_cache: bool = True) -> list[EntryPoint]:
    """The ``hookrunner`` entry points of the installed distributions, cached below ``root``."""
    dirs = search_dirs()
    key = _key(dirs)
    cache = root / CACHE
    if use_cache:
        cached = _from_cache(_read(cache, root), key)
        if cached is not None:
            return cached
    started = time.time_ns()
    eps = scan(dirs)
    racy = any(mtime > started - RACY_NS for mtime in _mtimes(key))
    if use_cache and not racy:
        _write(cache, {"key": key, "entry_points": [list(ep) for ep in eps]})
    return eps


def _mtimes(key: dict[str, object]) -> list[int]:
    dirs = key["dirs"]
    assert isinstance(dirs, dict)
    return [int(t) for t in dirs.values()]


def _from_cache(data: dict[str, object] | None, key: dict[str, object]) -> list[EntryPoint] | None:
    if data is None or data.get("key") != key:
        return None
    entries = data.get("entry_points")
    if not isinstance(entries, list):
        return None
    eps = []
    for entry in entries:
        if not (isinstance(entry, list) and len(entry) == 3 and all(isinstance(v, str) for v in entry)):
            return None  # not what we write: scan again
        eps.append(EntryPoint(*entry))
    return eps


def _read(cache: Path, root: Path) -> dict[str, object] | None:
    try:
        checked = open_checked(cache, root)
    except UnsafeError:
        return None
    try:
        with os.fdopen(checked.fd, "rb") as f:
            data = json.loads(f.read(1 << 20))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write(cache: Path, data: dict[str, object]) -> None:
    """Atomically, root only; a read-only /var just means no cache."""
    if os.geteuid() != 0:
        return
    tmp = cache.with_name(f".{cache.name}.{os.getpid()}")
    try:
        cache.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.replace(tmp, cache)
    except OSError:
        try:
            tmp.unlink()
        except OSError:
            pass


def module_files(value: str) -> list[Path]:
    """The files ``import`` would run for an entry point's ``module[:attr]``, found without
    running any: each package's ``__init__.py`` from the top down, then the module (and
    their cached bytecode, when present). Raises ImportError when the module is not found.
    """
    from importlib.machinery import PathFinder
    from importlib.util import find_spec

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
