"""Setuid callers: su, passwd, chsh and chfn run PAM with the caller's real uid and euid 0.

pam_wrapper cannot preload into a setuid program (AT_SECURE), so these tests use the real
libpam: a temporary ``/etc/pam.d/hookrunner-test-*`` service, a setuid-root copy of pamtester
in a root-owned 0755 directory, run by an unprivileged user through ``setpriv``; and the real
``su``, run by a real non-root user, with its stack bind-mounted in a private mount namespace
(the stock /etc/pam.d/su-l is never changed on the host).

The pam_exec lines here deliberately lack ``seteuid``: the dispatcher must become all root
by itself (defence in depth), and pam_hookrunner.so does it in its child before exec.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import NATIVE_MODULE, Tree, build_native_module, missing, rig

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: setuid binaries, /etc/pam.d"),
    pytest.mark.skipif(bool(REASON := missing(tools=["pamtester", "setpriv", "unshare", "su",
                                                     "gcc", "make"])), reason=REASON),
]

NOBODY = 65534
MODULE = NATIVE_MODULE
SETPRIV_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


@pytest.fixture(scope="module")
def native() -> Path:
    return build_native_module()


@pytest.fixture
def setuid_pamtester() -> Iterator[Path]:
    """A setuid-root copy of pamtester in a root-owned 0755 directory that nobody can reach
    (tmp_path lies below pytest's 0700 directory)."""
    directory = Path(tempfile.mkdtemp(prefix="hookrunner-setuid-", dir="/var/tmp"))
    try:
        directory.chmod(0o755)
        binary = directory / "pamtester"
        shutil.copy(shutil.which("pamtester") or "/usr/bin/pamtester", binary)
        os.chown(binary, 0, 0)
        binary.chmod(0o4755)
        yield binary
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def who_hook(out: Path, go: Path) -> str:
    """Writes `ruid euid rgid egid groups dispatcher-pid`, then waits until the test says go
    (a FIFO): meanwhile the test looks at the dispatcher and tries to signal it."""
    return f"""#!/bin/sh
printf '%s %s %s %s [%s] %s\\n' "$(id -ru)" "$(id -u)" "$(id -rg)" "$(id -g)" "$(id -G)" "$PPID" > {out}.tmp
mv {out}.tmp {out}
read go < {go}
exit 0
"""


def release(fifo: Path) -> None:
    """Let the who hook go on, if it still waits (never block on a FIFO nobody reads)."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:  # ENXIO: no reader, the hook is gone
        return
    try:
        os.write(fd, b"go\n")
    finally:
        os.close(fd)


def deny_hook(deny_list: Path) -> str:
    """The usual shape of a deny hook, and its usual weakness: a list it cannot read denies
    nobody. As the caller (not root) it cannot read the 0600 list, and fails open."""
    return f"""#!/bin/sh
if grep -qxF -- "$PAM_USER" {deny_list}; then
    echo "denied by list"
    exit 1
fi
exit 0
"""


def deny_list(tree: Tree, *names: str) -> Path:
    path = tree.base / "deny.list"
    path.write_text("".join(f"{n}\n" for n in names))
    os.chown(path, 0, 0)
    path.chmod(0o600)
    return path


def status_ids(pid: int) -> tuple[str, str, str]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = " ".join(value.split())
    return fields["Uid"], fields["Gid"], fields["Groups"]


def try_signal_as_nobody(pid: int) -> str:
    """What kill(pid, 0) says to an unprivileged caller: 'EPERM' or 'allowed'."""
    probe = ("import os, sys\ntry:\n    os.kill(int(sys.argv[1]), 0)\n"
             "except PermissionError:\n    print('EPERM')\nelse:\n    print('allowed')\n")
    out = subprocess.run([*SETPRIV_NOBODY, sys.executable, "-I", "-S", "-c", probe, str(pid)],
                         capture_output=True, text=True, timeout=30, check=True)
    return out.stdout.strip()


def auth_line(kind: str, tree: Tree) -> str:
    if kind == "pam_exec":  # no seteuid: the dispatcher's own defence is what is tested
        return rig.exec_line("auth", "required", tree.root, "onauth")
    return (f"auth required {MODULE} dispatcher={rig.DISPATCHER} python={rig.default_python()} "
            f"root={tree.root}")


@pytest.mark.parametrize("kind", ["pam_exec", "native"])
def test_setuid_caller_runs_hooks_as_root_and_cannot_signal_them(
        tree: Tree, user: rig.User, setuid_pamtester: Path, native: Path, kind: str) -> None:
    out, go = tree.base / "who.out", tree.base / "go.fifo"
    os.mkfifo(go, 0o600)
    rig.write_hook(tree.root, "onauth", "10-who", who_hook(out, go))
    rig.write_hook(tree.root, "onauth", "20-deny", deny_hook(deny_list(tree, user.name)))
    lines = [auth_line(kind, tree), "auth required pam_permit.so",
             "account required pam_permit.so"]
    with rig.pam_service(lines, tag="setuid-") as service:
        caller = subprocess.Popen([*SETPRIV_NOBODY, str(setuid_pamtester), service, user.name,
                                   "authenticate"], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            assert rig.wait_for(out.exists, timeout=30), "the who hook did not run"
            ruid, euid, rgid, egid, groups, dispatcher = out.read_text().split(" ", 5)[:6]
            pid = int(dispatcher)
            uid_line, gid_line, groups_line = status_ids(pid)
            signal_answer = try_signal_as_nobody(pid)
        finally:
            release(go)
        output, _ = caller.communicate(timeout=60)

    # The hook (dash, which drops to the real uid when it differs) ran as root, in root's group.
    assert (ruid, euid, rgid, egid) == ("0", "0", "0", "0"), output
    assert groups == "[0]"
    # The dispatcher: every uid and gid 0, root's groups; the caller cannot signal it.
    assert uid_line == "0 0 0 0"
    assert gid_line == "0 0 0 0"
    assert groups_line == "0"
    assert signal_answer == "EPERM"
    # The deny hook could read its 0600 list: the login is refused.
    assert caller.returncode != 0, output
    # pam_exec turns any failure into PAM_SYSTEM_ERR; the native module says PAM_AUTH_ERR.
    assert (b"System error" if kind == "pam_exec" else b"Authentication failure") in output
    assert "20-deny exited with status 1" in tree.log_text()


@pytest.fixture
def su_users() -> Iterator[tuple[rig.User, rig.User]]:
    with rig.temp_user(prefix="hrc-") as caller, rig.temp_user(prefix="hrt-") as target:
        yield caller, target


SU_BIND = """import os, subprocess, sys
subprocess.run(["mount", "--bind", sys.argv[1], "/etc/pam.d/su-l"], check=True)
os.execvp(sys.argv[2], sys.argv[2:])
"""


def real_su(stack: Path, caller: rig.User, target: rig.User) -> subprocess.CompletedProcess[str]:
    """``su - TARGET -c 'id -u'`` run by CALLER (not root), with ``stack`` as /etc/pam.d/su-l in
    a private mount namespace; the target's password on stdin."""
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", sys.executable, "-I", "-S", "-c",
         SU_BIND, str(stack), "setpriv", f"--reuid={caller.uid}", f"--regid={caller.gid}",
         "--init-groups", "su", "-", target.name, "-c", "id -u"],
        input=target.password + "\n", capture_output=True, text=True, timeout=60)


