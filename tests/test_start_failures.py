"""A hook that cannot be started still leaves its record, saying why (issue 14, item 7).

Each cause is made real: a file open for writing (ETXTBSY), an exec error the ``#!`` line
explains, a process limit (a pids cgroup: EAGAIN; root is exempt from RLIMIT_NPROC), no
memory (RLIMIT_AS: ENOMEM), no descriptors (RLIMIT_NOFILE: EMFILE), and a child reaped by
someone else (SIGCHLD ignored by the caller, or by a plugin). In every case the phase ends
with exit 1 and the hook's record has ``outcome=error``, never an internal error without one.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import secrets
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from _hardening import Tree
from hooktree import HookTree

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="hook trees must be root-owned: run as root")

SESSION = ("run", "onsessionopen")
ENV = {"PAM_USER": "alice", "PAM_SERVICE": "sshd"}
OK = "#!/bin/sh\nexit 0\n"


def records(t: Tree, hook: str) -> list[str]:
    """The outcome records of ``hook`` (not the lines with its output)."""
    return [line.decode() for line in t.log_lines() if f"onsessionopen.d/{hook} ".encode() in line
            and not re.search(rb"/\S+ (stdout|stderr|output): ", line)]


def failed_to_start(t: Tree, hook: str, *, preexec: Callable[[], object] | None = None) -> str:
    """Run the phase; the hook's one record, which must say it could not be started."""
    r = t.run(*SESSION, env=ENV, preexec=preexec)
    assert r.returncode == 1, (r.stderr, t.log_lines())
    assert b"internal error" not in r.stderr
    [record] = records(t, hook)
    assert "outcome=error" in record
    assert f"onsessionopen.d/{hook} could not be started: " in record, record
    return record


def test_a_hook_open_for_writing_is_text_file_busy(t: Tree) -> None:
    hook = t.hook("onsessionopen", "10-being-written", OK)
    t.config()
    fd = os.open(hook, os.O_WRONLY)  # as an editor or a copy still writing it
    try:
        record = failed_to_start(t, "10-being-written")
    finally:
        os.close(fd)
    assert ("could not be started: Text file busy (ETXTBSY): the file is open for writing "
            "(being written or edited)") in record


@pytest.mark.parametrize(("content", "why"), [
    (b"#!/nonexistent/python3\nprint(1)\n", "No such file or directory (ENOENT): its interpreter "
                                            "/nonexistent/python3 (#! line) does not exist"),
    (b"#!/etc/os-release\n", "Permission denied (EACCES): its interpreter /etc/os-release (#! line) "
                             "is not executable, or it is on a noexec mount"),
    (b"echo no shebang\n", "Exec format error (ENOEXEC): no #! line, and not a binary format "
                           "this system runs"),
])
def test_an_exec_error_names_what_is_missing(t: Tree, content: bytes, why: str) -> None:
    t.hook("onsessionopen", "10-broken", content)
    t.config()
    assert f"could not be started: {why} (" in failed_to_start(t, "10-broken")


