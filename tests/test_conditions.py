"""Per-hook conditions: services, users, groups, rhosts; ``!`` excludes; all must hold.

Unit tests on ``conditions`` for the matching rules (with hypothesis against an oracle built
on ``ipaddress``), then the real dispatcher: a hook whose conditions fail is not started, a
plugin not imported, ``list``/``simulate`` show the decision, ``check`` reports problems.
"""

from __future__ import annotations

import grp
import ipaddress
import json
import os
import pwd
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hooktree import MAIN, HookTree
from hypothesis import given, settings
from hypothesis import strategies as st

from hookrunner.conditions import ConditionError, Subject, from_table, normalize_rhost, unmet


def check(table: dict[str, list[str]], **items: str | None) -> str | None:
    """unmet() for PAM items given as user=..., service=..., rhost=..."""
    env = {f"PAM_{k.upper()}".encode(): os.fsencode(v) for k, v in items.items() if v is not None}
    return unmet(from_table(table), Subject(env))


# ---- each kind, negation -----------------------------------------------------------------

def test_services_and_users_match_exactly() -> None:
    assert check({"services": ["sshd", "login"]}, service="sshd") is None
    assert check({"services": ["sshd"]}, service="sshd-x") == "services: service sshd-x is not one of sshd"
    assert check({"services": ["sshd"]}) is not None  # unset matches no entry
    assert check({"services": ["!sshd"]}) is None  # ... and is not excluded
    assert check({"users": ["alice"]}, user="Alice") is not None  # case matters, as in PAM
    assert check({"users": ["!root"]}, user="root") == "users: excluded by !root"
    assert check({"users": ["!root"]}, user="alice") is None
    assert check({"users": ["alice", "!alice"]}, user="alice") == "users: excluded by !alice"


def test_all_given_conditions_must_hold() -> None:
    table = {"services": ["sshd"], "users": ["!root"], "rhosts": ["!local"]}
    assert check(table, service="sshd", user="alice", rhost="192.0.2.1") is None
    assert check(table, service="su", user="alice", rhost="192.0.2.1").startswith("services:")
    assert check(table, service="sshd", user="root", rhost="192.0.2.1").startswith("users:")
    assert check(table, service="sshd", user="alice", rhost="::1") == "rhosts: excluded by !local"


@pytest.mark.parametrize("rhost", [None, "", "  ", "127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1",
                                   "[::1]", "localhost", "LOCALHOST.", "localhost."])
def test_local_is_an_unset_empty_or_loopback_rhost(rhost: str | None) -> None:
    assert check({"rhosts": ["local"]}, rhost=rhost) is None
    assert check({"rhosts": ["!local"]}, rhost=rhost) == "rhosts: excluded by !local"


@pytest.mark.parametrize(("entry", "rhost", "holds"), [
    ("192.0.2.0/24", "192.0.2.77", True),
    ("192.0.2.0/24", "192.0.3.1", False),
    ("192.0.2.0/24", "::ffff:192.0.2.77", True),  # IPv4-mapped IPv6 is the IPv4 address
    ("::ffff:192.0.2.0/120", "192.0.2.9", True),  # in the config too
    ("192.0.2.7", "::ffff:c000:207", True),
    ("192.0.2.7", "192.0.2.70", False),
    ("2001:db8::/32", "2001:db8:1::5", True),
    ("2001:db8::/32", "[2001:db8::5]", True),
    ("2001:db8::/32", "2001:db9::5", False),
    ("fe80::/10", "fe80::1%eth0", True),  # a zone is not part of the address
    ("192.0.2.0/24", "host.example", False),
    ("Host.Example.", "host.example", True),  # host names: no case, trailing dot dropped
    ("host.example", "HOST.EXAMPLE.", True),
    ("host.example", "192.0.2.1", False),
    ("local", "192.0.2.1", False),
    ("192.0.2.1", "not\xffascii", False),
])
def test_rhosts_addresses_networks_and_names(entry: str, rhost: str, holds: bool) -> None:
    assert (check({"rhosts": [entry]}, rhost=rhost) is None) == holds
    assert (check({"rhosts": ["!" + entry]}, rhost=rhost) is None) == (not holds)


@pytest.mark.parametrize(("kind", "value"), [
    ("rhosts", ["10.0.0.0/33"]), ("rhosts", ["10.0.0.1/8"]), ("rhosts", ["10.0.0.300"]),
    ("rhosts", ["bad_host"]), ("rhosts", ["-x.example"]), ("rhosts", ["::g"]), ("rhosts", ["!"]),
    ("users", []), ("users", "alice"), ("users", [1]), ("groups", [""]), ("services", ["a\nb"]),
])
def test_malformed_conditions_are_refused(kind: str, value: object) -> None:
    with pytest.raises(ConditionError) as e:
        from_table({kind: value})
    assert e.value.kind == kind


