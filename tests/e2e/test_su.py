"""``su`` runs the hooks, on Debian's own su stacks.

The stock /etc/pam.d/su-l (or su) is read, never changed: its lines plus the hookrunner
lines go to a temporary PAM_WRAPPER_SERVICE_DIR, and su runs under pam_wrapper, where the
stock file's ``include su`` / ``@include common-*`` still resolve to /etc/pam.d. As root,
pam_rootok ends the auth stack, so no auth hook runs; account and session hooks do.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Tree, expected_env, missing, rig

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(bool(REASON := missing(tools=["su"], files=[rig.PAM_WRAPPER_LIB])),
                       reason=REASON),
]


@pytest.fixture
def service_dir() -> Iterator[Path]:
    """World-readable: plain `su` keeps the environment, so the user's shell loads
    pam_wrapper too, and pam_wrapper exits unless it can read the service directory."""
    path = Path(tempfile.mkdtemp(prefix="hookrunner-su-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize(("login", "service"), [(True, "su-l"), (False, "su")])
def test_su_runs_account_and_session_hooks(tree: Tree, user: rig.User, service_dir: Path,
                                           login: bool, service: str) -> None:
    tree.hooks_everywhere("10-rec")
    hook_lines = rig.Controls().lines(tree.root, groups=("auth", "account", "session"))
    rig.write_wrapper_service(service_dir, service,
                              rig.debian_stack_with(service, list(hook_lines.values())))

    out = rig.su(user.name, ["id", "-un"], login=login, service_dir=service_dir)

    assert out.returncode == 0, out
    assert out.stdout.strip() == user.name
    assert tree.seen() == [("onaccount", "10-rec"), ("onsessionopen", "10-rec"),
                           ("onsessionclose", "10-rec")]
    for record in tree.records():
        # su's stdin is not a terminal here, so it sets no PAM_TTY.
        assert record.env == expected_env(record.phase, "10-rec", tree.root, user=user.name,
                                          service=service, ruser="root")


def test_a_denying_account_hook_stops_su(tree: Tree, user: rig.User) -> None:
    tree.hook("onaccount", "10-deny", exit_code=1)
    tree.hook("onsessionopen", "10-rec")
    line = rig.Controls(account="required").lines(tree.root, groups=("account",))["account"]
    rig.write_wrapper_service(tree.base / "pam.d", "su-l", rig.debian_stack_with("su-l", [line]))

    out = rig.su(user.name, ["true"], service_dir=tree.base / "pam.d")

    assert out.returncode != 0, out
    assert tree.seen() == [("onaccount", "10-deny")]
