"""pam_hookrunner.so end to end: a real libpam (pam_wrapper and /etc/pam.d), pamtester,
valgrind and a real sshd, with a stand-in dispatcher.

The module does not care what the dispatcher is, so these tests give it a stand-in written
into tmp_path. The stand-in records what it was given: argv and the exact environment as
execve passed them (/proc/self/cmdline and /proc/self/environ, before Python's own locale
coercion), stdin, open descriptors, session, cwd, umask and signal state. It then writes the
lines it is told to on fd 3 and exits as its behaviour file (how.json, or the file named by
--config) says.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from harness import NATIVE_MODULE, Sshd, build_native_module, gone, marker_library, missing, rig, ssh_password

pytestmark = pytest.mark.e2e

MODULE = NATIVE_MODULE
PYTHON = "/usr/bin/python3"
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# (pamtester operation, PAM group, PAM_TYPE, hookrunner phase)
PHASES = (
    ("authenticate", "auth", "auth", "onauth"),
    ("acct_mgmt", "account", "account", "onaccount"),
    ("chauthtok", "password", "password", "onpasswd"),
    ("open_session", "session", "open_session", "onsessionopen"),
    ("close_session", "session", "close_session", "onsessionclose"),
)
OPS = [op for op, _, _, _ in PHASES]
GROUPS = ("auth", "account", "password", "session")

# What pamtester prints for each outcome (pam_strerror or its own success line).
SUCCESS = {
    "authenticate": "successfully authenticated",
    "acct_mgmt": "account management done",
    "chauthtok": "authentication token altered successfully",
    "open_session": "successfully opened a session",
    "close_session": "session has successfully been closed",
}
PHASE_ERROR = {
    "authenticate": "Authentication failure",  # PAM_AUTH_ERR
    "acct_mgmt": "Permission denied",  # PAM_PERM_DENIED
    "chauthtok": "Authentication token manipulation error",  # PAM_AUTHTOK_ERR
    "open_session": "Cannot make/remove an entry for the specified session",  # SESSION_ERR
    "close_session": "Cannot make/remove an entry for the specified session",
}

STANDIN = r"""
import json, os, signal, subprocess, sys, time

here = os.path.dirname(os.path.abspath(__file__))
fds = []
for fd in range(64):
    try:
        os.fstat(fd)
        fds.append(fd)
    except OSError:
        pass

def nul_list(name):
    with open(name, "rb") as f:
        return [x.decode("latin-1") for x in f.read().split(b"\0")[:-1]]

argv = nul_list("/proc/self/cmdline")
with open("/proc/self/status") as f:
    status = dict(l.split(":\t", 1) for l in f.read().splitlines() if ":\t" in l)
how_file = argv[argv.index("--config") + 1] if "--config" in argv else os.path.join(here, "how.json")
try:
    with open(how_file) as f:
        how = json.load(f)
except FileNotFoundError:
    how = {}
rec = {
    "argv": argv,
    "env": dict(e.split("=", 1) for e in nul_list("/proc/self/environ")),
    "stdin": sys.stdin.buffer.read().decode("latin-1"),
    "fds": fds, "pid": os.getpid(), "sid": os.getsid(0), "pgid": os.getpgid(0),
    "cwd": os.getcwd(), "umask": os.umask(0o22), "uid": os.getuid(),
    "sigign": int(status["SigIgn"], 16), "sigblk": int(status["SigBlk"], 16),
}
if how.get("grandchild"):
    keep = (3,) if how.get("grandchild_keeps_fd3") else ()
    rec["grandchild"] = subprocess.Popen(["sleep", "300"], pass_fds=keep).pid
with open(os.path.join(here, "records.jsonl"), "a") as f:
    f.write(json.dumps(rec) + "\n")
for m in how.get("messages", []):
    os.write(3, m.encode())
