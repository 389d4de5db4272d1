"""``runas``: a hook as another user, for real (useradd, a supplementary group, real setuid).

What must hold: the hook has exactly that user's uid, gid and groups (initgroups, none of
root's), HOME/USER/LOGNAME/SHELL of that user and nothing else added to the allowlist; an
unknown user fails that hook with a clear reason; the hook can neither signal the
dispatcher nor outlive its timeout, even from a process that left its session.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from _hardening import Tree, alive, kill_quietly, pids_of_uid, read_pid
from hooktree import environ

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "pam"))
import pamrig

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="runas needs root (useradd, setuid)")

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@pytest.fixture(scope="module")
def group() -> Iterator[str]:
    name = f"hrg-{secrets.token_hex(4)}"
    subprocess.run(["groupadd", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["groupdel", name], check=False)


@pytest.fixture(scope="module")
def user(group: str) -> Iterator[pamrig.User]:
    with pamrig.temp_user(shell="/bin/bash") as u:
        subprocess.run(["usermod", "-aG", group, u.name], check=True)
        yield u
        kill_quietly(*pids_of_uid(u.uid))


IDENT = """#!/bin/sh
{{ id -u; id -g; id -G; }} > {out}/ident
cat /proc/$$/environ > {out}/environ
"""


@pytest.mark.parametrize("runas", ["name", "@user"])
def test_identity_and_environment_of_that_user(t: Tree, user: pamrig.User, group: str,
                                               runas: str) -> None:
    import grp

    t.hook("onsessionopen", "10-who", IDENT.format(out=t.out))
    t.config(f'[hook."10-who"]\nrunas = "{user.name if runas == "name" else "@user"}"\n')
    r = t.run("run", "onsessionopen", env={"PAM_USER": user.name, "PAM_SERVICE": "sshd",
                                           "PAM_RHOST": "203.0.113.9", "LD_PRELOAD": "x.so"})
    assert r.returncode == 0, r.stderr
    uid, gid, groups = (t.out / "ident").read_text().splitlines()
    assert (int(uid), int(gid)) == (user.uid, user.gid)
    assert sorted(map(int, groups.split())) == sorted(
        {user.gid, grp.getgrnam(group).gr_gid})  # initgroups: its own, none of root's
    assert environ(t.out / "environ") == {
        b"PAM_USER": user.name.encode(), b"PAM_SERVICE": b"sshd", b"PAM_RHOST": b"203.0.113.9",
        b"PAM_TYPE": b"open_session", b"HOOKRUNNER_PHASE": b"onsessionopen",
        b"HOOKRUNNER_HOOK": b"10-who", b"HOOKRUNNER_ROOT": str(t.root).encode(),
        b"PATH": PATH.encode(), b"HOME": str(user.home).encode(), b"USER": user.name.encode(),
        b"LOGNAME": user.name.encode(), b"SHELL": b"/bin/bash"}


@pytest.mark.parametrize(("runas", "pam_user", "reason"), [
    ("hrt-nosuchuser", "alice", b'runas: no such user hrt-nosuchuser'),
    ("@user", "hrt-nosuchuser", b"runas: no such user hrt-nosuchuser"),
    ("@user", None, b"runas @user: PAM_USER is not set"),
])
def test_unknown_user_fails_that_hook_with_a_reason(t: Tree, runas: str, pam_user: str | None,
                                                   reason: bytes) -> None:
    t.hook("onsessionopen", "10-as-nobody-known", f"#!/bin/sh\ntouch {t.out}/10-ran\n")
    t.hook("onsessionopen", "20-ok", f"#!/bin/sh\ntouch {t.out}/20-ran\n")
    t.config(f'[hook."10-as-nobody-known"]\nrunas = "{runas}"\n')
    env = {"PAM_SERVICE": "sshd"} | ({"PAM_USER": pam_user} if pam_user else {})
    r = t.run("run", "onsessionopen", env=env)
    assert r.returncode == 1  # that hook failed; the session phase runs the others
    assert not (t.out / "10-ran").exists()
    assert (t.out / "20-ran").exists()
    failed = [line for line in t.log_lines() if b"10-as-nobody-known" in line]
    assert len(failed) == 1 and reason in failed[0] and b"outcome=error" in failed[0]


def test_cannot_signal_or_read_the_dispatcher(t: Tree, user: pamrig.User) -> None:
    t.hook("onsessionopen", "10-hostile", f"""#!/bin/sh
