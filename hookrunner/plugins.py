"""Python plugins: drop-in ``NAME.py`` files and installed entry points, run with pluggy.

Only imported when a phase has a plugin, so a phase of executables never pays for pluggy.

Isolation: each plugin is loaded and its hook called on its own (a subset hook caller that
holds only that plugin), in a worker thread the dispatcher waits for at most the hook's
timeout. A plugin still running then is abandoned: the phase goes on, and the dispatcher
leaves with ``os._exit`` at the end (``cli.main``), taking the thread with it. A plugin that
never lets go of the GIL (a C loop, a catastrophic regular expression) would stop the
dispatcher itself from waking up: ``faulthandler``'s watchdog, a C thread, then ends the
process with exit status 1 (a failed phase) ``BACKSTOP`` seconds after the timeout, with
the stuck thread's traceback on stderr. What a plugin prints to ``sys.stdout`` is captured
like an executable's output (shown to the user only with ``show_output = true``); that
capture and ``ctx.log`` are in pluginio.py.
"""

from __future__ import annotations

import faulthandler
import os
import re
import sys
import threading
import time
import types


class _LazyMetadata(types.ModuleType):
    """What pluggy's ``importlib_metadata`` global is while hookrunner imports pluggy: the
    real ``importlib.metadata``, imported on first use only."""

    def __getattr__(self, name: str) -> object:
        import importlib

        return getattr(importlib.import_module("importlib.metadata"), name)


def _import_pluggy() -> None:
    """Import pluggy without ``importlib.metadata``.

    pluggy 1.0 (Debian 12's) imports ``importlib.metadata`` (email, zipfile, csv, ...: ~20 ms,
    three times the interpreter's start-up) for ``load_setuptools_entrypoints`` alone, which
    hookrunner never calls (entrypoints.py finds installed plugins, from a cache). While pluggy
    is imported, ``sys.modules`` holds a stand-in that imports the real module on first
    attribute access; it is removed right after, so any other ``import importlib.metadata``
    (a plugin's) gets the real module.
    """
    name = "importlib.metadata"
    if "pluggy" in sys.modules or name in sys.modules:
        return
    stub = _LazyMetadata(name)
    sys.modules[name] = stub
    try:
        import pluggy  # noqa: F401
    finally:
        if sys.modules.get(name) is stub:
            del sys.modules[name]


_import_pluggy()

import pluggy  # noqa: E402

from . import hookspecs  # noqa: E402
from .context import Deny, PamContext  # noqa: E402
from .pluginio import capture_stdout, stderr_fd  # noqa: E402
from .runner import HookResult  # noqa: E402

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see context.py
if TYPE_CHECKING:
    from collections.abc import Callable, Collection

    from .discovery import Candidate
    from .runner import Outcome

hookimpl = pluggy.HookimplMarker("hookrunner")

BACKSTOP = 1.0  # seconds after a plugin's timeout before a GIL-holding plugin ends the process

_abandoned: list[threading.Thread] = []


class LoadError(Exception):
    """A plugin that cannot be loaded; str() is the one-line reason, with file and line."""


class Refused(Exception):
    """An installed plugin whose files fail the safety rules; str() is why."""


def abandoned_threads() -> bool:
    """True if a plugin ran past its timeout and its thread still runs."""
    return any(t.is_alive() for t in _abandoned)


def new_manager() -> pluggy.PluginManager:
    """A plugin manager that knows the five hookspecs; plugins are added by :func:`call`."""
    pm = pluggy.PluginManager("hookrunner")
    pm.add_hookspecs(hookspecs)
    return pm


# -- loading ------------------------------------------------------------------------------

def load_file(pm: pluggy.PluginManager, candidate: Candidate, fd: int) -> types.ModuleType:
    """Import a drop-in plugin from the very descriptor that passed the safety check."""
    with os.fdopen(os.dup(fd), "rb") as f:
        source = f.read()
    name = f"hookrunner_plugin_{candidate.name}"
    module = types.ModuleType(name)
    module.__file__ = candidate.path
    sys.modules[name] = module  # like importlib: dataclasses, pickle and typing look here
    try:
        code = compile(source, candidate.path, "exec", dont_inherit=True)
        exec(code, module.__dict__)  # noqa: S102 — a root-owned, checked plugin file
        _register(pm, module, candidate.name)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def load_entry_point(pm: pluggy.PluginManager, candidate: Candidate) -> object:
    """Import an installed plugin, ``module`` or ``module:attr``, after checking its files."""
    import importlib

    from .entrypoints import check_module

    value = candidate.path
    problem = check_module(value)
    if problem is not None:
        raise Refused(problem)
    module_name, _, attr = value.partition(":")
    obj: object = importlib.import_module(module_name.strip())
    for part in filter(None, attr.strip().split(".")):
        obj = getattr(obj, part)
    _register(pm, obj, candidate.name)
    return obj


def _register(pm: pluggy.PluginManager, plugin: object, name: str) -> None:
    """Register, then validate: a hook with the wrong arguments, or a misspelled one
    (``onsesionopen``), is this plugin's error, not silence. A plugin that fails is
    unregistered, so that the next plugin's check is about that plugin only."""
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as e:  # e.g. onsessionopen(context): not the spec's
        _unregister(pm, name)
        hook = re.search(r"for hook '(\w+)'", str(e))
        where = _location(getattr(plugin, hook[1], None)) if hook else ""
        raise LoadError(str(e).replace("\n", "; ") + where) from None
    try:
        pm.check_pending()
    except pluggy.PluginValidationError:
        unknown = _unknown_hooks(pm, plugin)
        _unregister(pm, name)
        raise LoadError("; ".join(unknown) or "hook validation failed") from None