@pytest.fixture
def member() -> Iterator[tuple[str, str, str]]:
    """(user, its primary group, a supplementary group) made for the test; removed after."""
    if os.geteuid() != 0:
        pytest.skip("needs root to add a user and a group")
    tag = secrets.token_hex(3)
    user, extra = f"hrt-c-{tag}", f"hrt-g-{tag}"
    subprocess.run(["groupadd", extra], check=True)
    try:
        subprocess.run(["useradd", "--no-create-home", "-G", extra, user], check=True)
        try:
            yield user, grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name, extra
        finally:
            subprocess.run(["userdel", user], check=False)
    finally:
        subprocess.run(["groupdel", extra], check=False)


def test_groups_include_the_primary_and_supplementary_groups(member: tuple[str, str, str]) -> None:
    user, primary, extra = member
    assert check({"groups": [primary]}, user=user) is None
    assert check({"groups": [extra]}, user=user) is None
    assert check({"groups": ["root"]}, user=user) == f"groups: user {user} is not one of root"
    assert check({"groups": ["!" + extra]}, user=user) == f"groups: excluded by !{extra}"
    assert check({"groups": ["no-such-group-hrt"]}, user=user) is not None
    assert check({"groups": ["!no-such-group-hrt"]}, user=user) is None
    assert check({"groups": [extra]}, user="no-such-user-hrt") is not None  # unknown user: no groups
    assert check({"groups": [extra]}) is not None


# ---- properties: the rules against an oracle ------------------------------------------------

WORDS = st.sampled_from(["alice", "bob", "root", "sshd", "su", "x y", "é"])


@settings(max_examples=500)
@given(st.lists(st.tuples(st.booleans(), WORDS), min_size=1, max_size=5), st.one_of(st.none(), WORDS))
def test_users_rule_is_the_documented_one(entries: list[tuple[bool, str]], user: str | None) -> None:
    include = [w for negated, w in entries if not negated]
    exclude = [w for negated, w in entries if negated]
    holds = (not include or user in include) and user not in exclude
    spelled = [("!" if negated else "") + w for negated, w in entries]
    assert (check({"users": spelled}, user=user) is None) == holds


ipv4 = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)


@settings(max_examples=1000)
@given(ipv4, st.integers(0, 32), ipv4, st.sampled_from(["plain", "mapped", "bracketed", "dot"]),
       st.booleans())
def test_rhosts_networks_agree_with_ipaddress(base: ipaddress.IPv4Address, prefix: int,
                                              address: ipaddress.IPv4Address, spelling: str,
                                              negated: bool) -> None:
    network = ipaddress.IPv4Network((base, prefix), strict=False)
    rhost = {"plain": str(address), "mapped": f"::ffff:{address}", "bracketed": f"[::ffff:{address}]",
             "dot": f"{address}."}[spelling]
    inside = address in network
    entry = ("!" if negated else "") + str(network)
    assert (check({"rhosts": [entry]}, rhost=rhost) is None) == (inside != negated)
    local, parsed, name = normalize_rhost(rhost.encode())
    assert parsed == address and name is None and local == address.is_loopback


@settings(max_examples=300)
@given(st.binary(max_size=40))
def test_any_rhost_bytes_are_handled(rhost: bytes) -> None:
    local, address, name = normalize_rhost(rhost)
    assert isinstance(local, bool) and (address is None or name is None)
    rules = from_table({"rhosts": ["local", "192.0.2.0/24", "2001:db8::/32", "host.example"]})
    unmet(rules, Subject({b"PAM_RHOST": rhost}))  # never raises


# ---- through the real dispatcher -------------------------------------------------------------

def recorder(tree: HookTree, name: str) -> str:
    return f"#!/bin/sh\necho \"$PAM_USER\" >> {tree.out}/{name}\n"


def test_a_hook_whose_conditions_fail_is_not_started_and_not_a_failure(hooktree: HookTree) -> None:
    hooktree.hook("onauth", "10-rec", recorder(hooktree, "10-rec"))
    hooktree.hook("onauth", "20-plugin.py", f"open({str(hooktree.out / 'imported')!r}, 'w').close()\n",
                  mode=0o644)
    hooktree.config(f'log_file = "{hooktree.root}/log"\n'
                    '[hook."10-rec"]\nusers = ["!root"]\nservices = ["sshd"]\n'
                    '[hook."20-plugin"]\nrhosts = ["192.0.2.0/24"]\n')
    env = {"PAM_USER": "root", "PAM_SERVICE": "sshd", "PAM_RHOST": "198.51.100.1"}
    proc = hooktree.run("run", "onauth", "-v", env=env)
    assert proc.returncode == 0, proc.stderr
    assert not (hooktree.out / "10-rec").exists() and not (hooktree.out / "imported").exists()
    log = (hooktree.root / "log").read_text()
    assert "onauth.d/10-rec skipped: condition users: excluded by !root user=root" in log
    assert ("onauth.d/20-plugin skipped: condition rhosts: rhost 198.51.100.1 is not one of "
            "192.0.2.0/24") in log
    assert hooktree.run("run", "onauth", "--ignore-empty", env=env).returncode == 4  # nothing ran
    proc = hooktree.run("run", "onauth", env=env | {"PAM_USER": "alice"})
    assert (hooktree.out / "10-rec").read_text() == "alice\n"
    assert not (hooktree.out / "imported").exists()


