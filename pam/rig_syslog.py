"""The rig's syslog: every transaction gets a /dev/log of its own, read all the time.

Hooks, the dispatcher and PAM modules log with syslog(3), which writes to ``/dev/log``, a path
glibc fixes and every process on the machine shares. A rig run must neither depend on it (with
``net.unix.max_dgram_qlen = 10`` a /dev/log that nobody reads blocks syslog(3), and so the
login, after ten records) nor capture other programs' records. So what the rig runs runs in a
mount namespace of its own, where /dev/log is a :class:`SyslogSink`'s socket (bound over the
host's /dev/log, or on a private /dev when the host has none) that a thread reads as a syslog
daemon would.

``python3 -I -S rig_syslog.py SOCKET [--env NAME=VALUE]... -- ARGV...`` is that namespace: run
as root, it unshares the mount namespace, puts SOCKET at /dev/log, sets the variables (so that
an ``LD_PRELOAD`` meant for ARGV is not loaded into this helper), and executes ARGV.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Final

HELPER: Final = Path(__file__).resolve()
DEV_LOG: Final = "/dev/log"
_CLONE_NEWNS, _MS_NOSUID, _MS_BIND, _MS_REC, _MS_PRIVATE, _MNT_DETACH = (
    0x20000, 0x2, 0x1000, 0x4000, 0x40000, 0x2)


class SyslogUnavailable(Exception):
    pass


class SyslogSink:
    """A datagram socket at a private path that collects what is sent to it, read by a thread
    all the time; :meth:`wrap` makes it a command's /dev/log. Only inside a ``with`` block."""

    def __init__(self) -> None:
        self.path = Path()
        self.sock: socket.socket | None = None
        self.received: list[bytes] = []
        self._dir: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None

    def __enter__(self) -> SyslogSink:
        problem = isolation_problem()
        if problem:
            raise SyslogUnavailable(problem)
        self._dir = tempfile.mkdtemp(prefix="hookrunner-syslog-")  # 0700: /dev/log is the way in
        self.path = Path(self._dir) / "log"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.path.chmod(0o666)  # runas hooks and su's user log too
        self._reader = threading.Thread(target=self._read_until_stopped, daemon=True)
        self._reader.start()
        return self

    def wrap(self, argv: Sequence[str], env: Mapping[str, str] | None = None
             ) -> tuple[list[str], dict[str, str]]:
        """The command line and environment that run ``argv`` (with ``env``, default ours)
        in a mount namespace whose /dev/log is this sink."""
        env = dict(os.environ if env is None else env)
        preload = env.pop("LD_PRELOAD", None)  # for argv, not for the helper's own interpreter
        return dev_log_argv(self.path, argv, {} if preload is None else {"LD_PRELOAD": preload}), env

    def _read_until_stopped(self) -> None:
        assert self.sock is not None
        while not self._stop.is_set():
            select.select([self.sock], [], [], 0.1)
            self._drain()

    def _drain(self) -> None:
        assert self.sock is not None
        with self._lock:
            while True:
                try:
                    self.received.append(self.sock.recv(65536, socket.MSG_DONTWAIT))
                except OSError:  # BlockingIOError: nothing more for now
                    return

    def messages(self) -> list[bytes]:
        """Everything received so far."""
        self._drain()
        with self._lock:
            return list(self.received)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._reader is not None:
            self._reader.join()
        if self.sock is not None:
            self.sock.close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)


def dev_log_argv(socket_path: Path | str, argv: Sequence[str], env: Mapping[str, str] | None = None
                 ) -> list[str]:
    """The command line that runs ``argv`` (as root) in a mount namespace of its own whose
    /dev/log is the socket at ``socket_path``, with the variables ``env`` added."""
    sets = [word for name, value in (env or {}).items() for word in ("--env", f"{name}={value}")]
    return [sys.executable, "-I", "-S", str(HELPER), str(socket_path), *sets, "--", *argv]


