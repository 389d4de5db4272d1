"""pam_exec.so -> hookrunner in a real libpam, driven by pamtester under pam_wrapper.

The service is a flattened file in a temporary PAM_WRAPPER_SERVICE_DIR: pam_matrix.so (a
password database in a file) then the hookrunner line, per management group. Nothing in
/etc is written. The password tests use pam_unix.so (Debian's common-* stacks, included)
and a real temporary user instead, because pam_matrix wipes PAM_AUTHTOK after use.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from harness import SyslogSink, Tree, expected_env, missing, rig

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(bool(REASON := missing(tools=["pamtester"], files=[
        rig.PAM_WRAPPER_LIB, rig.PAM_MATRIX])), reason=REASON),
]

USER, PASSWORD, SERVICE = "alice", "s3cret-matrix", "hookrunner-e2e"
ITEMS = {"user": USER, "service": SERVICE, "rhost": "203.0.113.9", "ruser": "bob",
         "tty": "/dev/pts/9"}
ALL_OPS = ("authenticate", "acct_mgmt", "chauthtok", "open_session", "close_session")


def matrix(tree: Tree, controls: rig.Controls = rig.Controls()) -> Path:
    """A pam_wrapper service dir holding SERVICE (pam_matrix + hookrunner lines)."""
    passdb = rig.write_passdb(tree.base / "passdb", [(USER, PASSWORD, SERVICE)])
    service_dir = tree.base / "pam.d"
    rig.write_wrapper_service(service_dir, SERVICE, rig.matrix_service(tree.root, passdb, controls))
    return service_dir


def pamtester(service_dir: Path, ops: tuple[str, ...] = rig.PAMTESTER_OPS,
              passwords: tuple[str, ...] = (PASSWORD,),
              pam_env: dict[str, str] | None = None) -> rig.Outcome:
    return rig.pamtester(service_dir, SERVICE, USER, ops, passwords=passwords,
                         rhost=ITEMS["rhost"], tty=ITEMS["tty"], ruser=ITEMS["ruser"],
                         pam_env=pam_env)


def test_every_phase_gets_exactly_the_pam_items_in_order(tree: Tree) -> None:
    tree.hooks_everywhere("10-first", "20-second")
    service_dir = matrix(tree)
    # chauthtok prompts: old password, new, again. The PAM environment gets LD_PRELOAD and
    # FOO: pam_exec hands them to the dispatcher, which must not pass them on.
    out = pamtester(service_dir, ALL_OPS, passwords=(PASSWORD, PASSWORD, "n3w-pw", "n3w-pw"),
                    pam_env={"LD_PRELOAD": "/nonexistent/evil.so", "FOO": "bar"})
    assert out.returncode == 0, out
    phases = ("onauth", "onaccount", "onpasswd", "onsessionopen", "onsessionclose")
    assert tree.seen() == [(p, h) for p in phases for h in ("10-first", "20-second")]
    for record in tree.records():
        assert record.env == expected_env(record.phase, record.hook, tree.root, **ITEMS)
        assert record.argv == (record.path,)
        assert record.stdin == ""
        assert record.uid == 0


def test_items_that_are_not_set_are_not_in_the_environment(tree: Tree) -> None:
    tree.hooks_everywhere("10-rec")
    service_dir = matrix(tree)
    out = rig.pamtester(service_dir, SERVICE, USER, passwords=[PASSWORD])
    assert out.returncode == 0, out
    assert [r.phase for r in tree.records()] == [
        "onauth", "onaccount", "onsessionopen", "onsessionclose"]
    for record in tree.records():
        assert record.env == expected_env(record.phase, "10-rec", tree.root, user=USER,
                                           service=SERVICE)


# A hook that must be able to deny needs a line whose failure counts: `required` (or
# `requisite`) after the real auth modules. Under the recommended `optional` a failing
# pam_exec is ignored: that is the safe default, and what this table pins down.
@pytest.mark.parametrize(("control", "denied"), [
    ("required", True), ("requisite", True), ("optional", False)])
def test_a_failing_onauth_hook_fails_authenticate_unless_optional(
        tree: Tree, control: str, denied: bool) -> None:
    tree.hook("onauth", "10-deny", exit_code=1)
    tree.hook("onauth", "20-never")  # onauth stops at the first failure
    tree.hook("onaccount", "10-rec")
    service_dir = matrix(tree, rig.Controls(auth=control))
    out = pamtester(service_dir, ("authenticate", "acct_mgmt"))
    assert ("successfully authenticated" in out.stdout) is not denied, out
    assert (out.returncode != 0) is denied
    expected = [("onauth", "10-deny")] + ([] if denied else [("onaccount", "10-rec")])
    assert tree.seen() == expected


def test_wrong_password_fails_authenticate_whatever_the_hook_says(tree: Tree) -> None:
    tree.hook("onauth", "10-ok")
    service_dir = matrix(tree, rig.Controls(auth="required"))
    out = pamtester(service_dir, ("authenticate",), passwords=("wrong",))
    assert out.returncode != 0
    assert "successfully authenticated" not in out.stdout
    # pam_matrix is `required`, not `requisite`: the stack goes on, so here the hook does
    # see the failed attempt (after Debian's common-auth it would not: see test_python_pam).
    assert tree.seen() == [("onauth", "10-ok")]


def test_failing_session_hooks_under_optional_fail_neither_open_nor_close(tree: Tree) -> None:
    tree.hook("onsessionopen", "10-fail", exit_code=1)
    tree.hook("onsessionopen", "20-still-runs")
    tree.hook("onsessionclose", "10-fail", exit_code=3)
    tree.hook("onsessionclose", "20-still-runs")
    out = pamtester(matrix(tree))
    assert out.returncode == 0, out
    assert "session has successfully been closed" in out.stdout
    assert tree.seen() == [("onsessionopen", "10-fail"), ("onsessionopen", "20-still-runs"),
                           ("onsessionclose", "10-fail"), ("onsessionclose", "20-still-runs")]
    assert "onsessionopen.d/10-fail exited with status 1" in tree.log_text()
    assert "onsessionclose.d/10-fail exited with status 3" in tree.log_text()


def test_close_hook_failing_after_open_succeeded_fails_close_session(tree: Tree) -> None:
    # Linux-PAM's frozen chain: at close, each module's action comes from what it returned
    # at open. The optional hookrunner line succeeded at open, so its failure at close counts.
    tree.hook("onsessionopen", "10-ok")
    tree.hook("onsessionclose", "10-fail", exit_code=1)
    out = pamtester(matrix(tree))
    assert "successfully opened a session" in out.stdout, out
    assert "session has successfully been closed" not in out.stdout
    assert out.returncode != 0
    assert tree.seen() == [("onsessionopen", "10-ok"), ("onsessionclose", "10-fail")]


def test_a_hook_that_sleeps_forever_delays_the_login_by_the_timeout_only(tree: Tree) -> None:
    tree.hook("onsessionopen", "10-rec")
    service_dir = matrix(tree)
    baseline = pamtester(service_dir)
    assert baseline.returncode == 0, baseline

    tree.reset()
    tree.config("timeout = 1\n")
    tree.hook("onsessionopen", "10-sleeper", sleep_forever=True)
    tree.hook("onsessionopen", "20-after")
    out = pamtester(service_dir)
    assert out.returncode == 0, out  # optional session line: the timeout is only logged
    assert 1.0 <= out.seconds <= baseline.seconds + 1 + 2, (out.seconds, baseline.seconds)
    assert tree.seen() == [("onsessionopen", "10-sleeper"), ("onsessionopen", "20-after")]
    sleeper = tree.records()[0].pid
    assert rig.wait_for(lambda: not Path(f"/proc/{sleeper}").exists(), timeout=5)
    assert "onsessionopen.d/10-sleeper timed out" in tree.log_text()


def test_show_output_reaches_the_user_and_other_output_does_not(tree: Tree) -> None:
    tree.hook("onsessionopen", "10-loud", say="Welcome from 10-loud")
    tree.hook("onsessionopen", "20-quiet", say="internal chatter of 20-quiet")
    tree.config('[hook."10-loud"]\nshow_output = true\n')
    opts = ("quiet", "stdout")
    out = pamtester(matrix(tree, rig.Controls(options=opts, auth_options=opts)))
    assert out.returncode == 0, out
    assert "Welcome from 10-loud" in out.stdout
    assert "internal chatter" not in out.stdout + out.stderr
    assert "internal chatter of 20-quiet" in tree.log_text().replace("\\x0a", "\n")


# --------------------------------------------------------------------------- password


def password_tree(tree: Tree) -> None:
    tree.hook("onauth", "10-dump")  # records env and argv: must not contain the password
    tree.hook("onauth", "20-wants-password")
    tree.hook("onauth", "30-after")
    tree.hook("onsessionopen", "20-wants-password")  # authtok is for onauth/onpasswd only
    tree.config('[hook."20-wants-password"]\nauthtok = true\n')


def unix_wrapper_service(tree: Tree) -> Path:
    """Debian's common-* (included, so pam_unix stores PAM_AUTHTOK), then hookrunner lines."""
    lines = rig.unix_service(tree.root, rig.Controls(auth_options=("quiet", "expose_authtok")))
    service_dir = tree.base / "pam.d"
    rig.write_wrapper_service(service_dir, SERVICE, lines)
    return service_dir


