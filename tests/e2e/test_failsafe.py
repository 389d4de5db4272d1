"""The README's "Fail-safe defaults" table, checked row by row through a real libpam.

pamtester under pam_wrapper, pam_matrix as the password database, and one hookrunner line
per management group through pam_exec.so (``quiet``). Each row is a fault of the
dispatcher or of a hook; each column the control of the line under test (``auth`` or
``session``; the other lines stay ``optional`` with the same fault). The outcome is the
login: does authenticate (or open_session) succeed?
"""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import SyslogSink, Tree, missing, rig

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(bool(REASON := missing(tools=["pamtester"], files=[
        rig.PAM_WRAPPER_LIB, rig.PAM_MATRIX])), reason=REASON),
]

USER, PASSWORD, SERVICE = "alice", "s3cret-matrix", "hookrunner-failsafe"
OPS = ("authenticate", "acct_mgmt", "open_session", "close_session")
PROCEEDS = {"auth": "successfully authenticated", "session": "successfully opened a session"}

# fault -> does a `required` line deny the login?
FAULTS = {
    "python missing": True,  # the interpreter on the PAM line does not exist
    "dispatcher missing": True,  # .../hookrunner/__main__.py removed
    "config broken": True,  # exit 3
    "hook fails": True,  # exit 1
    "hook times out": True,  # a failure too
    "hook refused": False,  # group-writable: skipped with a warning, so not a denial
    "hook not executable": False,  # skipped, as with run-parts
}


def service(tree: Tree, fault: str, controls: rig.Controls) -> Path:
    python = Path("/nonexistent/python3") if fault == "python missing" else None
    passdb = rig.write_passdb(tree.base / "passdb", [(USER, PASSWORD, SERVICE)])
    lines = rig.matrix_service(tree.root, passdb, controls, python=python)
    if fault == "dispatcher missing":
        lines = [line.replace(str(rig.DISPATCHER), "/nonexistent/hookrunner/__main__.py")
                 for line in lines]
    service_dir = tree.base / "pam.d"
    rig.write_wrapper_service(service_dir, SERVICE, lines)
    return service_dir


def inject(tree: Tree, fault: str) -> None:
    tree.hooks_everywhere("10-ok")
    for phase in rig.PHASE_NAMES:
        if fault == "hook fails":
            tree.hook(phase, "20-deny", exit_code=1)
        elif fault == "hook times out":
            tree.hook(phase, "20-deny", sleep_forever=True)
        elif fault == "hook refused":
            tree.hook(phase, "20-deny", exit_code=1).chmod(0o775)
        elif fault == "hook not executable":
            tree.hook(phase, "20-deny", exit_code=1).chmod(0o644)
    if fault == "hook times out":
        tree.config("timeout = 0.5\n")
    if fault == "config broken":
        rig.write_config(tree.root, "timeout = 10\nphase_timeout = ]\n")


@pytest.mark.parametrize("group", ["auth", "session"])
@pytest.mark.parametrize("control", ["optional", "required"])
@pytest.mark.parametrize("fault", list(FAULTS))
def test_fail_safe_defaults(tree: Tree, fault: str, control: str, group: str) -> None:
    inject(tree, fault)
    controls = rig.Controls(**{group: control})  # type: ignore[arg-type]
    out = rig.pamtester(service(tree, fault, controls), SERVICE, USER, OPS,
                        passwords=[PASSWORD], rhost="203.0.113.9")
    denied = control == "required" and FAULTS[fault]
    assert (PROCEEDS[group] in out.stdout) is not denied, out
    assert (out.returncode == 0) is not denied, out
    if fault in ("python missing", "dispatcher missing"):
        # pam_exec logs the failure (pam_syslog; pam_wrapper echoes it on stderr)
        assert "failed: exit code 2" in out.stderr, out
    if fault == "config broken":
        assert "failed: exit code 3" in out.stderr, out
        assert not tree.records()  # no hook runs with a broken config
    if fault in ("hook refused", "hook not executable"):
        assert all(r.hook == "10-ok" for r in tree.records())


def test_broken_config_is_one_line_in_syslog_per_run(tree: Tree, syslog: SyslogSink) -> None:
    inject(tree, "config broken")
    config = tree.root / "etc/security/hookrunner.toml"
    out = rig.pamtester(service(tree, "config broken", rig.Controls()), SERVICE, USER, OPS,
                        passwords=[PASSWORD], syslog=syslog)
    assert out.returncode == 0, out  # optional everywhere: the login proceeds
    # The transaction's own /dev/log: pam_matrix's records and the dispatchers', nobody else's.
    ours = [m for m in syslog.messages() if b"hookrunner[" in m]
    assert len(ours) == len(OPS)  # one per dispatcher run (auth, account, open, close)
    for message in ours:
        assert b"hookrunner[" in message and f"{config}:2: ".encode() in message
        assert b"\n" not in message.rstrip(b"\n")
