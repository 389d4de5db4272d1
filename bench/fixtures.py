"""Build the hook trees and pam_wrapper services the benchmarks run over (all below one temp dir).

Every tree is a ``--root`` for hookrunner: ``TREE/etc/security/PHASE.d``. Files and directories
are root-owned and 0755/0644, so hookrunner's safety rules accept them; run-parts is pointed at
the very same directories.
"""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path

SH_HOOK = b"#!/bin/sh\nexit 0\n"

# B3: one small piece of logic, twice. Both append "USER RHOST" to the file OUT.
PLUGIN = """\
import hookrunner


@hookrunner.hookimpl
def onsessionopen(ctx):
    with open({out!r}, "a") as f:
        f.write(f"{{ctx.user}} {{ctx.rhost}}\\n")
"""
# -IS: the cheapest way to start the same logic as a script (a plain #!/usr/bin/python3
# would also pay for site); a shebang takes one argument, hence the combined flags.
SCRIPT = """\
#!{python} -IS
import os

with open({out!r}, "a") as f:
    f.write(f"{{os.environ.get('PAM_USER')}} {{os.environ.get('PAM_RHOST')}}\\n")
"""

# Where Debian puts it for this machine's architecture (as pam/rig_services.py finds it).
PAM_MATRIX = f"/usr/lib/{sysconfig.get_config_var('MULTIARCH') or 'x86_64-linux-gnu'}/pam_wrapper/pam_matrix.so"
B4_PHASES = (("auth", "onauth"), ("account", "onaccount"), ("session", "onsessionopen"),
             ("session", "onsessionclose"))


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)  # whatever the umask


def new_tree(base: Path, name: str) -> Path:
    tree = base / name
    tree.mkdir(mode=0o755)
    os.chmod(tree, 0o755)
    return tree


def phase_dir(tree: Path, phase: str = "onsessionopen") -> Path:
    d = tree / "etc/security" / f"{phase}.d"
    d.mkdir(mode=0o755, parents=True, exist_ok=True)
    for p in (d, d.parent, d.parent.parent):
        os.chmod(p, 0o755)
    return d


def sh_hooks(directory: Path, n: int) -> None:
    for i in range(n):
        _write(directory / f"{i:05d}-hook", SH_HOOK, 0o755)


def plugin_hooks(directory: Path, n: int, out: Path) -> None:
    for i in range(n):
        _write(directory / f"{i:03d}-log.py", PLUGIN.format(out=str(out)).encode(), 0o644)


def script_hooks(directory: Path, n: int, out: Path, python: str) -> None:
    for i in range(n):
        _write(directory / f"{i:03d}-log", SCRIPT.format(out=str(out), python=python).encode(), 0o755)


def pam_services(base: Path, tree: Path, dispatcher: list[str], hooks_per_phase: int,
                 floor: list[str], warm: object = None) -> dict[str, str]:
    """Four flattened pam_wrapper services over the same hooks; {variant: service name}.

    ``pam_exec → hookrunner``: the README's ``pam_exec.so`` line per phase running the
    dispatcher; ``pam_exec → run-parts``: ``pam_exec.so /usr/bin/run-parts DIR`` per phase, in
    the same places; ``no hook``: only the authentication (pam_matrix) and, as in all four,
    pam_permit for the session; ``pam_exec → import-light floor``: the hookrunner lines with
    ``floor`` (``python -I -S bench/floor.py``, not hookrunner) taking ``PHASE TREE``.
    ``warm(group, tree, socket)`` gives the pam_hookrunner.so lines (bench/warm.py): the
    module through the warm daemon, and the module's exec path (``nosocket``).
    """
    svc_dir = base / "pam.d"
    svc_dir.mkdir(mode=0o755, exist_ok=True)
    services = {"no hook": "bench-none", "pam_exec → run-parts": "bench-runparts",
                "pam_exec → hookrunner": "bench-hookrunner", "pam_exec → import-light floor": "bench-floor"}
    if warm is not None:
        services |= {"pam_hookrunner → warm daemon": "bench-warm",
                     "pam_hookrunner → exec (nosocket)": "bench-native"}
    dirs = {}
    for _, phase in B4_PHASES:
        dirs[phase] = phase_dir(tree, phase)
        sh_hooks(dirs[phase], hooks_per_phase)
    run = " ".join([*dispatcher, "run"])
    root = f"--root {tree}"
    parts = "/usr/bin/run-parts"
    fl = " ".join(floor)
    # The README's lines (one per phase, type= for the two session phases), `required`
    # instead of `optional` so that a failing hook would fail the measured transaction.
    lines = {
        "no hook": [],
        "pam_exec → run-parts": [
            f"auth required pam_exec.so quiet {parts} {dirs['onauth']}",
            f"account required pam_exec.so quiet {parts} {dirs['onaccount']}",
            f"session required pam_exec.so quiet type=open_session {parts} {dirs['onsessionopen']}",
            f"session required pam_exec.so quiet type=close_session {parts} {dirs['onsessionclose']}",
        ],
        "pam_exec → hookrunner": [
            f"auth required pam_exec.so quiet {run} onauth {root}",
            f"account required pam_exec.so quiet {run} onaccount {root}",
            f"session required pam_exec.so quiet type=open_session {run} onsessionopen {root}",
            f"session required pam_exec.so quiet type=close_session {run} onsessionclose {root}",
        ],
        "pam_exec → import-light floor": [
            f"auth required pam_exec.so quiet {fl} onauth {tree}",
            f"account required pam_exec.so quiet {fl} onaccount {tree}",
            f"session required pam_exec.so quiet type=open_session {fl} onsessionopen {tree}",
            f"session required pam_exec.so quiet type=close_session {fl} onsessionclose {tree}",
        ],
    }
    if warm is not None:  # one session line: the module runs open and close by itself
        for variant, socket in (("pam_hookrunner → warm daemon", True),
                                ("pam_hookrunner → exec (nosocket)", False)):
            lines[variant] = [warm(group, tree, socket)  # type: ignore[operator]
                              for group in ("auth", "account", "session")]
    for variant, service in services.items():
        # pam_matrix's account check takes the first line of the user: one passdb per service.
        passdb = base / f"passdb-{service}"
        passdb.write_text(f"alice:secret:{service}\n")
        matrix = [f"auth required {PAM_MATRIX} passdb={passdb}",
                  f"account required {PAM_MATRIX} passdb={passdb}"]
        # pam_permit: at close_session, Linux-PAM replays the codes of open_session, where the
        # type=close_session line returned PAM_IGNORE; a stack of only ignored lines fails.
        permit = ["session required pam_permit.so"]
        (svc_dir / service).write_text("\n".join([*matrix, *permit, *lines[variant]]) + "\n")
    return services
