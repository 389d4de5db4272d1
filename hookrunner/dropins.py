"""The configuration as a set of files: ``hookrunner.toml.d/*.toml`` in the four layers, then
``/etc/security/hookrunner.toml``; read, parsed (or taken from the parse cache), merged.

Fragments are found as hooks are (discovery.py): every layer's ``hookrunner.toml.d`` below
``--root``, merged by file name, a higher layer's file replacing a lower one of the same
name, a symlink to ``/dev/null`` or an empty file masking the name. They are applied in
name order (C locale), then the main file; a later file's value replaces an earlier one,
tables merge key by key (arrays are values: replaced, not appended). Each file passes the
safety rules (``safety.read_checked``) and is parsed from the bytes that were checked.

The merged parse is kept in ``var/cache/hookrunner/config`` (below ``--root``) next to every
file's path and exact bytes: a change to any file, a file added, masked or removed, is a
different key. Validation (schema.py) runs on every load, cached or not; ``tomllib`` (13 ms),
``re`` and the merge (tomlmerge.py) only when something changed. This module imports
config.py and, lazily, quick.py (``only_comments``), schema.py and tomlmerge.py; none of
them imports it (quick.py judges fragments on its own, without the merge by name).
"""

from __future__ import annotations

import os

from .config import CACHE, Config, ConfigError
from .phases import CONFIG, DROPIN_DIR, LAYERS, is_mask, valid_name

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: every login pays imports
if TYPE_CHECKING:
    from typing import Any

SUFFIX = ".toml"
_CACHE_MAGIC = "hookrunner-config 2"


def dropin_dirs(root: str) -> list[str]:
    """``ROOT/LAYER/hookrunner.toml.d``, highest precedence first."""
    return [os.path.join(root, layer, DROPIN_DIR) for layer in LAYERS]


def fragment_name(file_name: str) -> str | None:
    """``NAME`` of ``NAME.toml`` where NAME follows run-parts' ``^[A-Za-z0-9_-]+$``; None for
    anything else (``x.toml.dpkg-old``, ``.x.toml``, ``x.conf``), which is never read."""
    if file_name.endswith(SUFFIX) and valid_name(file_name[:-len(SUFFIX)]):
        return file_name[:-len(SUFFIX)]
    return None


def scan(root: str) -> tuple[list[str], list[tuple[str, str]]]:
    """The fragments that apply, in the order they are applied (name order), and what was
    passed over: (path, why) for masks, overridden files and names that are not NAME.toml."""
    found: dict[str, str | None] = {}  # file name -> winning path, None if masked
    passed: list[tuple[str, str]] = []
    for directory in dropin_dirs(root):
        try:
            with os.scandir(directory) as entries:
                names = sorted(entry.name for entry in entries)
        except FileNotFoundError:
            continue
        except OSError as e:
            raise ConfigError(f"{directory}: cannot read directory: {e.strerror}") from None
        for file_name in names:
            path = os.path.join(directory, file_name)
            if fragment_name(file_name) is None:
                passed.append((path, "ignored: not NAME.toml (NAME as ^[A-Za-z0-9_-]+$)"))
            elif file_name in found:
                winner = found[file_name]
                passed.append((path, f"overridden by {winner}" if winner else "masked"))
            elif is_mask(path):
                _check_mask(path, root)
                found[file_name] = None
                passed.append((path, "masks this name"))
            else:
                found[file_name] = path
    in_order = sorted(found.items(), key=lambda item: os.fsencode(item[0]))
    return [path for _, path in in_order if path is not None], passed


def _check_mask(path: str, root: str) -> None:
    """A mask must pass the rules a fragment must pass (as hook masks do, discovery.py):
    else anyone who could write there could switch a package's settings off."""
    from .logsafety import check_mask

    problem = check_mask(path, root)
    if problem is not None:
        raise ConfigError(f"{path}: refused: unsafe mask: {problem}")


def config_files(root: str, main: str | None = None) -> list[str]:
    """Every file of the configuration, in the order applied: the fragments, then the main
    file (``main``, else ROOT/etc/security/hookrunner.toml) if it exists."""
    fragments, _ = scan(root)
    path = main if main is not None else os.path.join(root, CONFIG)
    return [*fragments, path] if os.path.lexists(path) else fragments


