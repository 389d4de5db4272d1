"""pamrig: drive a real libpam through ``pam_exec.so`` -> hookrunner, for ``make demo`` and tests.

One place for the mechanics that ``pam/demo.py`` and ``tests/e2e/`` share (no pytest here):

* a root-owned hook tree laid out for ``hookrunner run --root ROOT``, and hooks in it,
  among them a *recorder* that appends what it saw (argv, exact environment, stdin, pid)
  as one JSON line to a root-only log file;
* PAM service files that call the dispatcher through ``pam_exec.so``: flattened ones for
  pam_wrapper (``pam_matrix.so`` as the password database) and real ones written to
  ``/etc/pam.d/hookrunner-test-<id>`` for the life of a ``with`` block;
* runners: ``pamtester`` under pam_wrapper, python-pam in a child process (under pam_wrapper
  or against the real ``/etc/pam.d``), and ``su`` under pam_wrapper on Debian's own su stack;
* a temporary user (``useradd`` / ``chpasswd`` / ``userdel -r``);
* a /dev/log of its own for every transaction (rig_syslog.py): a mount namespace whose
  /dev/log is a socket the rig reads, so that nothing depends on, or captures, the host's
  syslog; and the /tmp/pam.X directories pam_wrapper leaves behind, removed.

Passwords travel only on stdin (pamtester's prompt, python-pam's conversation), never argv.
Import it with ``sys.path.insert(0, "<repo>/pam")``; ``pam/`` must stay a directory without
``__init__.py`` so that ``import pam`` still finds python-pam.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from rig_syslog import SyslogSink as SyslogSink
from rig_syslog import SyslogUnavailable as SyslogUnavailable
from rig_syslog import dev_log_argv as dev_log_argv
from rig_syslog import isolation_problem as isolation_problem
from rig_syslog import own_dev_log as own_dev_log

REPO: Final = Path(__file__).resolve().parent.parent
DISPATCHER: Final = REPO / "hookrunner" / "__main__.py"
_MULTIARCH: Final = sysconfig.get_config_var("MULTIARCH") or "x86_64-linux-gnu"
LIBDIR: Final = Path("/usr/lib") / _MULTIARCH
PAM_WRAPPER_LIB: Final = LIBDIR / "libpam_wrapper.so"
PAM_MATRIX: Final = LIBDIR / "pam_wrapper" / "pam_matrix.so"
PAM_D: Final = Path("/etc/pam.d")
SERVICE_PREFIX: Final = "hookrunner-test-"

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


# ---------------------------------------------------------------------------- hook trees


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


# ------------------------------------------------------------------------- PAM services


def dispatcher_argv(root: Path | None, phase: str | None, *, python: Path | None = None,
                    extra: Sequence[str] = ()) -> list[str]:
    """``<python> -I -S <repo>/hookrunner/__main__.py run [PHASE] [--root ROOT] ...``."""
    argv = [str(python or default_python()), "-I", "-S", str(DISPATCHER), "run"]
    if phase:
        argv.append(phase)
    if root is not None:
        argv += ["--root", str(root)]
    return argv + list(extra)


def exec_line(group: str, control: str, root: Path | None, phase: str | None, *,
              options: Sequence[str] = ("quiet",), python: Path | None = None,
              extra: Sequence[str] = ()) -> str:
    """One ``pam_exec.so`` line, e.g. ``auth optional pam_exec.so quiet /py -I -S ... onauth``."""
    words = [group, control, "pam_exec.so", *options,
             *dispatcher_argv(root, phase, python=python, extra=extra)]
    for w in words:
        if not w or any(c.isspace() for c in w) or "[" in w or "]" in w:
            raise ValueError(f"cannot put {w!r} in a PAM line")
    return " ".join(words)


@dataclasses.dataclass(frozen=True)
class Controls:
    """The control and pam_exec options of each hookrunner line of a generated stack.

    ``optional`` everywhere is the shipped recommendation. A deny hook needs ``required``
    (or ``requisite``) on its line: under ``optional`` a failing pam_exec changes nothing.
    """

    auth: str = "optional"
    account: str = "optional"
    password: str = "optional"  # noqa: S105 - the PAM group, not a secret
    session: str = "optional"
    auth_options: tuple[str, ...] = ("quiet",)
    options: tuple[str, ...] = ("quiet",)

    def lines(self, root: Path | None, *, python: Path | None = None,
              groups: Sequence[str] = ("auth", "account", "password", "session"),
              extra: Sequence[str] = ()) -> dict[str, str]:
        """group -> the hookrunner line; the session line takes its phase from PAM_TYPE."""
        out = {}
        for group in groups:
            phase = {"auth": "onauth", "account": "onaccount", "password": "onpasswd"}.get(group)
            opts = self.auth_options if group == "auth" else self.options
            out[group] = exec_line(group, getattr(self, group), root, phase, options=opts,
                                   python=python, extra=extra)
        return out


def matrix_service(root: Path, passdb: Path, controls: Controls = Controls(), *,
                   python: Path | None = None, extra: Sequence[str] = ()) -> list[str]:
    """A flattened stack for pam_wrapper: pam_matrix.so, then the hookrunner line, per group.

    Beware: pam_matrix wipes PAM_AUTHTOK after checking it, so ``expose_authtok`` after it
    hands the hook an empty password; use :func:`unix_service` with a real user for that.
    """
    matrix = f"{PAM_MATRIX} passdb={passdb}"
    hooks = controls.lines(root, python=python, extra=extra)
    out = []
    for group in ("auth", "account", "password", "session"):
        out += [f"{group} required {matrix}", hooks[group]]
    return out


def unix_service(root: Path, controls: Controls = Controls(), *, python: Path | None = None,
                 extra: Sequence[str] = ()) -> list[str]:
    """Debian's common-* stacks (included), each followed by its hookrunner line.

    This is the placement ``pam/`` recommends: an auth hook after ``@include common-auth``
    runs only after a successful authentication, and sees the PAM_AUTHTOK pam_unix stored.
    """
    hooks = controls.lines(root, python=python, extra=extra)
    out = []
    for group in ("auth", "account", "password", "session"):
        out += [f"@include common-{group}", hooks[group]]
    return out


def write_passdb(path: Path, entries: Sequence[tuple[str, str, str]]) -> Path:
    """pam_matrix's database: ``user:password:service`` lines, root-only."""
    path.write_text("".join(f"{u}:{p}:{s}\n" for u, p, s in entries))
    path.chmod(0o600)
    return path


