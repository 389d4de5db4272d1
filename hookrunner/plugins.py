"""Python plugins: drop-in ``NAME.py`` files and installed entry points, run with pluggy.

Only imported when a phase has a plugin, so a phase of executables never pays for pluggy.
Each plugin's hook is called on its own, in a worker thread that is abandoned at its
timeout (the dispatcher exits at the end of the phase, taking any stuck thread with it).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
import traceback
import types
from collections.abc import Callable
from typing import Any

import pluggy

from . import hookspecs
from .context import Deny, PamContext
from .discovery import Candidate
from .log import Log, escape
from .runner import HookResult, Outcome

hookimpl = pluggy.HookimplMarker("hookrunner")

_abandoned: list[threading.Thread] = []


def abandoned_threads() -> bool:
    """True if a plugin ran past its timeout and its thread still runs."""
    return any(t.is_alive() for t in _abandoned)


def new_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("hookrunner")
    pm.add_hookspecs(hookspecs)
    return pm


class _LogHandler(logging.Handler):
    def __init__(self, log: Log, prefix: str) -> None:
        super().__init__(logging.DEBUG)
        self.log, self.prefix = log, prefix

    def emit(self, record: logging.LogRecord) -> None:
        message = f"{self.prefix}: {escape(record.getMessage())}"
        if record.levelno >= logging.ERROR:
            self.log.error(message)
        elif record.levelno >= logging.WARNING:
            self.log.warning(message)
        elif record.levelno >= logging.INFO:
            self.log.info(message)
        else:
            self.log.debug(message)


def plugin_logger(log: Log, phase: str, name: str) -> logging.Logger:
    logger = logging.getLogger(f"hookrunner.{phase}.{name}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    if not logger.handlers:
        logger.addHandler(_LogHandler(log, f"{phase}.d/{name}"))
    return logger


def load_file(pm: pluggy.PluginManager, candidate: Candidate, fd: int) -> types.ModuleType:
    """Import a drop-in plugin from the descriptor that passed the safety check."""
    with os.fdopen(os.dup(fd), "rb") as f:
        source = f.read()
    module = types.ModuleType(f"hookrunner_plugin_{candidate.name.replace('-', '_')}")
    module.__file__ = str(candidate.path)
    code = compile(source, str(candidate.path), "exec", dont_inherit=True)
    exec(code, module.__dict__)  # noqa: S102 — a root-owned, checked plugin file
    _register(pm, module, candidate.name)
    return module


def load_entry_point(pm: pluggy.PluginManager, candidate: Candidate) -> object:
    """Import an installed plugin: ``module`` or ``module:attr`` (like importlib.metadata)."""
    import importlib

    module_name, _, attr = str(candidate.path).partition(":")
    obj: object = importlib.import_module(module_name)
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    _register(pm, obj, candidate.name)
    return obj


def _register(pm: pluggy.PluginManager, plugin: object, name: str) -> None:
    pm.register(plugin, name=name)
    pm.check_pending()  # a misspelled hook (onsesionopen) is an error, not silence


def call(
    pm: pluggy.PluginManager,
    candidate: Candidate,
    ctx: PamContext,
    timeout: float,
    load: Callable[[], object],
) -> HookResult:
    """Load the plugin and call its hook for ``ctx.phase`` in a worker, at most ``timeout``."""
    box: dict[str, HookResult] = {}
    start = time.monotonic()

    def work() -> None:
        box["result"] = _load_and_call(pm, candidate, ctx, load, start)

    worker = threading.Thread(target=work, name=f"plugin {candidate.name}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        _abandoned.append(worker)
        return HookResult("timeout", f"timed out after {timeout:g} s", time.monotonic() - start)
    return box.get("result") or HookResult("error", "plugin worker died", time.monotonic() - start)


def _load_and_call(pm: pluggy.PluginManager, candidate: Candidate, ctx: PamContext,
                   load: Callable[[], object], start: float) -> HookResult:
    def result(outcome: Outcome, message: str, tb: str = "") -> HookResult:
        return HookResult(outcome, message, time.monotonic() - start, stderr=tb.encode())

    try:
        load()
    except BaseException as e:
        return result("error", f"failed to load: {_describe(e)}", traceback.format_exc())
    caller = getattr(pm.hook, ctx.phase)
    impls = [i for i in caller.get_hookimpls() if i.plugin_name == candidate.name]
    if not impls:
        if candidate.kind == "entrypoint":
            return result("ok", f"implements no {ctx.phase} hook")
        return result("error", f"defines no @hookimpl {ctx.phase}(ctx)")
    for impl in impls:
        kwargs: dict[str, Any] = {name: ctx for name in impl.argnames if name == "ctx"}
        try:
            value = impl.function(**kwargs)
        except Deny as e:
            return result("deny", f"denied: {e}" if str(e) else "denied")
        except BaseException as e:
            return result("error", f"raised {_describe(e)}", traceback.format_exc())
        if value is False:
            return result("deny", "returned False")
    return result("ok", "returned")


def _describe(e: BaseException) -> str:
    """``ValueError: bad (50-x.py:12)`` — the exception and where it happened."""
    where = ""
    if isinstance(e, SyntaxError) and e.filename:
        where = f" ({e.filename}:{e.lineno})"
    else:
        frames = traceback.extract_tb(e.__traceback__)
        if frames:
            where = f" ({frames[-1].filename}:{frames[-1].lineno})"
    text = str(e.msg if isinstance(e, SyntaxError) else e)
    return f"{type(e).__name__}: {text}{where}" if text else f"{type(e).__name__}{where}"


def with_authtok(ctx: PamContext, authtok: bytes | None) -> PamContext:
    if authtok is None:
        return ctx
    return dataclasses.replace(ctx, authtok=os.fsdecode(authtok))
