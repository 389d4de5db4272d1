"""The bytes a user's terminal receives, through real PAM (pamtester under pam_wrapper).

A hook's ``show_output`` text through pam_exec.so's ``stdout`` and through pam_hookrunner.so,
a plugin's ``Deny`` message through pam_hookrunner.so (PAM_ERROR_MSG), both with the real
dispatcher; and pam_hookrunner.c's relay on its own, fed raw bytes by a stand-in dispatcher,
against the dispatcher's ``showable()`` (one rule on both sides). pamtester prints each
message as it gets it, so its stdout and stderr are what a terminal would be sent.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from harness import DEBIAN_PLUGGY, NATIVE_MODULE, Tree, build_native_module, missing, rig
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hookrunner.terminal import showable

PYTHON = Path("/usr/bin/python3")
MODULE = NATIVE_MODULE

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(bool(REASON := missing(tools=["pamtester", "gcc", "make"], files=[
        rig.PAM_WRAPPER_LIB, rig.PAM_MATRIX, PYTHON, DEBIAN_PLUGGY])), reason=REASON),
]

# ESC sequences (erase the screen, set the title), raw CSI, CSI and NEL as UTF-8, BEL, DEL,
# tab, Latin-1 é (not UTF-8), é, 日, an emoji, an overlong ESC, an encoded surrogate, cut
# characters.
HOSTILE = (b"A\x1b[2J\x1b]0;owned\x07B\x9bC\xc2\x9bD\xc2\x85E\x07F\x7fG\tH\xe9I\xc3\xa9J"
           b"\xe6\x97\xa5K\xf0\x9f\x98\x80L\xc0\x9bM\xed\xa0\x80N\xe2\x82O\xc2")
SHOWN = "A?[2J?]0;owned?B?C?D?E?F?G\tH?IéJ日K😀L??M???N??O?".encode()
C1_OR_ESC = re.compile(rb"[\x1b\x9b]|\xc2[\x80-\x9f]")
DENY = ("import hookrunner\n\n\n@hookrunner.hookimpl\ndef onauth(ctx):\n"
        "    raise hookrunner.Deny('no \\x1b[2J\\x9b entry for Zoë \\udcc2\\udc9b')\n")


@pytest.fixture(scope="module", autouse=True)
def built() -> None:
    build_native_module()


def hostile_hook(tree: Tree, phase: str) -> None:
    rig.write_hook(tree.root, phase, "10-motd", "#!/usr/bin/python3 -IS\nimport sys\n"
                   f"sys.stdout.buffer.write(bytes.fromhex('{(b'Welcome' + HOSTILE).hex()}'))\n")
    tree.config('[hook."10-motd"]\nshow_output = true\n')


def pamtester(service_dir: Path, *ops: str) -> tuple[int, bytes, bytes]:
    """Exit status and the exact bytes pamtester wrote (its stdout, its stderr)."""
    out = rig.pamtester(service_dir, "svc", "alice", ops, passwords=["s3cret"])
    return (out.returncode, out.stdout.encode("utf-8", "surrogateescape"),
            out.stderr.encode("utf-8", "surrogateescape"))


def native(group: str, tree: Tree) -> str:
    return f"{group} required {MODULE} dispatcher={rig.DISPATCHER} python={PYTHON} root={tree.root}"


def test_pam_exec_stdout(tree: Tree) -> None:
    hostile_hook(tree, "onsessionopen")
    passdb = rig.write_passdb(tree.base / "passdb", [("alice", "s3cret", "svc")])
    options = ("quiet", "stdout")
    lines = rig.matrix_service(tree.root, passdb, rig.Controls(options=options, auth_options=options),
                               python=PYTHON)
    rig.write_wrapper_service(tree.base / "pam.d", "svc", lines)
    status, out, err = pamtester(tree.base / "pam.d", "open_session")
    assert status == 0, err
    assert b"Welcome" + SHOWN + b"\n" in out.splitlines(keepends=True)
    assert not C1_OR_ESC.search(out + err)


def test_pam_hookrunner_show_output_and_deny(tree: Tree) -> None:
    hostile_hook(tree, "onsessionopen")
    rig.write_hook(tree.root, "onauth", "50-deny.py", DENY, mode=0o644)
    rig.write_wrapper_service(tree.base / "pam.d", "svc", [native("auth", tree), native("session", tree)])
    status, out, err = pamtester(tree.base / "pam.d", "open_session")
    assert status == 0, err
    assert b"Welcome" + SHOWN + b"\n" in out.splitlines(keepends=True)  # pam_info: stdout
    status, out, err = pamtester(tree.base / "pam.d", "authenticate")
    assert status != 0
    assert "no ?[2J? entry for Zoë ?\n".encode() in err.splitlines(keepends=True)  # pam_error
    assert not C1_OR_ESC.search(out + err)


STANDIN = """import os, sys
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "lines"), "rb") as f:
    os.write(3, f.read())
"""


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pam_wrapper service whose pam_hookrunner.so runs a stand-in that writes the file
    ``lines`` (next to it) to the message pipe as it is."""
    base = tmp_path_factory.mktemp("relay")
    (base / "standin.py").write_text(STANDIN)
    rig.write_wrapper_service(base / "pam.d", "svc", [
        f"session required {MODULE} dispatcher={base / 'standin.py'} python={PYTHON}"])
    return base


@settings(max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payloads=st.lists(st.binary(min_size=1, max_size=120).map(lambda b: b.replace(b"\n", b"")
                                                                 .replace(b"\0", b"")), min_size=20,
                         max_size=20))
def test_the_relay_shows_what_the_dispatcher_would(relay: Path, payloads: list[bytes]) -> None:
    """Raw bytes on the message pipe (no NUL, no newline: the relay drops NULs and splits at
    newlines), 20 lines an example: each reaches the user as showable() makes it."""
    (relay / "lines").write_bytes(b"".join(b"info MARK%02d:" % i + p + b"\n"
                                           for i, p in enumerate(payloads)))
    status, out, err = pamtester(relay / "pam.d", "open_session")
    assert status == 0, err
    shown = [line for line in out.split(b"\n") if line.startswith(b"MARK")]
    assert shown == [showable(b"MARK%02d:" % i + p) for i, p in enumerate(payloads)]