def _imports(tree: HookTree, env: dict[str, str]) -> str:
    out = subprocess.run([sys.executable, "-X", "importtime", "-I", "-S", str(MAIN), "run",
                          "onsessionopen", "--root", str(tree.root)],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stderr


def test_ipaddress_is_imported_only_for_rhosts_conditions(hooktree: HookTree) -> None:
    hooktree.hook("onsessionopen", "10-ok")
    hooktree.config('[hook."10-ok"]\nusers = ["alice"]\n')
    env = {"PAM_USER": "alice", "PAM_RHOST": "192.0.2.1"}
    _imports(hooktree, env)  # writes the parse cache
    assert "ipaddress" not in _imports(hooktree, env)
    hooktree.config('[hook."10-ok"]\nrhosts = ["192.0.2.0/24"]\n')
    _imports(hooktree, env)
    assert "ipaddress" in _imports(hooktree, env)


def test_list_and_simulate_show_the_decision(hooktree: HookTree) -> None:
    hooktree.hook("onsessionopen", "10-sshd", recorder(hooktree, "10-sshd"))
    hooktree.hook("onsessionopen", "20-any")
    hooktree.config('[hook."10-sshd"]\nservices = ["sshd"]\nusers = ["!root"]\n')

    def listed(*args: str) -> dict[str, tuple[str, str]]:
        proc = hooktree.run("list", "onsessionopen", "--json", *args)
        assert proc.returncode == 0, proc.stderr
        return {e["name"]: (e["action"], e["reason"]) for e in json.loads(proc.stdout)}

    assert listed()["10-sshd"] == ("run", "only if services=sshd users=!root")
    assert listed("--service", "sshd", "--user", "alice")["10-sshd"] == (
        "run", "conditions hold: services=sshd users=!root")
    assert listed("--service", "su", "--user", "alice")["10-sshd"] == (
        "skip", "condition not met: services: service su is not one of sshd")
    assert listed("--service", "sshd", "--user", "root")["10-sshd"] == (
        "skip", "condition not met: users: excluded by !root")
    assert listed("--service", "su")["20-any"] == ("run", "")
    table = hooktree.run("list", "onsessionopen", "--user", "root").stdout.decode()
    assert "10-sshd  exec  skip" in table
    assert "condition not met: services: service - is not one of sshd" in table

    proc = hooktree.run("simulate", "onsessionopen", "--user", "root", "--service", "sshd")
    out = proc.stdout.decode()
    assert proc.returncode == 0
    assert "10-sshd  skip" in out and "skipped: users: excluded by !root" in out
    assert not (hooktree.out / "10-sshd").exists()
    proc = hooktree.run("simulate", "onsessionopen", "--user", "alice", "--service", "sshd")
    assert "10-sshd  ok" in proc.stdout.decode()
    assert (hooktree.out / "10-sshd").read_text() == "alice\n"


def test_check_reports_unknown_groups_and_malformed_networks(hooktree: HookTree) -> None:
    hooktree.config('\n[hook."10-x"]\ngroups = ["root", "!hrt-no-such-group"]\n')
    proc = hooktree.run("check", "--pam-dir", hooktree.out)
    assert proc.returncode == 1
    assert proc.stdout.decode() == (f"{hooktree.root}/etc/security/hookrunner.toml:3: hook.10-x.groups: "
                                    'no such group "hrt-no-such-group"\n')
    hooktree.config('[hook."10-x"]\nrhosts = ["local", "10.0.0.0/33"]\n')
    proc = hooktree.run("check", "--pam-dir", hooktree.out)
    assert proc.returncode == 3
    assert proc.stderr.decode().startswith(f"hookrunner: {hooktree.root}/etc/security/hookrunner.toml:2: "
                                           "hook.10-x.rhosts: not an address or network: '10.0.0.0/33'")


def test_rhost_condition_via_the_pam_item_and_negation(hooktree: HookTree, tmp_path: Path) -> None:
    hooktree.hook("onaccount", "10-remote", recorder(hooktree, "10-remote"))
    hooktree.config('[hook."10-remote"]\nrhosts = ["!local", "!10.0.0.0/8"]\n')
    for rhost, runs in (("203.0.113.5", True), ("::ffff:10.1.2.3", False), ("", False),
                        ("127.0.0.1", False), ("2001:db8::1", True)):
        (hooktree.out / "10-remote").unlink(missing_ok=True)
        env = {"PAM_USER": "alice"} | ({"PAM_RHOST": rhost} if rhost else {})
        assert hooktree.run("run", "onaccount", env=env).returncode == 0
        assert (hooktree.out / "10-remote").exists() == runs, rhost
