"""Installed plugins (entry-point group ``hookrunner``), found without paying for them.

Scanning every distribution with importlib.metadata costs several times the interpreter's
start-up, and every login would pay it. So the result (names and module paths, no code) is
cached in ``ROOT/var/cache/hookrunner/entry_points`` (plain text: ``json`` alone would cost a
millisecond on every login), keyed by the interpreter, each directory distributions are found
in (and its modification time), and, for every ``*.dist-info``/``*.egg-info`` there, the
identity of its ``entry_points.txt`` (device, inode, size, modification and change times; or
its absence). The directory times alone are not enough: a package revision (dpkg, pip
``--force-reinstall``) replaces ``entry_points.txt`` inside a ``*.dist-info`` that stays, and
the site directory's time does not move. The change time cannot be set back (``os.utime``
sets only the other two), so a file replaced with the same size and times is still seen.
The cache is used only if it is root-owned and writable by nobody else, like a hook file;
it is not written while a time in the key is too recent to tell a later change apart
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
MAGIC = "hookrunner-entry-points 4"
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


_INFO = (".dist-info", ".egg-info")


def _key(dirs: list[str]) -> tuple[list[str], int]:
    """What a cache written now is valid for, and the newest time in it (the cold path).

    Lines: the format, the interpreter, then per directory ``MTIME CTIME DIR``, followed by
    ``TAB NAME TAB DEV INO SIZE MTIME CTIME`` (or ``TAB NAME TAB -``) for the
    ``entry_points.txt`` of each distribution in it, found as importlib.metadata finds them:
    a child named ``*.dist-info`` or ``*.egg-info`` (any case), or ``EGG-INFO`` in an
    ``*.egg`` directory.
    """
    lines = [MAGIC, sys.executable]
    newest = 0
    for d in dirs:
        line, newest = _dir_line(d, newest)
        lines.append(line)
        egg = d.lower().endswith(".egg")
        try:
            names = sorted(os.listdir(d))
        except OSError:
            continue
        for name in names:
            low = name.lower()
            if low.endswith(_INFO) or (egg and low == "egg-info"):
                line, newest = _info_line(d, name, newest)
                lines.append(line)
    return lines, newest


def _dir_line(d: str, newest: int = 0) -> tuple[str, int]:
    st = os.stat(d)
    return (f"{st.st_mtime_ns} {st.st_ctime_ns} {d}",
            max(newest, st.st_mtime_ns, st.st_ctime_ns))


def _info_line(d: str, name: str, newest: int = 0) -> tuple[str, int]:
    try:
        st = os.stat(f"{d}/{name}/entry_points.txt")
    except OSError:  # none (or an .egg-info file): one added later changes the line
        return f"\t{name}\t-", newest
    return (f"\t{name}\t{st.st_dev} {st.st_ino} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns}",
            max(newest, st.st_mtime_ns, st.st_ctime_ns))


def _still_valid(key: list[str], dirs: list[str]) -> bool:
    """``key`` (a cache's) describes ``dirs`` as they are now. The fast path: no directory is
    listed. A directory whose modification and change times are those of the key has the
    children the key names (adding, removing or renaming one changes both; ``os.utime`` can
    set the first back, never the second), so only their ``entry_points.txt`` are stat'ed:
    one stat per directory and one per distribution, about 0.1 ms for 70 distributions.
    """
    if key[:2] != [MAGIC, sys.executable]:
        return False
    pending = iter(dirs)
    current = None
    try:
        for line in key[2:]:
            if line.startswith("\t"):
                if current is None or _info_line(current, line.split("\t", 2)[1])[0] != line:
                    return False
            else:
                current = next(pending, None)
                if current is None or _dir_line(current)[0] != line:
                    return False
    except OSError:  # a directory gone since search_dirs() saw it
        return False
    return next(pending, None) is None


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
    return _from_cache(_read(os.path.join(root, CACHE), root), search_dirs())


def installed(root: Path | str = "/", *, use_cache: bool = True) -> list[EntryPoint]:
    """The ``hookrunner`` entry points of the installed distributions, cached below ``root``."""
    from .discovery import EntryPoint

    dirs = search_dirs()
    cache = os.path.join(root, CACHE)
    if use_cache:
        hit = _from_cache(_read(cache, root), dirs)
        if hit is not None:
            return [EntryPoint(*ep) for ep in hit]
    key, newest = _key(dirs)  # before the scan: a change during it makes the cache stale at once
    started = time.time_ns()
    eps = scan(dirs)
    if use_cache and newest <= started - RACY_NS:  # else a change in the same tick could hide
        _write(cache, key, [(ep.name, ep.value, ep.dist) for ep in eps])
    return eps


def _from_cache(lines: list[str] | None, dirs: list[str]) -> list[tuple[str, str, str]] | None:
    """Cache file: the key's lines, an empty line, then ``name TAB value TAB dist`` lines."""
    if lines is None or "" not in lines:
        return None
    end = lines.index("")
    if not _still_valid(lines[:end], dirs):
        return None
    eps = []
    for line in lines[end + 1 :]:
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
