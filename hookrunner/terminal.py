"""What may reach the user's terminal: messages (``show_output``, a plugin's ``Deny``).

Imported only when a phase has something to say to the user: most phases say nothing.
"""

from __future__ import annotations

MESSAGE_LINE = 1000  # bytes of one --msg-fd line's text (the native module cuts at 1 KiB)
# What a terminal would act on: C0 controls but tab (ESC starts its sequences), DEL, C1
# controls (U+0080..U+009F: CSI, OSC, NEL... also as UTF-8), and each byte that is not part
# of valid UTF-8 (surrogateescape makes it U+DC80..U+DCFF), which a terminal may read as C1.
_UNSHOWABLE = dict.fromkeys((*range(9), *range(10, 32), *range(127, 160), *range(0xDC80, 0xDD00)),
                            "?")


def showable(line: bytes, limit: int | None = None) -> bytes:
    """``line`` as it may reach the user's terminal: what a terminal would act on becomes
    ``?`` (pam_hookrunner.c's relay does the same), valid UTF-8 text stays; at most ``limit``
    bytes, cut between characters."""
    data = line.decode("utf-8", "surrogateescape").translate(_UNSHOWABLE).encode()
    if limit is not None and len(data) > limit:
        data = data[:limit].decode("utf-8", "ignore").encode()
    return data
