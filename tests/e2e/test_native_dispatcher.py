"""pam_hookrunner.so -> the real dispatcher -> real hooks, in a real libpam (pam_wrapper).

test_native_module.py tests the module with a stand-in dispatcher; this file closes the loop:
the module starts ``/usr/bin/python3 -I -S <repo>/hookrunner/__main__.py run PHASE --msg-fd 3
--ignore-empty --root TREE`` (Debian's interpreter and python3-pluggy, as an installed system
has them) against a root-owned hook tree of recorder hooks and plugin files, and pamtester
drives it under pam_wrapper. Nothing in /etc is written.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import (
    DEBIAN_PLUGGY,
    NATIVE_MODULE,
    Tree,
    build_native_module,
    expected_env,
    gone,
    marker_library,
    missing,
    rig,
)

PYTHON = Path("/usr/bin/python3")
MODULE = NATIVE_MODULE

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(bool(REASON := missing(tools=["pamtester", "gcc", "make"], files=[
        rig.PAM_WRAPPER_LIB, PYTHON, DEBIAN_PLUGGY])), reason=REASON),
]

SERVICE, USER = "hookrunner-native", "alice"
ITEMS = {"user": USER, "service": SERVICE, "rhost": "203.0.113.9", "ruser": "bob",
         "tty": "/dev/pts/9"}
GROUPS = ("auth", "account", "password", "session")
# pamtester operation -> (phase, what pamtester prints on success)
OPS = {
    "authenticate": ("onauth", "successfully authenticated"),
    "acct_mgmt": ("onaccount", "account management done"),
    "chauthtok": ("onpasswd", "authentication token altered successfully"),
    "open_session": ("onsessionopen", "successfully opened a session"),
    "close_session": ("onsessionclose", "session has successfully been closed"),
}

DENY_PLUGIN = '''import hookrunner


@hookrunner.hookimpl
def onaccount(ctx):
    raise hookrunner.Deny("outside office hours")
'''


@pytest.fixture(scope="module", autouse=True)
def built() -> Path:
    return build_native_module()


def line(group: str, tree: Tree, *options: str, control: str = "required") -> str:
    return " ".join([group, control, str(MODULE), f"dispatcher={rig.DISPATCHER}",
                     f"python={PYTHON}", f"root={tree.root}", *options])


def service(tree: Tree, lines: list[str], name: str = SERVICE) -> Path:
    """A pam_wrapper service directory holding ``name``."""
    directory = tree.base / "pam.d"
    rig.write_wrapper_service(directory, name, lines)
    return directory


def every_group(tree: Tree, *options: str, permit: bool = False) -> list[str]:
    """One module line per group (``required``), each followed by pam_permit.so if asked."""
    out = []
    for group in GROUPS:
        out += [line(group, tree, *options)] + ([f"{group} required pam_permit.so"] if permit else [])
    return out


def pamtester(service_dir: Path, *ops: str, name: str = SERVICE, passwords: tuple[str, ...] = (),
              pam_env: dict[str, str] | None = None) -> rig.Outcome:
    return rig.pamtester(service_dir, name, USER, ops, passwords=passwords, rhost=ITEMS["rhost"],
                         tty=ITEMS["tty"], ruser=ITEMS["ruser"], pam_env=pam_env, timeout=30)


@contextlib.contextmanager
def killed_afterwards(tree: Tree) -> Iterator[None]:
    """Whatever the test asserts, no recorded hook process outlives it."""
    try:
        yield
    finally:
        for record in tree.records():
            with contextlib.suppress(ProcessLookupError):
                os.kill(record.pid, signal.SIGKILL)


# --------------------------------------------------------------------------- interpreter


def test_debian_pluggy_imports_under_isolated_python_only_through_ensure_site_path() -> None:
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); "
             "from hookrunner.entrypoints import ensure_site_path; {} import pluggy; "
             "print(pluggy.__file__)")
    argv = [str(PYTHON), "-I", "-S", "-c"]
    ok = rig.run([*argv, probe.format("ensure_site_path();"), str(rig.REPO)], env={})
    assert ok.returncode == 0, ok
    assert ok.stdout.strip() == str(DEBIAN_PLUGGY)
    without = rig.run([*argv, probe.format(""), str(rig.REPO)], env={})  # -S hides it
    assert without.returncode != 0 and "ModuleNotFoundError" in without.stderr


# --------------------------------------------------------------------------- phases and env


def test_every_phase_runs_its_hooks_with_exactly_the_expected_env(tree: Tree) -> None:
    tree.hooks_everywhere("10-first", "20-second")
    out = pamtester(service(tree, every_group(tree)), *OPS)
    assert out.returncode == 0, out
    for _phase, success in OPS.values():
        assert success in out.stdout
    assert tree.seen() == [(phase, hook) for phase, _ in OPS.values()
                           for hook in ("10-first", "20-second")]
    for record in tree.records():
        assert record.env == expected_env(record.phase, record.hook, tree.root, **ITEMS)
        assert record.argv == (record.path,)
        assert record.stdin == ""
        assert record.uid == 0


def test_user_controlled_ld_preload_reaches_neither_dispatcher_nor_hooks(tree: Tree) -> None:
    marker = tree.base / "preloaded"
    lib = marker_library(tree.base, marker)
    canary = rig.run(["/bin/true"], env={"LD_PRELOAD": str(lib)})  # the library does work
    assert canary.returncode == 0 and marker.read_text().strip(), canary
    marker.unlink()

    tree.hooks_everywhere("10-rec")
    pam_env = {"LD_PRELOAD": str(lib), "PYTHONINSPECT": "1", "FOO": "bar"}
    out = pamtester(service(tree, every_group(tree)), *OPS, pam_env=pam_env)
    assert out.returncode == 0, out
    assert [r.phase for r in tree.records()] == [phase for phase, _ in OPS.values()]
    assert not marker.exists(), marker.read_text()
    for record in tree.records():
        assert record.env == expected_env(record.phase, "10-rec", tree.root, **ITEMS)


# --------------------------------------------------------------------------- exit codes


def test_failing_onauth_hook_is_pam_auth_err(tree: Tree) -> None:
    tree.hook("onauth", "10-deny", exit_code=1)
    tree.hook("onauth", "20-never")  # onauth stops at the first failure
    tree.hook("onaccount", "10-never")
    out = pamtester(service(tree, every_group(tree, permit=True)), "authenticate", "acct_mgmt")
    assert out.returncode != 0
    assert "pamtester: Authentication failure" in out.stderr, out  # PAM_AUTH_ERR
    assert "hookrunner:" not in out.stderr  # a denial, not a failure of the module
    assert tree.seen() == [("onauth", "10-deny")]
    assert "onauth.d/10-deny exited with status 1" in tree.log_text()


def test_failing_onaccount_hook_is_pam_perm_denied(tree: Tree) -> None:
    tree.hook("onaccount", "10-deny", exit_code=1)
    out = pamtester(service(tree, every_group(tree, permit=True)), "authenticate", "acct_mgmt")
    assert "successfully authenticated" in out.stdout, out  # onauth is empty: PAM_IGNORE
    assert "account management done" not in out.stdout
    assert "pamtester: Permission denied" in out.stderr  # PAM_PERM_DENIED
    assert "System error" not in out.stderr
    assert tree.seen() == [("onaccount", "10-deny")]


def test_empty_phase_is_pam_ignore(tree: Tree) -> None:
    """No hook: PAM_IGNORE. Alone in a stack the module cannot decide (libpam fails it);
    followed by pam_permit.so it leaves the decision to pam_permit."""
    tree.hook("onsessionopen", "10-not-executable").chmod(0o644)  # skipped: still empty
    alone = service(tree, every_group(tree), "alone")
    with_permit = service(tree, every_group(tree, permit=True), "permit")
    for op, (_phase, success) in OPS.items():
        out = pamtester(alone, op, name="alone")
        assert out.returncode != 0 and success not in out.stdout, (op, out)
        out = pamtester(with_permit, op, name="permit")
        assert out.returncode == 0 and success in out.stdout, (op, out)
    assert tree.seen() == []
    tree.hook("onaccount", "10-fail", exit_code=1)  # the same stack does not hide a failure
    assert pamtester(with_permit, "acct_mgmt", name="permit").returncode != 0


# --------------------------------------------------------------------------- messages


def test_plugin_deny_reason_reaches_the_user_as_an_error(tree: Tree) -> None:
    rig.write_hook(tree.root, "onaccount", "50-hours.py", DENY_PLUGIN, mode=0o644)
    tree.hook("onaccount", "60-never")
    svc = service(tree, every_group(tree, permit=True))
    out = pamtester(svc, "acct_mgmt")
    assert out.returncode != 0
    assert "account management done" not in out.stdout
    assert "pamtester: Permission denied" in out.stderr, out
    assert "outside office hours" in out.stderr.splitlines()  # pam_error: its own line, stderr
    assert "outside office hours" not in out.stdout
    assert tree.seen() == []  # onaccount stops at the denial
    assert "onaccount.d/50-hours denied: outside office hours" in tree.log_text()
    silent = pamtester(svc, "acct_mgmt(PAM_SILENT)")
    assert "pamtester: Permission denied" in silent.stderr, silent
    assert "outside office hours" not in silent.stdout + silent.stderr


def test_show_output_hook_reaches_the_user_and_others_do_not(tree: Tree) -> None:
    tree.hook("onsessionopen", "10-loud", say="Welcome from 10-loud\nsecond line")
    tree.hook("onsessionopen", "20-quiet", say="internal chatter of 20-quiet")
    tree.config('[hook."10-loud"]\nshow_output = true\n')
    out = pamtester(service(tree, every_group(tree)), "open_session")
    assert out.returncode == 0, out
    assert "Welcome from 10-loud\nsecond line\n" in out.stdout  # pam_info: stdout
    assert "Welcome" not in out.stderr
    assert "internal chatter" not in out.stdout + out.stderr
    assert "internal chatter of 20-quiet" in tree.log_text()


# --------------------------------------------------------------------------- password


def test_expose_authtok_gives_the_password_to_the_opted_in_hook_only(tree: Tree) -> None:
    password = "pä ss:wörd $(id) 'x\" " + os.urandom(6).hex()
    marker = password.rsplit(" ", 1)[1]
    tree.hook("onauth", "10-dump")
    tree.hook("onauth", "20-wants-password")
    tree.hook("onauth", "30-after")
    tree.hook("onsessionopen", "20-wants-password")  # authtok is for onauth/onpasswd only
    tree.config('[hook."20-wants-password"]\nauthtok = true\n')
    lines = [line("auth", tree, "expose_authtok"), line("session", tree)]
    out = pamtester(service(tree, lines), "authenticate", "open_session", passwords=(password,))
    assert out.returncode == 0, out
    stdin = {(r.phase, r.hook): r.stdin for r in tree.records()}
    assert stdin == {("onauth", "10-dump"): "", ("onauth", "20-wants-password"): password,
                     ("onauth", "30-after"): "", ("onsessionopen", "20-wants-password"): ""}
    for record in tree.records():
        assert marker not in json.dumps([record.env, record.argv], ensure_ascii=False)
    assert tree.log_text() and marker not in tree.log_text()
    assert marker not in out.stdout + out.stderr


# --------------------------------------------------------------------------- profile


def test_pam_auth_update_profile_lines_run_every_phase(tree: Tree) -> None:
    """pam-configs/hookrunner-native's lines, as pam-auth-update would write them into
    common-*, with only the module's path and this test's tree added."""
    profile = (rig.REPO / "pam" / "pam-configs" / "hookrunner-native").read_text()
    lines, group = [], ""
    for text in profile.splitlines():
        if text.endswith(":") and text[:-1].lower() in GROUPS:
            group = text[:-1].lower()
        elif text.startswith("\t") and group:
            control, module, *options = text.split()
            assert module == "pam_hookrunner.so"
            lines.append(line(group, tree, *options, control=control))
            group = ""
    assert [ln.split()[:2] for ln in lines] == [[g, "optional"] for g in
                                                 ("auth", "account", "session", "password")]
    tree.hooks_everywhere("10-rec")
    out = pamtester(service(tree, lines), *OPS)
    assert out.returncode == 0, out
    assert [r.phase for r in tree.records()] == [phase for phase, _ in OPS.values()]


# --------------------------------------------------------------------------- timeouts


def test_dispatcher_per_hook_timeout_holds_below_the_module_timeout(tree: Tree) -> None:
    tree.config("timeout = 1\nkill_grace = 0.5\n")
    tree.hook("onsessionopen", "10-sleeper", sleep_forever=True)
    tree.hook("onsessionopen", "20-after")  # session phases go on after a failure
    with killed_afterwards(tree):
        out = pamtester(service(tree, [line("session", tree, "timeout=20")]), "open_session")
        assert out.returncode != 0
        # the dispatcher's verdict (exit 1: PAM_SESSION_ERR), not the module's timeout
        assert "Cannot make/remove an entry for the specified session" in out.stderr, out
        assert 1.0 <= out.seconds < 6, out.seconds
        assert tree.seen() == [("onsessionopen", "10-sleeper"), ("onsessionopen", "20-after")]
        assert gone(tree.records()[0].pid)
    assert "onsessionopen.d/10-sleeper timed out after 1 s" in tree.log_text()


def test_module_timeout_holds_when_the_dispatcher_would_wait_longer(tree: Tree) -> None:
    tree.config("timeout = 30\nphase_timeout = 60\n")
    tree.hook("onsessionopen", "10-sleeper", sleep_forever=True)
    with killed_afterwards(tree):
        out = pamtester(service(tree, [line("session", tree, "timeout=2")]), "open_session")
        assert out.returncode != 0
        assert "hookrunner: onsessionopen failed: dispatcher timed out after 2 s" in out.stderr
        assert "pamtester: System error" in out.stderr, out  # PAM_SYSTEM_ERR
        assert 2.0 <= out.seconds < 2 + 1 + 2, out.seconds  # timeout + SIGKILL grace + slack
        assert tree.seen() == [("onsessionopen", "10-sleeper")]


def test_module_timeout_leaves_no_hook_running(tree: Tree) -> None:
    tree.config("timeout = 30\nphase_timeout = 60\n")
    tree.hook("onsessionopen", "10-sleeper", sleep_forever=True)
    with killed_afterwards(tree):
        out = pamtester(service(tree, [line("session", tree, "timeout=1")]), "open_session")
        assert "dispatcher timed out after 1 s" in out.stderr, out
        [record] = tree.records()
        assert rig.wait_for(lambda: gone(record.pid), timeout=3)

