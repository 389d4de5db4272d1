"""``make demo`` (pam/demo.py): one real transaction over the shipped hooks.d, nothing left."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from harness import missing, rig

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
