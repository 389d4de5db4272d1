"""One record per hook: syslog (authpriv, ident hookrunner), a log file, and stderr.

Every value is escaped so that a user name cannot forge a line: control characters,
backslash, quotes and non-ASCII bytes become ``\\xNN``; a record is always one line.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: every login pays imports
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import TextIO

_SAFE = frozenset(range(0x20, 0x7F)) - {ord("\\"), ord('"')}
# A record must fit in one syslog datagram: one too big for the socket is dropped whole,
# so a 64 KiB user name would make its login vanish from syslog.
MAX_VALUE = 256  # bytes of a PAM value shown in a record; the length is given beyond that
MAX_RECORD = 8000  # characters of a record (rsyslog's default limit is 8 KiB)


def escape(value: str | bytes | None) -> str:
    """A printable, one-line, unambiguous rendering of a hostile value."""
    if value is None:
        return "-"
    if (isinstance(value, str) and value.isascii() and value.isprintable() and "\\" not in value
            and '"' not in value):  # the common case, unchanged: a hook's or phase's name
        return f'"{value}"' if (" " in value or not value) else value
    raw = os.fsencode(value) if isinstance(value, str) else value
    text = "".join(chr(b) if b in _SAFE else f"\\x{b:02x}" for b in raw)
    return f'"{text}"' if (" " in text or not text) else text


def _escape_char(c: str) -> str:
    # Control characters (C0, DEL, C1), line and paragraph separators, bidi overrides, lone
    # surrogates: what could end a line, forge a record or drive a terminal.
    return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"


def _bounded(value: bytes | None) -> str:
    if value is None or len(value) <= MAX_VALUE:
        return escape(value)
    return f"{escape(value[:MAX_VALUE])}...({len(value)} bytes)"


def fields(items: Mapping[bytes, bytes]) -> str:
    return " ".join(
        f"{key}={_bounded(items.get(var))}"
        for key, var in (("user", b"PAM_USER"), ("service", b"PAM_SERVICE"),
                         ("rhost", b"PAM_RHOST"))
    )


class Log:
    """Where hookrunner's records go. Never given the password."""

    def __init__(self, *, stderr: TextIO | None = None, path: str | None = None,
                 use_syslog: bool = True, debug: bool = False) -> None:
        self.stderr = stderr
        self.debug_enabled = debug
        self.path = path
        self.use_syslog = use_syslog
        self._syslog_open = False

    def info(self, message: str) -> None:
        self._emit(6, message)

    def warning(self, message: str) -> None:
        self._emit(4, message)

    def error(self, message: str) -> None:
        self._emit(3, message)

    def debug(self, message: str) -> None:
        if self.debug_enabled:
            self._emit(7, message)

    def _emit(self, priority: int, message: str) -> None:
        # The caller has escaped hostile values; this is the last line of defence (a plugin's
        # Deny message may quote ctx.user): no control or format character reaches a log.
        if not message.isprintable():
            message = "".join(c if c.isprintable() else _escape_char(c) for c in message)
        if len(message) > MAX_RECORD:
            message = f"{message[:MAX_RECORD]}... ({len(message) - MAX_RECORD} more characters)"
        if self.use_syslog:
            self._syslog(priority, message)
        if self.path:
            self._file(message)
        if self.stderr is not None:
            try:
                print(f"hookrunner: {message}", file=self.stderr, flush=True)
            except OSError:
                pass

    def _syslog(self, priority: int, message: str) -> None:
        try:
            import syslog

            if not self._syslog_open:
                syslog.openlog("hookrunner", syslog.LOG_PID, syslog.LOG_AUTHPRIV)
                self._syslog_open = True
            syslog.syslog(priority, message)
        except OSError:  # no syslog socket: the records still go to the file and stderr
            pass

    def _file(self, message: str) -> None:
        import time

        assert self.path is not None
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        line = f"{stamp} hookrunner[{os.getpid()}]: {message}\n".encode("ascii", "replace")
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
                         | os.O_CLOEXEC | os.O_NOCTTY, 0o600)
        except OSError as e:
            if self.stderr is None:
                self.stderr = sys.stderr if sys.stderr and sys.stderr.isatty() else None
            if self.stderr is not None:
                print(f"hookrunner: cannot open log file {self.path}: {e.strerror}",
                      file=self.stderr)
            self.path = None
            return
        try:
            os.write(fd, line)  # one write with O_APPEND: lines from parallel logins never mix
        finally:
            os.close(fd)
