"""The same transaction driven from Python with python-pam: authenticate (call_end=False,
which also runs acct_mgmt and setcred), open_session, close_session, end.

Once under pam_wrapper (pam_matrix, nothing in /etc) and once against a real temporary
``/etc/pam.d/hookrunner-test-*`` service (Debian's common-* stacks) with a real user made
by useradd and removed afterwards. python-pam runs in a child process (pamrig.python_pam)
so each run loads the libpam it needs.
"""

from __future__ import annotations

import pytest
from harness import Tree, expected_env, missing, rig

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(bool(REASON := missing(files=[rig.PAM_WRAPPER_LIB, rig.PAM_MATRIX])),
                       reason=REASON),
]

PAM_SUCCESS, PAM_AUTH_ERR, PAM_SYSTEM_ERR = 0, 7, 4
ORDER = ["onauth", "onaccount", "onsessionopen", "onsessionclose"]


def test_python_pam_under_pam_wrapper(tree: Tree) -> None:
    tree.hooks_everywhere("10-rec")
    passdb = rig.write_passdb(tree.base / "passdb", [("carol", "pw-carol", "pypam-e2e")])
    service_dir = tree.base / "pam.d"
    rig.write_wrapper_service(service_dir, "pypam-e2e", rig.matrix_service(tree.root, passdb))

    result = rig.python_pam("pypam-e2e", "carol", "pw-carol", rhost="198.51.100.7",
                            ruser="dave", tty="pts/4", service_dir=service_dir)

    assert (result.authenticate, result.open_session, result.close_session, result.end) == (
        PAM_SUCCESS, PAM_SUCCESS, PAM_SUCCESS, PAM_SUCCESS), result
    assert [r.phase for r in tree.records()] == ORDER
    items = {"user": "carol", "service": "pypam-e2e", "rhost": "198.51.100.7", "ruser": "dave",
             "tty": "pts/4"}
    for record in tree.records():
        assert record.env == expected_env(record.phase, "10-rec", tree.root, **items)


def test_python_pam_session_close_failure_is_reported(tree: Tree) -> None:
    tree.hook("onsessionopen", "10-ok")
    tree.hook("onsessionclose", "10-fail", exit_code=2)
    passdb = rig.write_passdb(tree.base / "passdb", [("carol", "pw-carol", "pypam-e2e")])
    service_dir = tree.base / "pam.d"
    rig.write_wrapper_service(service_dir, "pypam-e2e", rig.matrix_service(tree.root, passdb))

    result = rig.python_pam("pypam-e2e", "carol", "pw-carol", service_dir=service_dir)

    assert (result.authenticate, result.open_session) == (PAM_SUCCESS, PAM_SUCCESS), result
    assert result.close_session == PAM_SYSTEM_ERR  # frozen chain: open succeeded, close counts


def real_service_lines(tree: Tree) -> list[str]:
    """Debian's common-* stacks, each followed by its hookrunner line (pam/'s placement)."""
    return rig.unix_service(tree.root, rig.Controls(auth_options=("quiet", "expose_authtok")))


def test_python_pam_against_a_real_service_and_user(tree: Tree, user: rig.User) -> None:
    tree.hooks_everywhere("10-rec")
    tree.hook("onauth", "20-wants-password")
    tree.config('[hook."20-wants-password"]\nauthtok = true\n')
    with rig.pam_service(real_service_lines(tree)) as service:
        result = rig.python_pam(service, user.name, user.password, rhost="192.0.2.44")

    assert (result.authenticate, result.open_session, result.close_session, result.end) == (
        PAM_SUCCESS, PAM_SUCCESS, PAM_SUCCESS, PAM_SUCCESS), result
    assert tree.seen() == [("onauth", "10-rec"), ("onauth", "20-wants-password"),
                           ("onaccount", "10-rec"), ("onsessionopen", "10-rec"),
                           ("onsessionclose", "10-rec")]
    items = {"user": user.name, "service": service, "rhost": "192.0.2.44"}
    for record in tree.records():
        assert record.env == expected_env(record.phase, record.hook, tree.root, **items)
        assert record.stdin == (user.password if record.hook == "20-wants-password" else "")
    assert user.password.rsplit(" ", 1)[-1] not in tree.log_text()
    assert not (rig.PAM_D / service).exists()


def test_wrong_password_runs_no_hook_after_common_auth(tree: Tree, user: rig.User) -> None:
    # The recommended placement: after `@include common-auth` (pam_unix, then requisite
    # pam_deny), an auth hook runs only for a successful authentication.
    tree.hooks_everywhere("10-rec")
    with rig.pam_service(real_service_lines(tree)) as service:
        result = rig.python_pam(service, user.name, "not the password", rhost="192.0.2.44")
    assert result.authenticate == PAM_AUTH_ERR, result
    assert result.open_session is None
    assert tree.seen() == []
