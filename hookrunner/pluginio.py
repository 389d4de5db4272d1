"""A plugin's I/O while its hook runs: ``ctx.log``, captured ``sys.stdout``, the backstop's fd.

Support for plugins.py, imported only with it (a phase with a plugin): ``ctx.log`` is a
logger that imports ``logging`` on first use and writes to hookrunner's log as
``PHASE.d/HOOK: message``; what a plugin thread prints to ``sys.stdout`` goes to a buffer of
its own (at most ``MAX_STDOUT`` bytes), kept like an executable's output; ``stderr_fd`` is
where ``faulthandler``'s backstop writes a stuck plugin's traceback.
"""

from __future__ import annotations

import io
import os
import sys
import threading

from .log import Log, escape

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see context.py
if TYPE_CHECKING:
    import logging
    from typing import TextIO

MAX_STDOUT = 65536  # bytes of a plugin's stdout kept


# -- logging: ctx.log ---------------------------------------------------------------------

class _LazyLogger:
    """``ctx.log``: a ``logging.Logger`` made, and ``logging`` imported, on first use.

    ``logging`` (with ``traceback``, ``string``, ``weakref``, ``warnings``) costs a phase with
    plugins ~4 ms even when no plugin logs. Every attribute (``info``, ``exception``,
    ``isEnabledFor``, ``setLevel``, ``handlers``...) is the real logger's; ``name`` is known
    without it. Not an instance of ``logging.Logger`` (docs/plugins.md says so).
    """

    __slots__ = ("_log", "_logger", "_prefix", "name")
    _log: Log
    _logger: logging.Logger | None
    _prefix: str
    name: str

    def __init__(self, log: Log, phase: str, name: str) -> None:
        object.__setattr__(self, "name", f"hookrunner.{phase}.{name}")
        object.__setattr__(self, "_log", log)
        object.__setattr__(self, "_prefix", f"{phase}.d/{escape(name)}")
        object.__setattr__(self, "_logger", None)

    def _real(self) -> logging.Logger:
        logger: logging.Logger | None = self._logger
        if logger is None:
            logger = _real_logger(self.name, self._log, self._prefix)
            object.__setattr__(self, "_logger", logger)
        return logger

    def __getattr__(self, attr: str) -> object:
        return getattr(self._real(), attr)

    def __setattr__(self, attr: str, value: object) -> None:
        if attr == "name":
            object.__setattr__(self, "name", value)
        setattr(self._real(), attr, value)

    def __repr__(self) -> str:
        return f"<Logger {self.name} (DEBUG)>"  # logging.Logger's repr, without logging


def _real_logger(name: str, log: Log, prefix: str) -> logging.Logger:
    """A logger of its own (not in logging's registry) that writes to ``log``."""
    import logging

    class LogHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            try:
                text = record.getMessage()
            except Exception:  # a bad format string must not fail the hook
                text = f"{record.msg!r} {record.args!r}"
            escaped = escape(text)
            if len(escaped) >= 2 and escaped.startswith('"') and escaped.endswith('"'):
                escaped = escaped[1:-1]  # escape() quotes text with spaces; inner quotes are \x22
            message = f"{prefix}: {escaped}"
            if record.levelno >= logging.ERROR:
                log.error(message)
            elif record.levelno >= logging.WARNING:
                log.warning(message)
            elif record.levelno >= logging.INFO:
                log.info(message)
            else:
                log.debug(message)

    logger = logging.Logger(name, logging.DEBUG)
    logger.propagate = False
    logger.addHandler(LogHandler(logging.DEBUG))
    return logger


def plugin_logger(log: Log, phase: str, name: str) -> logging.Logger:
    """``ctx.log`` for one hook: records go to ``log`` as ``PHASE.d/HOOK: message``."""
    return _LazyLogger(log, phase, name)  # type: ignore[return-value]  # a stand-in: see _LazyLogger


# -- stderr: the backstop's traceback -----------------------------------------------------

def stderr_fd() -> tuple[int, bool]:
    """Where the backstop writes the stuck thread's traceback: stderr, or /dev/null (closed
    by the caller)."""
    try:
        fd = sys.__stderr__.fileno() if sys.__stderr__ is not None else -1
        os.fstat(fd)
        return fd, False
    except (OSError, ValueError, io.UnsupportedOperation):
        return os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC), True


# -- stdout -------------------------------------------------------------------------------

class _Stdout(io.TextIOBase):
    """``sys.stdout`` while plugins run: a plugin thread's writes go to its own buffer, the
    rest to the real stdout (with ``pam_exec.so stdout`` that is the user's terminal)."""

    def __init__(self, real: TextIO | None) -> None:
        super().__init__()
        self.real = real
        self.local = threading.local()

    def start(self) -> None:
        self.local.buffer = io.StringIO()

    def stop(self) -> bytes:
        buffer: io.StringIO | None = getattr(self.local, "buffer", None)
        self.local.buffer = None
        data = buffer.getvalue() if buffer is not None else ""
        return data.encode("utf-8", "surrogateescape")[:MAX_STDOUT]

    def write(self, text: str) -> int:
        buffer: io.StringIO | None = getattr(self.local, "buffer", None)
        if buffer is not None:
            if buffer.tell() < MAX_STDOUT:
                buffer.write(text)
            return len(text)
        return self.real.write(text) if self.real is not None else len(text)

    def flush(self) -> None:
        if self.real is not None and getattr(self.local, "buffer", None) is None:
            self.real.flush()

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        if self.real is None:
            raise io.UnsupportedOperation("fileno")
        return self.real.fileno()

    def isatty(self) -> bool:
        return self.real is not None and self.real.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.real.encoding if self.real is not None else "utf-8"


def capture_stdout() -> _Stdout:
    """Install the capturing ``sys.stdout`` (once) and return it: ``start()`` in a plugin's
    thread, ``stop()`` there for what it printed."""
    if not isinstance(sys.stdout, _Stdout):
        sys.stdout = _Stdout(sys.stdout)
    return sys.stdout  # narrowed to _Stdout by the isinstance() above