@contextlib.contextmanager
def pids_cgroup(limit: int) -> Iterator[Path]:
    """A new pids cgroup (v1 or v2) allowing ``limit`` tasks; yields its cgroup.procs."""
    name = f"hookrunner-test-{secrets.token_hex(4)}"
    for parent in (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup")):
        if parent == Path("/sys/fs/cgroup"):
            try:  # v2: the pids controller must be on for the children of the root
                if "pids" not in (parent / "cgroup.subtree_control").read_text().split():
                    continue
            except OSError:
                continue
        if not (parent / "cgroup.procs").exists():
            continue
        group = parent / name
        try:
            group.mkdir()
        except OSError:
            continue
        try:
            (group / "pids.max").write_text(str(limit))
            yield group / "cgroup.procs"
            return
        finally:
            group.rmdir()  # empty again: the dispatcher has exited
    pytest.skip("no pids cgroup to make here (cgroup v1 pids, or v2 with pids enabled)")


def test_a_process_limit_is_eagain(t: Tree) -> None:
    """RLIMIT_NPROC does not bind root: a cgroup's pids.max does (the dispatcher alone fits)."""
    t.hook("onsessionopen", "10-one-too-many", OK)
    t.config()
    with pids_cgroup(1) as procs:
        def join() -> None:
            procs.write_text(str(os.getpid()))

        record = failed_to_start(t, "10-one-too-many", preexec=join)
    assert ("could not be started: Resource temporarily unavailable (EAGAIN): a process limit "
            "was reached") in record


LIMIT_PLUGIN = '''import resource, hookrunner

@hookrunner.hookimpl
def onsessionopen(ctx):
    {body}
'''


def test_no_memory_is_enomem(t: Tree) -> None:
    """A plugin leaves the dispatcher no address space to spare (RLIMIT_AS at its size)."""
    t.hook("onsessionopen", "10-squeeze.py", LIMIT_PLUGIN.format(body="""\
size = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status")
                if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (size, resource.RLIM_INFINITY))"""), 0o644)
    t.hook("onsessionopen", "20-next", OK)
    t.config()
    record = failed_to_start(t, "20-next")
    assert ("could not be started: Cannot allocate memory (ENOMEM): out of memory (RLIMIT_AS, "
            "or the machine's)") in record


def test_no_descriptors_left_is_emfile_and_every_limit_leaves_a_record(t: Tree) -> None:
    """RLIMIT_NOFILE from 4 up (at 3 the interpreter itself cannot load): the hook runs, or
    its record says it could not start (EMFILE), or its own shell fails (dash wants fd 10);
    never an internal error without a record. Which limit is which depends on how many
    descriptors the interpreter holds, so all are tried."""
    t.hook("onsessionopen", "10-a", f"#!/bin/sh\ntouch {t.out}/10-a\n")
    t.config()
    outcomes = {}
    for limit in range(4, 14):
        t.log_file.unlink(missing_ok=True)
        (t.out / "10-a").unlink(missing_ok=True)

        def low(limit: int = limit) -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

        r = t.run(*SESSION, env=ENV, preexec=low)
        [record] = records(t, "10-a")
        outcome = re.search(r"outcome=(\w+)", record)
        assert outcome, record
        outcomes[limit] = outcome[1]
        assert r.returncode == (0 if outcome[1] == "ok" else 1), (limit, record, r.stderr)
        assert (t.out / "10-a").exists() == (outcome[1] == "ok")
        if outcome[1] == "error":
            assert re.search(r"could not be started: (cannot open it: )?Too many open files "
                             r"\(EMFILE\): the dispatcher ran out of file descriptors "
                             r"\(RLIMIT_NOFILE\)", record), record
    assert "error" in outcomes.values() and outcomes[13] == "ok", outcomes


def test_sigchld_ignored_by_the_caller_does_not_lose_the_exit_status(t: Tree) -> None:
    """An ignored SIGCHLD survives exec; the kernel would reap every hook at once and
    waitpid() find none. The dispatcher sets it back to the default."""
    t.hook("onsessionopen", "10-ok", OK)
    t.hook("onsessionopen", "20-three", "#!/bin/sh\nexit 3\n")
    t.config()
    r = t.run(*SESSION, env=ENV, preexec=lambda: signal.signal(signal.SIGCHLD, signal.SIG_IGN))
    assert r.returncode == 1, r.stderr
    assert "10-ok exited with status 0" in records(t, "10-ok")[0]
    assert "20-three exited with status 3" in records(t, "20-three")[0]


def test_a_hook_reaped_by_someone_else_has_a_record(t: Tree) -> None:
    """A plugin sets SIGCHLD to SIG_IGN behind the dispatcher's back (libc, from its thread):
    the next hook's exit status is lost, and its record says so."""
    t.hook("onsessionopen", "10-ignore.py", LIMIT_PLUGIN.format(body=f"""\
import ctypes
    ctypes.CDLL(None).signal({int(signal.SIGCHLD)}, ctypes.c_void_p(1))  # SIG_IGN"""), 0o644)
    t.hook("onsessionopen", "20-next", "#!/bin/sh\nexit 0\n")
    t.config()
    r = t.run(*SESSION, env=ENV)
    assert r.returncode == 1, r.stderr
    [record] = records(t, "20-next")
    assert ("20-next ended, but its exit status was lost: something else in this process "
            "reaped it") in record and "outcome=error" in record, record


def test_anything_raised_while_running_a_hook_is_that_hooks_error_record(hooktree: HookTree) -> None:
    """MemoryError (or a bug of ours) in one hook's run: its record, the traceback logged, and
    the policy as for any failure (a session phase runs the next hook). In-process, with the
    error raised where an exec hook is started."""
    from hookrunner.config import Config
    from hookrunner.discovery import Candidate
    from hookrunner.dispatch import Dispatch
    from hookrunner.log import Log
    from hookrunner.phases import resolve_phase
    from hookrunner.runner import HookResult

    hooktree.hook("onsessionopen", "10-a", OK)
    hooktree.hook("onsessionopen", "20-b", f"#!/bin/sh\ntouch {hooktree.out}/20-b\n")

    class OutOfMemory(Dispatch):
        def run_exec(self, candidate: Candidate, timeout: float, real: str) -> HookResult:
            if candidate.name == "10-a":
                raise MemoryError
            return super().run_exec(candidate, timeout, real)

    log = hooktree.root / "hookrunner.log"
    phase = resolve_phase("onsessionopen")
    assert phase is not None
    status, ran = OutOfMemory(phase, {b"PAM_USER": b"bob"}, Config(),
                              Log(path=str(log), root=str(hooktree.root), use_syslog=False),
                              root=hooktree.root).run()
    assert status == 1
    assert [(r.candidate.name, r.result.outcome) for r in ran] == [("10-a", "error"), ("20-b", "ok")]
    lines = log.read_text().splitlines()
    assert any("onsessionopen.d/10-a: internal error: \"Traceback" in line and "MemoryError" in line
               for line in lines), lines
    assert any("onsessionopen.d/10-a could not be run: internal error: MemoryError" in line
               and "outcome=error" in line for line in lines), lines
    assert (hooktree.out / "20-b").exists()
