"""``make demo`` (pam/demo.py): one real transaction over the shipped hooks.d, nothing left."""

from __future__ import annotations

import contextlib
import re
import socket
import sys
from pathlib import Path

import pytest
from harness import gone, make_tree, missing, rig

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(bool(REASON := missing(tools=["pamtester"], files=[
        rig.PAM_WRAPPER_LIB, rig.PAM_MATRIX])), reason=REASON),
]

DEMO = rig.REPO / "pam" / "demo.py"


def demo_root(stdout: str) -> Path:
    match = re.search(r"^  ROOT=(\S+) ", stdout, re.MULTILINE)
    assert match, stdout
    return Path(match[1])


def test_demo_runs_every_phase_and_cleans_up() -> None:
    out = rig.run([sys.executable, str(DEMO)])
    assert out.returncode == 0, out
    for phase, op in (("onauth", "authenticate"), ("onaccount", "acct_mgmt"),
                      ("onsessionopen", "open_session"), ("onsessionclose", "close_session")):
        assert f"\n{phase}  (pam_{op} -> pam_exec.so -> hookrunner run)\n" in out.stdout
    assert "pamtester: session has successfully been closed." in out.stdout
    assert "result: the transaction succeeded" in out.stdout
    assert not demo_root(out.stdout).parent.exists()  # the temporary tree is gone


def test_demo_exits_1_when_pam_refuses() -> None:
    out = rig.run([sys.executable, str(DEMO), "--deny"])
    assert out.returncode == 1, out
    assert "result: PAM refused" in out.stdout
    # hooks.d/onauth.d/10-deny-hosts refused the listed rhost; the dispatcher logged it
    assert re.search(r"onauth\.d/\S+ exited with status 1", out.stdout), out.stdout


def unread_socket(path: Path) -> socket.socket:
    """A datagram socket at ``path`` that nobody reads, its queue already full: what a stalled
    syslog daemon's /dev/log is (net.unix.max_dgram_qlen can be 10)."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    path.chmod(0o666)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as client:
        client.connect(str(path))
        client.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            for _ in range(100_000):
                client.send(b"<13>filler")
    return server


@pytest.mark.skipif(bool(ISOLATION := rig.isolation_problem()), reason=ISOLATION or "")
def test_demo_completes_when_dev_log_is_a_socket_nobody_reads(tmp_path: Path) -> None:
    """Run in a mount namespace (rig_syslog.py) whose /dev/log nobody reads: other engineers
    and the host's syslog are untouched, and the demo must not care."""
    with unread_socket(tmp_path / "stalled") as _server:
        def stalled(*argv: str) -> list[str]:
            return rig.dev_log_argv(tmp_path / "stalled", argv)

        # the control: there, syslog(3) blocks
        with pytest.raises(rig.RigTimeout, match="did not finish within 3 s"):
            rig.run(stalled(sys.executable, "-I", "-S", "-c",
                            "import syslog; syslog.syslog('hookrunner-test: blocked?')"), timeout=3)
        out = rig.run(stalled(sys.executable, str(DEMO)), timeout=120)
    assert out.returncode == 0, out
    assert "syslog, on the transaction's own /dev/log" in out.stdout
    assert re.search(r"> hookrunner\[\d+\]: onsessionclose\.d/80-session-count exited with status 0",
                     out.stdout), out.stdout
    assert "hookrunner-test: blocked?" not in out.stdout


def test_a_transaction_that_hangs_is_one_sentence_and_leaves_nothing_running(tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    tree.hook("onsessionopen", "10-hang", sleep_forever=True)
    tree.config("timeout = 600\nphase_timeout = 600\n")
    passdb = rig.write_passdb(tmp_path / "passdb", [("alice", "pw", "hookrunner-hang")])
    service_dir = rig.write_wrapper_service(tmp_path / "pam.d", "hookrunner-hang",
                                            rig.matrix_service(tree.root, passdb)).parent
    with pytest.raises(rig.RigTimeout) as e:
        rig.pamtester(service_dir, "hookrunner-hang", "alice", passwords=["pw"], timeout=5)
    assert str(e.value) == ("pamtester did not finish within 5 s and was killed, with the 2 "
                            "processes it had started"), str(e.value)  # the dispatcher, the hook
    assert tree.wait_seen("onsessionopen")
    [record] = tree.records()
    assert rig.wait_for(lambda: gone(record.pid), timeout=10)  # the hook went with it


def test_demo_that_times_out_says_so_in_one_line(tmp_path: Path) -> None:
    hooks = tmp_path / "hooks"
    rig.mkdirs(hooks / "onsessionopen.d")
    hang = hooks / "onsessionopen.d" / "10-hang"
    hang.write_text("#!/bin/sh\nexec sleep 600\n")
    hang.chmod(0o755)
    (hooks / "hookrunner.toml").write_text("timeout = 600\nphase_timeout = 600\n")
    out = rig.run([sys.executable, str(DEMO), "--hooks", str(hooks), "--timeout", "3"], timeout=60)
    assert out.returncode == 2, out
    assert out.stderr.strip().splitlines() == [
        "demo: pamtester did not finish within 3 s and was killed, with the 2 processes it had "
        "started: a hook, the dispatcher or a PAM module hung"], out.stderr
    assert not demo_root(out.stdout).parent.exists()
