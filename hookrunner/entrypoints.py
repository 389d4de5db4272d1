"""Installed plugins (entry-point group ``hookrunner``), found without paying for them.

Scanning every distribution with importlib.metadata costs several times the interpreter's
start-up, and every login would pay it. So the result (names and module paths, no code) is
cached in ``ROOT/var/cache/hookrunner/entry_points.json``, keyed by the interpreter and the
modification times of its site directories (installing or removing a distribution adds or
removes a ``*.dist-info`` directory there, which changes the time). The cache is used only if
it is root-owned and writable by nobody else, like a hook file.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from .discovery import EntryPoint
from .safety import UnsafeError, open_checked

GROUP = "hookrunner"
CACHE = Path("var/cache/hookrunner/entry_points.json")  # below --root
VERSION = 1


def site_dirs() -> list[str]:
    import site

    dirs = [*site.getsitepackages(), *sys.path[1:]]
    seen: dict[str, None] = {}
    for d in dirs:
        if d and os.path.isdir(d) and d not in seen:
            seen[d] = None
    return list(seen)


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
    dirs = site_dirs()
    key = _key(dirs)
    cache = root / CACHE
    if use_cache:
        cached = _read(cache, root)
        if cached is not None and cached.get("key") == key:
            entries = cached.get("entry_points")
            if isinstance(entries, list):
                return [EntryPoint(*map(str, ep)) for ep in entries]
    eps = scan(dirs)
    if use_cache:
        _write(cache, {"key": key, "entry_points": [list(ep) for ep in eps]})
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