@contextlib.contextmanager
def own_dev_log(sink: SyslogSink | None = None) -> Iterator[SyslogSink | None]:
    """``sink``, or a throw-away one for the block; None where no mount namespace can be made
    (not root, no CAP_SYS_ADMIN): then commands log to the host's /dev/log."""
    if sink is not None:
        yield sink
        return
    try:
        with SyslogSink() as throwaway:
            yield throwaway
    except SyslogUnavailable:
        yield None


@functools.cache
def isolation_problem() -> str:
    """'' when this machine can give a command its own /dev/log; else why not (checked once)."""
    if os.geteuid() != 0:
        return "a private /dev/log needs root (a mount namespace)"
    with tempfile.TemporaryDirectory(prefix="hookrunner-syslog-probe-") as d:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.bind(os.path.join(d, "log"))
            p = subprocess.run([sys.executable, "-I", "-S", str(HELPER), os.path.join(d, "log"),
                                "--", "true"], capture_output=True, text=True, timeout=30)
        finally:
            sock.close()
    return "" if p.returncode == 0 else (p.stderr.strip() or f"exit status {p.returncode}")


# ------------------------------------------------- the helper: a namespace with our /dev/log


def _libc_call(name: str, *args: object) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if getattr(libc, name)(*args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{name}{args!r}: {os.strerror(err)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    def c(s: str | None) -> bytes | None:
        return None if s is None else os.fsencode(s)

    _libc_call("mount", c(source), c(target), c(fstype), ctypes.c_ulong(flags), c(data))


def private_dev_log(sink: str) -> None:
    """In a new mount namespace (this process, single-threaded), make ``sink`` /dev/log."""
    _libc_call("unshare", _CLONE_NEWNS)
    _mount(None, "/", None, _MS_REC | _MS_PRIVATE)  # nothing done here reaches the host
    if os.path.exists(DEV_LOG):  # a daemon's socket, journald's dev-log behind a symlink, ...
        _mount(sink, DEV_LOG, None, _MS_BIND)
        return
    # Nothing to bind over: a tmpfs on /dev, the host's entries bound back one by one, and ours.
    host = tempfile.mkdtemp(prefix="hookrunner-dev-")
    try:
        _mount("/dev", host, None, _MS_BIND | _MS_REC)
        _mount("tmpfs", "/dev", "tmpfs", _MS_NOSUID, "mode=755")
        with os.scandir(host) as entries:
            for entry in entries:
                if entry.name == "log":  # a dangling symlink (journald not running)
                    continue
                target = os.path.join("/dev", entry.name)
                if entry.is_symlink():
                    os.symlink(os.readlink(entry.path), target)
                    continue
                if entry.is_dir(follow_symlinks=False):
                    os.mkdir(target)
                else:
                    os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
                _mount(entry.path, target, None, _MS_BIND | _MS_REC)
        os.close(os.open(DEV_LOG, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        _mount(sink, DEV_LOG, None, _MS_BIND)
    finally:
        with contextlib.suppress(OSError):
            _libc_call("umount2", os.fsencode(host), _MNT_DETACH)
        with contextlib.suppress(OSError):
            os.rmdir(host)


def _helper(args: list[str]) -> int:
    if len(args) < 3:
        print(f"usage: {HELPER.name} SOCKET [--env NAME=VALUE]... -- ARGV...", file=sys.stderr)
        return 2
    sink, rest = args[0], args[1:]
    env = dict(os.environ)
    while rest[:1] == ["--env"] and len(rest) > 1:
        name, _, value = rest[1].partition("=")
        env[name] = value
        rest = rest[2:]
    if rest[:1] != ["--"] or len(rest) < 2:
        print(f"{HELPER.name}: expected -- ARGV...", file=sys.stderr)
        return 2
    try:
        private_dev_log(sink)
    except OSError as e:
        print(f"{HELPER.name}: cannot give the command a /dev/log of its own: {e.strerror}",
              file=sys.stderr)
        return 125
    try:
        os.execvpe(rest[1], rest[1:], env)  # noqa: S606 - argv as given, no shell
    except OSError as e:
        print(f"{HELPER.name}: cannot run {rest[1]}: {e.strerror}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(_helper(sys.argv[1:]))
