"""pam_hookrunner.so ``socket=`` -> ``hookrunner serve``, end to end in a real libpam
(pam_wrapper, pamtester), against root-owned trees of recorder hooks.

The same transactions run through both paths (``nosocket``: the module execs the dispatcher
as before; ``socket=``: the warm daemon) and must give the same hooks the same environment,
the same outcomes, messages and PAM codes. Then the faults: a killed or stopped daemon, an
unsafe socket, 200 logins at once. A hook never runs twice, nor zero times.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from harness import DEBIAN_PLUGGY, NATIVE_MODULE, Tree, build_native_module, expected_env, missing, rig
from servetool import SYSTEM_PYTHON, Daemon, served, socket_dir, wait_for

MODULE = NATIVE_MODULE

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(bool(REASON := missing(tools=["pamtester", "gcc", "make"], files=[
        rig.PAM_WRAPPER_LIB, SYSTEM_PYTHON, DEBIAN_PLUGGY])), reason=REASON),
]

SERVICE, USER = "hookrunner-serve", "alice"
ITEMS = {"user": USER, "service": SERVICE, "rhost": "203.0.113.9", "ruser": "bob",
         "tty": "/dev/pts/9"}
GROUPS = ("auth", "account", "password", "session")
OPS = {"authenticate": "onauth", "acct_mgmt": "onaccount", "chauthtok": "onpasswd",
       "open_session": "onsessionopen", "close_session": "onsessionclose"}
PATHS = ("exec", "socket")

# Records which process started it: the exec'd dispatcher (`run`) or the daemon (`serve`).
# One line, one write (O_APPEND): concurrent hooks cannot interleave.
WHERE = ("#!/bin/sh\nline=\"$PAM_USER $(tr '\\0' ' ' < /proc/$PPID/cmdline)\"\n"
         "printf '%s\\n' \"$line\" >> {out}\n")


@pytest.fixture(scope="module", autouse=True)
def built() -> Path:
    return build_native_module()


@pytest.fixture(autouse=True)
def warnings_on_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    """pam_wrapper prints the module's pam_syslog records from LOG_WARNING on (1: WARN)."""
    monkeypatch.setenv("PAM_WRAPPER_DEBUGLEVEL", "1")


@pytest.fixture
def daemon() -> Iterator[Daemon]:
    with served(python=SYSTEM_PYTHON) as d:
        yield d


def line(group: str, tree: Tree, path: str, sock: Path | None, *options: str,
         dispatcher: Path = rig.DISPATCHER) -> str:
    how = ["nosocket"] if path == "exec" else [f"socket={sock}"]
    return " ".join([group, "required", str(MODULE), f"dispatcher={dispatcher}",
                     f"python={SYSTEM_PYTHON}", f"root={tree.root}", *how, *options])


def service(tree: Tree, lines: list[str], name: str = SERVICE) -> Path:
    directory = tree.base / "pam.d"
    rig.write_wrapper_service(directory, name, lines)
    return directory


def pamtester(service_dir: Path | None, *ops: str, user: str = USER, name: str = SERVICE,
              passwords: tuple[str, ...] = (), timeout: float = 60) -> rig.Outcome:
    return rig.pamtester(service_dir, name, user, ops, passwords=passwords, rhost=ITEMS["rhost"],
                         tty=ITEMS["tty"], ruser=ITEMS["ruser"], timeout=timeout)


def where(tree: Tree) -> list[tuple[str, str]]:
    """(user, 'run' or 'serve') of every WHERE hook run."""
    path = tree.base / "where"
    if not path.exists():
        return []
    out = []
    for text in path.read_text().splitlines():
        user, cmd = text.split(" ", 1)
        out.append((user, "serve" if " serve" in cmd else "run" if " run " in cmd else cmd))
    return out


def log_lines(tree: Tree) -> list[str]:
    """The dispatcher's records without time stamp, PID and duration."""
    out = []
    for text in tree.log_text().splitlines():
        record = text.split("]: ", 1)[1]
        out.append(record.split(" (", 1)[0] + " " + record.rsplit(") ", 1)[-1])
    return out


# --------------------------------------------------------------------------- the same, both ways

