"""A background session hook through a real libpam: pamtester -> pam_exec.so (with ``stdout``,
so pam_exec reads the dispatcher's stdout to its end) -> hookrunner, under pam_wrapper.
pam_open_session must return while the hook still sleeps; the hook's record follows."""

from __future__ import annotations

import time

import pytest
from harness import Tree, missing, rig

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(bool(REASON := missing(tools=["pamtester"], files=[
        rig.PAM_WRAPPER_LIB, rig.PAM_MATRIX])), reason=REASON),
]

USER, PASSWORD, SERVICE = "alice", "s3cret-matrix", "hookrunner-e2e-bg"
SLEEP = 4


def test_a_background_session_hook_does_not_delay_pam_open_session(tree: Tree) -> None:
    done = tree.base / "done"
    rig.write_hook(tree.root, "onsessionopen", "10-notify",
                   f"#!/bin/sh\necho notifying\nsleep {SLEEP}\necho \"$PAM_USER\" > {done}\n")
    tree.hook("onsessionopen", "20-rec")  # a foreground hook after it still runs, in order
    tree.config('[hook."10-notify"]\nbackground = true\ntimeout = 30\n')
    passdb = rig.write_passdb(tree.base / "passdb", [(USER, PASSWORD, SERVICE)])
    service_dir = tree.base / "pam.d"
    controls = rig.Controls(options=("quiet", "stdout"))
    rig.write_wrapper_service(service_dir, SERVICE, rig.matrix_service(tree.root, passdb, controls))

    start = time.monotonic()
    out = rig.pamtester(service_dir, SERVICE, USER, ("open_session",), tty="/dev/pts/9")
    elapsed = time.monotonic() - start
    assert out.returncode == 0, out
    assert elapsed < SLEEP - 1, f"pam_open_session took {elapsed:.1f} s: it waited for the hook"
    assert not done.exists()
    assert tree.seen() == [("onsessionopen", "20-rec")]
    assert rig.wait_for(lambda: done.exists(), timeout=SLEEP + 15)
    assert done.read_text() == f"{USER}\n"
    assert rig.wait_for(lambda: "onsessionopen.d/10-notify exited with status 0" in tree.log_text(),
                        timeout=10)
    record = next(ln for ln in tree.log_text().splitlines() if "10-notify exited" in ln)
    assert "background) user=alice service=hookrunner-e2e-bg" in record
