"""The dispatcher started by a setuid caller (real uid = the caller, euid 0) becomes all root
before anything else: every uid and gid 0, root's groups. Or, when it cannot (euid 0 without
CAP_SETUID), it runs nothing and says why: a half-root hook would fail open.

The end-to-end proof through a real setuid pamtester and a real su is tests/e2e/test_setuid.py;
here the dispatcher is started the same way with setpriv, without PAM.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from hooktree import HookTree

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to start a process with euid 0"),
    pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) missing"),
]

NOBODY = "65534"
WHO = """#!/bin/sh
id -ru > {out}/ruid
id -G > {out}/groups
grep -E '^(Uid|Gid|Groups):' /proc/$PPID/status > {out}/dispatcher
"""


def as_caller(tree: HookTree, *setpriv: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["setpriv", *setpriv, *tree.argv("run", "onauth")],
                          env={"PAM_USER": "alice", "PAM_SERVICE": "su"},
                          capture_output=True, timeout=60, cwd="/")


def test_a_setuid_caller_s_real_uid_and_groups_never_reach_a_hook(hooktree: HookTree) -> None:
    hooktree.hook("onauth", "10-who", WHO.format(out=hooktree.out))
    # What su gives pam_exec without seteuid: Uid caller 0 0, Gid caller 0 0, the caller's groups.
    r = as_caller(hooktree, f"--ruid={NOBODY}", f"--rgid={NOBODY}", f"--groups={NOBODY}")
    assert r.returncode == 0, r.stderr
    assert (hooktree.out / "ruid").read_text() == "0\n"  # dash would drop to 65534 otherwise
    assert (hooktree.out / "groups").read_text() == "0\n"
    status = dict(line.split(":", 1) for line in
                  (hooktree.out / "dispatcher").read_text().splitlines())
    assert status["Uid"].split() == ["0"] * 4
    assert status["Gid"].split() == ["0"] * 4
    assert status["Groups"].split() == ["0"]


def test_without_cap_setuid_nothing_runs_and_the_reason_is_one_line(hooktree: HookTree) -> None:
    hooktree.hook("onauth", "10-who", WHO.format(out=hooktree.out))
    r = as_caller(hooktree, f"--ruid={NOBODY}", "--bounding-set=-setuid,-setgid")
    assert r.returncode == 3
    assert r.stderr == b"hookrunner: cannot make uid and gid 0: Operation not permitted\n"
    assert not (hooktree.out / "ruid").exists()
