"""End-to-end harness: what the e2e tests need beyond ``pam/pamrig.py`` (no pytest here).

* :class:`Sshd` — a real OpenSSH server on 127.0.0.1 with its own config, host key, pid
  file and /dev/log (rig_syslog.py), whose PAM service is a temporary ``/etc/pam.d`` file
  (sshd names its service after argv[0], so it is started through a symlink of that name);
  stopped by PID, always.
* ssh clients: password login through ``sshpass -e`` (the password in sshpass's environment,
  never argv), public-key login with a throw-away key.
* :class:`Tree` — a root-owned hook tree with recorder hooks, read back as records.
* :func:`missing` — why an e2e module cannot run here (not root, a tool missing).
* :func:`gone` — a process exited; :func:`marker_library` — an LD_PRELOAD library that
  leaves a trace of every process it is loaded into.

The PAM-level pieces (hook trees, recorder hooks, services, pamtester, python-pam, users,
su) live in ``pam/pamrig.py`` so that ``make demo`` uses the same code; this module puts
``pam/`` on sys.path and re-exports it as ``rig``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "pam"))
import pamrig as rig
from pamrig import SyslogSink, SyslogUnavailable

__all__ = ["Sshd", "SyslogSink", "SyslogUnavailable", "Tree", "expected_env", "free_port", "gone",
           "install_key", "make_tree", "marker_library", "missing", "rig", "ssh_key", "ssh_password"]

SSHD = Path("/usr/sbin/sshd")


PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


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


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (bind to port 0, read it, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ... — comm may hold spaces and parentheses
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(entry.name))
    return out


@dataclasses.dataclass
class Sshd:
    """A running sshd; use :meth:`start` as a context manager."""

    service: str
    port: int
    workdir: Path
    log: Path
    process: subprocess.Popen[bytes]

    @classmethod
    @contextlib.contextmanager
    def start(cls, workdir: Path, service: str, *, timeout: float = 15.0) -> Iterator[Sshd]:
        """sshd -D on 127.0.0.1:<free port>, PAM service ``service`` (must exist)."""
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation dir
        workdir.mkdir(mode=0o700, exist_ok=True)
        hostkey = workdir / "ssh_host_ed25519_key"
        if not hostkey.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hookrunner-test",
                            "-f", str(hostkey)], check=True)
        link = workdir / service  # argv[0]'s basename is the PAM service name
        if not link.is_symlink():
            link.symlink_to(SSHD)
        with rig.own_dev_log() as sink:  # its logins log to a /dev/log of their own
            sshd = None
            for _attempt in range(3):  # the free port may be taken between probe and bind
                port = free_port()
                sshd = cls._spawn(workdir, service, link, hostkey, port, sink)
                if sshd._wait_listening(timeout):
                    break
                sshd.stop()
                sshd = None
            if sshd is None:
                log = (workdir / "sshd.log").read_text(errors="replace")
                raise RuntimeError(f"sshd did not start; its log:\n{log}")
            try:
                yield sshd
            finally:
                sshd.stop()

    @classmethod
    def _spawn(cls, workdir: Path, service: str, link: Path, hostkey: Path, port: int,
               sink: SyslogSink | None) -> Sshd:
        config = workdir / "sshd_config"
        config.write_text("\n".join([
            f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {hostkey}",
            f"PidFile {workdir / 'sshd.pid'}", "UsePAM yes", "PasswordAuthentication yes",
            "KbdInteractiveAuthentication no", "PubkeyAuthentication yes",
            "AuthorizedKeysFile .ssh/authorized_keys", "PermitRootLogin no", "UseDNS no",
            "PrintMotd no", "PrintLastLog no", "LogLevel VERBOSE", "MaxAuthTries 3",
            "Subsystem sftp internal-sftp", "",
        ]))
        log = workdir / "sshd.log"
        log.write_text("")
        argv, env = [str(link), "-D", "-f", str(config), "-E", str(log)], None
        if sink is not None:
            argv, env = sink.wrap(argv)
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True, env=env)
        return cls(service, port, workdir, log, process)

    def _wait_listening(self, timeout: float) -> bool:
        ready = f"Server listening on 127.0.0.1 port {self.port}"

        def listening() -> bool:
            return self.process.poll() is None and ready in self.log.read_text(errors="replace")

        return rig.wait_for(lambda: listening() or self.process.poll() is not None,
                            timeout=timeout) and listening()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Until no per-connection child is left (their close_session hooks have run)."""
        return rig.wait_for(lambda: not _children(self.process.pid), timeout=timeout)

    def stop(self) -> None:
        """Stop sshd and any connection it still serves, by PID; idempotent."""
        if self.process.poll() is None:
            self.wait_idle(timeout=5.0)
            leftovers = _children(self.process.pid)
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            for pid in leftovers:  # connection children outliving the listener: ours too
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


_SSH_COMMON = ("-F", "/dev/null", "-T", "-o", "StrictHostKeyChecking=no",
               "-o", "UserKnownHostsFile=/dev/null", "-o", "GlobalKnownHostsFile=/dev/null",
               "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10")


def ssh_password(port: int, user: str, password: str, command: Sequence[str] = ("true",),
                 *, timeout: float = 60.0) -> rig.Outcome:
    """Password login through ``sshpass -e`` (password in its environment, never argv)."""
    argv = ["sshpass", "-e", "ssh", *_SSH_COMMON, "-p", str(port),
            "-o", "PreferredAuthentications=password", "-o", "PubkeyAuthentication=no",
            "-o", "NumberOfPasswordPrompts=1", f"{user}@127.0.0.1", "--", *command]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SSHPASS": password}
    return rig.run(argv, env=env, timeout=timeout)


def ssh_key(port: int, user: str, key: Path, command: Sequence[str] = ("true",),
            *, timeout: float = 60.0) -> rig.Outcome:
    """Public-key login with ``key`` only (BatchMode: never a password prompt)."""
    argv = ["ssh", *_SSH_COMMON, "-p", str(port), "-i", str(key), "-o", "IdentitiesOnly=yes",
            "-o", "BatchMode=yes", "-o", "PreferredAuthentications=publickey",
            f"{user}@127.0.0.1", "--", *command]
    return rig.run(argv, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, timeout=timeout)


def install_key(user: rig.User, workdir: Path) -> Path:
    """A new client key in ``workdir``, authorized for ``user``; returns the private key."""
    key = workdir / "client_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hookrunner-test",
                    "-f", str(key)], check=True)
    ssh_dir = user.home / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    authorized = ssh_dir / "authorized_keys"
    authorized.write_text(key.with_suffix(".pub").read_text())
    for path, mode in ((ssh_dir, 0o700), (authorized, 0o600)):
        os.chown(path, user.uid, user.gid)
        path.chmod(mode)
    return key
