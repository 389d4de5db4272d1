"""The example hooks shipped in hooks.d/, run through the real dispatcher."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MAIN = REPO / "hookrunner" / "__main__.py"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="hook trees must be root-owned: run as root")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    tree = tmp_path / "root"
    (tree / "etc").mkdir(parents=True)
    shutil.copytree(REPO / "hooks.d", tree / "etc" / "security")
    for path in [tree, *tree.rglob("*")]:
        os.chown(path, 0, 0)
        if path.is_dir():
            path.chmod(0o755)
    (tree / "etc/security/hookrunner.toml").write_text(f'log_file = "{tree}/hookrunner.log"\n')
    return tree


def simulate(
    root: Path, phase: str, user: str | bytes, rhost: str | None = None
) -> subprocess.CompletedProcess[bytes]:
    argv = [sys.executable, "-I", "-S", str(MAIN), "simulate", phase, "--root", str(root),
            "--user", os.fsdecode(user)]
    if rhost:
        argv += ["--rhost", rhost]
    return subprocess.run(argv, capture_output=True, timeout=30, env={"PATH": "/usr/bin:/bin"})


def sessions(root: Path) -> dict[bytes, int]:
    d = root / "run/hookrunner/sessions"
    return {bytes.fromhex(p.name): int(p.read_text()) for p in d.iterdir() if not p.name.startswith(".")}


@pytest.mark.parametrize("rhost,denied", [
    ("203.0.113.9", True), ("203.0.114.9", False), ("2001:db8::7", True),
    ("evil.example", True), ("EVIL.example", True), ("good.example", False), (None, False),
])
def test_deny_hosts(root: Path, rhost: str | None, denied: bool) -> None:
    (root / "etc/security/hookrunner-deny-hosts").write_text(
        "# networks\n203.0.113.0/24\n2001:db8::/32  # docs\nevil.example\nnot/a/net\n")
    result = simulate(root, "onauth", "alice", rhost)
    assert result.returncode == (1 if denied else 0), result.stdout
    log = (root / "hookrunner.log").read_text()
    assert ("10-deny-hosts exited with status 1" in log) == denied


def test_deny_hosts_without_list_denies_nothing(root: Path) -> None:
    assert simulate(root, "onauth", "alice", "203.0.113.9").returncode == 0


def test_session_count_and_last_logout(root: Path) -> None:
    hostile = b"../../etc/x\n$(id)"
    for user in ("alice", "alice", hostile):
        assert simulate(root, "onsessionopen", user).returncode == 0
    assert sessions(root) == {b"alice": 2, hostile: 1}
    assert not (root / "etc/x").exists()
    assert simulate(root, "onsessionclose", "alice").returncode == 0
    assert sessions(root) == {b"alice": 1, hostile: 1}
    assert simulate(root, "onsessionclose", "alice").returncode == 0
    assert simulate(root, "onsessionclose", hostile).returncode == 0
    assert sessions(root) == {}
    # A close without an open (e.g. after a reboot) is not an error.
    assert simulate(root, "onsessionclose", "bob").returncode == 0


def test_parallel_session_counts_lose_nothing(root: Path) -> None:
    argv = [sys.executable, "-I", "-S", str(MAIN), "simulate", "onsessionopen", "--root", str(root),
            "--user", "carol"]
    procs = [subprocess.Popen(argv, stdout=subprocess.DEVNULL, env={"PATH": "/usr/bin:/bin"})
             for _ in range(20)]
    assert [p.wait(timeout=60) for p in procs] == [0] * 20
    assert sessions(root) == {b"carol": 20}


def test_every_example_is_listed_to_run(root: Path) -> None:
    for phase_dir in (REPO / "hooks.d").iterdir():
        phase = phase_dir.name.removesuffix(".d")
        out = subprocess.run([sys.executable, "-I", "-S", str(MAIN), "list", phase, "--json",
                              "--root", str(root)], capture_output=True, check=True).stdout
        import json

        rows = json.loads(out)
        assert len(rows) == len(list(phase_dir.iterdir())), phase
        for row in rows:
            assert row["action"] == "run", row
