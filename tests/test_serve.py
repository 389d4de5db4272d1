"""``hookrunner serve``: the protocol (wire.py), and a real daemon driven by a Python client.

The daemon is started by hand (``serve --socket /run/hookrunner-test-<id>/dispatch.sock``) or
by ``systemd-socket-activate``; hook trees are root-owned (``--root``, named in the request as
the module's ``root=`` does). The PAM side (pam_hookrunner.so ``socket=``) is tested in
tests/e2e/test_serve_module.py.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest
from hooktree import MAIN, PYTHON, HookTree
from hypothesis import given
from hypothesis import strategies as st
from servetool import ask, connect, send_request, served, socket_dir, started, wait_for

from hookrunner import wire

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="serve runs as root for root peers only")

# A hook that records its environment (as execve gave it: before Python's locale coercion)
# and stdin as one JSON line in OUT/records.
RECORDER = """#!/usr/bin/python3 -IS
import json, os, sys
env = dict(e.split("=", 1) for e in open("/proc/self/environ").read().split("\\0") if e)
rec = {"hook": env.get("HOOKRUNNER_HOOK"), "env": env,
       "stdin": sys.stdin.read(), "pid": os.getpid()}
with open(%r, "a") as f:
    f.write(json.dumps(rec) + "\\n")