def read(path: str, root: str) -> bytes:
    from .safety import UnsafeError, read_checked

    try:
        return read_checked(path, root)  # parsed from the very descriptor that was checked
    except UnsafeError as e:
        raise ConfigError(f"{path}: refused: {e}") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None


def load(root: str, main: str | None = None) -> Config:
    """The configuration below ``root`` (``main``: the file given with ``--config``)."""
    root = os.fspath(root)
    if main is not None and not os.path.lexists(main):
        raise ConfigError(f"{main}: no such file")
    default = os.path.join(root, CONFIG)
    files = config_files(root, main)
    path = main if main is not None else (default if files and files[-1] == default else None)
    if not files:
        return Config()
    return parse_files([(f, read(f, root)) for f in files], path=path, cache_root=root)


def load_config(path: str | os.PathLike[str], *, required: bool = False,
                cache_root: str | None = None) -> Config:
    """One file on its own (no fragments, no safety rules): a missing file is the defaults
    unless ``required``. For tests and tools; the dispatcher uses :func:`load`."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        if required:
            raise ConfigError(f"{path}: no such file") from None
        return Config()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    return parse_files([(os.fspath(path), raw)], path=path, cache_root=cache_root)


def parse_files(files: list[tuple[str, bytes]], *, path: str | os.PathLike[str] | None,
                cache_root: str | None = None) -> Config:
    """Validate the bytes of ``files`` (applied in this order) into one Config (``path``: its
    main file). With ``cache_root``, the merged parse is kept as the module doc says."""
    from .quick import only_comments

    if all(only_comments(raw) for _, raw in files):  # Debian's shipped file: no TOML parser
        return Config(path=path)
    from .schema import validate  # here: a phase without a config never loads it

    cache = None
    if cache_root is not None:
        cache = os.path.join(cache_root, CACHE)
        data = _cached_parse(cache, cache_root, files)
        if data is not None:
            try:
                return validate(path, data)
            except ConfigError:
                pass  # validated once; a newer hookrunner may say otherwise: place the error
    from .tomlmerge import parse  # tomllib: only when a file changed

    merged = parse(files)
    config = validate(path, merged.data, merged.where)
    if cache is not None:  # only a valid config is worth keeping
        _store_parse(cache, files, merged.data)
    return config


def locate(root: str, main: str | os.PathLike[str] | None, key: tuple[str, ...]) -> str:
    """``PATH:LINE`` of the file that set ``key`` (for an error found after validation)."""
    from .schema import line_of, quote_key
    from .tomlmerge import parse

    try:
        files = config_files(root, None if main is None else os.fspath(main))
        merged = parse([(f, read(f, root)) for f in files])
        path, text = merged.where(key)
    except (ConfigError, IndexError):
        return os.fspath(main or os.path.join(root, CONFIG))
    line = line_of(text, ".".join(map(quote_key, key)))
    return f"{path}:{line}" if line else path


def _cached_parse(cache: str, root: str, files: list[tuple[str, bytes]]) -> dict[str, Any] | None:
    import marshal  # built in: no import cost

    from .safety import UnsafeError, read_checked

    try:
        stored = marshal.loads(read_checked(cache, root))  # noqa: S302 — root-owned, checked like a hook
    except (UnsafeError, OSError, EOFError, ValueError, TypeError):
        return None
    if not (isinstance(stored, tuple) and len(stored) == 4):
        return None
    magic, version, key, data = stored
    if (magic, version, key) != (_CACHE_MAGIC, _python_version(), tuple(files)) \
            or not isinstance(data, dict):
        return None
    return data


def _store_parse(cache: str, files: list[tuple[str, bytes]], data: dict[str, Any]) -> None:
    """A value marshal cannot hold (a TOML date) means no cache."""
    import marshal

    from .safety import write_root_only

    try:
        blob = marshal.dumps((_CACHE_MAGIC, _python_version(), tuple(files), data))
    except ValueError:
        return
    write_root_only(cache, blob, 0o600)


def _python_version() -> str:
    import sys

    return sys.version  # marshal's format is the interpreter's