def assert_password_only_given_to_opted_in_hook(tree: Tree, password: str) -> None:
    marker = password.rsplit(" ", 1)[-1]  # plain ASCII: survives any escaping in a log
    stdin = {(r.phase, r.hook): r.stdin for r in tree.records()}
    assert stdin == {("onauth", "10-dump"): "", ("onauth", "20-wants-password"): password,
                     ("onauth", "30-after"): "", ("onsessionopen", "20-wants-password"): ""}
    for record in tree.records():
        assert marker not in json.dumps([record.env, record.argv], ensure_ascii=False)
    assert tree.log_text(), "the dispatcher wrote no log file"
    assert marker not in tree.log_text()


def test_password_goes_only_to_the_opted_in_hook(tree: Tree, user: rig.User) -> None:
    password_tree(tree)
    out = rig.pamtester(unix_wrapper_service(tree), SERVICE, user.name, passwords=[user.password],
                        rhost="203.0.113.9")
    assert out.returncode == 0, out
    assert_password_only_given_to_opted_in_hook(tree, user.password)
    assert user.password.rsplit(" ", 1)[-1] not in out.stdout + out.stderr


def test_password_never_reaches_syslog(tree: Tree, user: rig.User, syslog: SyslogSink) -> None:
    password_tree(tree)
    out = rig.pamtester(unix_wrapper_service(tree), SERVICE, user.name, passwords=[user.password],
                        syslog=syslog)
    assert out.returncode == 0, out
    messages = syslog.messages()
    assert any(b"hookrunner" in m and b"20-wants-password" in m for m in messages), messages
    marker = user.password.rsplit(" ", 1)[-1].encode()
    assert not [m for m in messages if marker in m]