"""


def records(tree: HookTree) -> list[dict[str, object]]:
    path = tree.out / "records"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def recorder(tree: HookTree, phase: str, name: str) -> Path:
    return tree.hook(phase, name, RECORDER % str(tree.out / "records"))


# --------------------------------------------------------------------------- the protocol

def test_encode_parse_round_trip_and_defaults() -> None:
    data = wire.encode("onauth", {b"PAM_USER": b"al ice\n$(x)", b"PAM_RHOST": b""},
                       root="/srv/root", authtok=b"pw 1")
    req = wire.parse(data)
    assert req.phase.name == "onauth"
    assert req.items == {b"PAM_USER": b"al ice\n$(x)", b"PAM_RHOST": b""}
    assert (req.root, req.config, req.authtok) == ("/srv/root", None, b"pw 1")
    assert "pw 1" not in repr(req)
    assert wire.parse(wire.encode("open_session", {})).phase.name == "onsessionopen"


value = st.binary(max_size=300).filter(lambda b: b"\0" not in b)


@given(st.dictionaries(st.sampled_from(wire.ITEMS), value), st.one_of(st.none(), value))
def test_any_items_survive_the_wire_byte_for_byte(items: dict[bytes, bytes],
                                                  authtok: bytes | None) -> None:
    if authtok is not None and len(authtok) > wire.MAX_AUTHTOK:
        authtok = authtok[: wire.MAX_AUTHTOK]
    req = wire.parse(wire.encode("onpasswd", items, authtok=authtok))
    assert req.items == items
    assert req.authtok == authtok


@pytest.mark.parametrize(("data", "why"), [
    (b"GET / HTTP/1.0\r\n\r\n", "not a hookrunner request"),
    (b"hookrunner=1\0phase=onauth\0", "not a hookrunner request"),  # no end
    (b"hookrunner=2\0phase=onauth\0\0", "protocol version"),
    (b"hookrunner=1\0phase=onfoo\0\0", "unknown phase"),
    (b"hookrunner=1\0\0", "unknown phase"),
    (b"hookrunner=1\0phase=onauth\0LD_PRELOAD=/x.so\0\0", "unknown field 'LD_PRELOAD'"),
    (b"hookrunner=1\0phase=onauth\0PAM_USER=a\0PAM_USER=b\0\0", "given twice"),
    (b"hookrunner=1\0phase=onauth\0root=relative\0\0", "not an absolute path"),
    (b"hookrunner=1\0phase=onauth\0noequals\0\0", "unknown field"),
    (b"hookrunner=1\0phase=onauth\0\0G", "data after the end"),
    (b"hookrunner=1\0phase=onauth\0authtok=" + b"x" * 513 + b"\0\0", "authtok longer"),
    (b"hookrunner=1\0phase=onauth\0" + b"PAM_TTY=x\0" * 20 + b"\0", "more than 16 fields"),
    (b"hookrunner=1\0phase=onauth\0PAM_USER=" + b"u" * 70000 + b"\0\0", "longer than 65536"),
])
def test_bad_requests_are_refused_with_a_reason(data: bytes, why: str) -> None:
    with pytest.raises(wire.BadRequest, match=why.replace("(", r"\(")):
        wire.parse(data)


# --------------------------------------------------------------------------- a daemon by hand

@ROOT_ONLY
def test_phases_run_as_run_does_statuses_and_records(hooktree: HookTree) -> None:
    log = hooktree.root / "var/log/hookrunner.log"  # below ROOT: the hook-file rules apply
    log.parent.mkdir(mode=0o755, parents=True)
    hooktree.config(f'log_file = "{log}"\n')
    recorder(hooktree, "onauth", "10-rec")
    hooktree.hook("onaccount", "10-deny", "#!/bin/sh\nexit 1\n")
    with served() as daemon:
        assert stat.S_IMODE(daemon.socket.stat().st_mode) == 0o600
        assert daemon.socket.stat().st_uid == 0
        items = {b"PAM_USER": b"al ice", b"PAM_SERVICE": b"sshd", b"PAM_RHOST": b"203.0.113.9"}
        ok = ask(daemon.socket, "onauth", items, root=hooktree.root)
        deny = ask(daemon.socket, "onaccount", items, root=hooktree.root)
        empty = ask(daemon.socket, "onsessionopen", items, root=hooktree.root)
    assert (ok.replies, ok.status) == (b"RS\x00", 0)
    assert deny.status == 1
    assert empty.status == 4  # no hook: --ignore-empty's status, PAM_IGNORE in the module
    [rec] = records(hooktree)
    assert rec["env"] == {"PAM_USER": "al ice", "PAM_SERVICE": "sshd", "PAM_RHOST": "203.0.113.9",
                          "PAM_TYPE": "auth", "HOOKRUNNER_PHASE": "onauth", "HOOKRUNNER_HOOK": "10-rec",
                          "HOOKRUNNER_ROOT": str(hooktree.root),
                          "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    text = log.read_text()
    assert 'onauth.d/10-rec exited with status 0' in text and 'user="al ice" service=sshd' in text
    assert "onaccount.d/10-deny exited with status 1" in text


@ROOT_ONLY
def test_messages_and_password_as_with_msg_fd(hooktree: HookTree) -> None:
    hooktree.hook("onauth", "10-hello", "#!/bin/sh\necho Welcome\n")
    recorder(hooktree, "onauth", "20-pw")
    hooktree.hook("onauth", "30-deny.py", 'import hookrunner\n\n\n@hookrunner.hookimpl\n'
                  'def onauth(ctx):\n    raise hookrunner.Deny("not today")\n', mode=0o644)
    hooktree.config('[hook."10-hello"]\nshow_output = true\n[hook."20-pw"]\nauthtok = true\n')
    with served() as daemon:
        answer = ask(daemon.socket, "onauth", root=hooktree.root, authtok=b"s3cret pw")
    ran, expected = hooktree.run_msg_fd("run", "onauth", env={"PAM_USER": "alice"})
    assert answer.status == ran.returncode == 1
    assert answer.messages == expected == b"info Welcome\nerror not today\n"
    assert [r["stdin"] for r in records(hooktree)] == ["s3cret pw", ""]  # the daemon's, then run's


@ROOT_ONLY
def test_changes_between_requests_are_seen(hooktree: HookTree) -> None:
    plugin = ('import hookrunner\n\n\n@hookrunner.hookimpl\ndef onsessionopen(ctx):\n'
              f'    open({str(hooktree.out / "plugin")!r}, "a").write("{{}}\\n")\n')
    with served() as daemon:
        def run() -> int | None:
            return ask(daemon.socket, "onsessionopen", root=hooktree.root).status

        assert run() == 4
        hooktree.hook("onsessionopen", "10-a", hooktree.order_script("a1"))  # a new hook
        assert run() == 0 and hooktree.order() == ["a1"]
        hooktree.hook("onsessionopen", "10-a", hooktree.order_script("a2"))  # changed
        assert run() == 0 and hooktree.order() == ["a1", "a2"]
        path = hooktree.hook("onsessionopen", "20-p.py", plugin.format("one"), mode=0o644)
        assert run() == 0 and (hooktree.out / "plugin").read_text() == "one\n"
        st = path.stat()  # same size, same mtime: only the ctime and the bytes differ
        path.write_text(plugin.format("two"))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert run() == 0 and (hooktree.out / "plugin").read_text() == "one\ntwo\n"
        hooktree.hook("onsessionopen", "30-fail", "#!/bin/sh\nexit 1\n")
        assert run() == 1
        hooktree.config('[hook."30-fail"]\noptional = true\n')  # a config change
        assert run() == 0
        assert hooktree.order() == ["a1"] + ["a2"] * 5
        (hooktree.root / "etc/security/onsessionopen.d/10-a").chmod(0o775)  # now unsafe
        assert run() == 0 and hooktree.order() == ["a1"] + ["a2"] * 5


@ROOT_ONLY
def test_an_installed_entry_point_is_seen_by_the_next_request(hooktree: HookTree) -> None:
    """A venv of its own for the daemon (below /run: a site directory in /tmp is refused),
    into which a distribution with a ``hookrunner`` entry point is installed between two
    requests, as pip would lay it out."""
    directory = socket_dir()
    try:
        venv = directory / "venv"
        subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", "--system-site-packages",
                        str(venv)], check=True, timeout=120)
        [site] = venv.glob("lib/python3*/site-packages")
        with served(python=venv / "bin/python", directory=directory) as daemon:
            assert ask(daemon.socket, "onsessionopen", root=hooktree.root).status == 4
            (site / "hrtest_ep.py").write_text(
                "import hookrunner\n\n\n@hookrunner.hookimpl\ndef onsessionopen(ctx):\n"
                f"    open({str(hooktree.out / 'ep')!r}, 'w').write(ctx.user)\n")
            info = site / "hrtest_ep-1.0.dist-info"
            info.mkdir()
            (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hrtest-ep\nVersion: 1.0\n")
            (info / "entry_points.txt").write_text("[hookrunner]\n60-ep = hrtest_ep\n")
            assert ask(daemon.socket, "onsessionopen", root=hooktree.root).status == 0
        assert (hooktree.out / "ep").read_text() == "alice"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# --------------------------------------------------------------------------- bounds and faults

@ROOT_ONLY
@pytest.mark.parametrize(("raw", "fds", "why"), [
    (b"hookrunner=1\0phase=onsessionopen\0LD_PRELOAD=/x\0\0", 1, "unknown field 'LD_PRELOAD'"),
    (wire.encode("onsessionopen", {}), 0, "expected one descriptor"),
    (wire.encode("onsessionopen", {}), 2, "expected one descriptor"),
    (b"x" * 70000, 1, "longer than 65536"),
])
def test_a_malformed_request_gets_a_reason_and_nothing_runs(hooktree: HookTree, raw: bytes,
                                                            fds: int, why: str) -> None:
    hooktree.hook("onsessionopen", "10-a", hooktree.order_script("a"))
    with served() as daemon:
        pipes = [os.pipe() for _ in range(fds)]
        try:
            with connect(daemon.socket) as s:
                s.settimeout(10)
                send_request(s, raw[:60000], [w for _, w in pipes])
                if len(raw) > 60000:
                    s.sendall(raw[60000:])
                reply = s.recv(512)
        finally:
            for r, w in pipes:
                os.close(r)
                os.close(w)
        assert reply.startswith(b"E") and why in reply.decode(), reply
        assert ask(daemon.socket, "onsessionopen", root=hooktree.root).status == 0  # still serving
    assert hooktree.order() == ["a"]


@ROOT_ONLY
def test_a_request_cut_in_the_middle_or_too_slow_runs_nothing(hooktree: HookTree) -> None:
    hooktree.hook("onsessionopen", "10-a", hooktree.order_script("a"))
    data = wire.encode("onsessionopen", {b"PAM_USER": b"alice"}, root=str(hooktree.root))
    with served() as daemon:
        r, w = os.pipe()
        try:
            with connect(daemon.socket) as s:  # half a request, then the client is gone
                send_request(s, data[:20], [w])
            with connect(daemon.socket) as s:  # half a request, then nothing for too long
                s.settimeout(10)
                send_request(s, data[:20], [w])
                start = time.monotonic()
                reply = s.recv(512)
                assert reply.startswith(b"E") and b"incomplete after 2 s" in reply
                assert 1.5 < time.monotonic() - start < 5
        finally:
            os.close(r)
            os.close(w)
        assert ask(daemon.socket, "onsessionopen", root=hooktree.root).status == 0
    assert hooktree.order() == ["a"]


@ROOT_ONLY
def test_without_go_nothing_runs(hooktree: HookTree) -> None:
    """The module gave up after "R" (it was late and ran the phase by exec): nothing runs."""
    hooktree.hook("onsessionopen", "10-a", hooktree.order_script("a"))
    with served() as daemon:
        answer = ask(daemon.socket, "onsessionopen", root=hooktree.root, go=False)
        assert answer.replies == b"R"
        assert wait_for(lambda: len(daemon.children()) == 2)  # only the spares are left
    assert hooktree.order() == []


@ROOT_ONLY
def test_a_client_hanging_up_after_start_kills_the_running_hook(hooktree: HookTree) -> None:
    """The module's timeout= closes the connection: the child kills the hook and what it
    left, as ``run`` does on the module's SIGTERM."""
    pidfile = hooktree.out / "pid"
    hooktree.hook("onsessionopen", "10-sleep", f"#!/bin/sh\necho $$ > {pidfile}\nexec sleep 300\n")
    with served() as daemon:
        with started(daemon.socket, "onsessionopen", hooktree.root):
            assert wait_for(pidfile.exists)
        pid = int(pidfile.read_text())
        assert wait_for(lambda: not Path(f"/proc/{pid}").exists(), 5)


