"""The PAM context of one dispatch: the items PAM gave us, frozen, as bytes and as text."""

from __future__ import annotations

import dataclasses
import os
import types

# pam_exec.c's env_items table lives in phases.py, which `run` imports without this module.
from .phases import PAM_ITEMS as PAM_ITEMS
from .phases import items_from_environ as items_from_environ

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~2 ms of every plugin phase)
if TYPE_CHECKING:
    import logging
    from collections.abc import Mapping
    from typing import Any


def _text(value: bytes | None) -> str | None:
    # Not valid UTF-8 never crashes: undecodable bytes become lone surrogates
    # (os.fsdecode, 'surrogateescape'); os.fsencode(value) gives the bytes back.
    return None if value is None else os.fsdecode(value)


def _default_logger() -> logging.Logger:
    # Only for a context built outside the dispatcher (a test, a REPL); the dispatcher gives
    # each hook a logger that writes to hookrunner's log under the hook's name.
    import logging

    return logging.getLogger("hookrunner.plugin")


@dataclasses.dataclass(frozen=True)
class PamContext:
    """What a hook knows about the PAM transaction. Frozen: hooks cannot change it.

    ``user``, ``service``, ``rhost``, ``ruser``, ``tty`` and ``pam_type`` are each a ``str``,
    or ``None`` when PAM did not set the item. Bytes that are not UTF-8 never raise: they
    appear as lone surrogates (``surrogateescape``, like ``os.fsdecode``), so they compare
    unequal to any real name and ``os.fsencode(ctx.user)`` gives the exact bytes back;
    ``items`` holds the raw bytes (``items[b"PAM_USER"]``). Encoding such a value with
    ``.encode()`` raises ``UnicodeEncodeError``: use ``os.fsencode``. ``ctx.log`` escapes them.

    ``phase`` is the phase (``onsessionopen``), ``hook`` this hook's name (``50-quota``),
    ``root`` the dispatcher's ``--root`` (``/`` in production): a plugin that reads its own
    file finds it with ``ctx.path("/etc/security/x.conf")``. ``authtok`` is the password
    only for a hook with ``authtok = true`` in ``onauth`` and ``onpasswd``, else ``None``.
    ``log`` is a logger (the ``logging.Logger`` interface; ``logging`` is imported on its
    first use) whose records go to hookrunner's log (syslog authpriv, the config's
    ``log_file``), prefixed with ``PHASE.d/HOOK``; debug records only with ``-v``.
    """

    phase: str
    user: str | None = None
    service: str | None = None
    rhost: str | None = None
    ruser: str | None = None
    tty: str | None = None
    pam_type: str | None = None
    hook: str | None = None
    root: str = "/"
    items: Mapping[bytes, bytes] = dataclasses.field(
        default_factory=lambda: types.MappingProxyType({}), repr=False, hash=False)
    authtok: str | None = dataclasses.field(default=None, repr=False, compare=False)
    log: logging.Logger = dataclasses.field(
        default_factory=_default_logger, repr=False, compare=False)

    @classmethod
    def from_items(cls, phase: str, items: Mapping[bytes, bytes], **changes: Any) -> PamContext:
        values: dict[str, Any] = {attr: _text(items.get(var)) for attr, var in PAM_ITEMS}
        return cls(phase=phase, items=types.MappingProxyType(dict(items)), **values, **changes)

    def for_hook(self, hook: str, **changes: Any) -> PamContext:
        """A copy for one hook: its name, its logger and (only if opted in) the password."""
        return dataclasses.replace(self, hook=hook, **changes)

    def path(self, path: str | os.PathLike[str]) -> str:
        """``path`` (absolute, as in production) below ``root``: ``ROOT/etc/security/x.conf``."""
        absolute = os.path.join("/", os.fspath(path))
        if self.root in ("", "/"):
            return absolute
        return os.path.join(self.root, absolute.lstrip("/"))


class Deny(Exception):
    """Raised by a Python plugin to refuse: ``raise hookrunner.Deny("outside office hours")``.

    The message is logged and (through pam_hookrunner.so's ``--msg-fd``) shown to the user.
    """