if how.get("ignore_term"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if how.get("sleep"):
    time.sleep(3600)
if "signal" in how:
    os.kill(os.getpid(), how["signal"])
sys.exit(how.get("status", 0))
"""


# --------------------------------------------------------------------------- helpers


@dataclass
class Standin:
    dir: Path

    @property
    def path(self) -> Path:
        return self.dir / "standin.py"

    def behave(self, **how: Any) -> None:
        (self.dir / "how.json").write_text(json.dumps(how))

    def how_file(self, name: str, **how: Any) -> Path:
        path = self.dir / f"how-{name}.json"
        path.write_text(json.dumps(how))
        return path

    def records(self) -> list[dict[str, Any]]:
        log = self.dir / "records.jsonl"
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]

    def phases(self) -> list[str]:
        return [r["argv"][r["argv"].index("run") + 1] for r in self.records()]

    def line(self, group: str, *options: str, control: str = "required") -> str:
        return " ".join([group, control, str(MODULE), f"dispatcher={self.path}", *options])


@dataclass
class Result:
    rc: int
    out: str
    err: str
    seconds: float


def block_usr1_ignore_int() -> None:
    """pamtester starts with SIGINT ignored and SIGUSR1 blocked: the module must reset both."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})


def pamtester(service_dir: Path | None, service: str, user: str, *ops: str, stdin: str = "",
              items: Mapping[str, str] | None = None, pam_env: Mapping[str, str] | None = None,
              prefix: Sequence[str] = (), timeout: float = 60) -> Result:
    """Run pamtester, under pam_wrapper when service_dir is given, else on /etc/pam.d."""
    env = {"PATH": SAFE_PATH, "LANG": "C.UTF-8", "CALLER_JUNK": "from-the-caller"}
    if service_dir is not None:
        env |= {"LD_PRELOAD": str(rig.PAM_WRAPPER_LIB), "PAM_WRAPPER": "1",
                "PAM_WRAPPER_SERVICE_DIR": str(service_dir)}
    argv = [*prefix, "pamtester", "-v"]
    for k, v in (items or {}).items():
        argv += ["-I", f"{k}={v}"]
    for k, v in (pam_env or {}).items():
        argv += ["-E", f"{k}={v}"]
    argv += [service, user, *ops]
    extra = os.open("/dev/null", os.O_RDONLY)  # an inherited descriptor that must not leak
    start = time.monotonic()
    try:
        p = subprocess.run(argv, input=stdin.encode(), capture_output=True, env=env,
                           timeout=timeout, pass_fds=(extra,), preexec_fn=block_usr1_ignore_int)
    finally:
        os.close(extra)
    return Result(p.returncode, p.stdout.decode(errors="replace"),
                  p.stderr.decode(errors="replace"), time.monotonic() - start)


def wrapper_service(tmp_path: Path, lines: Sequence[str], name: str = "hrtest") -> Path:
    """``tmp_path/pam.d``, a pam_wrapper service directory holding ``name``."""
    return rig.write_wrapper_service(tmp_path / "pam.d", name, lines).parent


def expected_env(user: str, service: str, pam_type: str, **items: str) -> dict[str, str]:
    env = {"PAM_USER": user, "PAM_SERVICE": service, "PAM_TYPE": pam_type, "PATH": SAFE_PATH}
    env |= {f"PAM_{k.upper()}": v for k, v in items.items()}
    return env


def expected_argv(standin: Standin, phase: str, *extra: str) -> list[str]:
    return [PYTHON, "-I", "-S", str(standin.path), "run", phase, "--msg-fd", "3",
            "--ignore-empty", *extra]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def built() -> Path:
    if reason := missing(tools=["gcc", "make", "pamtester"], files=[rig.PAM_WRAPPER_LIB]):
        pytest.skip(reason)
    return build_native_module()


@pytest.fixture
def standin(built: Path, tmp_path: Path) -> Standin:
    d = tmp_path / "dispatcher"
    d.mkdir()
    (d / "standin.py").write_text(STANDIN)
    return Standin(d)


# --------------------------------------------------------------------------- build


def test_build_exports_six_entry_points_and_installs(built: Path, tmp_path: Path) -> None:
    lib = ctypes.CDLL(str(built))
    for name in ("authenticate", "setcred", "acct_mgmt", "chauthtok", "open_session",
                 "close_session"):
        assert hasattr(lib, f"pam_sm_{name}")
    subprocess.run(["make", "-s", "-C", str(rig.REPO / "pam"), "install", f"DESTDIR={tmp_path}"],
                   check=True, capture_output=True)
    [installed] = tmp_path.rglob("pam_hookrunner.so")
    # next to the system's own modules
    assert (Path("/") / installed.parent.relative_to(tmp_path) / "pam_exec.so").exists()
    assert installed.stat().st_mode & 0o777 == 0o644


# --------------------------------------------------------------------------- pam_wrapper


def test_every_phase_gets_pam_items_only(standin: Standin, tmp_path: Path) -> None:
    svc = wrapper_service(tmp_path, [standin.line(g) for g in GROUPS])
    pwned = tmp_path / "pwned"
    user = f"al ice'$(touch {pwned})\"`touch {pwned}`"
    items = {"rhost": "203.0.113.9\nsecond line", "tty": "/dev/pts/9", "ruser": "bob"}
    r = pamtester(svc, "hrtest", user, *OPS, items=items,
                  pam_env={"FOO": "bar", "LD_PRELOAD": "/nonexistent/evil.so"})
    assert r.rc == 0, r.err
    recs = standin.records()
    # chauthtok's PAM_PRELIM_CHECK pass does not run the dispatcher: one onpasswd record
    assert standin.phases() == [phase for _, _, _, phase in PHASES]
    for rec, (_, _, pam_type, phase) in zip(recs, PHASES, strict=True):
        assert rec["env"] == expected_env(user, "hrtest", pam_type, **items)
        assert rec["argv"] == expected_argv(standin, phase)
        assert rec["stdin"] == ""
        assert rec["fds"] == [0, 1, 2, 3]
        assert rec["pid"] == rec["sid"] == rec["pgid"]
        assert rec["cwd"] == "/"
        assert rec["umask"] == 0o022
        assert rec["sigblk"] == 0
        assert not rec["sigign"] & (1 << (signal.SIGINT - 1))
    assert not pwned.exists()


def test_unset_items_are_absent(standin: Standin, tmp_path: Path) -> None:
    svc = wrapper_service(tmp_path, [standin.line("session")])
    r = pamtester(svc, "hrtest", "alice", "open_session")
    assert r.rc == 0, r.err
    assert standin.records()[0]["env"] == expected_env("alice", "hrtest", "open_session")


def test_root_and_config_are_passed(standin: Standin, tmp_path: Path) -> None:
    conf = standin.how_file("ok")
    svc = wrapper_service(tmp_path, [standin.line("account", f"root={tmp_path}",
                                                  f"config={conf}", "timeout=5", "debug")])
    assert pamtester(svc, "hrtest", "alice", "acct_mgmt").rc == 0
    rec = standin.records()[0]
    assert rec["argv"] == expected_argv(standin, "onaccount", "--root", str(tmp_path),
                                        "--config", str(conf))


@pytest.mark.parametrize("how", [{"status": 0}, {"status": 1}, {"status": 7}, {"signal": 9}],
                         ids=["exit0", "exit1", "exit7", "signal9"])
def test_exit_status_mapping(standin: Standin, tmp_path: Path, how: dict[str, int]) -> None:
    standin.behave(**how)
    svc = wrapper_service(tmp_path, [standin.line(g) for g in GROUPS])
    for op, _, _, phase in PHASES:
        r = pamtester(svc, "hrtest", "alice", op)
        if how.get("status") == 0:
            assert r.rc == 0 and SUCCESS[op] in r.out, (op, r)
            continue
        assert r.rc != 0, (op, r)
        if how.get("status") == 1:
            assert PHASE_ERROR[op] in r.err, (op, r.err)
            assert "hookrunner:" not in r.err  # a denial: the dispatcher says why, not us
        else:
            why = ("exited with status 7" if "status" in how else "killed by signal 9")
            assert "System error" in r.err, (op, r.err)
            assert f"hookrunner: {phase} failed: dispatcher {why}" in r.err
    assert len(standin.records()) == len(PHASES)


def test_exit_4_is_pam_ignore(standin: Standin, tmp_path: Path) -> None:
    """Status 4 (--ignore-empty: no hook) is PAM_IGNORE: alone in a stack it cannot decide
    (libpam then answers PAM_PERM_DENIED), before pam_permit.so it leaves the decision to it."""
    standin.behave(status=4)
    alone = wrapper_service(tmp_path, [standin.line(g) for g in GROUPS], "alone")
    wrapper_service(tmp_path, [ln for g in GROUPS
                               for ln in (standin.line(g), f"{g} required pam_permit.so")],
                    "permit")
    for op in OPS:
        r = pamtester(alone, "alone", "alice", op)
        assert r.rc != 0 and "Permission denied" in r.err, (op, r)
        r = pamtester(alone, "permit", "alice", op)
        assert r.rc == 0 and SUCCESS[op] in r.out, (op, r)
    standin.behave(status=7)  # the same pam_permit stack does not hide a real failure
    assert "System error" in pamtester(alone, "permit", "alice", "acct_mgmt").err


def test_messages_reach_the_user(standin: Standin, tmp_path: Path) -> None:
    standin.behave(messages=[
        "info first line\n", "error denied: over quota\n", "warn not a kind\n",
        "info tab\there \x1b[31mred\n", "info " + "x" * 3000 + "\n", "info last, no newline",
    ])
    svc = wrapper_service(tmp_path, [standin.line("session")])
    r = pamtester(svc, "hrtest", "alice", "open_session")
    assert r.rc == 0, r.err
    assert "first line" in r.out  # PAM_TEXT_INFO: pamtester's stdout
    assert "denied: over quota" in r.err  # PAM_ERROR_MSG: its stderr
    assert "not a kind" not in r.out + r.err
    assert "tab\there ?[31mred" in r.out  # control characters never reach the terminal
    assert "\x1b" not in r.out + r.err
    assert "x" * 1019 in r.out and "x" * 1020 not in r.out  # lines cut at 1 KiB
    assert "last, no newline" in r.out


def test_messages_are_bounded(standin: Standin, tmp_path: Path) -> None:
    standin.behave(messages=[f"info {i:04d}{'y' * 995}\n" for i in range(200)])  # 200 KB
    svc = wrapper_service(tmp_path, [standin.line("session")])
    r = pamtester(svc, "hrtest", "alice", "open_session")
    assert r.rc == 0, r.err  # the dispatcher was never blocked on a full pipe
    relayed = [ln for ln in r.out.splitlines() if "yyyy" in ln]
    assert 60 <= len(relayed) <= 66  # 64 KiB in all
    assert "0199" not in r.out


def test_pam_silent_and_quiet(standin: Standin, tmp_path: Path) -> None:
    standin.behave(messages=["info hello\n", "error why\n"], status=7)
    svc = wrapper_service(tmp_path, [standin.line("session"), standin.line("auth", "quiet")])
    loud = pamtester(svc, "hrtest", "alice", "open_session")
    assert "hello" in loud.out and "why" in loud.err and "hookrunner: onsessionopen" in loud.err
    silent = pamtester(svc, "hrtest", "alice", "open_session(PAM_SILENT)")
    assert "System error" in silent.err  # it did run and fail
    assert "hello" not in silent.out and "why" not in silent.err
    assert "hookrunner:" not in silent.err
    quiet = pamtester(svc, "hrtest", "alice", "authenticate")
    assert "hello" in quiet.out and "why" in quiet.err  # the dispatcher's messages still
    assert "hookrunner:" not in quiet.err  # but not the module's own failure message
    assert "onauth: dispatcher exited with status 7" in quiet.err  # syslog (pam_wrapper)
    assert len(standin.records()) == 3


@pytest.mark.parametrize("ignore_term", [False, True], ids=["sigterm", "sigkill"])
def test_timeout_kills_the_process_group(standin: Standin, tmp_path: Path,
                                         ignore_term: bool) -> None:
    standin.behave(sleep=True, grandchild=True, ignore_term=ignore_term,
                   messages=["info before the hang\n"])
    svc = wrapper_service(tmp_path, [standin.line("session", "timeout=1")])
    r = pamtester(svc, "hrtest", "alice", "open_session", timeout=30)
    assert r.rc != 0 and "System error" in r.err
    assert "hookrunner: onsessionopen failed: dispatcher timed out after 1 s" in r.err
    assert "before the hang" in r.out
    assert 1.0 <= r.seconds < 1 + 2, r.seconds
    if ignore_term:
        assert r.seconds >= 2.0  # SIGTERM ignored: SIGKILL came after the 1 s grace
    rec = standin.records()[0]
    assert rig.wait_for(lambda: gone(rec["pid"]) and gone(rec["grandchild"]), timeout=3)


def test_a_grandchild_holding_the_pipe_does_not_hang(standin: Standin, tmp_path: Path) -> None:
    standin.behave(grandchild=True, grandchild_keeps_fd3=True, messages=["info bye\n"])
    svc = wrapper_service(tmp_path, [standin.line("session")])
    try:
        r = pamtester(svc, "hrtest", "alice", "open_session")
        assert r.rc == 0, r.err
        assert "bye" in r.out
        assert r.seconds < 2.0
    finally:
        for rec in standin.records():
            with contextlib.suppress(ProcessLookupError):
                os.kill(rec["grandchild"], signal.SIGKILL)


def test_expose_authtok_auth_prompts_and_sends_exactly(standin: Standin, tmp_path: Path) -> None:
    password = "s3cr3t p@ss 'q' $(x) é"
    svc = wrapper_service(tmp_path, [standin.line("auth", "expose_authtok"),
                                      standin.line("account", "expose_authtok")])
    r = pamtester(svc, "hrtest", "alice", "authenticate", "acct_mgmt", stdin=password + "\n")
    assert r.rc == 0, r.err
    assert r.out.count("Password:") + r.err.count("Password:") == 1
    auth, account = standin.records()
    assert auth["stdin"].encode("latin-1").decode() == password  # exactly: no newline, no NUL
    assert account["stdin"] == ""  # only auth and password phases get it
    for rec in (auth, account):
        assert password not in json.dumps(rec["env"]) + json.dumps(rec["argv"])
        assert "s3cr3t" not in json.dumps([rec["env"], rec["argv"]])


def test_no_expose_authtok_no_prompt(standin: Standin, tmp_path: Path) -> None:
    svc = wrapper_service(tmp_path, [standin.line("auth")])
    r = pamtester(svc, "hrtest", "alice", "authenticate", stdin="secret\n")
    assert r.rc == 0, r.err
    assert "Password" not in r.out + r.err
    assert standin.records()[0]["stdin"] == ""


def test_expose_authtok_password_phase_gets_the_new_token(standin: Standin,
                                                          tmp_path: Path) -> None:
    passdb = tmp_path / "passdb"
    passdb.write_text("alice:old-pw:hrtest\n")
    svc = wrapper_service(tmp_path, [f"password required {rig.PAM_MATRIX} passdb={passdb}",
                                      standin.line("password", "expose_authtok")])
    r = pamtester(svc, "hrtest", "alice", "chauthtok", stdin="old-pw\nnew pw 2\nnew pw 2\n")
    assert r.rc == 0, r.err
    assert [rec["stdin"] for rec in standin.records()] == ["new pw 2"]


@pytest.mark.parametrize(("option", "logged"), [
    ("dispatcher=hookrunner/__main__.py", "not an absolute path"),
    ("python=python3", "not an absolute path"),
    ("root=tmp", "not an absolute path"),
    ("config=hookrunner.toml", "not an absolute path"),
    ("socket=run/hookrunner/dispatch.sock", "not an absolute path"),
    ("nosockets", "unknown option nosockets"),
    ("expose_authtoken", "unknown option expose_authtoken"),
    ("timeout=0", "bad option timeout=0"),
    ("timeout=5s", "bad option timeout=5s"),
    ("timeout=86401", "bad option timeout=86401"),
    ("python=/nonexistent/python3", "cannot run /nonexistent/python3"),
])
def test_bad_options_are_refused(standin: Standin, tmp_path: Path, option: str,
                                 logged: str) -> None:
    svc = wrapper_service(tmp_path, [standin.line("account", option)])
    r = pamtester(svc, "hrtest", "alice", "acct_mgmt")
    assert r.rc != 0 and "System error" in r.err
    assert logged in r.err  # pam_wrapper shows pam_syslog on stderr
    assert standin.records() == []


def test_missing_dispatcher_is_a_system_error(built: Path, tmp_path: Path) -> None:
    svc = wrapper_service(tmp_path, [
        f"account required {built} dispatcher={tmp_path}/nonexistent.py"])
    r = pamtester(svc, "hrtest", "alice", "acct_mgmt")
    assert r.rc != 0 and "System error" in r.err
    assert f"cannot run {PYTHON} {tmp_path}/nonexistent.py" in r.err


def test_setcred_is_ignored(standin: Standin, tmp_path: Path) -> None:
    svc = wrapper_service(tmp_path, [standin.line("auth"), "auth required pam_permit.so"])
    standin.behave(status=7)
    r = pamtester(svc, "hrtest", "alice", "setcred")
    assert r.rc == 0, r.err
    assert standin.records() == []


# --------------------------------------------------------------------------- escalation


def test_pam_env_ld_preload_reaches_pam_exec_but_not_pam_hookrunner(
        standin: Standin, tmp_path: Path, user: rig.User) -> None:
    """The hazard of PAM-FACTS.md, reproduced: a user's env file sets LD_PRELOAD in the PAM
    environment; pam_exec.so hands it to its root child, pam_hookrunner.so does not."""
    marker = tmp_path / "marker"
    lib = marker_library(tmp_path, marker)
    envfile = ".hookrunner-test-env"
    (user.home / envfile).write_text(f"LD_PRELOAD DEFAULT={lib}\n")
    pam_env = f"session required pam_env.so readenv=0 user_readenv=1 user_envfile={envfile}"
    svc = wrapper_service(tmp_path, [pam_env, "session required pam_exec.so /bin/true"],
                          "via-exec")
    wrapper_service(tmp_path, [pam_env, standin.line("session")], "via-hookrunner")

    r = pamtester(svc, "via-exec", user.name, "open_session", "close_session")
    assert r.rc == 0, r.err
    assert marker.read_text().splitlines() == ["uid=0", "uid=0"]  # the hazard is real
    marker.unlink()

    r = pamtester(svc, "via-hookrunner", user.name, "open_session", "close_session")
    assert r.rc == 0, r.err
    assert standin.phases() == ["onsessionopen", "onsessionclose"]
    for rec in standin.records():
        assert "LD_PRELOAD" not in rec["env"]
        assert rec["uid"] == 0
    assert not marker.exists()


# --------------------------------------------------------------------------- /etc/pam.d


def test_real_service_every_phase(standin: Standin, user: rig.User) -> None:
    lines = ["auth required pam_unix.so", standin.line("auth", "expose_authtok"),
             standin.line("account"), standin.line("password"), standin.line("session")]
    with rig.pam_service(lines, tag="native-") as name:
        r = pamtester(None, name, user.name, *OPS, stdin=user.password + "\n",
                      items={"rhost": "198.51.100.7"})
    assert r.rc == 0, r.err
    # pam_unix prompted and stored PAM_AUTHTOK; the module used it without asking again
    assert (r.out + r.err).count("assword:") == 1
    recs = standin.records()
    assert standin.phases() == [phase for _, _, _, phase in PHASES]
    assert recs[0]["stdin"].encode("latin-1").decode() == user.password
    for rec, (_, _, pam_type, phase) in zip(recs, PHASES, strict=True):
        assert rec["env"] == expected_env(user.name, name, pam_type, rhost="198.51.100.7")
        assert rec["argv"] == expected_argv(standin, phase)
    assert not Path("/etc/pam.d", name).exists()


def test_valgrind_every_phase_and_error_path(standin: Standin, tmp_path: Path) -> None:
    if reason := missing(tools=["valgrind"]):
        pytest.skip(reason)
    hf = standin.how_file
    chatty = hf("chatty", messages=["info hi\n", "error ho\n"])
    lines = [
        f"auth optional {MODULE} bogus_option",
        f"auth optional {MODULE} dispatcher=relative/__main__.py",
        f"auth optional {MODULE} dispatcher={tmp_path}/nonexistent.py",
        standin.line("auth", "timeout=1", f"config={hf('sleep', sleep=True)}", control="optional"),
        standin.line("auth", f"config={hf('exit1', status=1)}", control="optional"),
        standin.line("auth", f"config={hf('exit7', status=7)}", control="optional"),
        standin.line("auth", f"config={hf('signal', signal=9)}", control="optional"),
        standin.line("auth", "expose_authtok", "debug",
                     f"config={chatty}"),
        standin.line("account"),
        standin.line("password", "expose_authtok"),
        standin.line("session", f"config={hf('exit4', status=4)}"),
        standin.line("session", "quiet", f"config={hf('exit1s', status=1)}", control="optional"),
        "session required pam_permit.so",
    ]
    log = tmp_path / "valgrind.log"
    valgrind = ["valgrind", "--leak-check=full", "--errors-for-leak-kinds=definite",
                "--error-exitcode=99", "--trace-children=no", f"--log-file={log}"]
    with rig.pam_service(lines, tag="valgrind-") as name:
        r = pamtester(None, name, "alice", *OPS, stdin="pw\nnew pw\nnew pw\n", prefix=valgrind,
                      timeout=120)
    text = log.read_text()
    assert r.rc != 99, text
    assert r.rc == 0, r.err
    assert "ERROR SUMMARY: 0 errors" in text, text
    assert "pam_hookrunner" not in text, text
    # every line ran: 4 failing auth lines + chatty + account + password + 2 x 2 sessions
    assert len(standin.records()) == 11
    assert "hi" in r.out and "ho" in r.err


# --------------------------------------------------------------------------- sshd


def test_sshd_password_login(standin: Standin, tmp_path: Path, user: rig.User) -> None:
    if reason := missing(tools=["sshd", "ssh", "sshpass", "ssh-keygen"]):
        pytest.skip(reason)
    lines = ["auth required pam_unix.so", standin.line("auth"),
             "account required pam_unix.so", standin.line("account"),
             standin.line("session")]
    with rig.pam_service(lines, tag="sshd-") as service, Sshd.start(tmp_path / "sshd", service) as sshd:
        r = ssh_password(sshd.port, user.name, user.password, ["echo", "logged-in"])
        assert r.returncode == 0, (r, sshd.log.read_text())
        assert r.stdout.strip() == "logged-in"
        assert sshd.wait_idle(), sshd.log.read_text()  # close_session has run
    want = ["onauth", "onaccount", "onsessionopen", "onsessionclose"]
    assert standin.phases() == want
    pam_type = {phase: t for _, _, t, phase in PHASES}
    for rec, phase in zip(standin.records(), want, strict=True):
        assert rec["env"] == expected_env(user.name, service, pam_type[phase],
                                          rhost="127.0.0.1", tty="ssh")
