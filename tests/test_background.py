"""``background = true``: started, not waited for, still timed out and logged, never the result.

The real dispatcher, real hooks that sleep; the outcome is read from the log file the
supervisor writes, polled with a deadline. stdout/stderr of the dispatcher are pipes read
to their end (``capture_output``), as ``pam_exec.so stdout`` reads them: a supervisor that
held them would make the phase last as long as the hook.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from hooktree import HookTree

SLEEPER = """#!/bin/sh
echo $$ > {out}/{name}.pid
sleep {seconds}
echo "done $PAM_USER" > {out}/{name}.done
"""


def wait_for(predicate: object, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def log(tree: HookTree) -> str:
    path = tree.root / "log"
    return path.read_text() if path.exists() else ""


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def setup(tree: HookTree, seconds: float, timeout: float, *, extra: str = "") -> None:
    tree.hook("onsessionopen", "10-bg", SLEEPER.format(out=tree.out, name="10-bg", seconds=seconds))
    tree.config(f'log_file = "{tree.root}/log"\nkill_grace = 0.2\n'
                f'[hook."10-bg"]\nbackground = true\ntimeout = {timeout}\n{extra}')


def timed(tree: HookTree, *args: str, env: dict[str, str] | None = None) -> tuple[float, int]:
    start = time.monotonic()
    proc = tree.run(*args, env=env or {"PAM_USER": "alice"})
    return time.monotonic() - start, proc.returncode


def test_a_background_hook_does_not_delay_the_phase_and_completes(hooktree: HookTree) -> None:
    setup(hooktree, seconds=2, timeout=10)
    hooktree.hook("onsessionopen", "20-fg", "#!/bin/sh\necho fg >> " + str(hooktree.out / "fg") + "\n")
    elapsed, status = timed(hooktree, "run", "onsessionopen")
    assert status == 0
    assert elapsed < 1.5, elapsed  # the hook sleeps 2 s
    assert (hooktree.out / "fg").read_text() == "fg\n"  # the next hook ran meanwhile
    assert not (hooktree.out / "10-bg.done").exists()
    assert wait_for(lambda: "onsessionopen.d/10-bg exited with status 0" in log(hooktree))
    assert (hooktree.out / "10-bg.done").read_text() == "done alice\n"
    records = [line for line in log(hooktree).splitlines() if "10-bg" in line]
    assert len(records) == 1, records  # one record, written by the supervisor
    assert "ms, background) user=alice" in records[0] and "outcome=ok" in records[0]


def test_a_background_hook_that_overruns_is_killed_at_its_timeout(hooktree: HookTree) -> None:
    setup(hooktree, seconds=60, timeout=1)
    elapsed, status = timed(hooktree, "run", "onsessionopen")
    assert status == 0 and elapsed < 1.0, elapsed
    assert wait_for(lambda: (hooktree.out / "10-bg.pid").exists())
    pid = int((hooktree.out / "10-bg.pid").read_text())
    assert wait_for(lambda: "onsessionopen.d/10-bg timed out after 1 s" in log(hooktree))
    assert "outcome=timeout" in log(hooktree)
    assert wait_for(lambda: not alive(pid), timeout=5)
    assert not (hooktree.out / "10-bg.done").exists()


def test_a_failing_background_hook_never_fails_the_phase(hooktree: HookTree) -> None:
    hooktree.hook("onsessionclose", "10-fail", "#!/bin/sh\nexit 7\n")
    hooktree.config(f'log_file = "{hooktree.root}/log"\n[hook."10-fail"]\nbackground = true\n')
    proc = hooktree.run("run", "onsessionclose")
    assert proc.returncode == 0, proc.stderr
    assert wait_for(lambda: "onsessionclose.d/10-fail exited with status 7" in log(hooktree))


def test_a_later_hook_timing_out_does_not_kill_the_background_hook(hooktree: HookTree) -> None:
    # The dispatcher kills the children it adopted after a timeout: the supervisor is not one.
    setup(hooktree, seconds=1.5, timeout=10)
    hooktree.hook("onsessionopen", "20-slow", "#!/bin/sh\nsleep 30\n")
    with open(hooktree.root / "etc/security/hookrunner.toml", "a") as f:
        f.write('[hook."20-slow"]\ntimeout = 0.3\n')
    elapsed, status = timed(hooktree, "run", "onsessionopen")
    assert status == 1 and elapsed < 1.4, elapsed
    assert wait_for(lambda: "onsessionopen.d/10-bg exited with status 0" in log(hooktree))
    assert (hooktree.out / "10-bg.done").exists()


def test_the_supervisor_holds_no_descriptor_of_the_caller(hooktree: HookTree) -> None:
    setup(hooktree, seconds=3, timeout=10, extra="show_output = true\n")
    start = time.monotonic()
    proc, messages = hooktree.run_msg_fd("run", "onsessionopen")  # reads fd W to its end
    assert proc.returncode == 0
    assert time.monotonic() - start < 2.0
    assert messages == b""
    assert wait_for(lambda: (hooktree.out / "10-bg.pid").exists())
    pid = int((hooktree.out / "10-bg.pid").read_text())
    supervisor = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    fds = sorted(int(fd) for fd in os.listdir(f"/proc/{supervisor}/fd"))
    targets = {fd: os.readlink(f"/proc/{supervisor}/fd/{fd}") for fd in fds}
    assert all(targets[fd] == "/dev/null" for fd in (0, 1, 2)), targets
    # above 2: only the hook's output pipes and its pidfd
    assert all(t.startswith(("pipe:", "anon_inode:[pidfd]")) for fd, t in targets.items() if fd > 2), targets
    ours = {os.readlink(f"/proc/self/fd/{fd}") for fd in (0, 1, 2)}
    assert ours.isdisjoint(t for fd, t in targets.items() if fd > 2)
    assert os.getsid(supervisor) != os.getsid(0)
    assert wait_for(lambda: "10-bg exited with status 0" in log(hooktree))


@pytest.mark.parametrize("phase", ["onauth", "onaccount", "onpasswd"])
def test_background_is_refused_outside_session_phases(hooktree: HookTree, phase: str) -> None:
    hooktree.hook(phase, "10-before", "#!/bin/sh\ntouch " + str(hooktree.out / "before") + "\n")
    hooktree.hook(phase, "20-bg", "#!/bin/sh\nexit 0\n")
    path = hooktree.config('[hook."20-bg"]\nbackground = true\n')
    proc = hooktree.run("run", phase)
    assert proc.returncode == 3
    assert proc.stderr.decode() == (
        f"hookrunner: {path}:2: hook.20-bg.background: only hooks of onsessionopen and "
        f"onsessionclose run in the background, and 20-bg is a hook of {phase}\n")
    assert not (hooktree.out / "before").exists()  # refused before any hook ran
    proc = hooktree.run("check", "--pam-dir", hooktree.out)
    assert proc.returncode == 1 and f"{phase}.d/20-bg: hook.20-bg.background: only" in proc.stdout.decode()
    assert hooktree.run("run", "onsessionopen").returncode == 0  # the same name elsewhere: fine


def test_background_is_refused_for_a_plugin(hooktree: HookTree) -> None:
    hooktree.hook("onsessionopen", "10-p.py", "import hookrunner\n", mode=0o644)
    hooktree.config('[hook."10-p"]\nbackground = true\n')
    proc = hooktree.run("run", "onsessionopen")
    assert proc.returncode == 3
    assert "hook.10-p.background: a Python plugin runs inside the dispatcher" in proc.stderr.decode()


def test_simulate_and_list_show_a_background_hook(hooktree: HookTree) -> None:
    setup(hooktree, seconds=0, timeout=5)
    proc = hooktree.run("list", "onsessionopen")
    assert "in the background" in proc.stdout.decode()
    proc = hooktree.run("simulate", "onsessionopen", "--user", "alice")
    assert proc.returncode == 0
    assert "10-bg  started" in proc.stdout.decode()
    assert wait_for(lambda: "10-bg exited with status 0" in log(hooktree))


def test_a_pipe_reader_is_not_held_open(hooktree: HookTree) -> None:
    # As `pam_exec.so stdout` does: read the dispatcher's stdout to its end, then wait.
    setup(hooktree, seconds=3, timeout=10)
    start = time.monotonic()
    proc = subprocess.Popen(hooktree.argv("run", "onsessionopen"), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env={"PAM_USER": "alice"})
    assert proc.stdout is not None
    proc.stdout.read()
    assert proc.wait(timeout=10) == 0
    assert time.monotonic() - start < 2.0


def test_the_supervisor_is_not_among_the_leftovers_the_dispatcher_kills(hooktree: HookTree) -> None:
    # pam_hookrunner.so's timeout SIGTERMs the dispatcher, which then kills every process it
    # adopted (it is a subreaper once a hook ran). The supervisor is never adopted: the
    # background hook still completes and is logged.
    hooktree.hook("onsessionopen", "05-fg")  # makes the dispatcher a subreaper
    setup(hooktree, seconds=1.5, timeout=10)
    hooktree.hook("onsessionopen", "20-slow", f"#!/bin/sh\necho $$ > {hooktree.out}/slow.pid\nsleep 30\n")
    proc = subprocess.Popen(hooktree.argv("run", "onsessionopen"), env={"PAM_USER": "alice"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: (hooktree.out / "slow.pid").exists())
        proc.terminate()
        assert proc.wait(timeout=10) == 3
    finally:
        proc.kill()
        proc.wait()
    slow = int((hooktree.out / "slow.pid").read_text())
    assert wait_for(lambda: not alive(slow), timeout=5)  # what it ran in the foreground: killed
    assert wait_for(lambda: "onsessionopen.d/10-bg exited with status 0" in log(hooktree))
    assert (hooktree.out / "10-bg.done").read_text() == "done alice\n"


def test_a_background_hook_through_the_warm_dispatcher(hooktree: HookTree) -> None:
    # hookrunner serve: the request's child is a subreaper from the start and the module
    # waits for its status on the connection; the supervisor holds neither, and is not
    # adopted by the request's child nor by the daemon.
    from servetool import ask, served

    hooktree.hook("onsessionopen", "05-fg")
    setup(hooktree, seconds=1.5, timeout=10)
    with served() as daemon:
        start = time.monotonic()
        reply = ask(daemon.socket, "onsessionopen", {b"PAM_USER": b"alice"}, root=hooktree.root)
        assert reply.status == 0
        assert time.monotonic() - start < 1.2
        assert not (hooktree.out / "10-bg.done").exists()
        assert wait_for(lambda: "onsessionopen.d/10-bg exited with status 0" in log(hooktree))
    assert (hooktree.out / "10-bg.done").read_text() == "done alice\n"
