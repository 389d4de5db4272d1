"""runner.run_exec with real processes: isolation, exit statuses, signals, timeouts, bounded output."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hookrunner.environment import FIXED_PATH
from hookrunner.runner import HookResult, RunAs, run_exec

ENV = {b"PATH": FIXED_PATH}


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass (no sleep as synchronisation)."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)


def gone(pid: int) -> bool:
    """Dead: no such process, or a zombie nobody has reaped yet."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X")
    except (FileNotFoundError, ProcessLookupError):
        return True


class Hooks:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.pids: list[int] = []

    def script(self, body: str, name: str = "hook") -> bytes:
        path = self.dir / name
        path.write_text("#!/bin/sh\n" + body.replace("OUT", str(self.dir)))
        path.chmod(0o755)
        return os.fsencode(path)

    def pid(self, name: str, timeout: float = 5) -> int:
        path = self.dir / name
        assert wait_until(lambda: path.exists() and path.read_text().endswith("\n"), timeout), name
        pid = int(path.read_text())
        self.pids.append(pid)
        return pid


@pytest.fixture
def hooks(tmp_path: Path) -> Iterator[Hooks]:
    h = Hooks(tmp_path)
    yield h
    for pid in h.pids:  # whatever a test left behind
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)  # an orphan adopted by this process (the runner makes it a subreaper)
        except (ProcessLookupError, ChildProcessError):
            pass


def run(argv: bytes | list[bytes], timeout: float = 5, **kw: object) -> HookResult:
    return run_exec([argv] if isinstance(argv, bytes) else argv, ENV, timeout=timeout, **kw)  # type: ignore[arg-type]


def test_success(hooks: Hooks) -> None:
    r = run(hooks.script("echo out; echo err >&2\n"))
    assert (r.outcome, r.status, r.signal, r.message) == ("ok", 0, None, "exited with status 0")
    assert (r.stdout, r.stderr, r.dropped) == (b"out\n", b"err\n", 0)
    assert r.ok


@pytest.mark.parametrize("status", [1, 2, 77, 255])
def test_failure_status(hooks: Hooks, status: int) -> None:
    r = run(hooks.script(f"exit {status}\n"))
    assert (r.outcome, r.status, r.message) == ("fail", status, f"exited with status {status}")
    assert not r.ok


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV, signal.SIGTERM, signal.SIGABRT])
def test_killed_by_signal(hooks: Hooks, sig: signal.Signals) -> None:
    r = run(hooks.script(f"kill -{sig.name.removeprefix('SIG')} $$\n"))
    assert (r.outcome, r.signal, r.status) == ("signal", sig, None)
    assert r.message == f"killed by signal {int(sig)} ({sig.name})"


def test_not_startable(hooks: Hooks) -> None:
    path = hooks.dir / "noshebang"
    path.write_bytes(b"\x7fELF garbage")
    path.chmod(0o755)
    r = run(os.fsencode(path))
    assert r.outcome == "error"
    assert r.message.startswith("could not be started: ")


def test_isolation_cwd_umask_stdin_session(hooks: Hooks) -> None:
    r = run(hooks.script(
        'pwd -P; umask; readlink /proc/$$/fd/0\n'
        'set -- $(cat /proc/$$/stat); echo "$1 $5 $6"\n'))
    cwd, umask, stdin, ids = r.stdout.decode().splitlines()
    assert (cwd, umask, stdin) == ("/", "0022", "/dev/null")
    pid, pgrp, session = ids.split()
    assert pid == pgrp == session  # setsid: its own session and process group
    assert session != str(os.getsid(0))


def test_argv_is_path_plus_args_without_a_shell(hooks: Hooks, tmp_path: Path) -> None:
    path = hooks.script('printf "[%s]\\n" "$0" "$@"\n')
    args = [b"two words", b"$(touch " + os.fsencode(tmp_path) + b"/pwned)", b"\xff", b""]
    r = run([path, *args])
    assert r.stdout == b"".join(b"[" + a + b"]\n" for a in [path, *args])
    assert not (tmp_path / "pwned").exists()


