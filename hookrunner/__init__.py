"""hookrunner: run-parts style hook directories for PAM, with pluggy plugins.

A plugin file (``/etc/security/onsessionopen.d/50-motd.py``)::

    import hookrunner

    @hookrunner.hookimpl
    def onsessionopen(ctx):
        ctx.log.info("hello %s from %s", ctx.user, ctx.rhost)

``hookimpl`` is loaded on first use, so a phase without plugins never imports pluggy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .context import Deny, PamContext

if TYPE_CHECKING:
    from .plugins import hookimpl

__all__ = ["Deny", "PamContext", "hookimpl"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "hookimpl":
        from .plugins import hookimpl

        return hookimpl
    raise AttributeError(f"module 'hookrunner' has no attribute {name!r}")
