"""End-to-end harness: what the e2e tests need beyond ``pam/pamrig.py`` (no pytest here).

* :class:`Tree` — a root-owned hook tree with recorder hooks, read back as records.
* :func:`missing` — why an e2e module cannot run here (not root, a tool missing).
* :func:`gone` — a process exited; :func:`marker_library` — an LD_PRELOAD library that
  leaves a trace of every process it is loaded into.

The PAM-level pieces (hook trees, recorder hooks, services, pamtester, python-pam, su, users,
syslog, sshd and its clients) live in ``pam/`` (``pamrig`` and its ``rig_*`` modules) so that
``make demo`` uses the same code; this module puts ``pam/`` on sys.path, re-exports pamrig as
``rig``, and the names the tests import from here (``Sshd``, ``ssh_password``, ...).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "pam"))
import pamrig as rig
from pamrig import Sshd, SyslogSink, SyslogUnavailable, free_port, install_key, ssh_key, ssh_password

__all__ = [
    "DEBIAN_PLUGGY",
    "NATIVE_MODULE",
    "Sshd",
    "SyslogSink",
    "SyslogUnavailable",
    "Tree",
    "build_native_module",
    "expected_env",
    "free_port",
    "gone",
    "install_key",
    "make_tree",
    "marker_library",
    "missing",
    "rig",
    "ssh_key",
    "ssh_password",
]


PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NATIVE_MODULE = rig.REPO / "pam" / "pam_hookrunner.so"  # built here by build_native_module()
DEBIAN_PLUGGY = Path("/usr/lib/python3/dist-packages/pluggy/__init__.py")  # /usr/bin/python3's


def build_native_module() -> Path:
    """``make -C pam``: pam_hookrunner.so, built in the checkout (an allowed build product)."""
    subprocess.run(["make", "-s", "-C", str(NATIVE_MODULE.parent)], check=True,
                   capture_output=True)
    return NATIVE_MODULE


@dataclasses.dataclass
class Tree:
    """A hook tree for ``--root``, its recorder log and the dispatcher's log file."""

    base: Path
    root: Path
    records_log: Path
    log_file: Path

    def hook(self, phase: str, name: str, *, exit_code: int = 0, say: str = "",
             sleep_forever: bool = False) -> Path:
        """A recorder hook ``<phase>.d/<name>``."""
        return rig.write_hook(self.root, phase, name, rig.recorder_hook(
            self.records_log, exit_code=exit_code, say=say, sleep_forever=sleep_forever))

    def hooks_everywhere(self, *names: str) -> None:
        for phase in rig.PHASE_NAMES:
            for name in names:
                self.hook(phase, name)

    def config(self, text: str = "") -> None:
        """hookrunner.toml: ``text`` after ``log_file`` (always set, so tests can read it)."""
        rig.write_config(self.root, f"log_file = {json.dumps(str(self.log_file))}\n{text}")

    def records(self) -> list[rig.Record]:
        return rig.read_records(self.records_log)

    def seen(self) -> list[tuple[str, str]]:
        """(phase, hook) of every recorded run, in order."""
        return [(r.phase, r.hook) for r in self.records()]

    def wait_seen(self, phase: str, timeout: float = 10.0) -> bool:
        return rig.wait_for(lambda: any(p == phase for p, _ in self.seen()), timeout=timeout)

    def log_text(self) -> str:
        return self.log_file.read_text() if self.log_file.exists() else ""

    def reset(self) -> None:
        rig.clear_hooks(self.root)
        for path in (self.records_log, self.log_file):
            path.unlink(missing_ok=True)
        self.config()


def make_tree(base: Path) -> Tree:
    root = rig.make_root(base)  # log_file below --root: the directories above are tmp's
    tree = Tree(base, root, base / "records.jsonl", root / "hookrunner.log")
    tree.config()
    return tree


def expected_env(phase: str, hook: str, root: Path, **items: str) -> dict[str, str]:
    """The exact environment a hook must get: the PAM items given, and hookrunner's own
    (HOOKRUNNER_ROOT because the tree is used with ``--root``)."""
    env = {f"PAM_{k.upper()}": v for k, v in items.items()}
    env["PAM_TYPE"] = rig.PAM_TYPE_OF[phase]
    env |= {"HOOKRUNNER_PHASE": phase, "HOOKRUNNER_HOOK": hook, "PATH": PATH,
            "HOOKRUNNER_ROOT": str(root)}
    return env

def missing(*, tools: Sequence[str] = (), files: Sequence[Path] = ()) -> str:
    """'' when this machine can run the test; else the reason to skip it."""
    if os.geteuid() != 0:
        return "needs root (real PAM stacks, root-owned hook trees, useradd); run as root in CI"
    for tool in tools:
        if shutil.which(tool) is None:
            return f"{tool} not installed (scripts/deps installs it)"
    for path in files:
        if not path.exists():
            return f"{path} missing (scripts/deps installs its package)"
    return ""


def gone(pid: int) -> bool:
    """Exited: no such process, or a zombie (a container's init may never reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


_MARKER_LIB = r"""
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
__attribute__((constructor)) static void mark(void)
{
    int fd = open(MARKER, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) { dprintf(fd, "uid=%d\n", (int)getuid()); close(fd); }
}
"""


def marker_library(directory: Path, marker: Path) -> Path:
    """``directory/libmarker.so`` (built with gcc from ``directory/marker.c``): every process
    it is loaded into appends a line ``uid=UID`` to ``marker``."""
    source, lib = directory / "marker.c", directory / "libmarker.so"
    source.write_text(_MARKER_LIB)
    subprocess.run(["gcc", "-shared", "-fPIC", f'-DMARKER="{marker}"', "-o", str(lib), str(source)],
                   check=True)
    return lib
