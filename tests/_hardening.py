"""Shared by the hardening tests (runas, hostile input, faults): a hook tree that other users
can traverse (a :class:`hooktree.HookTree` with a log file), and process-table helpers.
No pytest here (the ``t`` fixture is in conftest.py).

The tree lives in its own ``/tmp/hookrunner-hard-*`` directory, not in pytest's
``tmp_path``: pytest's base directory is mode 0700, so a ``runas`` hook could not even
reach its own file there.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

from hooktree import HookTree, syslog_daemon


class Tree(HookTree):
    """``root`` for ``--root`` (root-owned, 0755 down to /tmp) and ``out``, a scratch
    directory hooks write into (0777, so that runas hooks can write there too)."""

    def __init__(self, base: Path) -> None:
        super().__init__(base / "root", base / "out")
        self.base = base
        self.log_file = base / "root/hookrunner.log"  # below --root: /tmp is world-writable
        self.root.mkdir(mode=0o755)
        self.out.mkdir()
        self.out.chmod(0o777)

    def config(self, text: str = "", *, log: bool = True) -> Path:
        """hookrunner.toml, mode 644: ``text`` after a ``log_file`` line, unless ``log`` is false."""
        head = f'log_file = "{self.log_file}"\n' if log else ""
        path = super().config(head + text)
        path.chmod(0o644)
        return path

    def log_lines(self) -> list[bytes]:
        try:
            return self.log_file.read_bytes().splitlines(keepends=True)
        except FileNotFoundError:
            return []


@contextlib.contextmanager
def tree() -> Iterator[Tree]:
    old = os.umask(0o022)
    base = Path(tempfile.mkdtemp(prefix="hookrunner-hard-", dir="/tmp"))
    try:
        base.chmod(0o755)
        t = Tree(base)
        with syslog_daemon(t.root):  # a machine with syslog, as check --root sees it
            yield t
    finally:
        os.umask(old)
        shutil.rmtree(base, ignore_errors=True)


def alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat.rsplit(b")", 1)[1].split()[0] != b"Z"


def pids_of_uid(uid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid and alive(int(entry.name)):
                    out.append(int(entry.name))
            except OSError:
                continue
    return out


def kill_quietly(*pids: int) -> None:
    """Cleanup after a failed assertion: nothing a test started may be left running."""
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