@pytest.mark.parametrize("path", PATHS)
def test_every_phase_same_hooks_environment_outcomes_and_logs(tree: Tree, daemon: Daemon,
                                                              path: str) -> None:
    """Through the daemon the exec'd dispatcher does not exist (dispatcher= names nothing),
    so nothing can have fallen back: both columns are what they claim."""
    tree.hooks_everywhere("10-first", "20-second")
    tree.config('pass_env = ["LC_CTYPE", "LANG", "HOME"]\n')
    lines = [line(g, tree, path, daemon.socket,
                  dispatcher=rig.DISPATCHER if path == "exec" else tree.base / "absent.py")
             for g in GROUPS]
    out = pamtester(service(tree, lines), *OPS)
    assert out.returncode == 0, out
    assert tree.seen() == [(phase, hook) for phase in OPS.values() for hook in ("10-first", "20-second")]
    for record in tree.records():
        env = expected_env(record.phase, record.hook, tree.root, **ITEMS)
        env["LC_CTYPE"] = "C.UTF-8"  # pass_env: the exec'd interpreter's own locale coercion
        assert record.env == env
        assert (record.argv, record.stdin, record.uid) == ((record.path,), "", 0)
    assert [ln.split(" user=")[0] for ln in log_lines(tree)] == [
        f"{phase}.d/{hook} exited with status 0" for phase in OPS.values()
        for hook in ("10-first", "20-second")]


@pytest.mark.parametrize("path", PATHS)
def test_denials_messages_and_codes(tree: Tree, daemon: Daemon, path: str) -> None:
    tree.hook("onauth", "10-loud", say="Welcome from 10-loud")
    tree.hook("onauth", "20-deny", exit_code=1)
    rig.write_hook(tree.root, "onaccount", "50-hours.py", 'import hookrunner\n\n\n'
                   '@hookrunner.hookimpl\ndef onaccount(ctx):\n'
                   '    raise hookrunner.Deny("outside office hours")\n', mode=0o644)
    tree.hook("onpasswd", "10-fail", exit_code=3)
    tree.hook("onsessionopen", "10-fail", exit_code=1)
    tree.config('[hook."10-loud"]\nshow_output = true\n')
    svc = service(tree, [ln for g in GROUPS for ln in (line(g, tree, path, daemon.socket),
                                                         f"{g} required pam_permit.so")])
    expect = {"authenticate": "Authentication failure", "acct_mgmt": "Permission denied",
              "chauthtok": "Authentication token manipulation error",
              "open_session": "Cannot make/remove an entry for the specified session"}
    outs = {op: pamtester(svc, op) for op in expect}
    for op, error in expect.items():
        assert outs[op].returncode != 0 and f"pamtester: {error}" in outs[op].stderr, (op, outs[op])
        assert "hookrunner:" not in outs[op].stderr  # denials: no failure of the module
    assert "Welcome from 10-loud" in outs["authenticate"].stdout  # pam_info
    assert "outside office hours" in outs["acct_mgmt"].stderr.splitlines()  # pam_error
    empty = pamtester(svc, "close_session")  # no hook: PAM_IGNORE, pam_permit decides
    assert empty.returncode == 0, empty
    assert tree.seen() == [("onauth", "10-loud"), ("onauth", "20-deny"), ("onpasswd", "10-fail"),
                           ("onsessionopen", "10-fail")]


@pytest.mark.parametrize("path", PATHS)
def test_expose_authtok_reaches_the_opted_in_hook_only(tree: Tree, daemon: Daemon, path: str) -> None:
    password = "pä ss:wörd $(id) 'x\" " + os.urandom(6).hex()
    marker = password.rsplit(" ", 1)[1]
    tree.hook("onauth", "10-dump")
    tree.hook("onauth", "20-wants-password")
    tree.config('[hook."20-wants-password"]\nauthtok = true\n')
    svc = service(tree, [line("auth", tree, path, daemon.socket, "expose_authtok")])
    out = pamtester(svc, "authenticate", passwords=(password,))
    assert out.returncode == 0, out
    assert {r.hook: r.stdin for r in tree.records()} == {"10-dump": "", "20-wants-password": password}
    assert marker not in tree.log_text() + out.stdout + out.stderr + daemon.output()


# --------------------------------------------------------------------------- faults

def where_tree(tree: Tree, phase: str = "onsessionopen") -> None:
    rig.write_hook(tree.root, phase, "10-where", WHERE.format(out=tree.base / "where"))


