"""A real OpenSSH login on 127.0.0.1 runs the hooks.

One sshd for the module: its own config, host key and pid file, PAM service a temporary
``/etc/pam.d/hookrunner-test-sshd-*`` (Debian's common-* stacks, each followed by its
hookrunner line; sshd takes the service name from argv[0], so it is started through a
symlink of that name). The auth and account lines are ``required`` because one test needs
a denying hook; the session line is the recommended ``optional``. sshd is stopped by PID.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Sshd, Tree, expected_env, install_key, make_tree, missing, rig, ssh_key, ssh_password

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(bool(REASON := missing(tools=["sshd", "ssh", "sshpass", "ssh-keygen"])),
                       reason=REASON),
]


class Login:
    def __init__(self, tree: Tree, user: rig.User, sshd: Sshd, key: Path) -> None:
        self.tree, self.user, self.sshd, self.key = tree, user, sshd, key

    def password(self, password: str | None = None) -> rig.Outcome:
        return ssh_password(self.sshd.port, self.user.name, password or self.user.password)

    def settle(self) -> None:
        """Wait until sshd's connection processes are gone: close_session has run."""
        assert self.sshd.wait_idle(), "an ssh session did not end"


@pytest.fixture(scope="module")
def login(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Login]:
    base = tmp_path_factory.mktemp("sshd")
    tree = make_tree(base)
    controls = rig.Controls(auth="required", account="required")
    lines = rig.unix_service(tree.root, controls)
    with rig.temp_user() as user, rig.pam_service(lines, tag="sshd-") as service, \
            Sshd.start(base / "sshd", service) as sshd:
        key = install_key(user, base)
        yield Login(tree, user, sshd, key)


@pytest.fixture
def tree(login: Login) -> Tree:
    login.tree.reset()
    return login.tree


def test_password_login_runs_every_phase_with_the_ssh_items(login: Login, tree: Tree) -> None:
    tree.hooks_everywhere("10-rec")
    out = login.password()
    assert out.returncode == 0, out
    login.settle()
    assert tree.seen() == [("onauth", "10-rec"), ("onaccount", "10-rec"),
                           ("onsessionopen", "10-rec"), ("onsessionclose", "10-rec")]
    items = {"user": login.user.name, "service": login.sshd.service, "rhost": "127.0.0.1",
             "tty": "ssh"}
    for record in tree.records():
        assert record.env == expected_env(record.phase, "10-rec", tree.root, **items)


def test_a_denying_onauth_hook_makes_the_login_fail(login: Login, tree: Tree) -> None:
    tree.hook("onauth", "10-deny", exit_code=1)
    tree.hook("onaccount", "10-rec")
    tree.hook("onsessionopen", "10-rec")
    out = login.password()
    assert out.returncode == 255, out
    assert "Permission denied" in out.stderr
    login.settle()
    assert tree.seen() == [("onauth", "10-deny")]


def test_public_key_login_runs_no_auth_hook(login: Login, tree: Tree) -> None:
    tree.hooks_everywhere("10-rec")
    out = ssh_key(login.sshd.port, login.user.name, login.key)
    assert out.returncode == 0, out
    login.settle()
    assert tree.seen() == [("onaccount", "10-rec"), ("onsessionopen", "10-rec"),
                           ("onsessionclose", "10-rec")]


def test_a_hook_that_sleeps_forever_delays_the_login_by_the_timeout_only(
        login: Login, tree: Tree) -> None:
    tree.hook("onsessionopen", "10-rec")
    baseline = login.password()
    assert baseline.returncode == 0, baseline
    login.settle()

    tree.reset()
    tree.config("timeout = 1\n")
    tree.hook("onsessionopen", "10-sleeper", sleep_forever=True)
    out = login.password()
    assert out.returncode == 0, out  # optional session line: logged, not fatal
    assert 1.0 <= out.seconds <= baseline.seconds + 1 + 2, (out.seconds, baseline.seconds)
    login.settle()
    sleeper = tree.records()[0].pid
    assert rig.wait_for(lambda: not Path(f"/proc/{sleeper}").exists(), timeout=5)
    assert "onsessionopen.d/10-sleeper timed out" in tree.log_text()

