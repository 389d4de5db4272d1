"""The configuration as the admin commands see it: ``hookrunner config`` and ``check``'s findings.

``hookrunner config`` prints the merged result of every file (as ``systemd-analyze cat-config``
does for systemd): first the files in the order they are applied and those passed over, then
the merged settings as TOML, each value followed by the file and line it came from. The
output is itself valid TOML with the same values. Never on a login's path.
"""

from __future__ import annotations

import math

from .dropins import config_files, load, read, scan
from .safety import printable
from .schema import line_of, validate
from .schema import quote_key as _quote
from .tomlmerge import Merged, parse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .config import Config


def _merged(root: str, main: str | None) -> tuple[Merged, list[str]]:
    files = config_files(root, main)
    merged = parse([(f, read(f, root)) for f in files])
    return merged, files


def show(root: str, main: str | None = None) -> str:
    """What ``hookrunner config`` prints; ConfigError (with file and line) if it is invalid."""
    config = load(root, main)  # every file checked and validated, as a login would
    merged, files = _merged(root, main)
    validate(config.path, merged.data, merged.where)
    _, passed = scan(root)
    lines = ["# hookrunner configuration: the files in the order applied (a later one wins)"]
    lines += [f"#   {printable(f)}{'' if f in merged.paths else '  (comments only)'}" for f in files]
    if not files:
        lines.append("#   (none: every setting is its default)")
    lines += [f"#   not applied: {printable(p)}: {why}" for p, why in passed]
    body: list[str] = []
    _table(body, merged, merged.data, ())
    return "\n".join([*lines, *body])


def _table(out: list[str], merged: Merged, table: dict[str, Any], key: tuple[str, ...]) -> None:
    values = [(k, v) for k, v in table.items() if not isinstance(v, dict)]
    tables = [(k, v) for k, v in table.items() if isinstance(v, dict)]
    if values or not tables:
        out.append("")
        if key:
            out.append(f"[{'.'.join(map(_quote, key))}]")
        for name, value in values:
            path, text = merged.where((*key, name))
            dotted = ".".join(map(_quote, (*key, name)))
            line = line_of(text, dotted)
            out.append(f"{_quote(name)} = {_value(value)}  # {printable(path)}"
                       f"{f':{line}' if line else ''}")
    for name, value in tables:
        _table(out, merged, value, (*key, name))


def _value(value: object) -> str:
    """A TOML spelling of a value tomllib gave: one line, escaped where needed."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _quote_string(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_quote(k)} = {_value(v)}" for k, v in value.items()) + " }"
    return str(getattr(value, "isoformat", lambda: value)())  # dates and times


_ESCAPES = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r", '"': '\\"', "\\": "\\\\"}


def _quote_string(text: str) -> str:
    return '"' + "".join(_ESCAPES.get(c) or (c if c.isprintable() else f"\\U{ord(c):08x}")
                         for c in text) + '"'


def problems(root: str, main: str | None, config: Config) -> list[str]:
    """``check``'s findings in a valid configuration: pass_env names never passed, groups of
    a condition that NSS does not know. Each names the file (and line) that set it."""
    from .conditions import unknown_groups
    from .config import forbidden_env

    if not config_files(root, main):
        return []
    merged, _ = _merged(root, main)
    found = []

    def where(*key: str) -> str:
        path, text = merged.where(key)
        line = line_of(text, ".".join(map(_quote, key)))
        return f"{printable(path)}:{line}" if line else printable(path)

    for name in merged.data.get("pass_env", []):
        if forbidden_env(name):
            found.append(f"{where('pass_env')}: pass_env: {name} is never passed to hooks")
    for hook, hook_cfg in config.hooks.items():
        if hook_cfg.conditions is not None:
            for group in unknown_groups(hook_cfg.conditions):
                found.append(f"{where('hook', hook, 'groups')}: hook.{_quote(hook)}.groups: "
                             f"no such group {_quote_string(group)}")
    return found