def _unregister(pm: pluggy.PluginManager, name: str) -> None:
    if pm.get_plugin(name) is not None:
        pm.unregister(name=name)


def _unknown_hooks(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    import difflib

    known = [name for name in vars(hookspecs) if name.startswith("on")]
    problems = []
    for name, caller in vars(pm.hook).items():
        if name.startswith("_") or caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if impl.plugin is plugin and not impl.optionalhook:
                close = difflib.get_close_matches(name, known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                problems.append(f"unknown hook {name!r}{hint}{_location(impl.function)}")
    return problems


def _location(function: object) -> str:
    code = getattr(function, "__code__", None)
    return f" at {code.co_filename}:{code.co_firstlineno}" if code is not None else ""


# -- calling ------------------------------------------------------------------------------

def call(
    pm: pluggy.PluginManager,
    candidate: Candidate,
    ctx: PamContext,
    timeout: float,
    load: Callable[[], object],
) -> HookResult:
    """Load the plugin and call its hook for ``ctx.phase`` in a worker, at most ``timeout``."""
    results: list[HookResult] = []
    printed: list[bytes] = []
    start = time.monotonic()
    stdout = capture_stdout()

    def work() -> None:
        stdout.start()
        try:
            results.append(_load_and_call(pm, candidate, ctx, load, start))
        finally:
            printed.append(stdout.stop())

    worker = threading.Thread(target=work, name=f"plugin {candidate.name}", daemon=True)
    fd, close = stderr_fd()
    faulthandler.dump_traceback_later(timeout + BACKSTOP, exit=True, file=fd)
    try:
        worker.start()
        worker.join(timeout)
    finally:
        faulthandler.cancel_dump_traceback_later()
        if close:
            os.close(fd)
    if worker.is_alive():
        _abandoned.append(worker)
        return HookResult("timeout", f"timed out after {timeout:g} s", time.monotonic() - start)
    if not results:
        return HookResult("error", "plugin worker died", time.monotonic() - start)
    return results[0]._replace(stdout=printed[0]) if printed and printed[0] else results[0]


def _load_and_call(pm: pluggy.PluginManager, candidate: Candidate, ctx: PamContext,
                   load: Callable[[], object], start: float) -> HookResult:
    def result(outcome: Outcome, message: str, tb: str = "") -> HookResult:
        return HookResult(outcome, message, time.monotonic() - start, stderr=tb.encode())

    own = {candidate.path}
    try:
        plugin = load()
    except Refused as e:  # skipped with a logged reason, like an unsafe hook file
        return result("refused", f"refused: {e}")
    except LoadError as e:
        return result("error", f"failed to load: {e}")
    except BaseException as e:
        return result("error", f"failed to load: {_describe(e, own)}", _traceback(e))
    own.add(str(getattr(plugin, "__file__", "")))
    if not [i for i in getattr(pm.hook, ctx.phase).get_hookimpls() if i.plugin is plugin]:
        if candidate.kind == "entrypoint":
            return result("skip", f"implements no {ctx.phase} hook")
        return result("error", f"defines no @hookimpl {ctx.phase}(ctx)")
    others = [p for p in pm.get_plugins() if p is not plugin]
    caller = pm.subset_hook_caller(ctx.phase, remove_plugins=others)
    try:
        values = caller(ctx=ctx)
    except Deny as e:
        return result("deny", f"denied: {e}" if str(e) else "denied")
    except BaseException as e:
        return result("error", f"raised {_describe(e, own)}", _traceback(e))
    if any(value is False for value in values):
        return result("fail", "returned False")
    return result("ok", "returned")


def _describe(e: BaseException, own: Collection[str] = ()) -> str:
    """``ValueError: bad (/etc/security/onauth.d/50-x.py:12)``: what, and where in the plugin.

    The place is the deepest frame in the plugin's own file if there is one, else the deepest.
    """
    import traceback

    where = ""
    if isinstance(e, SyntaxError) and e.filename:
        where = f" ({e.filename}:{e.lineno})"
    else:
        frames = traceback.extract_tb(e.__traceback__)
        mine = [f for f in frames if f.filename in own]
        if mine or frames:
            frame = (mine or frames)[-1]
            where = f" ({frame.filename}:{frame.lineno})"
    text = str(e.msg if isinstance(e, SyntaxError) else e).replace("\n", "; ")
    return f"{type(e).__name__}: {text}{where}" if text else f"{type(e).__name__}{where}"


def _traceback(e: BaseException) -> str:
    """The traceback from the plugin's first frame on (hookrunner's and pluggy's left out)."""
    import traceback

    internal = (os.path.dirname(__file__) + os.sep, os.path.dirname(pluggy.__file__) + os.sep)
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None and \
            tb.tb_frame.f_code.co_filename.startswith(internal):
        tb = tb.tb_next
    if tb is not None and tb.tb_frame.f_code.co_filename.startswith(internal):
        tb = None  # a SyntaxError: its own file, line and caret say it all
    return "".join(traceback.format_exception(type(e), e, tb))
