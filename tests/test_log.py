"""``log_file`` under the hook-file rules, through the real dispatcher (docs/hardening.md).

A FIFO there must not hang a login; a file another user owns or can write, in a directory
others can write, reached through such a directory, a device or a directory gets nothing;
why is logged once per run (syslog, and stderr with ``-v``) and ``check`` reports it in
one line. The file is opened once per run and every record goes to that descriptor.
"""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _hardening import Tree

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "pam"))
import pamrig

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="hook trees must be root-owned: run as root")

SESSION = ("run", "onsessionopen", "-v")  # -v: the records on stderr too
ENV = {"PAM_USER": "alice", "PAM_SERVICE": "sshd"}
NOBODY = 65534
NOT_USED = "not used (records go to syslog only): "


def two_hooks(t: Tree) -> None:
    for name in ("10-a", "20-b"):
        t.hook("onsessionopen", name, f"#!/bin/sh\ntouch {t.out}/{name}\n")


def use(t: Tree, log_file: Path | str) -> None:
    t.config(f'log_file = "{log_file}"\n', log=False)


def run(t: Tree, *args: str) -> subprocess.CompletedProcess[bytes]:
    """The session phase, bounded: a dispatcher that hangs fails the test in 20 s."""
    start = time.monotonic()
    r = t.run(*(args or SESSION), env=ENV, timeout=20)
    assert time.monotonic() - start < 10
    return r


def refusals(r: subprocess.CompletedProcess[bytes]) -> list[str]:
    return [line for line in r.stderr.decode().splitlines() if NOT_USED in line]


def ran_and_refused(t: Tree, log_file: Path | str, reason: str) -> None:
    """Both hooks ran, the phase succeeded, and the refusal was said exactly once."""
    r = run(t)
    assert r.returncode == 0, r.stderr
    assert (t.out / "10-a").exists() and (t.out / "20-b").exists()
    assert b"onsessionopen.d/20-b exited with status 0" in r.stderr  # the records still flow
    [line] = refusals(r)  # once per run, not once per record
    assert line == f"hookrunner: log_file {log_file} {NOT_USED}{reason}", line


def check(t: Tree) -> subprocess.CompletedProcess[bytes]:
    pam = t.base / "pam.d"
    pam.mkdir(exist_ok=True)
    return run(t, "check", "--pam-dir", str(pam))


# ------------------------------------------------------------------------ what may not be used

@pytest.mark.parametrize("reader", [False, True], ids=["no reader", "a reader"])
def test_a_fifo_does_not_hang_the_dispatcher_and_gets_nothing(t: Tree, reader: bool) -> None:
    two_hooks(t)
    fifo = t.root / "hookrunner.log"
    os.mkfifo(fifo, 0o600)
    use(t, fifo)
    with contextlib.ExitStack() as stack:
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK) if reader else None
        if fd is not None:
            stack.callback(os.close, fd)
        ran_and_refused(t, fifo, f"{fifo} is not a regular file")
        if fd is not None:
            assert os.read(fd, 100) == b""  # nothing was written
    r = check(t)
    assert r.returncode == 1
    assert r.stdout.decode().splitlines() == [
        f"{t.root}/etc/security/hookrunner.toml:1: log_file {fifo} {NOT_USED}{fifo} is not a regular file"]


@pytest.mark.parametrize(("owner", "mode", "reason"), [
    (NOBODY, 0o600, "file {log} is owned by uid 65534, not root"),
    (0, 0o620, "file {log} is writable by group (mode 0620)"),
    (0, 0o606, "file {log} is writable by others (mode 0606)"),
])
def test_a_file_others_own_or_can_write_gets_nothing(t: Tree, owner: int, mode: int,
                                                      reason: str) -> None:
    two_hooks(t)
    log = t.root / "hookrunner.log"
    log.write_bytes(b"")
    os.chown(log, owner, owner)
    log.chmod(mode)
    use(t, log)
    ran_and_refused(t, log, reason.format(log=log))
    assert log.read_bytes() == b""
    r = check(t)
    assert r.returncode == 1 and r.stdout.decode().count("\n") == 1
    assert reason.format(log=log) in r.stdout.decode()


def test_a_directory_others_can_write_even_through_a_symlink(t: Tree) -> None:
    """root/var/log -> a world-writable directory: its safe-looking name does not count."""
    two_hooks(t)
    unsafe = t.base / "unsafe"
    unsafe.mkdir()
    unsafe.chmod(0o1777)
    (unsafe / "hookrunner.log").write_bytes(b"")  # root-owned, 0644: fine in itself
    (t.root / "var").mkdir()
    (t.root / "var/log").symlink_to(unsafe)
    log = t.root / "var/log/hookrunner.log"
    use(t, log)
    ran_and_refused(t, log, f"directory {unsafe} is writable by group (mode 1777)")
    assert (unsafe / "hookrunner.log").read_bytes() == b""
    assert check(t).returncode == 1


