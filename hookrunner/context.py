"""The PAM context of one dispatch: the items PAM gave us, frozen, as bytes and as text."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import logging

# (attribute, environment variable) — the table of pam_exec.c's env_items.
PAM_ITEMS: tuple[tuple[str, bytes], ...] = (
    ("user", b"PAM_USER"),
    ("service", b"PAM_SERVICE"),
    ("rhost", b"PAM_RHOST"),
    ("ruser", b"PAM_RUSER"),
    ("tty", b"PAM_TTY"),
    ("pam_type", b"PAM_TYPE"),
)


def _text(value: bytes | None) -> str | None:
    # Not valid UTF-8 never crashes: undecodable bytes become lone surrogates
    # (os.fsdecode, 'surrogateescape'); os.fsencode(value) gives the bytes back.
    return None if value is None else os.fsdecode(value)


def items_from_environ(environ: Mapping[bytes, bytes]) -> dict[bytes, bytes]:
    """The PAM items that pam_exec (or pam_hookrunner.so) put in our environment."""
    return {var: environ[var] for _, var in PAM_ITEMS if var in environ}


@dataclasses.dataclass(frozen=True)
class PamContext:
    """What a hook knows about the PAM transaction. Frozen: hooks cannot change it.

    Each item is a ``str``, or ``None`` when PAM did not set it. Bytes that are not
    UTF-8 appear as lone surrogates (``surrogateescape``); ``os.fsencode`` restores
    them, and ``items`` keeps the raw bytes.
    """

    phase: str
    user: str | None = None
    service: str | None = None
    rhost: str | None = None
    ruser: str | None = None
    tty: str | None = None
    pam_type: str | None = None
    hook: str | None = None
    items: Mapping[bytes, bytes] = dataclasses.field(default_factory=dict, repr=False)
    authtok: str | None = dataclasses.field(default=None, repr=False, compare=False)
    log: logging.Logger | None = dataclasses.field(default=None, repr=False, compare=False)

    @classmethod
    def from_items(cls, phase: str, items: Mapping[bytes, bytes]) -> PamContext:
        values: dict[str, Any] = {attr: _text(items.get(var)) for attr, var in PAM_ITEMS}
        return cls(phase=phase, items=dict(items), **values)

    def for_hook(self, hook: str, **changes: Any) -> PamContext:
        """A copy for one hook: its name, and (only if opted in) the password."""
        return dataclasses.replace(self, hook=hook, **changes)


class Deny(Exception):
    """Raised by a Python plugin to refuse: ``raise hookrunner.Deny("outside office hours")``."""
