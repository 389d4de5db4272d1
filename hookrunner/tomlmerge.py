"""Parse config files with tomllib and merge them in order, remembering where each value came from.

Used by dropins.py only when the parse cache does not hold these files' bytes, and by
``hookrunner config``; imports config.py, quick.py and schema.py, none of which imports it.
"""

from __future__ import annotations

from .config import ConfigError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any

    Origins = dict[tuple[str, ...], int]


class Merged:
    """The merged parse: ``data``, and for every key path the index (in ``paths``/``texts``)
    of the file its value came from."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.origins: Origins = {}
        self.paths: list[str] = []
        self.texts: list[str] = []

    def where(self, key: tuple[str, ...]) -> tuple[str, str]:
        """(path, text) of the file that set ``key`` (or, failing that, its nearest table)."""
        while key and key not in self.origins:
            key = key[:-1]
        index = self.origins.get(key, len(self.paths) - 1)
        return self.paths[index], self.texts[index]


def parse(files: list[tuple[str, bytes]]) -> Merged:
    """Parse each file that holds more than comments with tomllib, and merge them in order."""
    import tomllib

    from .quick import only_comments
    from .schema import toml_message

    merged = Merged()
    for path, raw in files:
        if only_comments(raw):
            continue
        try:
            text = raw.decode("utf-8")
            data = tomllib.loads(text)
        except UnicodeDecodeError as e:
            raise ConfigError(f"{path}: not UTF-8 (byte {e.start})") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}:{toml_message(e, text)}") from None
        except RecursionError:  # tomllib recurses into nested arrays and inline tables
            raise ConfigError(f"{path}: values nested too deeply") from None
        merged.paths.append(path)
        merged.texts.append(text)
        merge(merged.data, data, len(merged.paths) - 1, merged.origins)
    return merged


def merge(into: dict[str, Any], data: dict[str, Any], index: int, origins: Origins,
          prefix: tuple[str, ...] = ()) -> None:
    """Apply ``data`` over ``into``: tables key by key, any other value replaced whole."""
    for key, value in data.items():
        here = (*prefix, key)
        origins[here] = index
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value, index, origins, here)
            continue
        if isinstance(into.get(key), dict):  # a table replaced by a value: forget its keys
            for old in [k for k in origins if len(k) > len(here) and k[:len(here)] == here]:
                del origins[old]
        into[key] = value
        if isinstance(value, dict):
            _mark(value, index, origins, here)


def _mark(table: dict[str, Any], index: int, origins: Origins, prefix: tuple[str, ...]) -> None:
    for key, value in table.items():
        origins[(*prefix, key)] = index
        if isinstance(value, dict):
            _mark(value, index, origins, (*prefix, key))