@ROOT_ONLY
def test_what_a_hook_that_exited_in_time_left_running_is_left_alone(hooktree: HookTree) -> None:
    """As after ``run``: only a timeout (or the module hanging up mid-phase) kills leftovers."""
    pidfile = hooktree.out / "pid"
    hooktree.hook("onsessionopen", "10-daemonize", "#!/bin/sh\nsetsid sleep 300 </dev/null "
                  f">/dev/null 2>&1 &\necho $! > {pidfile}\n")
    with served() as daemon:
        assert ask(daemon.socket, "onsessionopen", root=hooktree.root).status == 0
        assert wait_for(lambda: len(daemon.children()) == 2)  # the request's child is gone
        pid = int(pidfile.read_text())
        try:
            assert Path(f"/proc/{pid}").exists()
            assert "sleep" in Path(f"/proc/{pid}/cmdline").read_text()
        finally:
            os.kill(pid, signal.SIGKILL)


@ROOT_ONLY
def test_a_client_that_is_not_root_is_refused(hooktree: HookTree) -> None:
    hooktree.hook("onsessionopen", "10-a", hooktree.order_script("a"))
    probe = ("import socket, sys\ns = socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\n"
             "print(s.recv(100))\n")  # refused on sight: before it could send a request
    with served() as daemon:
        daemon.socket.chmod(0o666)  # so that the kernel lets it connect: the daemon must refuse
        daemon.socket.parent.chmod(0o755)
        out = subprocess.run([str(PYTHON), "-I", "-c", probe, str(daemon.socket), str(hooktree.root)],
                             user=65534, group=65534, extra_groups=[], capture_output=True,
                             timeout=30, text=True)
        assert "only root may connect" in out.stdout, out
        assert "refused a connection from pid" in daemon.output()
    assert hooktree.order() == []


