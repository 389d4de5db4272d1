"""``hookrunner check`` says, once, when hookrunner's records would be lost: no log_file, and no
syslog socket listening at ROOT/dev/log (a minimal image, a container, a dead daemon)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from hooktree import HookTree

OK = "#!/bin/sh\nexit 0\n"


@pytest.fixture
def tree(hooktree: HookTree, tmp_path: Path) -> Iterator[HookTree]:
    """A machine without a syslog daemon (the fixture's ROOT/dev/log taken away)."""
    (tmp_path / "pam.d").mkdir()
    (hooktree.root / "dev/log").unlink()
    hooktree.hook("onsessionopen", "10-ok", OK)
    yield hooktree


def check(tree: HookTree, tmp_path: Path) -> tuple[int, list[str]]:
    r = tree.run("check", "--pam-dir", tmp_path / "pam.d")
    return r.returncode, r.stdout.decode().splitlines()


def dev_log(tree: HookTree) -> Path:
    path = tree.root / "dev/log"
    path.parent.mkdir(mode=0o755, exist_ok=True)
    return path


def test_no_syslog_socket_and_no_log_file_is_one_problem(tree: HookTree, tmp_path: Path) -> None:
    status, lines = check(tree, tmp_path)
    assert status == 1
    assert lines == [f"{tree.root}/dev/log: no syslog socket, so hookrunner's records are lost; set "
                     "log_file in hookrunner.toml, or run a syslog daemon (rsyslog, systemd-journald)"]


def test_a_listening_syslog_socket_is_no_problem(tree: HookTree, tmp_path: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as daemon:
        daemon.bind(str(dev_log(tree)))
        assert check(tree, tmp_path) == (0, [])


def test_a_socket_nobody_listens_on_is_a_problem(tree: HookTree, tmp_path: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as dead:
        dead.bind(str(dev_log(tree)))  # the daemon died: the socket file stays
    status, [line] = check(tree, tmp_path)
    assert status == 1
    assert line.startswith(f"{tree.root}/dev/log: nobody receives on this syslog socket "
                           "(Connection refused), so hookrunner's records are lost;")


def test_a_regular_file_at_dev_log_is_no_socket(tree: HookTree, tmp_path: Path) -> None:
    dev_log(tree).write_text("")
    status, [line] = check(tree, tmp_path)
    assert status == 1 and "dev/log: no syslog socket" in line


def test_journald_without_dev_log_says_how_to_link_it(tree: HookTree, tmp_path: Path) -> None:
    journal = tree.root / "run/systemd/journal"
    journal.mkdir(parents=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as journald:
        journald.bind(str(journal / "socket"))
        status, [line] = check(tree, tmp_path)
    assert status == 1
    assert f"though journald's {journal}/socket exists: syslog(3) writes only to /dev/log" in line
    assert "link /dev/log to /run/systemd/journal/dev-log" in line


def test_a_log_file_is_where_records_go(tree: HookTree, tmp_path: Path) -> None:
    tree.config(f'log_file = "{tree.root}/hookrunner.log"\n')
    assert check(tree, tmp_path) == (0, [])


@pytest.mark.parametrize("log_file", ["/dev/null", "{out}/log"])
def test_no_file_or_a_refused_one_is_no_sink(tree: HookTree, tmp_path: Path, log_file: str) -> None:
    """``/dev/null`` means no file; a refused one (here below the world-writable /tmp, outside
    ROOT) gets nothing: either way, without syslog the records are lost, and check says both."""
    tree.config(f'log_file = "{log_file.format(out=tree.out)}"\n')
    status, lines = check(tree, tmp_path)
    assert status == 1
    assert lines[-1].startswith(f"{tree.root}/dev/log: no syslog socket, so hookrunner's records "
                                "are lost"), lines
    assert len(lines) == (1 if log_file == "/dev/null" else 2), lines
