"""One record per hook: syslog (authpriv, ident hookrunner), a log file, and stderr.

Every value is escaped so that a user name cannot forge a line: control characters,
backslash, quotes and non-ASCII bytes become ``\\xNN``; a record is always one line.

The ``log_file`` is opened once per run, at the first record, under the hook-file rules
(:func:`safety.open_append`): a regular file, root-owned, not group/other-writable, in
directories only root can write; checked before it is opened, so a FIFO or a device there
cannot block or act, and checked again on the descriptor, which every record of the run
is then written to (a file swapped in meanwhile gets nothing). A refused file gets no
record; why is logged once, to syslog.
"""

from __future__ import annotations

import os

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
                 root: str = "/", use_syslog: bool = True, debug: bool = False) -> None:
        self.stderr = stderr
        self.debug_enabled = debug
        self.path = path  # log_file; the directory walk stops at root when it lies below
        self.root = root
        self.use_syslog = use_syslog
        self._syslog_open = False
        self._fd: int | None = None  # log_file's: None until the first record, -1 if not used

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd is not None and fd >= 0:
            os.close(fd)

    def __del__(self) -> None:  # a test builds thousands of Logs in one process
        try:
            self.close()
        except Exception:  # noqa: S110 — at interpreter exit, nothing left to tell
            pass

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

        if self._fd is None:
            self._fd = self._open_file()
        if self._fd < 0:
            return
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        line = f"{stamp} hookrunner[{os.getpid()}]: {message}\n".encode("ascii", "replace")
        try:
            os.write(self._fd, line)  # one write, O_APPEND: lines of parallel logins never mix
        except OSError:  # a full disk: the record is in syslog
            pass

    def _open_file(self) -> int:
        """The checked descriptor of ``log_file``; -1 (and why, once) if it must not be used.
        (An abandoned plugin thread logging at the same moment may open it twice: both
        descriptors are checked and close-on-exec.)"""
        from .logsafety import log_file_refused, open_append
        from .safety import UnsafeError

        assert self.path is not None
        self._fd = -1  # the warning below must not come back here
        try:
            checked = open_append(self.path, self.root)
        except (UnsafeError, OSError) as e:
            self.error(log_file_refused(self.path, e))  # syslog (and stderr with -v or a tty)
            return -1
        return -1 if checked is None else checked.fd  # None: /dev/null, no file