def test_the_socket_path_really_is_taken_and_a_killed_daemon_falls_back(tree: Tree,
                                                                          daemon: Daemon) -> None:
    where_tree(tree)
    svc = service(tree, [line("session", tree, "socket", daemon.socket)])
    assert pamtester(svc, "open_session").returncode == 0
    daemon.process.kill()  # SIGKILL: no clean-up, the socket file stays
    daemon.process.wait()
    assert wait_for(lambda: daemon.children() == [], 5)  # its spares die with it
    assert daemon.socket.exists()
    out = pamtester(svc, "open_session")
    assert out.returncode == 0, out
    assert where(tree) == [(USER, "serve"), (USER, "run")]
    assert out.seconds < 5


def test_daemon_stopped_before_accepting_login_falls_back_once(tree: Tree, daemon: Daemon) -> None:
    where_tree(tree)
    svc = service(tree, [line("session", tree, "socket", daemon.socket)])
    assert wait_for(lambda: len(daemon.children()) == 2)  # both spares forked
    os.kill(daemon.pid, signal.SIGSTOP)  # first: it forks no other spare meanwhile
    stopped = [daemon.pid, *daemon.children()]  # and the spares waiting to accept
    for pid in stopped[1:]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGSTOP)
    try:
        out = pamtester(svc, "open_session")
        assert out.returncode == 0, out
        assert "did not accept onsessionopen within 500 ms" in out.stderr
        assert 0.5 <= out.seconds < 5
    finally:
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
    time.sleep(0.5)  # not synchronisation: time for a wrongly late run to show (none must)
    assert wait_for(lambda: len(daemon.children()) == 2)
    assert where(tree) == [(USER, "run")]
    assert pamtester(svc, "open_session").returncode == 0  # the daemon serves again
    assert where(tree) == [(USER, "run"), (USER, "serve")]


def test_daemon_stopped_after_accepting_login_fails_within_timeout_once(tree: Tree,
                                                                          daemon: Daemon) -> None:
    """The hook stops the daemon's child serving it (its parent) and exits: the module waits
    for the status until its timeout=, fails, and the child, continued, runs nothing more."""
    stop_parent = f"#!/bin/sh\necho ran >> {tree.base}/ran\nkill -STOP $PPID\n"
    rig.write_hook(tree.root, "onsessionopen", "10-stop", stop_parent)
    svc = service(tree, [line("session", tree, "socket", daemon.socket, "timeout=2")])
    out = pamtester(svc, "open_session")
    assert out.returncode != 0
    assert "hookrunner: onsessionopen failed: dispatcher timed out after 2 s" in out.stderr, out
    assert 2 <= out.seconds < 5
    for pid in daemon.children():
        os.kill(pid, signal.SIGCONT)
    assert wait_for(lambda: len(daemon.children()) == 2)  # the stopped child finished
    assert (tree.base / "ran").read_text() == "ran\n"


@pytest.mark.parametrize("problem", ["regular file", "other owner", "writable directory",
                                     "symlinked directory"])
def test_an_unsafe_socket_is_not_used(tree: Tree, problem: str) -> None:
    """A listener that would accept anything: the module must not even connect to it."""
    where_tree(tree)
    directory = socket_dir()
    path = directory / "dispatch.sock"
    listener = None
    try:
        target = path
        if problem == "symlinked directory":
            real = socket_dir()
            target = real / "dispatch.sock"
            (directory / "link").symlink_to(real)
            path = directory / "link" / "dispatch.sock"
        if problem == "regular file":
            path.write_text("")
        else:
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(str(target))
            listener.listen(8)
            listener.setblocking(False)
            target.chmod(0o600)
        if problem == "other owner":
            os.chown(path, 65534, 65534)
        if problem == "writable directory":
            directory.chmod(0o1777)
        svc = service(tree, [line("session", tree, "socket", path)])
        out = pamtester(svc, "open_session")
        assert out.returncode == 0, out
        assert f"socket {path} not used" in out.stderr, out  # pam_syslog, on stderr here
        assert where(tree) == [(USER, "run")]
        if listener is not None:
            with pytest.raises(BlockingIOError):
                listener.accept()  # nobody connected
    finally:
        if listener is not None:
            listener.close()
        if problem == "symlinked directory":
            rig_rmtree(target.parent)
        rig_rmtree(directory)


