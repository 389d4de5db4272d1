"""The rig's PAM services: ``pam_exec.so`` lines that call the dispatcher, flattened stacks
for pam_wrapper (``pam_matrix.so`` as the password database), real ones written to
``/etc/pam.d/hookrunner-test-<id>`` for the life of a ``with`` block, and the ``/tmp/pam.X``
directories pam_wrapper leaves behind. Part of pamrig (pamrig.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import shutil
import sysconfig
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Final

from rig_tree import DISPATCHER, default_python

_MULTIARCH: Final = sysconfig.get_config_var("MULTIARCH") or "x86_64-linux-gnu"
LIBDIR: Final = Path("/usr/lib") / _MULTIARCH
PAM_WRAPPER_LIB: Final = LIBDIR / "libpam_wrapper.so"
PAM_MATRIX: Final = LIBDIR / "pam_wrapper" / "pam_matrix.so"
PAM_D: Final = Path("/etc/pam.d")
SERVICE_PREFIX: Final = "hookrunner-test-"


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


def debian_stack_with(service: str, lines: Sequence[str]) -> list[str]:
    """The stock ``/etc/pam.d/<service>`` (read, not changed) followed by ``lines``.

    Under pam_wrapper its ``include``/``@include`` lines still resolve to /etc/pam.d.
    """
    return [*(PAM_D / service).read_text().splitlines(), *lines]


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
