"""hookrunner against the real run-parts (debianutils), on the very same directory.

README's comparison with run-parts states where the two agree and where hookrunner differs on
purpose; each row is a case here. For every case one directory holds ``00-first``, the case's
entry ``50-case`` and ``99-last``; then ``run-parts DIR`` and ``hookrunner run onsessionopen
--root ROOT`` (whose ``ROOT/etc/security/onsessionopen.d`` is DIR) each run it once, and what ran
(the hooks append their names to a file), the exit status and what was said are compared with
what the README says of each tool. ``hookrunner list`` gives the action and reason, ``check``
whether the entry is reported. run-parts is Essential on Debian: always there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest
from hooktree import HookTree
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

RUN_PARTS = shutil.which("run-parts") or "/bin/run-parts"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def script(out: Path, status: int = 0) -> str:
    return f'#!/bin/sh\necho "${{0##*/}}" >> {out}/order\nexit {status}\n'




class Tool(NamedTuple):
    ran: list[str]
    status: int
    stderr: str


def run_parts(directory: Path, out: Path, *options: str) -> Tool:
    (out / "order").unlink(missing_ok=True)
    r = subprocess.run([RUN_PARTS, *options, str(directory)], env={"PATH": PATH}, cwd="/",
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    return Tool(_order(out), r.returncode, r.stderr.decode(errors="replace"))


def hookrunner(tree: HookTree, phase: str = "onsessionopen") -> Tool:
    (tree.out / "order").unlink(missing_ok=True)
    r = tree.run("run", phase, env={"PAM_USER": "alice", "PAM_TYPE": "open_session"})
    return Tool(_order(tree.out), r.returncode, r.stderr.decode(errors="replace"))


def _order(out: Path) -> list[str]:
    path = out / "order"
    return path.read_text().split() if path.exists() else []


def listed(tree: HookTree, phase: str = "onsessionopen") -> dict[str, tuple[str, str]]:
    """File name -> (action, reason), from ``hookrunner list --json``."""
    r = tree.run("list", phase, "--json")
    assert r.returncode == 0, r.stderr
    return {os.path.basename(row["path"]): (row["action"], row["reason"])
            for row in json.loads(r.stdout) if row["kind"] != "entrypoint"}


def checked(tree: HookTree) -> tuple[int, list[str]]:
    r = tree.run("check")
    return r.returncode, [line for line in r.stdout.decode().splitlines() if "50-case" in line]


# -- the cases ---------------------------------------------------------------------------------

Build = Callable[[HookTree, Path], str]  # makes the case's entry in DIR; returns its file name


def _file(content: str, mode: int, name: str = "50-case") -> Build:
    def build(tree: HookTree, d: Path) -> str:
        (d / name).write_text(content.replace("OUT", str(tree.out)))
        (d / name).chmod(mode)
        return name
    return build


def _link(target: str | Callable[[HookTree], str]) -> Build:
    def build(tree: HookTree, d: Path) -> str:
        (d / "50-case").symlink_to(target(tree) if callable(target) else target)
        return "50-case"
    return build


def _target(content: str, mode: int = 0o755) -> Callable[[HookTree], str]:
    def make(tree: HookTree) -> str:
        path = tree.root / "etc/security/target"
        path.write_text(content.replace("OUT", str(tree.out)))
        path.chmod(mode)
        return str(path)
    return make


def _plugin(tree: HookTree, d: Path) -> str:
    """A Python plugin file (need not be executable) that appends its name like the scripts."""
    (d / "50-case.py").write_text(f"""import hookrunner

@hookrunner.hookimpl
def onsessionopen(ctx):
    with open({str(tree.out / "order")!r}, "a") as f:
        f.write(ctx.hook + "\\n")
