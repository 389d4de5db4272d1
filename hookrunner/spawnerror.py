"""Why a hook could not be started, said so that an administrator can act on it.

When a hook fails to start (an exec error, no descriptors, no memory, a process limit) its
record names the errno and the likely cause, e.g. ``could not be started: Text file busy
(ETXTBSY): the file is open for writing (being written or edited)``. Imported with the runner
(60 us): when the failure is that no descriptor is left, no module could be read any more.
"""

from __future__ import annotations

import errno

from .log import escape

# The likely cause of each errno, in the words an administrator needs (after the C library's).
HINTS = {
    errno.ETXTBSY: "the file is open for writing (being written or edited)",
    errno.EAGAIN: "a process limit was reached (a cgroup's pids.max, or RLIMIT_NPROC)",
    errno.ENOMEM: "out of memory (RLIMIT_AS, or the machine's)",
    errno.EMFILE: "the dispatcher ran out of file descriptors (RLIMIT_NOFILE)",
    errno.ENFILE: "the system ran out of file descriptors",
    errno.E2BIG: "its arguments and environment are too large",
}


def start_failure(e: OSError, path: bytes | str | None = None) -> str:
    """``Text file busy (ETXTBSY): the file is open for writing ...``: why ``path`` did not
    start. For an exec error the hook's ``#!`` line says which file was missing or unusable."""
    name = errno.errorcode.get(e.errno or 0)
    why = f"{e.strerror or e} ({name})" if name else f"{e.strerror or e}"
    hint = HINTS.get(e.errno or 0)
    if hint is None and path is not None and e.errno in (errno.ENOENT, errno.EACCES, errno.ENOEXEC):
        hint = _exec_hint(e.errno, path)
    return f"{why}: {hint}" if hint else why


def _exec_hint(code: int, path: bytes | str) -> str | None:
    """The error path only: read the hook's first line to name its interpreter."""
    try:
        with open(path, "rb") as f:
            first = f.readline(256)
    except OSError:
        return None  # the hook itself went away or cannot be read: the error says it
    words = first[2:].split() if first.startswith(b"#!") else []
    if not words:
        return ("no #! line, and not a binary format this system runs" if code == errno.ENOEXEC
                else None)
    interpreter = escape(words[0])
    return {errno.ENOENT: f"its interpreter {interpreter} (#! line) does not exist",
            errno.EACCES: f"its interpreter {interpreter} (#! line) is not executable, or it "
                          "is on a noexec mount",
            errno.ENOEXEC: f"its interpreter {interpreter} (#! line) is not a program"}[code]