kill -TERM $PPID; echo $? > {t.out}/kill-rc
cat /proc/$PPID/environ > /dev/null 2>&1; echo $? > {t.out}/environ-rc
kill -KILL -1   # every process this user may signal (Linux spares the caller)
""")
    t.hook("onsessionopen", "20-after", f"#!/bin/sh\ntouch {t.out}/20-ran\n")
    t.config(f'[hook."10-hostile"]\nrunas = "{user.name}"\n')
    r = t.run("run", "onsessionopen", env={"PAM_USER": user.name})
    assert (t.out / "kill-rc").read_text().strip() != "0"  # EPERM: different uid
    assert (t.out / "environ-rc").read_text().strip() != "0"
    assert r.returncode == 0, r.stderr  # the dispatcher lived on and ran the next hook
    assert (t.out / "20-ran").exists()


ESCAPE = """#!/bin/sh
# double fork + setsid: a grandchild in its own session, re-parented when its parent exits
( setsid sh -c 'echo $$ > {out}/daemon.pid; exec sleep 1000' < /dev/null > /dev/null 2>&1 & )
while [ ! -s {out}/daemon.pid ]; do sleep 0.01; done
{tail}
"""


@pytest.mark.parametrize("runas", [True, False], ids=["runas", "root"])
def test_no_process_outlives_a_timed_out_hook(t: Tree, user: pamrig.User, runas: bool) -> None:
    t.hook("onsessionopen", "10-escape", ESCAPE.format(out=t.out, tail="exec sleep 1000"))
    t.config('kill_grace = 0.2\n[hook."10-escape"]\ntimeout = 1\n'
             + (f'runas = "{user.name}"\n' if runas else ""))
    r = t.run("run", "onsessionopen", env={"PAM_USER": user.name}, timeout=30)
    daemon = read_pid(t.out / "daemon.pid")
    try:
        assert daemon is not None
        assert r.returncode == 1
        assert b"10-escape timed out after 1 s" in b"".join(t.log_lines())
        assert not alive(daemon), "the setsid grandchild survived the timeout"
        if runas:
            assert pids_of_uid(user.uid) == []
    finally:
        kill_quietly(*([daemon] if daemon else []))


def test_a_hook_that_exits_in_time_may_leave_a_daemon(t: Tree, user: pamrig.User) -> None:
    """Defined behaviour, as with run-parts and pam_exec: only a timeout kills leftovers."""
    t.hook("onsessionopen", "10-daemon", ESCAPE.format(out=t.out, tail="exit 0"))
    t.config(f'[hook."10-daemon"]\nrunas = "{user.name}"\n')
    r = t.run("run", "onsessionopen", env={"PAM_USER": user.name})
    daemon = read_pid(t.out / "daemon.pid")
    try:
        assert r.returncode == 0 and daemon is not None
        assert alive(daemon)
    finally:
        kill_quietly(*([daemon] if daemon else []))


def test_at_user_is_whoever_pam_user_names_even_root(t: Tree) -> None:
    """Documented hazard (SECURITY.md): "@user" follows PAM_USER, which in onauth is the name
    typed before authentication: it can name root or any system account."""
    t.hook("onauth", "10-who", IDENT.format(out=t.out))
    t.config('[hook."10-who"]\nrunas = "@user"\n')
    r = t.run("run", "onauth", env={"PAM_USER": "root"})
    assert r.returncode == 0, r.stderr
    assert (t.out / "ident").read_text().splitlines()[0] == "0"


# -- runas on a Python plugin: refused, as that hook's failure (never run as root, never skipped)

PLUGIN = """import os
import hookrunner

@hookrunner.hookimpl
def {phase}(ctx):
    with open("{out}/{name}-ran", "w") as f:
        f.write(str(os.getuid()))
    raise hookrunner.Deny("not from here")
"""


def plugin_file(t: Tree, phase: str, name: str) -> Path:
    return t.hook(phase, f"{name}.py", PLUGIN.format(phase=phase, out=t.out, name=name), 0o644)


def test_a_deny_plugin_with_runas_fails_closed(t: Tree) -> None:
    """onaccount stops at the first failure: the refused plugin denies, as it would have."""
    plugin_file(t, "onaccount", "10-deny")
    t.hook("onaccount", "20-after", f"#!/bin/sh\ntouch {t.out}/20-ran\n")
    t.config('[hook."10-deny"]\nrunas = "nobody"\n')
    r = t.run("run", "onaccount", env={"PAM_USER": "alice", "PAM_SERVICE": "sshd"})
    assert r.returncode == 1, r.stderr
    assert not (t.out / "10-deny-ran").exists()  # not run at all: not as root, not as nobody
    assert not (t.out / "20-ran").exists()
    [record] = [line for line in t.log_lines() if b"10-deny" in line]
    assert (b"onaccount.d/10-deny not run: a Python plugin cannot honour runas = nobody"
            in record), record
    assert b"outcome=error" in record


@pytest.mark.parametrize("optional", [False, True])
def test_a_session_plugin_with_runas_fails_that_hook_only(t: Tree, optional: bool) -> None:
    plugin_file(t, "onsessionopen", "10-as-user")
    t.hook("onsessionopen", "20-after", f"#!/bin/sh\ntouch {t.out}/20-ran\n")
    t.config('[hook."10-as-user"]\nrunas = "@user"\n' + ("optional = true\n" if optional else ""))
    r = t.run("run", "onsessionopen", env={"PAM_USER": "alice"})
    assert r.returncode == (0 if optional else 1), r.stderr
    assert not (t.out / "10-as-user-ran").exists()
    assert (t.out / "20-ran").exists()
    [record] = [line for line in t.log_lines() if b"10-as-user" in line]
    assert b"cannot honour runas = @user" in record and b"outcome=error" in record  # even optional


def test_check_and_list_report_a_plugin_with_runas(t: Tree) -> None:
    path = plugin_file(t, "onaccount", "10-deny")
    t.hook("onaccount", "20-exec", "#!/bin/sh\nexit 0\n")
    t.config('[hook."10-deny"]\nrunas = "nobody"\n[hook."20-exec"]\nrunas = "nobody"\n')
    (t.base / "pam.d").mkdir()
    r = t.run("check", "--pam-dir", t.base / "pam.d")
    assert r.returncode == 1, r.stderr
    assert r.stdout.decode().splitlines() == [
        f"{path}: onaccount.d/10-deny: fails: not run: a Python plugin cannot honour "
        "runas = nobody (it runs inside the dispatcher, as root); make it an executable hook, "
        "or drop runas"]
    r = t.run("list", "onaccount", "--json")
    rows = {row["name"]: (row["action"], row["reason"]) for row in json.loads(r.stdout)}
    assert rows["10-deny"][0] == "run" and rows["10-deny"][1].startswith("fails: not run: ")
    assert rows["20-exec"] == ("run", "")  # an executable with runas is fine
