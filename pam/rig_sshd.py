"""The rig's sshd: a real OpenSSH server on 127.0.0.1 with its own config, host key, pid file
and /dev/log (rig_syslog.py), whose PAM service is named after argv[0] (it is started through
a symlink of that name); stopped by PID, always. And its clients: password login through
``sshpass -e`` (the password in sshpass's environment, never argv), public-key login with a
throw-away key. Part of pamrig (pamrig.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final

from rig_run import Outcome
from rig_run import run as rig_run
from rig_syslog import SyslogSink, own_dev_log
from rig_tree import wait_for
from rig_users import User

SSHD: Final = Path("/usr/sbin/sshd")


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
        with own_dev_log() as sink:  # its logins log to a /dev/log of their own
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

        return wait_for(lambda: listening() or self.process.poll() is not None,
                            timeout=timeout) and listening()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Until no per-connection child is left (their close_session hooks have run)."""
        return wait_for(lambda: not _children(self.process.pid), timeout=timeout)

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
                 *, timeout: float = 60.0) -> Outcome:
    """Password login through ``sshpass -e`` (password in its environment, never argv)."""
    argv = ["sshpass", "-e", "ssh", *_SSH_COMMON, "-p", str(port),
            "-o", "PreferredAuthentications=password", "-o", "PubkeyAuthentication=no",
            "-o", "NumberOfPasswordPrompts=1", f"{user}@127.0.0.1", "--", *command]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SSHPASS": password}
    return rig_run(argv, env=env, timeout=timeout)


def ssh_key(port: int, user: str, key: Path, command: Sequence[str] = ("true",),
            *, timeout: float = 60.0) -> Outcome:
    """Public-key login with ``key`` only (BatchMode: never a password prompt)."""
    argv = ["ssh", *_SSH_COMMON, "-p", str(port), "-i", str(key), "-o", "IdentitiesOnly=yes",
            "-o", "BatchMode=yes", "-o", "PreferredAuthentications=publickey",
            f"{user}@127.0.0.1", "--", *command]
    return rig_run(argv, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, timeout=timeout)


def install_key(user: User, workdir: Path) -> Path:
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
