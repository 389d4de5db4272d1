"""The dispatcher as PAM starts it (`python -I -S __main__.py run`), over real #!/bin/sh hooks."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hooktree import status_and_peak_rss
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

if TYPE_CHECKING:
    from hooktree import HookTree, RunHookrunner

PHASES = [("onauth", "auth", True), ("onaccount", "account", True), ("onpasswd", "password", True),
          ("onsessionopen", "open_session", False), ("onsessionclose", "close_session", False)]
ITEMS = {"PAM_USER": "alice", "PAM_SERVICE": "sshd", "PAM_RHOST": "192.0.2.7", "PAM_RUSER": "bob",
         "PAM_TTY": "ssh"}


def recorder(tree: HookTree, name: str, status: int = 0, extra: str = "") -> str:
    """A hook that appends its name to OUT/order, then exits with ``status``."""
    return f"#!/bin/sh\n{extra}echo {name} >> {tree.out}/order\nexit {status}\n"


def environ_of(tree: HookTree, name: str) -> dict[bytes, bytes]:
    raw = (tree.out / f"env.{name}").read_bytes()
    return dict(entry.split(b"=", 1) for entry in raw.split(b"\0")[:-1])  # type: ignore[misc]


def env_hook(tree: HookTree, name: str) -> str:
    # /proc/$$/environ: exactly what execve gave the hook, before the shell adds PWD and friends.
    return f"#!/bin/sh\ncat /proc/$$/environ > {tree.out}/env.{name}\n"


def one_line(stderr: bytes) -> str:
    lines = stderr.decode().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def test_order_of_execution_across_layers(hooktree: HookTree) -> None:
    layers = ["etc/security", "run/hookrunner", "usr/local/lib/hookrunner", "usr/lib/hookrunner"]
    for i, name in enumerate(["a", "_x", "A", "9-b", "10-a"]):
        hooktree.hook("onsessionopen", name, recorder(hooktree, name), layer=layers[i % 4])
    r = hooktree.run("run", "onsessionopen")
    assert r.returncode == 0, r.stderr
    assert hooktree.order() == ["10-a", "9-b", "A", "_x", "a"]


def test_override_mask_and_skips_are_not_run(hooktree: HookTree) -> None:
    hooktree.hook("onauth", "10-over", recorder(hooktree, "lower"), layer="usr/lib/hookrunner")
    hooktree.hook("onauth", "10-over", recorder(hooktree, "upper"), layer="run/hookrunner")
    hooktree.hook("onauth", "20-masked", recorder(hooktree, "masked"), layer="usr/lib/hookrunner")
    (hooktree.dir("onauth") / "20-masked").symlink_to("/dev/null")
    hooktree.hook("onauth", "30-empty", recorder(hooktree, "empty"), layer="usr/local/lib/hookrunner")
    hooktree.hook("onauth", "30-empty", "", mode=0o644)
    hooktree.hook("onauth", "40-x.sh", recorder(hooktree, "dotsh"))
    hooktree.hook("onauth", "50-noexec", recorder(hooktree, "noexec"), mode=0o644)
    r = hooktree.run("run", "onauth")
    assert r.returncode == 0, r.stderr
    assert hooktree.order() == ["upper"]


def test_exact_environment_and_caller_environment_never_leaks(hooktree: HookTree) -> None:
    hooktree.config('pass_env = ["LANG", "LD_PRELOAD", "PYTHONPATH", "BASH_ENV", "IFS", "PATH", "HOME"]\n')
    hooktree.hook("onauth", "10-env", env_hook(hooktree, "10-env"))
    hostile = {"LD_PRELOAD": "/nonexistent/evil.so", "PYTHONPATH": "/evil", "BASH_ENV": "/evil/rc",
               "IFS": "/", "ENV": "/evil/rc", "PERL5OPT": "-Mevil", "BASH_FUNC_ls%%": "() { evil; }",
               "HOME": "/root", "PATH": "/evil/bin:/usr/bin:/bin", "FOO": "bar", "PAM_AUTHTOK": "secret"}
    r = hooktree.run("run", "onauth", env={**ITEMS, **hostile, "LANG": "C.UTF-8"})
    assert r.returncode == 0, r.stderr
    assert environ_of(hooktree, "10-env") == {
        **{k.encode(): v.encode() for k, v in ITEMS.items()},
        b"PAM_TYPE": b"auth", b"HOOKRUNNER_PHASE": b"onauth", b"HOOKRUNNER_HOOK": b"10-env",
        b"PATH": b"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", b"LANG": b"C.UTF-8",
        b"HOOKRUNNER_ROOT": os.fsencode(hooktree.root),  # set only with --root
    }


@pytest.mark.parametrize("user", [b"b\xffd\xc3(user", b"evil\nroot", b"a b 'c' \"d\" $(touch /tmp/x) `id` ;|&",
                                  b"\x1b[31m\r\t", "\u00e9l\u00e8ve".encode()])
def test_hostile_pam_values_reach_the_hook_unchanged(hooktree: HookTree, user: bytes) -> None:
    hooktree.hook("onsessionopen", "10-env", env_hook(hooktree, "10-env"))
    r = hooktree.run("run", "onsessionopen", env={b"PAM_USER": user, b"PAM_RHOST": user + b".example"})
    assert r.returncode == 0, r.stderr
    env = environ_of(hooktree, "10-env")
    assert (env[b"PAM_USER"], env[b"PAM_RHOST"]) == (user, user + b".example")


pam_values = st.binary(max_size=80).filter(lambda b: b"\0" not in b)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=st.fixed_dictionaries({}, optional={k: pam_values for k in (
    b"PAM_USER", b"PAM_SERVICE", b"PAM_RHOST", b"PAM_RUSER", b"PAM_TTY")}))
def test_any_pam_items_reach_the_hook_byte_for_byte(hooktree: HookTree, items: dict[bytes, bytes]) -> None:
    if not (hooktree.dir("onsessionopen") / "10-env").exists():
        hooktree.hook("onsessionopen", "10-env", env_hook(hooktree, "10-env"))
    r = hooktree.run("run", "onsessionopen", env=items)
    assert r.returncode == 0, r.stderr
    env = environ_of(hooktree, "10-env")
    assert {k: v for k, v in env.items() if k.startswith(b"PAM_")} == {**items, b"PAM_TYPE": b"open_session"}


@pytest.mark.parametrize("phase,pam_type,stops", PHASES)
@pytest.mark.parametrize("spelling", ["name", "pam_type"])
def test_default_policy_per_phase(hooktree: HookTree, phase: str, pam_type: str, stops: bool,
                                  spelling: str) -> None:
    for name, status in (("10-ok", 0), ("20-fail", 3), ("30-ok", 0)):
        hooktree.hook(phase, name, recorder(hooktree, name, status))
    r = hooktree.run("run", phase if spelling == "name" else pam_type)
    assert r.returncode == 1, r.stderr
    assert hooktree.order() == (["10-ok", "20-fail"] if stops else ["10-ok", "20-fail", "30-ok"])


@pytest.mark.parametrize("phase,pam_type,stops", PHASES)
def test_all_ok_exits_0(hooktree: HookTree, phase: str, pam_type: str, stops: bool) -> None:
    for name in ("10-a", "20-b"):
        hooktree.hook(phase, name, recorder(hooktree, name))
    r = hooktree.run("run", phase)
    assert (r.returncode, hooktree.order()) == (0, ["10-a", "20-b"])


@pytest.mark.parametrize("phase,stop,expected", [
    ("onauth", "false", ["10-ok", "20-fail", "30-ok"]),
    ("onsessionclose", "true", ["10-ok", "20-fail"]),
])
def test_stop_on_failure_override(hooktree: HookTree, phase: str, stop: str, expected: list[str]) -> None:
    hooktree.config(f"[phase.{phase}]\nstop_on_failure = {stop}\n")
    for name, status in (("10-ok", 0), ("20-fail", 1), ("30-ok", 0)):
        hooktree.hook(phase, name, recorder(hooktree, name, status))
    r = hooktree.run("run", phase)
    assert (r.returncode, hooktree.order()) == (1, expected)


@pytest.mark.parametrize("phase", ["onauth", "onsessionopen"])
def test_optional_hook_never_fails_the_phase(hooktree: HookTree, phase: str) -> None:
    hooktree.config('[hook."20-fail"]\noptional = true\n')
    for name, status in (("10-ok", 0), ("20-fail", 1), ("30-ok", 0)):
        hooktree.hook(phase, name, recorder(hooktree, name, status))
    r = hooktree.run("run", phase)
    assert (r.returncode, hooktree.order()) == (0, ["10-ok", "20-fail", "30-ok"])


def test_hook_timeout_fails_the_phase(hooktree: HookTree) -> None:
    hooktree.config(f'timeout = 0.5\nkill_grace = 0.2\nlog_file = "{hooktree.root}/log"\n')
    hooktree.hook("onauth", "10-slow", "#!/bin/sh\nsleep 30\n")
    start = time.monotonic()
    r = hooktree.run("run", "onauth")
    assert r.returncode == 1
    assert time.monotonic() - start < 2.5
    assert "onauth.d/10-slow timed out after 0.5 s" in (hooktree.root / "log").read_text()


def test_per_hook_timeout_overrides_global(hooktree: HookTree) -> None:
    hooktree.config('timeout = 30\n[hook."10-slow"]\ntimeout = 0.3\n')
    hooktree.hook("onsessionopen", "10-slow", "#!/bin/sh\nsleep 30\n")
    hooktree.hook("onsessionopen", "20-next", recorder(hooktree, "20-next"))
    start = time.monotonic()
    r = hooktree.run("run", "onsessionopen")
    assert (r.returncode, hooktree.order()) == (1, ["20-next"])
    assert time.monotonic() - start < 2.5


@pytest.mark.parametrize("where", ["global", "phase"])
def test_phase_deadline(hooktree: HookTree, where: str) -> None:
    deadline = "phase_timeout = 0.8\n" if where == "global" else "[phase.onsessionopen]\ntimeout = 0.8\n"
    hooktree.config(f'timeout = 10\nkill_grace = 0.2\nlog_file = "{hooktree.root}/log"\n{deadline}')
    for name in ("10-a", "20-b", "30-c"):
        hooktree.hook("onsessionopen", name, recorder(hooktree, name, extra="sleep 0.5\n"))
    start = time.monotonic()
    r = hooktree.run("run", "onsessionopen")
    elapsed = time.monotonic() - start
    assert r.returncode == 1
    assert elapsed < 0.8 + 2
    assert hooktree.order() == ["10-a"]  # 20-b was killed at the deadline, before it wrote
    log = (hooktree.root / "log").read_text()
    assert "onsessionopen.d/20-b timed out" in log
    assert "onsessionopen.d/30-c not run: the phase deadline passed" in log


def test_hook_killed_by_signal_fails(hooktree: HookTree) -> None:
    hooktree.config(f'log_file = "{hooktree.root}/log"\n')
    hooktree.hook("onaccount", "10-kill", "#!/bin/sh\nkill -KILL $$\n")
    r = hooktree.run("run", "onaccount")
    assert r.returncode == 1
    assert "onaccount.d/10-kill killed by signal 9 (SIGKILL)" in (hooktree.root / "log").read_text()


def test_timeout_kills_children_of_the_hook(hooktree: HookTree) -> None:
    hooktree.config("timeout = 0.5\nkill_grace = 0.3\n")
    hooktree.hook("onsessionclose", "10-hang",
                  f"#!/bin/sh\ntrap '' TERM\nsleep 1000 &\necho $! > {hooktree.out}/child\nwait\n")
    start = time.monotonic()
    r = hooktree.run("run", "onsessionclose")
    assert r.returncode == 1
    child = int((hooktree.out / "child").read_text())
    try:
        assert not Path(f"/proc/{child}").exists() or b") Z" in Path(f"/proc/{child}/stat").read_bytes()
    finally:
        try:
            os.kill(child, 9)
        except ProcessLookupError:
            pass
    assert time.monotonic() - start < 0.5 + 2


def test_background_child_does_not_hang_the_dispatcher(hooktree: HookTree) -> None:
    hooktree.hook("onsessionopen", "10-daemon",
                  f"#!/bin/sh\nsleep 1000 &\necho $! > {hooktree.out}/child\necho started\n")
    start = time.monotonic()
    # capture_output: the dispatcher's own stdout/stderr pipes must not be held either.
    r = hooktree.run("run", "onsessionopen", timeout=10)
    child = int((hooktree.out / "child").read_text())
    os.kill(child, 9)
    assert r.returncode == 0
    assert time.monotonic() - start < 2


def test_100_mb_of_output_keeps_memory_flat(hooktree: HookTree) -> None:
    hooktree.config(f'log_file = "{hooktree.root}/log"\n')
    hooktree.hook("onsessionopen", "10-loud", "#!/bin/sh\nhead -c 100000000 /dev/zero\necho done >&2\n")
    status, maxrss_kib = status_and_peak_rss(hooktree.argv("run", "onsessionopen"), env={}, cwd="/",
                                             stdin=subprocess.DEVNULL, timeout=120)
    assert status == 0
    maxrss_mb = maxrss_kib / 1024  # KiB on Linux
    assert maxrss_mb < 60, f"dispatcher grew to {maxrss_mb:.0f} MB"
    log = (hooktree.root / "log").read_text()
    assert f"onsessionopen.d/10-loud output: {100_000_000 - 65536} bytes beyond the limit were dropped" in log


def test_malformed_config_exits_3_with_file_and_line(hooktree: HookTree) -> None:
    path = hooktree.config('timeout = 5\n[hook."10-x"]\noptional = "yes"\n')
    hooktree.hook("onauth", "10-x", recorder(hooktree, "10-x"))
    r = hooktree.run("run", "onauth")
    assert r.returncode == 3
    assert one_line(r.stderr).startswith(f"hookrunner: {path}:3: hook.10-x.optional: ")
    assert hooktree.order() == []


def test_toml_syntax_error_exits_3_with_file_and_line(hooktree: HookTree) -> None:
    path = hooktree.config("timeout = 5\npass_env = [\n")
    r = hooktree.run("run", "onauth")
    assert r.returncode == 3
    assert one_line(r.stderr).startswith(f"hookrunner: {path}:3: ")


def test_explicit_missing_config_exits_3(hooktree: HookTree) -> None:
    r = hooktree.run("run", "onauth", "--config", str(hooktree.out / "nope.toml"))
    assert r.returncode == 3
    assert one_line(r.stderr) == f"hookrunner: {hooktree.out}/nope.toml: no such file"


def test_unsafe_config_exits_3(hooktree: HookTree) -> None:
    hooktree.config("timeout = 5\n").chmod(0o666)
    r = hooktree.run("run", "onauth")
    assert r.returncode == 3
    assert "writable by" in one_line(r.stderr)


@pytest.mark.parametrize("args,env,message", [
    (["run"], {}, "no phase given and PAM_TYPE is not set"),
    (["run", "onlogin"], {}, "unknown phase 'onlogin'"),
    (["run"], {"PAM_TYPE": "bogus"}, "unknown phase 'bogus'"),
    (["run", "onauth", "--bogus"], {}, "unrecognized arguments: --bogus"),
    ([], {}, "missing command"),
])
def test_usage_errors_exit_2_with_one_line(hooktree: HookTree, run_hookrunner: RunHookrunner,
                                            args: list[str], env: dict[str, str], message: str) -> None:
    hooktree.hook("onauth", "10-x", recorder(hooktree, "10-x"))
    r = hooktree.run(*args, env=env) if args else run_hookrunner([])
    assert r.returncode == 2
    assert message in one_line(r.stderr)
    assert hooktree.order() == []


@pytest.mark.parametrize("phase,pam_type,stops", PHASES)
def test_pam_type_gives_the_phase(hooktree: HookTree, phase: str, pam_type: str, stops: bool) -> None:
    hooktree.hook(phase, "10-env", env_hook(hooktree, "10-env"))
    r = hooktree.run("run", env={"PAM_TYPE": pam_type, "PAM_USER": "alice"})
    assert r.returncode == 0, r.stderr
    env = environ_of(hooktree, "10-env")
    assert (env[b"HOOKRUNNER_PHASE"], env[b"PAM_TYPE"]) == (phase.encode(), pam_type.encode())


def test_ignore_empty(hooktree: HookTree) -> None:
    listed = json.loads(hooktree.run("list", "onauth", "--json").stdout)
    if any(row["kind"] == "entrypoint" for row in listed):
        pytest.skip("a plugin installed in the interpreter counts as a hook of every phase")
    assert hooktree.run("run", "onauth", "--ignore-empty").returncode == 4
    assert hooktree.run("run", "onauth").returncode == 0
    (hooktree.dir("onauth") / "10-masked").symlink_to("/dev/null")
    assert hooktree.run("run", "onauth", "--ignore-empty").returncode == 4
    hooktree.hook("onauth", "15-ok", "#!/bin/sh\nexit 0\n")  # ran, so not "empty": 0
    assert hooktree.run("run", "onauth", "--ignore-empty").returncode == 0
    hooktree.hook("onauth", "20-fail", "#!/bin/sh\nexit 1\n")
    assert hooktree.run("run", "onauth", "--ignore-empty").returncode == 1


@pytest.mark.parametrize("mode", [0o775, 0o757])
def test_unsafe_hook_is_not_run_and_the_reason_is_logged(hooktree: HookTree, mode: int) -> None:
    hooktree.config(f'log_file = "{hooktree.root}/log"\n')
    path = hooktree.hook("onsessionopen", "10-unsafe", recorder(hooktree, "unsafe"), mode=mode)
    hooktree.hook("onsessionopen", "20-safe", recorder(hooktree, "safe"))
    hooktree.run("run", "onsessionopen")
    assert hooktree.order() == ["safe"]
    assert f"file {path} is writable by" in (hooktree.root / "log").read_text()


def test_hook_output_reaches_the_user_only_with_show_output(hooktree: HookTree) -> None:
    hooktree.hook("onsessionopen", "10-quiet", "#!/bin/sh\necho quiet\necho err >&2\n")
    hooktree.hook("onsessionopen", "20-motd", "#!/bin/sh\necho 'Welcome, friend'\n")
    assert hooktree.run("run", "onsessionopen").stdout == b""
    hooktree.config('[hook."20-motd"]\nshow_output = true\n')
    assert hooktree.run("run", "onsessionopen").stdout == b"Welcome, friend\n"
    # --msg-fd N (the native module's channel): "info TEXT" lines on that descriptor instead.
    proc, messages = hooktree.run_msg_fd("run", "onsessionopen", env={})
    assert messages == b"info Welcome, friend\n"
    assert proc.stdout == b""


def test_verbose_logs_each_hook_to_stderr(hooktree: HookTree) -> None:
    hooktree.hook("onauth", "10-a", "#!/bin/sh\nexit 0\n")
    hooktree.hook("onauth", "20-b", "#!/bin/sh\nexit 5\n")
    r = hooktree.run("run", "onauth", "-v", env={"PAM_USER": "alice"})
    assert r.returncode == 1
    err = r.stderr.decode()
    assert "hookrunner: onauth.d/10-a exited with status 0" in err
    assert "hookrunner: onauth.d/20-b exited with status 5" in err
    assert hooktree.run("run", "onauth").stderr == b""  # not a terminal, no -v: nothing