def write_wrapper_service(service_dir: Path, service: str, lines: Sequence[str]) -> Path:
    """``<service_dir>/<service>`` for ``PAM_WRAPPER_SERVICE_DIR`` (no includes there)."""
    service_dir.mkdir(mode=0o755, exist_ok=True)
    path = service_dir / service
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o644)
    return path


def wrapper_env(service_dir: Path, *, preload: bool = True,
                base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment that makes libpam read services from ``service_dir``."""
    env = dict(os.environ if base is None else base)
    env.update(PAM_WRAPPER="1", PAM_WRAPPER_SERVICE_DIR=str(service_dir))
    if preload:
        env["LD_PRELOAD"] = str(PAM_WRAPPER_LIB)
    return env


@contextlib.contextmanager
def pam_service(lines: Sequence[str], *, tag: str = "") -> Iterator[str]:
    """A real ``/etc/pam.d/hookrunner-test-<tag><id>`` for the block; always removed."""
    name = f"{SERVICE_PREFIX}{tag}{secrets.token_hex(4)}"
    path = PAM_D / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        with os.fdopen(fd, "w") as f:
            f.write("# temporary, written by hookrunner's pam/pamrig.py\n")
            f.write("\n".join(lines) + "\n")
        yield name
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


# ------------------------------------------------------------------------------- users


@dataclasses.dataclass(frozen=True)
class User:
    name: str
    password: str
    uid: int
    gid: int
    home: Path


@contextlib.contextmanager
def temp_user(*, password: str | None = None, shell: str = "/bin/sh",
              prefix: str = "hrt-") -> Iterator[User]:
    """A real user (``useradd -m``, password set by ``chpasswd`` on stdin); ``userdel -r``."""
    import pwd

    name = f"{prefix}{secrets.token_hex(4)}"
    password = password or secrets.token_urlsafe(12)
    subprocess.run(["useradd", "--create-home", "--shell", shell, name], check=True,
                   stdout=subprocess.DEVNULL)
    try:
        subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True)
        pw = pwd.getpwnam(name)
        yield User(name, password, pw.pw_uid, pw.pw_gid, Path(pw.pw_dir))
    finally:
        subprocess.run(["userdel", "--force", "--remove", name], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# ------------------------------------------------------------------------------ runners


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


def sweep_pam_wrapper_dirs(tmp: Path = Path("/tmp")) -> list[Path]:
    """Remove the ``/tmp/pam.X`` directories of pam_wrapper processes that are gone.

    libpam_wrapper.so makes one (the name is fixed, TMPDIR does not move it) in each process it
    is loaded into and removes it at exit, but not in a process that executes another program
    (the user's shell under ``su``) or is killed. A directory whose ``pid`` file names a process
    that no longer runs is stale: pam_wrapper's own rule, which it applies only when it next
    picks that name. Returns what was removed."""
    removed = []
    for directory in tmp.glob("pam.?"):
        try:
            if directory.is_symlink() or not directory.is_dir():
                continue
            pid = int((directory / "pid").read_text())
        except (OSError, ValueError):
            continue  # no pid file yet (being made), or not pam_wrapper's
        if pid > 0 and not _running(pid):
            shutil.rmtree(directory, ignore_errors=True)
            removed.append(directory)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


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


def debian_stack_with(service: str, lines: Sequence[str]) -> list[str]:
    """The stock ``/etc/pam.d/<service>`` (read, not changed) followed by ``lines``.

    Under pam_wrapper its ``include``/``@include`` lines still resolve to /etc/pam.d.
    """
    return [*(PAM_D / service).read_text().splitlines(), *lines]


# ------------------------------------------------------------------------- python-pam


@dataclasses.dataclass(frozen=True)
class PyPamResult:
    """Return codes of one python-pam transaction (PAM_SUCCESS is 0; None: not reached)."""

    authenticate: int
    reason: str
    open_session: int | None
    close_session: int | None
    end: int
    messages: tuple[str, ...]


def python_pam(service: str, user: str, password: str, *, rhost: str | None = None,
               ruser: str | None = None, tty: str | None = None,
               service_dir: Path | None = None, python: str = sys.executable,
               timeout: float = 60.0, syslog: SyslogSink | None = None) -> PyPamResult:
    """python-pam's transaction in a child process: authenticate (call_end=False, so
    authenticate + acct_mgmt + setcred), open_session, close_session, end.

    A child because libpam is loaded once per process and must be the right one: under
    pam_wrapper the child gets PAM_WRAPPER* in its environment before it starts (the
    wrapper reads them when it is loaded) and loads libpam_wrapper.so in place of libpam,
    since ctypes looks symbols up in the library it opened and so bypasses LD_PRELOAD.
    """
    request = {"service": service, "user": user, "password": password, "rhost": rhost,
               "ruser": ruser, "tty": tty, "wrapper": service_dir is not None}
    env = wrapper_env(service_dir, preload=False) if service_dir is not None else None
    out = run_pam([python, str(Path(__file__).resolve()), "_python_pam_child"],
                  input=json.dumps(request), env=env, timeout=timeout, syslog=syslog)
    if out.returncode != 0:
        raise RuntimeError(f"python-pam child failed ({out.returncode}): {out.stderr.strip()}")
    d = json.loads(out.stdout)
    return PyPamResult(d["authenticate"], d["reason"], d["open_session"], d["close_session"],
                       d["end"], tuple(d["messages"]))


def _python_pam_child() -> int:
    import importlib
    from ctypes import c_char_p

    req = json.loads(sys.stdin.read())
    pam: Any = importlib.import_module("pam")  # python-pam (untyped)
    internals: Any = importlib.import_module("pam.__internals")

    if req["wrapper"]:
        real_find = internals.find_library

        def find_library(name: str) -> str | None:
            return str(PAM_WRAPPER_LIB) if name == "pam" else real_find(name)

        internals.find_library = find_library  # before the first pam.pam()

    p = pam.pam()
    items = [(internals.PAM_RHOST, req["rhost"]), (internals.PAM_RUSER, req["ruser"]),
             (internals.PAM_TTY, req["tty"])]
    keep = []  # the C strings must outlive the calls
    real_authenticate = p.pam_authenticate

    def authenticate_with_items(handle: Any, flags: int) -> int:
        # python-pam has no setter for these: set them on the handle just before auth.
        for item, value in items:
            if value is not None:
                keep.append(c_char_p(value.encode()))
                rc = p.pam_set_item(handle, item, keep[-1])
                if rc != 0:
                    return int(rc)
        return int(real_authenticate(handle, flags))

    p.pam_authenticate = authenticate_with_items
    ok = p.authenticate(req["user"], req["password"], service=req["service"], call_end=False)
    result: dict[str, Any] = {"authenticate": p.code, "reason": str(p.reason),
                              "open_session": None, "close_session": None}
    if ok:
        result["open_session"] = p.open_session()
        result["close_session"] = p.close_session()
    result["end"] = p.end()
    result["messages"] = [str(m) for m in p.messages]
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["_python_pam_child"]:
        sys.exit(_python_pam_child())
    sys.exit(f"usage: {sys.argv[0]} _python_pam_child  (internal; import this module instead)")
