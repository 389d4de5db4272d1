"""The rig itself (pam/pamrig.py, pam/rig_syslog.py): what it cleans up, what it isolates."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from harness import SyslogSink, missing, rig

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(bool(REASON := missing(tools=["logger"], files=[rig.PAM_WRAPPER_LIB])),
                       reason=REASON),
]


def wrapper_dirs_of(pid: int) -> list[Path]:
    """The /tmp/pam.X directories whose pid file names ``pid``."""
    out = []
    for directory in Path("/tmp").glob("pam.?"):
        try:
            if int((directory / "pid").read_text()) == pid:
                out.append(directory)
        except (OSError, ValueError):
            continue
    return out


def test_a_pam_wrapper_process_that_execs_leaves_its_directory_and_the_sweep_removes_it(
        tmp_path: Path) -> None:
    env = rig.wrapper_env(tmp_path, base={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    shell = subprocess.run(["sh", "-c", "echo $$; exec true"], env=env, capture_output=True,
                           text=True, check=True, timeout=30)
    pid = int(shell.stdout)
    left = wrapper_dirs_of(pid)
    assert left, "pam_wrapper no longer leaves a directory when its process execs"
    assert set(left) <= set(rig.sweep_pam_wrapper_dirs())
    assert not wrapper_dirs_of(pid)


def test_run_pam_removes_what_pam_wrapper_left(tmp_path: Path) -> None:
    env = rig.wrapper_env(tmp_path, base={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    out = rig.run_pam(["sh", "-c", "echo $$; exec true"], env=env)
    assert out.returncode == 0, out
    assert not wrapper_dirs_of(int(out.stdout))


@pytest.mark.skipif(bool(ISOLATION := rig.isolation_problem()), reason=ISOLATION or "")
def test_a_run_logs_to_its_own_dev_log_only(tmp_path: Path) -> None:
    with SyslogSink() as sink:
        tag = f"hookrunner-rig-{os.getpid()}"
        assert rig.run_pam(["logger", "-t", tag, "inside"], syslog=sink).returncode == 0
        # outside the namespace: the host's /dev/log, whatever it is, never this sink
        subprocess.run(["logger", "-t", tag, "outside"], capture_output=True, timeout=30)
        assert rig.wait_for(lambda: any(b"inside" in m for m in sink.messages()), timeout=5)
        assert not [m for m in sink.messages() if b"outside" in m]
    assert not sink.path.exists()  # its private directory is gone
