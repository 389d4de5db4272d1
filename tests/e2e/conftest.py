"""Fixtures for the end-to-end tests (the machinery is in harness.py and pam/pamrig.py)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import SyslogSink, SyslogUnavailable, Tree, make_tree, rig


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    return make_tree(tmp_path)


@pytest.fixture
def syslog() -> Iterator[SyslogSink]:
    try:
        with SyslogSink() as sink:
            yield sink
    except SyslogUnavailable as e:
        pytest.skip(f"cannot capture syslog: {e}")


@pytest.fixture
def user() -> Iterator[rig.User]:
    """A real user whose password has spaces, a colon, quotes, $(...), non-ASCII, and ends
    in a random ASCII word that leak checks look for (it survives any log escaping)."""
    with rig.temp_user(password=f"pä ss:wörd $(id) 'x\" {secrets.token_hex(8)}") as u:
        yield u



@pytest.fixture(scope="session", autouse=True)
def _no_pam_wrapper_leftovers() -> Iterator[None]:
    """pam_wrapper leaves /tmp/pam.X behind in a process that execs or is killed (plain su's
    shell, a pamtester past its timeout): the rig removes them after each of its runs, and
    this after the session, for the tests that start pamtester themselves."""
    yield
    rig.sweep_pam_wrapper_dirs()