# --------------------------------------------------------------------------- starting and stopping

@ROOT_ONLY
def test_systemd_socket_activation(hooktree: HookTree) -> None:
    if shutil.which("systemd-socket-activate") is None:
        pytest.skip("systemd-socket-activate not installed (package systemd)")
    hooktree.hook("onsessionopen", "10-a", hooktree.order_script("a"))
    directory = socket_dir()
    path = directory / "dispatch.sock"
    argv = ["systemd-socket-activate", "-l", str(path), str(PYTHON), "-I", "-S", str(MAIN), "serve"]
    try:
        with served(argv=argv, directory=directory, wait=False) as daemon:
            assert wait_for(path.exists)
            path.chmod(0o600)  # what SocketMode= does
            assert ask(daemon.socket, "onsessionopen", root=hooktree.root).status == 0
            assert ask(daemon.socket, "onsessionopen", root=hooktree.root).status == 0
            assert "listening on the socket from systemd" in daemon.output()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    assert hooktree.order() == ["a", "a"]


@ROOT_ONLY
def test_idle_exit_leaves_and_removes_its_socket(hooktree: HookTree) -> None:
    with served("--idle-exit", "1") as daemon:
        assert ask(daemon.socket, "onsessionopen", root=hooktree.root).status == 4
        start = time.monotonic()
        assert daemon.process.wait(timeout=10) == 0
        assert 0.5 < time.monotonic() - start < 5
        assert not daemon.socket.exists()
        assert wait_for(lambda: daemon.children() == [], 5)  # the spares went with it


