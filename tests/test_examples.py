"""The example hooks shipped in hooks.d/, run through the real dispatcher."""

from __future__ import annotations

import ipaddress
import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


# --- 10-deny-hosts: one form for an address, whatever way it is written -----------------

DENY_LIST = ("203.0.113.9\n::FFFF:198.51.100.0/120  # a mapped network is its IPv4 network\n"
             "Evil.Example.\n2001:DB8::/32\n")


@pytest.mark.parametrize("rhost", [
    "203.0.113.9", "::ffff:203.0.113.9", "::ffff:cb00:7109", "::FFFF:CB00:7109", "203.0.113.9.",
    " 203.0.113.9\t", "::ffff:203.0.113.9%eth0", "0:0:0:0:0:ffff:cb00:7109",
    "0xcb.0.113.9", "3405803785", "0313.0.0161.011", "203.0.28937", "0xcb007109",
    "198.51.100.77", "::ffff:198.51.100.77", "evil.example", "EVIL.EXAMPLE.", "evil.example.",
    "2001:db8::77", "2001:DB8:0::77",
])
def test_deny_hosts_knows_an_address_in_every_form(root: Path, rhost: str) -> None:
    (root / "etc/security/hookrunner-deny-hosts").write_text(DENY_LIST)
    result = simulate(root, "onauth", "alice", rhost)
    assert result.returncode == 1, result.stdout
    assert "10-deny-hosts exited with status 1" in (root / "hookrunner.log").read_text()


@pytest.mark.parametrize("rhost", [
    "203.0.113.10", "::ffff:203.0.113.10", "::203.0.113.9", "64:ff9b::cb00:7109", "203.0.113.9.x",
    "203.0.29961", "198.51.101.1", "not-evil.example", "evil.example.org", "2001:db9::1",
    "0x", "1..2", "999.1.1.1", "0xffffffff1", "09.1.1.1", "[2001:db8::1]x",
])
def test_deny_hosts_lets_other_hosts_in(root: Path, rhost: str) -> None:
    (root / "etc/security/hookrunner-deny-hosts").write_text(DENY_LIST)
    assert simulate(root, "onauth", "alice", rhost).returncode == 0


def test_deny_hosts_header_warns_about_names() -> None:
    header = (REPO / "hooks.d/onauth.d/10-deny-hosts").read_text().split('"""')[1]
    assert "only as trustworthy as DNS" in header


def ipv4_forms(address: ipaddress.IPv4Address) -> list[str]:
    """The ways PAM_RHOST may spell one IPv4 address."""
    a, b, c, d = address.packed
    n = int(address)
    return [str(address), f"{address}.", f"::ffff:{address}", f"::FFFF:{n >> 16:x}:{n & 0xFFFF:x}",
            str(n), f"{n:#x}", f"{a}.{b}.{(c << 8) | d}", f"{a}.{(b << 16) | (c << 8) | d}",
            f"0{a:o}.0x{b:x}.{c}.0{d:o}"]


@settings(max_examples=300)
@given(address=st.ip_addresses(v=4), other=st.ip_addresses(v=4), entry=st.integers(0, 3),
       form=st.integers(0, 8))
def test_deny_hosts_forms_property(address: ipaddress.IPv4Address, other: ipaddress.IPv4Address,
                                   entry: int, form: int) -> None:
    """Any spelling of a listed address is denied; any spelling of another one is not."""
    denied = runpy.run_path(str(REPO / "hooks.d/onauth.d/10-deny-hosts"), run_name="deny_hosts")["denied"]
    listed = [str(address), f"::ffff:{address}", f"{address}.".upper(), f"::ffff:{address}/128"][entry]
    assert denied(ipv4_forms(address)[form], [listed]) == listed
    if other != address:
        assert denied(ipv4_forms(other)[form], [listed]) is None