def test_exact_environment(hooks: Hooks) -> None:
    env = {b"PAM_USER": b"a\nb\xff c", b"HOOKRUNNER_HOOK": b"h", b"PATH": FIXED_PATH}
    r = run_exec([hooks.script("cat /proc/$$/environ\n")], env, timeout=5)
    assert sorted(r.stdout.split(b"\0")[:-1]) == sorted(k + b"=" + v for k, v in env.items())


def test_stdin_gets_the_password_only_when_given(hooks: Hooks) -> None:
    path = hooks.script("cat; readlink /proc/$$/fd/0 >&2\n")
    with_pw = run(path, stdin=b"s3cret \xff")
    assert with_pw.stdout == b"s3cret \xff"
    assert with_pw.stderr.startswith(b"pipe:")
    assert run(path).stdout == b""


def test_runas_drops_uid_gid_and_groups() -> None:
    if os.geteuid() != 0:
        pytest.skip("runas needs root")
    r = run([b"/bin/sh", b"-c", b"id -u; id -g; id -G"], runas=RunAs(65534, 65534, (65534,)))
    assert r.stdout == b"65534\n65534\n65534\n", r


def test_timeout_kills_the_hook_and_its_children(hooks: Hooks) -> None:
    path = hooks.script("sleep 1000 &\necho $! > OUT/child\necho $$ > OUT/hook\nwait\n")
    start = time.monotonic()
    r = run(path, timeout=0.5, grace=0.5)
    child, hook = hooks.pid("child"), hooks.pid("hook")
    assert r.outcome == "timeout"
    assert r.message == "timed out after 0.5 s"
    assert r.signal == signal.SIGTERM
    assert wait_until(lambda: gone(child) and gone(hook), start + 2.5 - time.monotonic())
    assert time.monotonic() - start < 2.5


def test_hook_ignoring_sigterm_gets_sigkill(hooks: Hooks) -> None:
    path = hooks.script("trap '' TERM\nsleep 1000 &\necho $! > OUT/child\n"
                        "while :; do read x < /dev/zero; done\n")
    start = time.monotonic()
    r = run(path, timeout=0.3, grace=0.3)
    elapsed = time.monotonic() - start
    child = hooks.pid("child")
    assert (r.outcome, r.signal) == ("timeout", signal.SIGKILL)
    assert 0.6 <= elapsed < 2.6
    assert wait_until(lambda: gone(child), 2.6 - elapsed)  # it ignored TERM too (inherited)


def test_background_child_holding_stdout_does_not_hang(hooks: Hooks) -> None:
    path = hooks.script("sleep 1000 &\necho $! > OUT/child\necho started\n")
    start = time.monotonic()
    r = run(path, timeout=5)
    child = hooks.pid("child")
    assert time.monotonic() - start < 1.0
    assert (r.outcome, r.stdout) == ("ok", b"started\n")
    assert not gone(child)  # a finished hook's children are left alone (a daemon it started)


def test_background_child_writing_forever_does_not_hang(hooks: Hooks) -> None:
    path = hooks.script("yes &\necho $! > OUT/child\n")
    start = time.monotonic()
    r = run(path, timeout=5, max_output=1000)
    hooks.pid("child")
    assert time.monotonic() - start < 1.0
    assert r.outcome == "ok"
    assert len(r.stdout) <= 1000  # whatever arrived before the hook exited, within the bound


def test_output_is_bounded_and_counted(hooks: Hooks) -> None:
    path = hooks.script("head -c 100000000 /dev/zero\nhead -c 300000 /dev/zero >&2\n")
    r = run(path, timeout=30)
    assert r.outcome == "ok"
    assert (len(r.stdout), len(r.stderr)) == (65536, 65536)
    assert r.dropped == 100_000_000 + 300_000 - 2 * 65536


def test_timeout_while_flooding_output(hooks: Hooks) -> None:
    start = time.monotonic()
    r = run(hooks.script("exec yes\n"), timeout=0.5, grace=0.5, max_output=100)
    assert r.outcome == "timeout"
    assert time.monotonic() - start < 2.5
    assert len(r.stdout) == 100 and r.dropped > 0


def test_hook_closing_its_output_early_is_still_waited_for(hooks: Hooks) -> None:
    r = run(hooks.script("exec >&- 2>&-\nsleep 0.3\nexit 3\n"), timeout=5)
    assert (r.outcome, r.status) == ("fail", 3)
    assert r.duration >= 0.3
