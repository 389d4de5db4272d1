"""The `hookrunner` command: the three ways to start it, list, check, simulate, the log format."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from hooktree import HookTree, RunHookrunner

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / ".venv/bin/hookrunner"
OK = "#!/bin/sh\nexit 0\n"
# Plugins installed in the interpreter (other tests pip-install one) show up in every phase;
# the assertions here are about the tree, so rows and records of entry points are left out.


@pytest.mark.parametrize("how", ["-I -S __main__.py", "-m", "-I -m", "script"])
@pytest.mark.parametrize("status", [0, 1])
def test_every_way_to_start_it_works(hooktree: HookTree, run_hookrunner: RunHookrunner, how: str,
                                     status: int) -> None:
    hooktree.hook("onsessionopen", "10-x", f"#!/bin/sh\n[ \"$PAM_USER\" = alice ] && exit {status}\nexit 9\n")
    args = ["simulate", "onsessionopen", "--user", "alice", "--root", hooktree.root]
    if how == "script":
        if not SCRIPT.exists():
            pytest.skip("no .venv/bin/hookrunner: run scripts/deps (pip install -e .)")
        r = subprocess.run([SCRIPT, *map(str, args)], env={}, capture_output=True, timeout=60, cwd="/")
    elif how.endswith("-m"):
        r = run_hookrunner(args, python_args=[*how.split()[:-1], "-m", "hookrunner"])
    else:
        r = run_hookrunner(args)
    assert r.returncode == status, r.stderr
    assert b"10-x" in r.stdout


def test_help_lists_the_commands(run_hookrunner: RunHookrunner) -> None:
    r = run_hookrunner(["--help"])
    assert r.returncode == 0
    for command in (b"run", b"list", b"check", b"simulate"):
        assert command in r.stdout


@pytest.mark.parametrize("status", [0, 1])
def test_run_spelled_for_argparse_runs_the_hooks(hooktree: HookTree, run_hookrunner: RunHookrunner,
                                                 status: int) -> None:
    """``--ro=ROOT`` (an abbreviation) is not the fast path's spelling: commands parses it, cli
    runs it, with the same outcome."""
    hooktree.hook("onsessionopen", "10-x", hooktree.order_script("10-x") + f"exit {status}\n")
    r = run_hookrunner(["run", "onsessionopen", f"--ro={hooktree.root}"],
                       python_args=["-X", "importtime", "-I", "-S", str(REPO / "hookrunner/__main__.py")])
    assert r.returncode == status, r.stderr
    assert hooktree.order() == ["10-x"]
    assert b"hookrunner.commands" in r.stderr and b"argparse" in r.stderr  # the path under test


def build_mixed_tree(tree: HookTree) -> dict[str, Path]:
    paths = {
        "10-run": tree.hook("onauth", "10-run", OK),
        "20-x.sh": tree.hook("onauth", "20-x.sh", OK),
        "40-over-lower": tree.hook("onauth", "40-over", OK, layer="usr/lib/hookrunner"),
        "40-over": tree.hook("onauth", "40-over", OK, layer="run/hookrunner"),
        "50-noexec": tree.hook("onauth", "50-noexec", OK, mode=0o644),
        "60-unsafe": tree.hook("onauth", "60-unsafe", OK, mode=0o775),
        "70-plugin": tree.hook("onauth", "70-plugin.py", "import hookrunner\n", mode=0o644),
    }
    paths["30-masked"] = tree.dir("onauth") / "30-masked"
    paths["30-masked"].symlink_to("/dev/null")
    return paths


def test_list_json(hooktree: HookTree) -> None:
    paths = build_mixed_tree(hooktree)
    r = hooktree.run("list", "onauth", "--json")
    assert r.returncode == 0, r.stderr
    rows = [row for row in json.loads(r.stdout) if row["kind"] != "entrypoint"]
    assert all(list(row) == ["name", "path", "kind", "action", "reason", "name_base64",
                            "path_base64"] for row in rows)
    got = [(row["name"], row["path"], row["kind"], row["action"]) for row in rows]
    assert got == [
        ("10-run", str(paths["10-run"]), "exec", "run"),
        ("20-x.sh", str(paths["20-x.sh"]), "exec", "skip"),
        ("30-masked", str(paths["30-masked"]), "exec", "mask"),
        ("40-over", str(paths["40-over"]), "exec", "run"),
        ("40-over", str(paths["40-over-lower"]), "exec", "skip"),
        ("50-noexec", str(paths["50-noexec"]), "exec", "skip"),
        ("60-unsafe", str(paths["60-unsafe"]), "exec", "skip"),
        ("70-plugin", str(paths["70-plugin"]), "python", "run"),
    ]
    reasons = {(row["name"], row["action"]): row["reason"] for row in rows}
    assert reasons[("10-run", "run")] == ""
    assert "^[A-Za-z0-9_-]+$" in reasons[("20-x.sh", "skip")]
    assert reasons[("30-masked", "mask")] == "masked (symlink to /dev/null)"
    assert reasons[("40-over", "skip")] == f"overridden by {paths['40-over']}"
    assert reasons[("50-noexec", "skip")] == "not executable"
    assert reasons[("60-unsafe", "skip")] == (
        f"refused: file {paths['60-unsafe']} is writable by group (mode 0775)")


def test_list_table(hooktree: HookTree) -> None:
    paths = build_mixed_tree(hooktree)
    r = hooktree.run("list", "onauth")
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stdout.decode().splitlines() if line.split()[1] != "entrypoint"]
    assert lines[0].split() == ["NAME", "KIND", "ACTION", "PATH", "REASON"]
    assert [line.split()[:3] for line in lines[1:]] == [
        ["10-run", "exec", "run"], ["20-x.sh", "exec", "skip"], ["30-masked", "exec", "mask"],
        ["40-over", "exec", "run"], ["40-over", "exec", "skip"], ["50-noexec", "exec", "skip"],
        ["60-unsafe", "exec", "skip"], ["70-plugin", "python", "run"]]
    assert f"overridden by {paths['40-over']}" in lines[5]


def test_list_empty_and_unknown_phase(hooktree: HookTree) -> None:
    for phase in ("onpasswd", "password"):
        r = hooktree.run("list", phase, "--json")
        assert r.returncode == 0
        assert [row for row in json.loads(r.stdout) if row["kind"] != "entrypoint"] == []
    r = hooktree.run("list", "onlogin")
    assert r.returncode == 2
    assert len(r.stderr.splitlines()) == 1


def test_list_escapes_hostile_file_names(hooktree: HookTree) -> None:
    hooktree.hook("onauth", "x\nFAKE\x1b[31m", OK)
    r = hooktree.run("list", "onauth")
    assert r.returncode == 0
    assert len([line for line in r.stdout.splitlines() if b"entrypoint" not in line]) == 2
    assert b"\x1b" not in r.stdout


def test_check_clean_tree(hooktree: HookTree, tmp_path: Path) -> None:
    (tmp_path / "pam.d").mkdir()
    hooktree.hook("onauth", "10-ok", OK)
    hooktree.hook("onsessionclose", "10-ok", OK)
    hooktree.config("timeout = 5\n")
    r = hooktree.run("check", "--pam-dir", tmp_path / "pam.d")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == b""


def test_check_reports_one_line_per_problem(hooktree: HookTree, tmp_path: Path) -> None:
    (tmp_path / "pam.d").mkdir()
    hooktree.hook("onauth", "10-ok", OK)
    unsafe = hooktree.hook("onauth", "20-groupw", OK, mode=0o775)
    owned = hooktree.hook("onsessionopen", "30-owned", OK)
    os.chown(owned, 1000, 1000)
    dangling = hooktree.dir("onaccount") / "40-dangling"
    dangling.symlink_to(hooktree.root / "nowhere")
    hooktree.config('pass_env = ["LD_PRELOAD"]\n')
    r = hooktree.run("check", "--pam-dir", tmp_path / "pam.d")
    assert r.returncode == 1
    lines = r.stdout.decode().splitlines()
    assert len(lines) == 4, "\n".join(lines)
    text = "\n".join(lines)
    assert f"{unsafe}: onauth.d/20-groupw: refused: file {unsafe} is writable by group" in text
    assert f"{owned}: onsessionopen.d/30-owned: refused: file {owned} is owned by uid 1000" in text
    assert f"{dangling}: onaccount.d/40-dangling: dangling symlink" in text
    assert "pass_env: LD_PRELOAD is never passed" in text


def test_check_and_list_keep_one_problem_a_line_whatever_the_names(hooktree: HookTree, tmp_path: Path) -> None:
    (tmp_path / "pam.d").mkdir()
    home = hooktree.root / "home"
    home.mkdir()
    target = os.fsencode(home) + b"/x\nFORGED problem\xff\x1b[2J"
    with open(target, "wb") as f:
        f.write(OK.encode())
    os.chmod(target, 0o755)
    os.chown(target, 1000, 1000)  # someone else's file, behind a symlink root made
    os.symlink(target, hooktree.dir("onauth") / "10-link")
    r = hooktree.run("check", "--pam-dir", tmp_path / "pam.d")
    assert r.returncode == 1
    assert len(r.stdout.splitlines()) == 1, r.stdout
    assert b"\x1b" not in r.stdout and b"\xff" not in r.stdout
    assert b"x\\x0aFORGED problem\\xff\\x1b[2J is owned by uid 1000" in r.stdout
    r = hooktree.run("list", "onauth")
    assert [line.split()[:3] for line in r.stdout.splitlines()[1:] if b"entrypoint" not in line] == [
        [b"10-link", b"exec", b"skip"]]


def test_check_malformed_config_exits_3(hooktree: HookTree, tmp_path: Path) -> None:
    (tmp_path / "pam.d").mkdir()
    path = hooktree.config("timeout = [\n")
    r = hooktree.run("check", "--pam-dir", tmp_path / "pam.d")
    assert r.returncode == 3
    assert r.stderr.decode().startswith(f"hookrunner: {path}:")


def test_simulate_prints_the_table_and_exits_like_run(hooktree: HookTree) -> None:
    env_file = hooktree.out / "env"
    hooktree.hook("onauth", "10-ok", f"#!/bin/sh\ncat /proc/$$/environ > {env_file}\n")
    hooktree.hook("onauth", "20-fail", "#!/bin/sh\nexit 3\n")
    hooktree.hook("onauth", "30-never", OK)
    r = hooktree.run("simulate", "onauth", "--user", "alice", "--service", "sshd", "--rhost", "192.0.2.1",
                     "--tty", "ssh", "--ruser", "bob")
    assert r.returncode == 1
    lines = r.stdout.decode().splitlines()
    assert lines[0].split() == ["HOOK", "OUTCOME", "STATUS", "DURATION", "MESSAGE"]
    assert lines[1].split()[:3] == ["10-ok", "ok", "0"]
    assert lines[2].split()[:3] == ["20-fail", "fail", "3"]
    assert re.fullmatch(r"20-fail\s+fail\s+3\s+\d+ ms\s+exited with status 3", lines[2])
    assert "30-never" not in r.stdout.decode()
    assert lines[-1] == "onauth: failure (exit 1)"
    env = dict(e.split(b"=", 1) for e in env_file.read_bytes().split(b"\0")[:-1])
    assert {k: env[k] for k in (b"PAM_USER", b"PAM_SERVICE", b"PAM_RHOST", b"PAM_TTY", b"PAM_RUSER",
                                b"PAM_TYPE")} == {
        b"PAM_USER": b"alice", b"PAM_SERVICE": b"sshd", b"PAM_RHOST": b"192.0.2.1", b"PAM_TTY": b"ssh",
        b"PAM_RUSER": b"bob", b"PAM_TYPE": b"auth"}


def test_simulate_success_and_usage(hooktree: HookTree) -> None:
    hooktree.hook("onsessionclose", "10-ok", OK)
    r = hooktree.run("simulate", "close_session", "--user", "alice")
    assert r.returncode == 0
    assert r.stdout.decode().splitlines()[-1] == "onsessionclose: success (exit 0)"
    r = hooktree.run("simulate", "onsessionclose")
    assert r.returncode == 2
    assert b"--user" in r.stderr


# ---- the log: one line per hook, hostile values escaped -----------------------------------

PREFIX = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} hookrunner\[\d+\]: ")
RECORD = re.compile(
    r"\S+ hookrunner\[\d+\]: (?P<phase>on\w+)\.d/(?P<name>\S+) (?P<message>.+?) "
    r"\((?P<ms>\d+) ms(?P<optional>, optional)?\) "
    r'user=(?P<user>"[^"]*"|\S+) service=(?P<service>"[^"]*"|\S+) rhost=(?P<rhost>"[^"]*"|\S+)'
    r"(?: outcome=(?P<outcome>\w+))?")


def test_log_file_has_one_record_per_hook(hooktree: HookTree) -> None:
    log = hooktree.root / "hookrunner.log"
    hooktree.config(f'timeout = 0.4\nkill_grace = 0.1\nlog_file = "{log}"\n[hook."40-slow"]\noptional = true\n')
    hooktree.hook("onsessionopen", "10-ok", OK)
    hooktree.hook("onsessionopen", "20-fail", "#!/bin/sh\nexit 3\n")
    hooktree.hook("onsessionopen", "30-signal", "#!/bin/sh\nkill -SEGV $$\n")
    hooktree.hook("onsessionopen", "40-slow", "#!/bin/sh\nsleep 30\n")
    user = b"evil\nFAKE 2030-01-01T00:00:00+0000 hookrunner[1]: onsessionopen.d/10-ok exited with status 0"
    r = hooktree.run("run", "onsessionopen", env={b"PAM_USER": user + b"\r\x1b[2J\xff\"",
                                                  b"PAM_SERVICE": b"sshd", b"PAM_RHOST": b"192.0.2.1"})
    assert r.returncode == 1
    raw = log.read_bytes()
    assert b"\x1b" not in raw and b"\r" not in raw and b"\xff" not in raw
    assert all(PREFIX.match(line) for line in raw.decode("ascii").splitlines())  # nothing forged
    lines = [line for line in raw.decode("ascii").splitlines() if re.search(r"\.d/\d\d-[a-z]+ ", line)]
    assert len(lines) == 4, "\n".join(lines)
    records = [RECORD.fullmatch(line) for line in lines]
    assert all(records), lines
    got = [(m["phase"], m["name"], m["outcome"] or "ok", m["message"], bool(m["optional"]))
           for m in records if m]
    assert got == [
        ("onsessionopen", "10-ok", "ok", "exited with status 0", False),
        ("onsessionopen", "20-fail", "fail", "exited with status 3", False),
        ("onsessionopen", "30-signal", "signal", "killed by signal 11 (SIGSEGV)", False),
        ("onsessionopen", "40-slow", "timeout", "timed out after 0.4 s", True),
    ]
    for m in records:
        assert m is not None
        assert m["user"] == ('"evil\\x0aFAKE 2030-01-01T00:00:00+0000 hookrunner[1]: onsessionopen.d/10-ok '
                             'exited with status 0\\x0d\\x1b[2J\\xff\\x22"')
        assert (m["service"], m["rhost"]) == ("sshd", "192.0.2.1")
    assert int(records[3]["ms"]) >= 400  # type: ignore[index]


def test_log_of_hook_output_stays_on_one_line(hooktree: HookTree) -> None:
    log = hooktree.root / "hookrunner.log"
    hooktree.config(f'log_file = "{log}"\n')
    hooktree.hook("onauth", "10-chatty", "#!/bin/sh\nprintf 'one\\nFAKE hookrunner: forged\\n\\033[2J'\n"
                                          "echo err >&2\n")
    r = hooktree.run("run", "onauth", env={"PAM_USER": "alice"})
    assert r.returncode == 0
    lines = [line for line in log.read_text().splitlines() if "onauth.d/10-chatty " in line]
    assert all(PREFIX.match(line) for line in log.read_text().splitlines())
    assert len(lines) == 3, lines  # the record, its stdout, its stderr
    assert lines[1].endswith('onauth.d/10-chatty stdout: "one\\x0aFAKE hookrunner: forged\\x0a\\x1b[2J"')
    assert lines[2].endswith("onauth.d/10-chatty stderr: err\\x0a")


def test_check_reports_a_layer_that_is_not_a_directory(hooktree: HookTree, tmp_path: Path) -> None:
    (tmp_path / "pam.d").mkdir()
    layer = hooktree.root / "usr/lib/hookrunner/onsessionopen.d"
    layer.parent.mkdir(parents=True, exist_ok=True)
    layer.write_text("oops: a file where a directory belongs\n")
    hooktree.hook("onsessionopen", "10-ok", OK)
    r = hooktree.run("check", "--pam-dir", tmp_path / "pam.d")
    assert r.returncode == 1
    [line] = r.stdout.decode().splitlines()
    assert f"{layer}: onsessionopen.d/onsessionopen.d: cannot read directory: not a directory" in line
    run = hooktree.run("run", "onsessionopen")
    assert run.returncode == 0  # the other layers still run
