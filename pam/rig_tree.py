"""The rig's hook trees: a root-owned tree for ``hookrunner run --root ROOT``, hooks in it, and
the *recorder* hook that appends what it was given (argv, exact environment, stdin, pid) as
one JSON line to a root-only log, read back as :class:`Record`. Part of pamrig (pamrig.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

REPO: Final = Path(__file__).resolve().parent.parent
DISPATCHER: Final = REPO / "hookrunner" / "__main__.py"
# (phase, pam_exec's PAM_TYPE, the PAM management group its line goes in)
PHASES: Final = (
    ("onauth", "auth", "auth"),
    ("onaccount", "account", "account"),
    ("onpasswd", "password", "password"),
    ("onsessionopen", "open_session", "session"),
    ("onsessionclose", "close_session", "session"),
)
PHASE_NAMES: Final = tuple(p for p, _, _ in PHASES)
PAM_TYPE_OF: Final = {p: t for p, t, _ in PHASES}


def default_python() -> Path:
    """The interpreter PAM lines start: the dev venv's when there is one, else Debian's."""
    venv = REPO / ".venv" / "bin" / "python"
    return venv if venv.exists() else Path("/usr/bin/python3")


def make_root(base: Path) -> Path:
    """A fresh ``<base>/root`` owned by root, mode 0755, for ``--root``."""
    root = base / "root"
    root.mkdir(mode=0o755)
    os.chown(root, 0, 0)
    root.chmod(0o755)
    return root


def mkdirs(path: Path) -> None:
    # Every directory root-owned, 0755 whatever the umask: the dispatcher checks them all.
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for d in reversed(missing):
        d.mkdir(mode=0o755)
        os.chown(d, 0, 0)
        d.chmod(0o755)


def phase_dir(root: Path, phase: str) -> Path:
    return root / "etc" / "security" / f"{phase}.d"


def write_hook(root: Path, phase: str, name: str, text: str, mode: int = 0o755) -> Path:
    """``<root>/etc/security/<phase>.d/<name>``, root-owned, with ``mode``."""
    directory = phase_dir(root, phase)
    mkdirs(directory)
    path = directory / name
    path.write_text(text)
    os.chown(path, 0, 0)
    path.chmod(mode)
    return path


def clear_hooks(root: Path) -> None:
    """Remove every phase directory and the config under ``root`` (between tests)."""
    security = root / "etc" / "security"
    for phase in PHASE_NAMES:
        shutil.rmtree(security / f"{phase}.d", ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        (security / "hookrunner.toml").unlink()


def write_config(root: Path, text: str) -> Path:
    """``<root>/etc/security/hookrunner.toml``, root-owned 0644."""
    path = root / "etc" / "security" / "hookrunner.toml"
    mkdirs(path.parent)
    path.write_text(text)
    os.chown(path, 0, 0)
    path.chmod(0o644)
    return path


_RECORDER = '''#!/usr/bin/python3 -IS
# Recorder hook (pamrig): appends one JSON line with what it was given.
import json, os, sys, time
env = {}
with open("/proc/self/environ", "rb") as f:  # exactly what exec gave us, not Python's changes
    for kv in f.read().split(b"\\0"):
        if b"=" in kv:
            k, v = kv.split(b"=", 1)
            env[os.fsdecode(k)] = os.fsdecode(v)
data = sys.stdin.buffer.read(65536) if sys.stdin is not None else b""
rec = {"path": sys.argv[0], "hook": os.path.basename(sys.argv[0]), "argv": sys.argv,
       "env": env, "stdin": os.fsdecode(data), "pid": os.getpid(), "uid": os.getuid(),
       "time": time.time()}
fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
os.write(fd, (json.dumps(rec) + "\\n").encode())
os.close(fd)
if SAY:
    print(SAY, flush=True)
while SLEEP_FOREVER:
    time.sleep(3600)
sys.exit(EXIT)
'''


def recorder_hook(log: Path, *, exit_code: int = 0, say: str = "", sleep_forever: bool = False) -> str:
    """Source of a hook that records itself to ``log``, prints ``say``, then exits/sleeps."""
    head = (f"LOG = {str(log)!r}\nEXIT = {exit_code}\nSAY = {say!r}\n"
            f"SLEEP_FOREVER = {sleep_forever}\n")
    first, rest = _RECORDER.split("\n", 1)
    return f"{first}\n{head}{rest}"


@dataclasses.dataclass(frozen=True)
class Record:
    """One recorder hook run, as read back from its log."""

    hook: str
    path: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    stdin: str
    pid: int
    uid: int
    time: float

    @property
    def phase(self) -> str:
        """The phase directory the hook ran from (``onauth`` for ``.../onauth.d/10-x``)."""
        return Path(self.path).parent.name.removesuffix(".d")


def read_records(log: Path) -> list[Record]:
    """Every record in ``log``, in the order the hooks ran; [] if nothing ran yet."""
    try:
        lines = log.read_text().splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        d = json.loads(line)
        out.append(Record(hook=d["hook"], path=d["path"], argv=tuple(d["argv"]), env=d["env"],
                          stdin=d["stdin"], pid=d["pid"], uid=d["uid"], time=d["time"]))
    return out


def wait_for(predicate: Any, *, timeout: float = 10.0, interval: float = 0.02) -> bool:
    """Poll ``predicate()`` until it is true or ``timeout`` seconds passed; its last truth."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return bool(predicate())
        time.sleep(interval)
