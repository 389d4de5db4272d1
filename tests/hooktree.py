"""Test helpers: a root-owned hook tree under tmp_path, and the dispatcher as a real process.

Import from here (``from hooktree import HookTree, run_hookrunner``), not from ``conftest``:
tests/e2e has a conftest of its own, and both cannot be the module named ``conftest``.

``hooktree`` builds ``ROOT/etc/security/PHASE.d/NAME`` (or any other layer) and
``ROOT/etc/security/hookrunner.toml``; use it with ``--root`` (``hooktree.run(...)`` adds it).
``run_hookrunner(args, env=..., input=...)`` runs
``.venv/bin/python -I -S <repo>/hookrunner/__main__.py ARGS`` with a clean environment, cwd /.
Also: ``environ`` (a /proc environ dump read back) and ``status_and_peak_rss`` (wait4).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
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
    preexec: Callable[[], object] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """The dispatcher as PAM starts it: isolated interpreter, nothing in the environment but ``env``
    (``preexec``: run in the child before exec, e.g. to lower a resource limit)."""
    return subprocess.run(
        [str(PYTHON), *python_args, *map(str, args)],
        env=_clean(env), input=input, capture_output=True, timeout=timeout, cwd="/",
        stdin=None if input is not None else subprocess.DEVNULL, preexec_fn=preexec,
    )


def _clean(env: Env | None) -> dict[bytes, bytes]:
    return {os.fsencode(k): os.fsencode(v) for k, v in (env or {}).items()}


def environ(path: Path) -> dict[bytes, bytes]:
    """A ``cat /proc/$$/environ`` dump: NUL-separated ``NAME=value`` entries."""
    return dict(kv.split(b"=", 1) for kv in path.read_bytes().split(b"\0") if kv)


# A child's peak RSS starts at its parent's RSS at fork (or vfork), and pytest's is large: fork
# the command from a small interpreter and read its peak from wait4 there.
RSS_OF = """import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


def status_and_peak_rss(argv: Sequence[str], *, env: Env, timeout: float, cwd: str | None = None,
                        stdin: int | None = None) -> tuple[int, int]:
    """``argv`` run from a small ``/usr/bin/python3``: its exit status and peak RSS (KiB)."""
    out = subprocess.run(["/usr/bin/python3", "-I", "-S", "-c", RSS_OF, *argv], env=env, cwd=cwd,
                         stdin=stdin, capture_output=True, timeout=timeout, check=True)
    status, rss = map(int, out.stdout.split())
    return status, rss


@contextlib.contextmanager
def syslog_daemon(root: Path) -> Iterator[socket.socket]:
    """A datagram socket bound at ``root/dev/log`` for the block: the syslog daemon of a
    normal machine, as ``check --root`` sees it (``check`` only connects; ``run`` logs to the
    real /dev/log). Not read: nothing is sent to it."""
    (root / "dev").mkdir(mode=0o755, exist_ok=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as daemon:
        daemon.bind(str(root / "dev/log"))
        try:
            yield daemon
        finally:
            (root / "dev/log").unlink(missing_ok=True)


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
            input: bytes | None = None, timeout: float = 60,
            preexec: Callable[[], object] | None = None) -> subprocess.CompletedProcess[bytes]:
        """``hookrunner ARGS --root ROOT``."""
        return run_hookrunner([*args, "--root", self.root], env=env, input=input, timeout=timeout,
                              preexec=preexec)

    def run_msg_fd(self, *args: str, env: Env | None = None,
                   timeout: float = 30) -> tuple[subprocess.CompletedProcess[bytes], bytes]:
        """``hookrunner ARGS --msg-fd W --root ROOT`` (the native module's channel): its result,
        and what it wrote on W, a pipe."""
        r, w = os.pipe()
        with os.fdopen(r, "rb") as messages:
            try:
                proc = subprocess.run(self.argv(*args, "--msg-fd", str(w)), env=_clean(env),
                                      capture_output=True, timeout=timeout, pass_fds=(w,))
            finally:
                os.close(w)
            return proc, messages.read()

    def order_script(self, name: str) -> str:
        """An executable hook that appends its name to OUT/order."""
        return f"#!/bin/sh\necho {name} >> {self.out}/order\n"

    def order(self) -> list[str]:
        """The names the hooks appended to OUT/order, in order."""
        path = self.out / "order"
        return path.read_text().split() if path.exists() else []
