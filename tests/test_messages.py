"""What reaches the user's terminal: ``show_output`` text and a plugin's ``Deny`` message.

Through the real dispatcher: on pam_exec's ``stdout`` path (the dispatcher's stdout, whose
lines pam_exec hands to the conversation as they are) and on the native module's
``--msg-fd`` channel ("info"/"error" lines). ESC and every other C0 control but tab, DEL, C1
controls (raw or as UTF-8) and bytes that are not valid UTF-8 become ``?``; valid UTF-8 text
stays. The same lines through real PAM (both modules): tests/e2e/test_terminal_bytes.py.
"""

from __future__ import annotations

from hooktree import HookTree
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hookrunner.terminal import showable

# ESC sequences, raw CSI, CSI and NEL as UTF-8, BEL, DEL, tab, Latin-1 é (not UTF-8), é, 日,
# an emoji, an overlong ESC, an encoded surrogate, a cut 3-byte character, a cut 2-byte one.
HOSTILE = (b"A\x1b[2J\x1b]0;owned\x07B\x9bC\xc2\x9bD\xc2\x85E\x07F\x7fG\tH\xe9I\xc3\xa9J"
           b"\xe6\x97\xa5K\xf0\x9f\x98\x80L\xc0\x9bM\xed\xa0\x80N\xe2\x82O\xc2")
SHOWN = "A?[2J?]0;owned?B?C?D?E?F?G\tH?IéJ日K😀L??M???N??O?".encode()


def test_hostile_line() -> None:
    assert showable(HOSTILE) == SHOWN


def python_hook(data: bytes) -> str:
    return f"#!/usr/bin/python3 -IS\nimport sys\nsys.stdout.buffer.write(bytes.fromhex('{data.hex()}'))\n"


def test_show_output_on_the_pam_exec_stdout_path(hooktree: HookTree) -> None:
    hooktree.hook("onsessionopen", "10-motd", python_hook(b"Welcome\n" + HOSTILE + b"\r\n\x1b[31m\n"))
    hooktree.config('[hook."10-motd"]\nshow_output = true\n')
    r = hooktree.run("run", "onsessionopen")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"Welcome\n" + SHOWN + b"\n?[31m\n"


def test_show_output_and_deny_on_the_msg_fd_channel(hooktree: HookTree) -> None:
    hooktree.hook("onauth", "10-motd", python_hook(HOSTILE + b"\n" + "é".encode() * 700 + b"\n"))
    hooktree.hook("onauth", "20-deny.py", (
        "import hookrunner\n\n\n@hookrunner.hookimpl\ndef onauth(ctx):\n"
        # U+009B twice, then the bytes C2 9B (surrogateescape: the dispatcher sends them as
        # they are): the same C1 control, raw
        "    raise hookrunner.Deny('no \\x1b[2J\\x9b\\u009b\\udcc2\\udc9b entry, Zoë 日')\n"))
    hooktree.config('[hook."10-motd"]\nshow_output = true\n')
    proc, messages = hooktree.run_msg_fd("run", "onauth", env={"PAM_USER": "alice"})
    assert proc.returncode == 1, proc.stderr
    assert messages == (b"info " + SHOWN + b"\ninfo " + "é".encode() * 500 + b"\n"  # 1000 bytes
                        + "error no ?[2J??? entry, Zoë 日\n".encode())
    assert proc.stdout == b""


UNSHOWABLE = {*range(9), *range(10, 32), *range(127, 160)}


@settings(max_examples=2000)
@given(data=st.binary(max_size=300) | st.text(max_size=100).map(lambda t: t.encode("utf-8", "surrogatepass")),
       limit=st.none() | st.integers(1, 400))
def test_showable_is_valid_utf8_without_controls_and_keeps_the_text(data: bytes, limit: int | None) -> None:
    out = showable(data, limit)
    text = out.decode("utf-8")  # strict: valid UTF-8, whatever came in
    assert not any(ord(c) in UNSHOWABLE for c in text)
    assert limit is None or len(out) <= limit
    kept = data.decode("utf-8", "replace")
    if "\ufffd" not in kept and limit is None:  # valid UTF-8 in: only the controls changed
        assert text == "".join("?" if ord(c) in UNSHOWABLE else c for c in kept)
    if limit is None:  # one "?" per byte that is not UTF-8, at most
        assert len(text) <= len(data)


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(words=st.lists(st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=20),
                      min_size=1, max_size=5))
def test_text_in_any_script_reaches_the_user_unchanged(hooktree: HookTree, words: list[str]) -> None:
    line = " ".join(words)
    if not line.encode().strip():
        return  # a blank line is not shown at all
    hooktree.hook("onsessionopen", "10-motd", python_hook(line.encode() + b"\n"))
    hooktree.config('[hook."10-motd"]\nshow_output = true\n')
    r = hooktree.run("run", "onsessionopen")
    assert r.stdout == line.encode() + b"\n"
