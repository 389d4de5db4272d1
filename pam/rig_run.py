"""The rig's runners: a program with a timeout that kills everything it started and says so in
one sentence (:class:`RigTimeout`); ``pamtester`` and ``su``, under pam_wrapper or on the real
/etc/pam.d, each with a /dev/log of its own (rig_syslog.py). Passwords go on stdin, never
argv. Part of pamrig (pamrig.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from rig_services import sweep_pam_wrapper_dirs, wrapper_env
from rig_syslog import SyslogSink, own_dev_log


@dataclasses.dataclass(frozen=True)
class Outcome:
    """A finished program: exit status, output, wall time."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float


class RigTimeout(Exception):
    """A program the rig ran did not finish in time; the message is one sentence."""


def run(argv: Sequence[str], *, input: str | None = None, env: Mapping[str, str] | None = None,
        timeout: float = 60.0, name: str | None = None) -> Outcome:
    """Run ``argv`` (no shell), feed ``input`` on stdin, time it. Past ``timeout`` it is killed
    with every process it started, and :class:`RigTimeout` says so (calling it ``name``)."""
    start = time.monotonic()
    with subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, errors="surrogateescape",
                          env=None if env is None else dict(env)) as p:
        try:
            stdout, stderr = p.communicate(input or "", timeout=timeout)
        except subprocess.TimeoutExpired:
            started = kill_tree(p.pid) - 1
            p.communicate()
            also = f", with the {started} processes it had started" if started else ""
            raise RigTimeout(f"{name or Path(argv[0]).name} did not finish within {timeout:g} s "
                             f"and was killed{also}") from None
    return Outcome(p.returncode, stdout, stderr, time.monotonic() - start)


def kill_tree(pid: int) -> int:
    """SIGKILL ``pid`` and its descendants (a dispatcher pam_exec started is one, whatever
    session it made); how many processes that was."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                parents.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo += parents.get(tree[-1], [])
    for member in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)
    return len(tree)


def run_pam(argv: Sequence[str], *, input: str | None = None, env: Mapping[str, str] | None = None,
            timeout: float = 60.0, syslog: SyslogSink | None = None) -> Outcome:
    """:func:`run` for a program that drives PAM: with a /dev/log of its own (``syslog``, or a
    throw-away sink), and pam_wrapper's leftovers in /tmp removed after it."""
    name = Path(argv[0]).name
    with own_dev_log(syslog) as sink:
        if sink is not None:
            argv, env = sink.wrap(argv, env)
        try:
            return run(argv, input=input, env=env, timeout=timeout, name=name)
        finally:
            if (env or os.environ).get("PAM_WRAPPER") == "1":
                sweep_pam_wrapper_dirs()


PAMTESTER_OPS: Final = ("authenticate", "acct_mgmt", "open_session", "close_session")


def pamtester(service_dir: Path | None, service: str, user: str,
              ops: Sequence[str] = PAMTESTER_OPS, *, passwords: Sequence[str] = (),
              rhost: str | None = None, tty: str | None = None, ruser: str | None = None,
              pam_env: Mapping[str, str] | None = None, verbose: bool = True,
              timeout: float = 60.0, syslog: SyslogSink | None = None) -> Outcome:
    """One pamtester transaction (one handle, ``ops`` in order; it stops at the first failure).

    ``service_dir`` set: under pam_wrapper; ``None``: the real ``/etc/pam.d``.
    ``passwords`` answer the prompts, one per line, on stdin. What it logs goes to ``syslog``
    (else to a throw-away sink), never to the host's /dev/log.
    """
    argv = ["pamtester"] + (["-v"] if verbose else [])
    for item, value in (("rhost", rhost), ("tty", tty), ("ruser", ruser)):
        if value is not None:
            argv += ["-I", f"{item}={value}"]
    for k, v in (pam_env or {}).items():
        argv += ["-E", f"{k}={v}"]
    argv += [service, user, *ops]
    env = wrapper_env(service_dir) if service_dir is not None else None
    stdin = "".join(p + "\n" for p in passwords)
    return run_pam(argv, input=stdin, env=env, timeout=timeout, syslog=syslog)


def su(user: str, command: Sequence[str] = ("true",), *, login: bool = True,
       service_dir: Path | None = None, timeout: float = 60.0,
       syslog: SyslogSink | None = None) -> Outcome:
    """``su [-] USER -c CMD`` as root (pam_rootok: no auth), optionally under pam_wrapper.

    Without ``login`` su keeps the environment, so USER's shell loads pam_wrapper as well,
    and it exits at start unless USER can read ``service_dir``: make that world-readable.
    """
    import shlex

    argv = ["su", *(["-"] if login else []), user, "-c", shlex.join(command)]
    env = wrapper_env(service_dir) if service_dir is not None else None
    return run_pam(argv, env=env, timeout=timeout, syslog=syslog)
