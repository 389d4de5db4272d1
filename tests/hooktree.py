"""Test helpers: a root-owned hook tree under tmp_path, and the dispatcher as a real process.

Import from here (``from hooktree import HookTree, run_hookrunner``), not from ``conftest``:
tests/e2e has a conftest of its own, and both cannot be the module named ``conftest``.

``hooktree`` builds ``ROOT/etc/security/PHASE.d/NAME`` (or any other layer) and
``ROOT/etc/security/hookrunner.toml``; use it with ``--root`` (``hooktree.run(...)`` adds it).
``run_hookrunner(args, env=..., input=...)`` runs
``.venv/bin/python -I -S <repo>/hookrunner/__main__.py ARGS`` with a clean environment, cwd /.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MAIN = REPO / "hookrunner" / "__main__.py"
_VENV_PYTHON = REPO / ".venv" / "bin" / "python"
PYTHON = _VENV_PYTHON if _VENV_PYTHON.exists() else Path(sys.executable)

Env = Mapping[str, str] | Mapping[bytes, bytes]
RunHookrunner = Callable[..., "subprocess.CompletedProcess[bytes]"]


def run_hookrunner(
    args: Sequence[str | os.PathLike[str]],
    env: Env | None = None,
    input: bytes | None = None,
    timeout: float = 60,
    python_args: Sequence[str] = ("-I", "-S", str(MAIN)),
) -> subprocess.CompletedProcess[bytes]:
    """The dispatcher as PAM starts it: isolated interpreter, nothing in the environment but ``env``."""
    clean = {os.fsencode(k): os.fsencode(v) for k, v in (env or {}).items()}
    return subprocess.run(
        [str(PYTHON), *python_args, *map(str, args)],
        env=clean, input=input, capture_output=True, timeout=timeout, cwd="/",
        stdin=None if input is not None else subprocess.DEVNULL,
    )


class HookTree:
    """A fake root (``--root``) owned by root, mode 755 all the way down."""

    def __init__(self, root: Path, out: Path) -> None:
        self.root = root
        self.out = out  # a root-owned scratch directory for hooks to write into

    def dir(self, phase: str, layer: str = "etc/security") -> Path:
        d = self.root / layer / f"{phase}.d"
        d.mkdir(mode=0o755, parents=True, exist_ok=True)
        return d

    def hook(self, phase: str, name: str, content: str | bytes = "#!/bin/sh\nexit 0\n",
             mode: int = 0o755, layer: str = "etc/security") -> Path:
        path = self.dir(phase, layer) / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        path.chmod(mode)
        return path

    def config(self, text: str) -> Path:
        path = self.root / "etc/security/hookrunner.toml"
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def argv(self, *args: str | os.PathLike[str]) -> list[str]:
        """The dispatcher's command line, for tests that start it themselves (Popen, wait4)."""
        return [str(PYTHON), "-I", "-S", str(MAIN), *map(str, args), "--root", str(self.root)]

    def run(self, *args: str | os.PathLike[str], env: Env | None = None,
            input: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
        """``hookrunner ARGS --root ROOT``."""
        return run_hookrunner([*args, "--root", self.root], env=env, input=input, timeout=timeout)
