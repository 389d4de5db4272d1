"""The warm dispatcher's protocol (``hookrunner serve`` <-> ``pam_hookrunner.so socket=``).

One UNIX stream connection per PAM call; the module speaks first::

    module                                   daemon (a child forked for this connection)
    request + SCM_RIGHTS(message pipe)  ->
                                        <-   "R" (ready: the request is valid)
                                             or "E" reason "\\n", then close (refused)
    "G" (go: the module is committed)   ->
                                        <-   "S" (started: hooks may run from now on)
                                        <-   one byte: the exit status, as ``run`` exits
    user messages: "info TEXT" / "error TEXT" lines on the pipe, as with ``--msg-fd``

A hook never runs twice nor zero times for one PAM call, because each side commits at one
point only. The module falls back to exec unless it has sent "G" (it sends it only if "R"
came within its bound), or if the connection ends before "S": nothing ran. The daemon runs
nothing until it has read "G" and written "S"; a module that gave up has closed its end, so
a late "S" fails (EPIPE) and the daemon runs nothing. Once "S" was read, the module waits for
the status (its ``timeout=``) and never falls back; if it hangs up, the daemon's child kills
the running hook and what it left, as ``run`` does on SIGTERM.

Request: NUL-terminated ``key=value`` fields, the first ``hookrunner=1``, then an empty field
(a lone NUL) to end it. Keys: ``phase`` (required), ``PAM_USER``, ``PAM_SERVICE``,
``PAM_RHOST``, ``PAM_RUSER``, ``PAM_TTY`` (when set), ``root``, ``config`` (absolute paths),
``authtok`` (only with ``expose_authtok``); each at most once. Values are bytes, never
interpreted. Bounded: ``MAX_REQUEST`` bytes, ``MAX_FIELDS`` fields, ``REQUEST_SECONDS`` to
send, exactly one descriptor (the write end of a pipe).
"""

from __future__ import annotations

from .phases import resolve_phase

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .phases import Phase

VERSION = b"1"
MAX_REQUEST = 65536  # bytes in all
MAX_FIELDS = 16
MAX_AUTHTOK = 512  # PAM_MAX_RESP_SIZE, as for run's stdin
REQUEST_SECONDS = 2.0  # for the whole request to arrive
GO_SECONDS = 5.0  # for "G" after "R" (the module waits at most 0.5 s for "R")
READY, GO, STARTED, REFUSED = b"R", b"G", b"S", b"E"
ITEMS = (b"PAM_USER", b"PAM_SERVICE", b"PAM_RHOST", b"PAM_RUSER", b"PAM_TTY")
_KEYS = frozenset((b"hookrunner", b"phase", b"root", b"config", b"authtok", *ITEMS))


class BadRequest(Exception):
    """A request that is not one; str() is the one-line reason sent back to the client."""


class Request:
    """What one PAM call asks for: the phase, its PAM items, ``root=``/``config=``, the password."""

    __slots__ = ("authtok", "config", "items", "phase", "root")

    def __init__(self, phase: Phase, items: dict[bytes, bytes], root: str | None = None,
                 config: str | None = None, authtok: bytes | None = None) -> None:
        self.phase = phase
        self.items = items
        self.root = root
        self.config = config
        self.authtok = authtok

    def __repr__(self) -> str:  # never the password
        return f"Request({self.phase.name!r}, {self.items!r}, root={self.root!r}, config={self.config!r})"


def complete(data: bytes) -> bool:
    """The buffer holds a whole request (it ends with an empty field)."""
    return data.startswith(b"hookrunner=") and b"\0\0" in data


def parse(data: bytes) -> Request:
    """The request in ``data`` (exactly one, nothing after it); BadRequest if it is not one."""
    if len(data) > MAX_REQUEST:
        raise BadRequest(f"request longer than {MAX_REQUEST} bytes")
    end = data.find(b"\0\0")
    if not data.startswith(b"hookrunner=") or end < 0:
        raise BadRequest("not a hookrunner request")
    if end + 2 != len(data):
        raise BadRequest("data after the end of the request")
    fields: dict[bytes, bytes] = {}
    parts = data[: end + 1].split(b"\0")[:-1]
    if len(parts) > MAX_FIELDS:
        raise BadRequest(f"more than {MAX_FIELDS} fields")
    for part in parts:
        key, eq, value = part.partition(b"=")
        if not eq or key not in _KEYS:
            raise BadRequest(f"unknown field {_show(key)}")
        if key in fields:
            raise BadRequest(f"field {_show(key)} given twice")
        fields[key] = value
    if fields[b"hookrunner"] != VERSION:
        raise BadRequest(f"protocol version {_show(fields[b'hookrunner'])} (this daemon speaks 1)")
    phase = resolve_phase(fields.get(b"phase", b"").decode("ascii", "replace"))
    if phase is None:
        raise BadRequest(f"unknown phase {_show(fields.get(b'phase', b''))}")
    paths = {}
    for key in (b"root", b"config"):
        if key in fields:
            value = fields[key]
            if not value.startswith(b"/"):
                raise BadRequest(f"{key.decode()} is not an absolute path")
            paths[key] = value.decode("utf-8", "surrogateescape")
    authtok = fields.get(b"authtok")
    if authtok is not None and len(authtok) > MAX_AUTHTOK:
        raise BadRequest(f"authtok longer than {MAX_AUTHTOK} bytes")
    items = {key: fields[key] for key in ITEMS if key in fields}
    return Request(phase, items, paths.get(b"root"), paths.get(b"config"), authtok)


def encode(phase: str, items: dict[bytes, bytes], *, root: str | None = None,
           config: str | None = None, authtok: bytes | None = None) -> bytes:
    """A request as the module sends it (for tests and the Python client)."""
    fields = [b"hookrunner=" + VERSION, b"phase=" + phase.encode()]
    fields += [key + b"=" + items[key] for key in ITEMS if key in items]
    if root is not None:
        fields.append(b"root=" + root.encode())
    if config is not None:
        fields.append(b"config=" + config.encode())
    if authtok is not None:
        fields.append(b"authtok=" + authtok)
    return b"".join(f + b"\0" for f in fields) + b"\0"


def _show(value: bytes) -> str:
    """A client's bytes in an error line: printable ASCII, bounded."""
    text = "".join(chr(b) if 0x20 <= b < 0x7F else f"\\x{b:02x}" for b in value[:40])
    return repr(text + ("..." if len(value) > 40 else ""))
