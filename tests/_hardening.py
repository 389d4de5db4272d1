"""Shared by the hardening tests (runas, hostile input, faults): a hook tree that other users
can traverse, the dispatcher as PAM starts it, and process-table helpers. No pytest here.

The tree lives in its own ``/tmp/hookrunner-hard-*`` directory, not in pytest's
``tmp_path``: pytest's base directory is mode 0700, so a ``runas`` hook could not even
reach its own file there.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MAIN = REPO / "hookrunner" / "__main__.py"
_VENV_PYTHON = REPO / ".venv" / "bin" / "python"
PYTHON = _VENV_PYTHON if _VENV_PYTHON.exists() else Path(sys.executable)

Env = Mapping[bytes, bytes] | Mapping[str, str]


class Tree:
    """``root`` for ``--root`` (root-owned, 0755 down to /tmp) and ``out``, a scratch
    directory hooks write into (0777, so that runas hooks can write there too)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.root = base / "root"
        self.out = base / "out"
        self.log_file = base / "hookrunner.log"
        self.root.mkdir(mode=0o755)
        self.out.mkdir()
        self.out.chmod(0o777)

    def hook(self, phase: str, name: str, text: str | bytes, mode: int = 0o755,
             layer: str = "etc/security") -> Path:
        directory = self.root / layer / f"{phase}.d"
        directory.mkdir(mode=0o755, parents=True, exist_ok=True)
        path = directory / name
        path.write_bytes(text.encode() if isinstance(text, str) else text)
        path.chmod(mode)
        return path

    def config(self, text: str = "", *, log: bool = True) -> Path:
        path = self.root / "etc/security/hookrunner.toml"
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        head = f'log_file = "{self.log_file}"\n' if log else ""
        path.write_text(head + text)
        path.chmod(0o644)
        return path

    def clear(self) -> None:
        for sub in ("etc", "run", "usr"):
            shutil.rmtree(self.root / sub, ignore_errors=True)
        for entry in self.out.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        self.log_file.unlink(missing_ok=True)

    def log_lines(self) -> list[bytes]:
        try:
            return self.log_file.read_bytes().splitlines(keepends=True)
        except FileNotFoundError:
            return []

    def run(self, *args: str | os.PathLike[str], env: Env | None = None,
            input: bytes | None = None, timeout: float = 60,
            preexec: Callable[[], object] | None = None) -> subprocess.CompletedProcess[bytes]:
        """``hookrunner ARGS --root ROOT``, as PAM starts it (``python -I -S``, clean env)."""
        return dispatch([*args, "--root", self.root], env=env, input=input, timeout=timeout,
                        preexec=preexec)


def dispatch(args: Sequence[str | os.PathLike[str]], *, env: Env | None = None,
             input: bytes | None = None, timeout: float = 60,
             preexec: Callable[[], object] | None = None) -> subprocess.CompletedProcess[bytes]:
    clean = {os.fsencode(k): os.fsencode(v) for k, v in (env or {}).items()}
    return subprocess.run(
        [str(PYTHON), "-I", "-S", str(MAIN), *map(str, args)], env=clean, input=input,
        capture_output=True, timeout=timeout, cwd="/",
        stdin=None if input is not None else subprocess.DEVNULL,
        preexec_fn=preexec,
    )


@contextlib.contextmanager
def tree() -> Iterator[Tree]:
    old = os.umask(0o022)
    base = Path(tempfile.mkdtemp(prefix="hookrunner-hard-", dir="/tmp"))
    try:
        base.chmod(0o755)
        yield Tree(base)
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