def test_a_directory_a_device_a_missing_directory(t: Tree) -> None:
    two_hooks(t)
    for log, reason in [(t.root / "logdir", f"{t.root}/logdir is not a regular file"),
                        (Path("/dev/zero"), "/dev/zero is not a regular file"),
                        (t.root / "missing/hookrunner.log",
                         f"cannot open {t.root}/missing/hookrunner.log: No such file or directory")]:
        (t.root / "logdir").mkdir(exist_ok=True)
        use(t, log)
        ran_and_refused(t, log, reason)
        assert check(t).returncode == 1
    assert not (t.root / "missing").exists()


def test_refused_once_in_syslog_per_run(t: Tree) -> None:
    """Without -v: the only trace is syslog, one record per run, whatever the record count."""
    two_hooks(t)
    log = t.root / "hookrunner.log"
    log.write_bytes(b"")
    os.chown(log, NOBODY, NOBODY)
    use(t, log)
    with private_syslog(t.base) as (prefix, messages):
        r = subprocess.run([*prefix, *t.argv("run", "onsessionopen")], env=ENV,
                           capture_output=True, timeout=20, cwd="/")
        assert r.returncode == 0 and r.stderr == b"", r.stderr
        assert pamrig.wait_for(lambda: any(b"20-b exited" in m for m in messages()), timeout=5)
        ours = [m for m in messages() if str(log).encode() in m]
    assert len(ours) == 1, ours
    assert b"hookrunner[" in ours[0] and b"owned by uid 65534, not root" in ours[0]
    assert log.read_bytes() == b""


# ------------------------------------------------------------------------ what may be used

def test_created_0600_root_and_each_run_appends(t: Tree) -> None:
    two_hooks(t)
    (t.root / "var/log").mkdir(parents=True)
    log = t.root / "var/log/hookrunner.log"
    use(t, log)
    r = check(t)  # a missing file in a safe directory is fine; check creates nothing
    assert r.returncode == 0 and not log.exists(), r.stdout
    for _ in range(2):
        r = run(t)
        assert r.returncode == 0 and not refusals(r), r.stderr
    st = log.stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o600)
    assert sum("onsessionopen.d/20-b exited" in line for line in log.read_text().splitlines()) == 2


def test_dev_null_or_a_symlink_to_it_means_no_file(t: Tree) -> None:
    two_hooks(t)
    masked = t.root / "hookrunner.log"
    masked.symlink_to("/dev/null")
    for log in ("/dev/null", masked):
        use(t, log)
        r = run(t)
        assert r.returncode == 0 and not refusals(r), r.stderr
        assert check(t).returncode == 0


def test_a_symlink_in_safe_directories_is_followed(t: Tree) -> None:
    two_hooks(t)
    (t.root / "var/log").mkdir(parents=True)
    target = t.root / "var/log/hookrunner.log"
    target.write_bytes(b"")
    target.chmod(0o600)
    link = t.root / "hookrunner.log"
    link.symlink_to("var/log/hookrunner.log")
    use(t, link)
    r = run(t)
    assert r.returncode == 0 and not refusals(r), r.stderr
    assert "onsessionopen.d/20-b exited with status 0" in target.read_text()


def test_opened_once_a_file_swapped_in_later_gets_nothing(t: Tree) -> None:
    """The first record opens and checks the file; a hook then renames it away and puts a
    symlink to another file in its place: the later records still go to the checked file."""
    log = t.root / "hookrunner.log"
    victim = t.out / "victim"
    victim.write_bytes(b"")
    t.hook("onsessionopen", "10-a", "#!/bin/sh\nexit 0\n")
    t.hook("onsessionopen", "20-swap", f"#!/bin/sh\nmv {log} {log}.1 && ln -s {victim} {log}\n")
    t.hook("onsessionopen", "30-c", "#!/bin/sh\nexit 0\n")
    use(t, log)
    r = run(t)
    assert r.returncode == 0, r.stderr
    assert log.is_symlink() and victim.read_bytes() == b""
    records = (t.root / "hookrunner.log.1").read_text()
    assert all(f"onsessionopen.d/{h} exited with status 0" in records for h in ("10-a", "20-swap", "30-c"))


def test_the_log_descriptor_never_reaches_a_hook(t: Tree) -> None:
    log = t.root / "hookrunner.log"
    t.hook("onsessionopen", "10-a", "#!/bin/sh\nexit 0\n")  # its record opens the file
    t.hook("onsessionopen", "20-fds",
           f"#!/bin/sh\nfor fd in /proc/$$/fd/*; do readlink $fd; done > {t.out}/fds; exit 0\n")
    use(t, log)
    assert run(t).returncode == 0
    fds = (t.out / "fds").read_text()
    assert "/proc/" in fds or "pipe:" in fds  # the listing worked
    assert str(log) not in fds


# ------------------------------------------------------------------------ a private syslog

@contextlib.contextmanager
def private_syslog(base: Path) -> Iterator[tuple[list[str], object]]:
    """(argv prefix, messages()): where the dispatcher's syslog(3) records can be read: pamrig's
    sink, the /dev/log of a private mount namespace (nothing else on this machine touched)."""
    try:
        with pamrig.SyslogSink() as sink:
            yield pamrig.dev_log_argv(sink.path, []), sink.messages
    except pamrig.SyslogUnavailable as e:
        pytest.skip(f"cannot capture syslog: {e}")
