"""No test writes into the checkout: the session guard (checkout.py), and the two ways a plugin
file is loaded (a test's loader, the dispatcher) leave no bytecode next to it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import checkout
import pytest
from hooktree import HookTree
from test_plugin_examples import HOURS, load_hours

GIT = shutil.which("git")


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, timeout=60,
                   env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(repo),
                        "GIT_CONFIG_NOSYSTEM": "1"})


@pytest.mark.skipif(GIT is None, reason="git not installed")
def test_guard_reports_what_a_session_adds_outside_the_build_and_tool_state(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "hooks.d/onaccount.d").mkdir(parents=True)
    (repo / "hooks.d/onaccount.d/40-hours.py").write_text("x = 1\n")
    (repo / "hookrunner").mkdir()
    (repo / "hookrunner/cli.py").write_text("")
    (repo / "work-in-progress.py").write_text("")  # untracked before the session: not ours
    (repo / ".gitignore").write_text("__pycache__/\n.pytest_cache/\ndist/\n")
    git(repo, "init", "-q")
    git(repo, "add", "hooks.d", "hookrunner", ".gitignore")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-q", "-m", "x")
    before = checkout.status(repo)
    assert before is not None and "?? work-in-progress.py" in before

    for path in ("hookrunner/__pycache__/cli.cpython-311.pyc", ".pytest_cache/v/cache/nodeids",
                 "hooks.d/onaccount.d/__pycache__/40-hours.cpython-311.pyc", "dist/x.deb", "stray"):
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text("")
    (repo / "hooks.d/onaccount.d/40-hours.py").write_text("x = 2\n")
    after = checkout.status(repo)
    assert after is not None
    assert checkout.unexpected(before, after) == [
        " M hooks.d/onaccount.d/40-hours.py", "!! dist/x.deb",
        "!! hooks.d/onaccount.d/__pycache__/40-hours.cpython-311.pyc", "?? stray"]
    assert checkout.unexpected(after, after) == []


def test_loading_the_hours_plugin_writes_no_bytecode(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in CI, where PYTHONDONTWRITEBYTECODE is not set."""
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    before = sorted(os.listdir(HOURS.parent))
    assert callable(load_hours().parse_line)
    assert sorted(os.listdir(HOURS.parent)) == before
    assert "__pycache__" not in before, "left by an earlier run: remove it"


def test_the_dispatcher_writes_no_bytecode_next_to_a_plugin_file(hooktree: HookTree) -> None:
    """It compiles a plugin from the descriptor it checked: nothing appears in the hook
    directory, even with bytecode writing on (no -B, no PYTHONDONTWRITEBYTECODE; -I ignores it)."""
    t = hooktree
    t.hook("onsessionopen", "50-plugin.py",
           "import hookrunner\n\n@hookrunner.hookimpl\ndef onsessionopen(ctx):\n    pass\n", 0o644)
    t.config(f'log_file = "{t.root}/hookrunner.log"\n')
    r = t.run("run", "onsessionopen", env={"PAM_USER": "bob", "PAM_SERVICE": "sshd"})
    assert r.returncode == 0, r.stderr
    assert "50-plugin returned" in (t.root / "hookrunner.log").read_text()
    assert os.listdir(t.dir("onsessionopen")) == ["50-plugin.py"]