@ROOT_ONLY
@pytest.mark.parametrize("problem", ["writable directory", "not a socket", "already served"])
def test_serve_refuses_an_unsafe_or_taken_socket(problem: str) -> None:
    directory = socket_dir()
    path = directory / "dispatch.sock"
    try:
        if problem == "writable directory":
            directory.chmod(0o777)
        elif problem == "not a socket":
            path.write_text("")
        if problem == "already served":
            with served(directory=directory), served(directory=directory, wait=False) as second:
                assert second.process.wait(timeout=30) == 3
                assert "another daemon listens on" in second.output()
            return
        with served(directory=directory, wait=False) as daemon:
            assert daemon.process.wait(timeout=30) == 3
            reason = {"writable directory": "must be root-owned and writable by root only",
                      "not a socket": "exists and is not a socket"}[problem]
            assert reason in daemon.output()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@ROOT_ONLY
def test_sigterm_stops_the_daemon_but_not_a_request_in_progress(hooktree: HookTree) -> None:
    hooktree.hook("onsessionopen", "10-slow", "#!/bin/sh\nsleep 1\necho slow >> "
                  f"{hooktree.out}/order\n")
    with served() as daemon:
        with started(daemon.socket, "onsessionopen", hooktree.root) as s:
            daemon.process.send_signal(signal.SIGTERM)
            assert daemon.process.wait(timeout=10) == 0
            s.settimeout(10)
            assert s.recv(1) == b"\x00"  # the request finished
        assert not daemon.socket.exists()
    assert hooktree.order() == ["slow"]


@ROOT_ONLY
def test_serve_needs_root() -> None:
    out = subprocess.run([str(PYTHON), "-I", "-S", str(MAIN), "serve", "--socket", "/nonexistent/s"],
                         user=65534, group=65534, extra_groups=[], capture_output=True, text=True,
                         timeout=30, cwd="/")
    assert out.returncode == 2 and "must run as root" in out.stderr
