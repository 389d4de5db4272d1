"""Shared fixtures: ``hooktree`` (a root-owned fake root for ``--root``), ``run_hookrunner``, and
``t`` (the hardening tests' tree, in /tmp: see _hardening.py).

The helpers themselves live in hooktree.py, so that test modules can import them. Around the
whole session, a guard fails the run if the tests wrote into the checkout (checkout.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import checkout
import pytest
from _hardening import Tree, tree
from hooktree import MAIN, PYTHON, REPO, HookTree, RunHookrunner, run_hookrunner, syslog_daemon
from hypothesis import settings

# Real processes on a loaded 2-core machine: no per-example deadline. In CI (CI=true, as
# .ci/run is started), the examples are derandomized, so a run is reproducible: new
# examples are explored by `make test` on developers' machines.
settings.register_profile("hookrunner", deadline=None)
settings.register_profile("ci", parent=settings.get_profile("hookrunner"), derandomize=True,
                          database=None)
settings.load_profile("ci" if os.environ.get("CI") else "hookrunner")

__all__ = ["MAIN", "PYTHON", "REPO", "HookTree", "run_hookrunner"]  # older tests import them from here

_STATUS = pytest.StashKey[set[str] | None]()


def pytest_sessionstart(session: pytest.Session) -> None:
    session.stash[_STATUS] = checkout.status(REPO)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the session if a test left something in the checkout (see checkout.py)."""
    before = session.stash.get(_STATUS, None)
    after = checkout.status(REPO) if before is not None else None
    if before is None or after is None:
        return
    new = checkout.unexpected(before, after)
    if new:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_sep("=", "the tests wrote into the checkout (see tests/checkout.py)", red=True)
            for entry in new:
                reporter.write_line(entry)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def hooktree(tmp_path: Path) -> Iterator[HookTree]:
    if os.geteuid() != 0:
        pytest.skip("hook trees must be owned by root (safety rules): run the tests as root")
    old = os.umask(0o022)  # so that every directory the test creates is 755
    try:
        root, out = tmp_path / "root", tmp_path / "out"
        root.mkdir()
        out.mkdir()
        with syslog_daemon(root):  # a machine with syslog, for check (test_check_logging: without)
            yield HookTree(root, out)
    finally:
        os.umask(old)


@pytest.fixture(name="run_hookrunner")
def run_hookrunner_fixture() -> RunHookrunner:
    return run_hookrunner


@pytest.fixture
def t() -> Iterator[Tree]:
    with tree() as t:
        yield t
