"""Example hookrunner plugin: one log record when a session opens and when it closes.

Installed, it runs as hook ``50-example`` in every phase it implements, between
``40-*`` and ``60-*`` hooks, like a file ``/usr/lib/hookrunner/PHASE.d/50-example.py``.
"""

from __future__ import annotations

import hookrunner


@hookrunner.hookimpl
def onsessionopen(ctx: hookrunner.PamContext) -> None:
    ctx.log.info("session opened for %s on %s from %s", ctx.user, ctx.tty or "-", ctx.rhost or "-")


@hookrunner.hookimpl
def onsessionclose(ctx: hookrunner.PamContext) -> None:
    ctx.log.info("session closed for %s", ctx.user)