def rig_rmtree(directory: Path) -> None:
    import shutil

    shutil.rmtree(directory, ignore_errors=True)


def test_a_missing_socket_is_exec_without_a_word(tree: Tree) -> None:
    where_tree(tree)
    svc = service(tree, [line("session", tree, "socket", Path("/run/hookrunner-test-none/x.sock"))])
    out = pamtester(svc, "open_session")
    assert out.returncode == 0, out
    assert "socket" not in out.stderr
    assert where(tree) == [(USER, "run")]


def test_200_concurrent_logins_each_hook_exactly_once_with_its_own_user(tree: Tree,
                                                                          daemon: Daemon) -> None:
    where_tree(tree)
    rig.write_hook(tree.root, "onaccount", "10-where", WHERE.format(out=tree.base / "where"))
    rig.write_hook(tree.root, "onsessionopen", "20-greet", '#!/bin/sh\necho "hello $PAM_USER"\n')
    tree.config('timeout = 60\nphase_timeout = 120\n[hook."20-greet"]\nshow_output = true\n')
    lines = [line("account", tree, "socket", daemon.socket, "timeout=120"),
             line("session", tree, "socket", daemon.socket, "timeout=120")]
    users = [f"user-{i:03d}" for i in range(200)]
    # A real /etc/pam.d service: pam_wrapper keeps a copy of the services per process in
    # /tmp/pam.<one character>, which 200 processes at once run out of.
    with rig.pam_service(lines, tag="serve-") as name:
        def login(user: str) -> rig.Outcome:
            return pamtester(None, "acct_mgmt", "open_session", user=user, name=name, timeout=300)

        with ThreadPoolExecutor(max_workers=200) as pool:
            outs = list(pool.map(login, users))
    failed = [(u, o) for u, o in zip(users, outs, strict=True) if o.returncode != 0]
    assert not failed, failed[:3]
    for user, out in zip(users, outs, strict=True):
        assert re.findall(r"hello \S+", out.stdout) == [f"hello {user}"], out  # its own message
    seen = where(tree)
    assert sorted(u for u, _ in seen) == sorted(users * 2)  # each phase once, its own user
    by_daemon = sum(1 for _, how in seen if how == "serve")
    print(f"\n200 concurrent logins: {by_daemon} of {len(seen)} phases through the daemon, "
          f"the rest by exec (not accepted within 500 ms)")
    assert by_daemon > 0, seen[:5]  # (under load some may fall back to exec: allowed)


def test_valgrind_socket_paths(tree: Tree, daemon: Daemon) -> None:
    """The module's socket code under valgrind: through the daemon (with a password and
    messages), a refusal, a missing socket, an unsafe one: no error, no definite leak."""
    if reason := missing(tools=["valgrind"]):
        pytest.skip(reason)
    tree.hook("onauth", "10-loud", say="hi")
    tree.hook("onsessionopen", "10-a")
    tree.config('[hook."10-loud"]\nshow_output = true\nauthtok = true\n')
    unsafe = tree.base / "not-a-socket"  # in /tmp: not used
    unsafe.write_text("")
    lines = [line("auth", tree, "socket", daemon.socket, "expose_authtok"),
             line("account", tree, "socket", Path("/run/hookrunner-test-none/x.sock")),
             "account required pam_permit.so",
             line("session", tree, "socket", daemon.socket),
             line("session", tree, "socket", unsafe)]
    log = tree.base / "valgrind.log"
    valgrind = ["valgrind", "--leak-check=full", "--errors-for-leak-kinds=definite",
                "--error-exitcode=99", "--trace-children=no", f"--log-file={log}"]
    with rig.pam_service(lines, tag="valgrind-serve-") as name:
        out = rig.run([*valgrind, "pamtester", "-v", name, USER, "authenticate", "acct_mgmt",
                       "open_session"], input="pw\n", timeout=180)
    text = log.read_text()
    assert out.returncode == 0, (out.stderr, out.stdout)
    assert "ERROR SUMMARY: 0 errors" in text, text
    assert "hi" in out.stdout
    assert [(r.phase, r.hook) for r in tree.records()] == [("onauth", "10-loud"),
                                                           ("onsessionopen", "10-a"),
                                                           ("onsessionopen", "10-a")]
