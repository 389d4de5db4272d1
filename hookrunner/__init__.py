"""hookrunner: run-parts style hook directories for PAM, with pluggy plugins.

A plugin file (``/etc/security/onsessionopen.d/50-motd.py``)::

    import hookrunner

    @hookrunner.hookimpl
    def onsessionopen(ctx):
        ctx.log.info("hello %s from %s", ctx.user, ctx.rhost)

``hookimpl``, ``Deny`` and ``PamContext`` are loaded on first use: every PAM phase imports this
package, and a phase without plugins never pays for pluggy, dataclasses or typing.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from .context import Deny, PamContext
    from .plugins import hookimpl

__all__ = ["Deny", "PamContext", "hookimpl"]
__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    if name == "hookimpl":
        from .plugins import hookimpl

        return hookimpl
    if name in ("Deny", "PamContext"):
        from . import context

        return getattr(context, name)
    raise AttributeError(f"module 'hookrunner' has no attribute {name!r}")