def test_real_su_by_a_non_root_user_runs_hooks_as_root(tree: Tree,
                                                       su_users: tuple[rig.User, rig.User]) -> None:
    caller, target = su_users
    out = tree.base / "who.out"
    rig.write_hook(tree.root, "onaccount", "10-who", f"""#!/bin/sh
printf '%s %s\\n' "$(id -ru)" "$PAM_RUSER" >> {out}
""")
    listed = deny_list(tree)
    rig.write_hook(tree.root, "onaccount", "20-deny", deny_hook(listed))
    stack = tree.base / "su-l"
    stack.write_text("\n".join([
        "auth required pam_unix.so",
        rig.exec_line("account", "required", tree.root, "onaccount"),
        "account required pam_unix.so",
        "session required pam_unix.so",
    ]) + "\n")

    allowed = real_su(stack, caller, target)
    assert allowed.returncode == 0, allowed
    assert allowed.stdout.split() == [str(target.uid)]

    listed.write_text(f"{target.name}\n")
    denied = real_su(stack, caller, target)
    assert denied.returncode != 0, denied
    assert str(target.uid) not in denied.stdout.split()

    # su's caller is the ruser; both times the hook ran with real uid 0.
    assert out.read_text().splitlines() == [f"0 {caller.name}", f"0 {caller.name}"]
    assert tree.log_text().count("20-deny exited with status 1") == 1