""")
    (d / "50-case.py").chmod(0o644)
    return "50-case.py"


def _fifo(tree: HookTree, d: Path) -> str:
    os.mkfifo(d / "50-case", 0o755)
    return "50-case"


def _socket(tree: HookTree, d: Path) -> str:
    cwd = os.getcwd()
    os.chdir(d)  # a relative name: a socket's path is limited to 107 bytes
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind("50-case")
    finally:
        os.chdir(cwd)
    return "50-case"


def _subdir(tree: HookTree, d: Path) -> str:
    (d / "50-case").mkdir(mode=0o755)
    return "50-case"


SCRIPT = '#!/bin/sh\necho "${0##*/}" >> OUT/order\n'


class Case(NamedTuple):
    build: Build
    run_parts: tuple[bool, int, str]  # ran 50-case?, exit status, a word of what it said ("" = nothing)
    hookrunner: tuple[str, str, bool]  # list's action, a word of its reason, ran 50-case?
    checked: bool = False  # does `hookrunner check` report the entry (exit 1)?


CASES = {
    # -- where they agree (hookrunner's exit status is 0 throughout, as is run-parts' here)
    "executable": Case(_file(SCRIPT, 0o755), (True, 0, ""), ("run", "", True)),
    "not executable": Case(_file(SCRIPT, 0o644), (False, 0, ""), ("skip", "not executable", False)),
    "subdirectory": Case(_subdir, (False, 0, ""), ("skip", "is a directory", False)),
    "name with a dot": Case(_file(SCRIPT, 0o755, "50-case.sh"), (False, 0, ""),
                            ("skip", "^[A-Za-z0-9_-]+$", False)),
    "backup name": Case(_file(SCRIPT, 0o755, "50-case~"), (False, 0, ""), ("skip", "run-parts", False)),
    "symlink to an executable": Case(_link(_target(SCRIPT)), (True, 0, ""), ("run", "", True)),
    "empty, not executable": Case(_file("", 0o644), (False, 0, ""), ("mask", "masked (empty file)", False)),
    # -- where hookrunner differs on purpose
    "empty executable": Case(_file("", 0o755), (False, 1, "Exec format error"),
                             ("mask", "masked (empty file)", False)),
    "symlink to /dev/null": Case(_link("/dev/null"), (False, 1, "not an executable plain file"),
                                 ("mask", "masked (symlink to /dev/null)", False)),
    "symlink to an empty file": Case(_link(_target("")), (False, 1, "Exec format error"),
                                     ("mask", "masked (empty file)", False)),
    "dangling symlink": Case(_link("/nonexistent-hookrunner-target"), (False, 0, "failed to stat"),
                             ("skip", "dangling symlink", False), checked=True),
    "FIFO": Case(_fifo, (False, 1, "not an executable plain file"), ("skip", "not a regular file", False)),
    "socket": Case(_socket, (False, 1, "not an executable plain file"), ("skip", "not a regular file", False)),
    "symlink to a device": Case(_link("/dev/zero"), (False, 1, "not an executable plain file"),
                                ("skip", "not a regular file", False)),
    "group-writable": Case(_file(SCRIPT, 0o775), (True, 0, ""), ("skip", "writable by group", False),
                           checked=True),
    "world-writable": Case(_file(SCRIPT, 0o757), (True, 0, ""), ("skip", "writable by others", False),
                           checked=True),
    "symlink to a group-writable executable": Case(_link(_target(SCRIPT, 0o775)), (True, 0, ""),
                                                   ("skip", "writable by group", False), checked=True),
    "Python plugin file": Case(_plugin, (False, 0, ""), ("run", "", True)),
}


@pytest.mark.parametrize("case", CASES)
def test_same_directory_both_tools(hooktree: HookTree, case: str) -> None:
    c = CASES[case]
    d = hooktree.dir("onsessionopen")
    hooktree.hook("onsessionopen", "00-first", script(hooktree.out))
    hooktree.hook("onsessionopen", "99-last", script(hooktree.out))
    name = c.build(hooktree, d)

    rp = run_parts(d, hooktree.out)
    ran, status, says = c.run_parts
    assert (rp.ran, rp.status) == (["00-first", *(["50-case"] if ran else []), "99-last"], status), rp
    assert (says in rp.stderr) if says else rp.stderr == "", rp.stderr

    action, reason, hr_ran = c.hookrunner
    got_action, got_reason = listed(hooktree)[name]
    assert got_action == action and reason in got_reason, (got_action, got_reason)
    hr = hookrunner(hooktree)
    assert hr.status == 0, hr
    assert hr.ran == ["00-first", *(["50-case"] if hr_ran else []), "99-last"]

    status, lines = checked(hooktree)
    assert (status, len(lines)) == ((1, 1) if c.checked else (0, 0)), lines


def test_a_failing_hook_both_tools(hooktree: HookTree) -> None:
    """Both exit 1 when a hook fails and go on with the next; onauth stops, as --exit-on-error."""
    out = hooktree.out
    for phase in ("onsessionopen", "onauth"):
        hooktree.hook(phase, "10-fail", script(out, 3))
        hooktree.hook(phase, "20-next", script(out))
    rp = run_parts(hooktree.dir("onsessionopen"), out)
    assert (rp.ran, rp.status) == (["10-fail", "20-next"], 1)
    assert "10-fail exited with return code 3" in rp.stderr
    assert hookrunner(hooktree)[:2] == (["10-fail", "20-next"], 1)
    rp = run_parts(hooktree.dir("onauth"), out, "--exit-on-error")
    assert (rp.ran, rp.status) == (["10-fail"], 1)
    assert hookrunner(hooktree, "onauth")[:2] == (["10-fail"], 1)


# -- names and order: the same rule and the same C-locale byte order ----------------------------

VALID = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1,
                max_size=8)
INVALID = st.sampled_from(["x.sh", ".hidden", "x~", "x.dpkg-old", "x.rpmnew", "a b", "é", "#x#",
                           "10-x,v", "Z.bak", "x.py.sh"])


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(names=st.lists(VALID | INVALID, min_size=1, max_size=8, unique=True))
def test_same_names_run_in_the_same_order(hooktree: HookTree, names: list[str]) -> None:
    d = hooktree.dir("onsessionopen")
    shutil.rmtree(d)
    d = hooktree.dir("onsessionopen")
    for name in names:
        hooktree.hook("onsessionopen", name, script(hooktree.out))
    rp = run_parts(d, hooktree.out)
    hr = hookrunner(hooktree)
    run_parts_rule = sorted((n for n in names if re.fullmatch(r"[A-Za-z0-9_-]+", n, re.ASCII)),
                            key=str.encode)  # C locale: byte order
    assert (hr.ran, hr.status) == (rp.ran, rp.status) == (run_parts_rule, 0)