def test_without_expose_authtok_an_opted_in_hook_gets_nothing(tree: Tree, user: rig.User) -> None:
    password_tree(tree)
    lines = rig.unix_service(tree.root)  # auth line without expose_authtok
    rig.write_wrapper_service(tree.base / "pam.d", SERVICE, lines)
    out = rig.pamtester(tree.base / "pam.d", SERVICE, user.name, passwords=[user.password])
    assert out.returncode == 0, out
    assert all(r.stdin == "" for r in tree.records())
    assert ("onauth", "20-wants-password") in tree.seen()


def test_group_writable_hook_is_refused_through_the_real_stack(tree: Tree) -> None:
    tree.hook("onsessionopen", "10-writable").chmod(0o775)
    tree.hook("onsessionopen", "20-fine")
    out = pamtester(matrix(tree))
    assert out.returncode == 0, out  # the session line is optional
    assert tree.seen() == [("onsessionopen", "20-fine")]
    assert "onsessionopen.d/10-writable refused" in tree.log_text()


def test_pam_items_spoofed_in_the_pam_environment_never_reach_hooks(tree: Tree) -> None:
    """pam_env user_readenv=1 lets a user put PAM_USER=root in the PAM environment, which
    pam_exec hands over before its own items. Hooks get pam_exec's items; an item that PAM did
    not set (no ruser here) is not taken from the PAM environment either; each is logged."""
    tree.hooks_everywhere("10-rec")
    service_dir = matrix(tree)
    spoof = {"PAM_USER": "root", "PAM_RHOST": "127.0.0.1", "PAM_RUSER": "root",
             "PAM_SERVICE": "sshd", "PAM_TYPE": "close_session"}
    out = rig.pamtester(service_dir, SERVICE, USER, passwords=[PASSWORD], rhost=ITEMS["rhost"],
                        pam_env=spoof)
    assert out.returncode == 0, out
    assert [r.phase for r in tree.records()] == [
        "onauth", "onaccount", "onsessionopen", "onsessionclose"]
    for record in tree.records():
        assert record.env == expected_env(record.phase, "10-rec", tree.root, user=USER,
                                           service=SERVICE, rhost=ITEMS["rhost"])
    log = tree.log_text()
    for name in spoof:
        assert log.count(f"{name} is also set in the PAM environment") == 4, log
