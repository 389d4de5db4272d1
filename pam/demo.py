"""``make demo``: one real PAM transaction through ``pam_exec.so`` -> hookrunner.

authenticate, acct_mgmt, open_session, close_session for a made-up user from a made-up
host, driven by ``pamtester`` under pam_wrapper (libpam reads the service from a temporary
directory), over a root-owned copy of the repository's ``hooks.d/`` laid out for ``--root``.
Nothing in /etc is read for the stack or written; the temporary tree is removed at the end
(``--keep`` leaves it for a look); nothing is left running. The transaction has a /dev/log
of its own (a mount namespace, pam/rig_syslog.py): what the hooks and the dispatcher log is
shown, and this machine's syslog is neither needed nor read. Exit status: 0 when the whole
transaction succeeded, 1 when PAM refused, 2 when the demo cannot run here or did not finish
in time (said in one line).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pamrig  # pam/ is not a package: `import pam` must stay python-pam

USER = "demo-alice"
PASSWORD = "correct horse battery staple"  # noqa: S105 - pam_matrix's made-up user
RHOST = "203.0.113.9"  # TEST-NET-3, never a real host
TTY = "/dev/pts/9"
SERVICE = "hookrunner-demo"
OPS = {"onauth": "authenticate", "onaccount": "acct_mgmt",
       "onsessionopen": "open_session", "onsessionclose": "close_session"}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--hooks", type=Path, default=pamrig.REPO / "hooks.d",
                        help="hook tree to copy (PHASE.d/ dirs, optional hookrunner.toml)")
    parser.add_argument("--deny", action="store_true",
                        help=f"list {RHOST} in the deny list and make the auth line `required`:"
                             " onauth.d/10-deny-hosts then refuses the login")
    parser.add_argument("--keep", action="store_true", help="keep the temporary tree")
    parser.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                        help="give up on the transaction after this long (default 60)")
    ns = parser.parse_args(argv)
    problem = _cannot_run()
    if problem:
        print(f"demo: {problem}", file=sys.stderr)
        return 2
    base = Path(tempfile.mkdtemp(prefix="hookrunner-demo-"))
    try:
        return demo(base, ns.hooks, deny=ns.deny, timeout=ns.timeout)
    except pamrig.RigTimeout as e:  # one sentence, not a traceback
        print(f"\ndemo: {e}: a hook, the dispatcher or a PAM module hung", file=sys.stderr)
        return 2
    finally:
        if ns.keep:
            print(f"\n(kept {base})")
        else:
            shutil.rmtree(base, ignore_errors=True)


def _cannot_run() -> str | None:
    if os.geteuid() != 0:
        return ("needs root: hookrunner runs only root-owned hooks, and the demo's copy of "
                "hooks.d must be owned by root (try: sudo make demo)")
    for path in (pamrig.PAM_WRAPPER_LIB, pamrig.PAM_MATRIX):
        if not path.exists():
            return f"{path} is missing: install libpam-wrapper (scripts/deps does, as root)"
    if shutil.which("pamtester") is None:
        return "pamtester is missing: install it (scripts/deps does, as root)"
    return None


def demo(base: Path, hooks: Path, *, deny: bool = False, timeout: float = 60.0) -> int:
    root = pamrig.make_root(base)
    log_file = root / "hookrunner.log"  # below --root: log_file obeys the hook-file rules
    source = install_hooks(hooks, root, base / "recorded.jsonl", log_file)
    deny_list = root / "etc" / "security" / "hookrunner-deny-hosts"
    deny_list.write_text("# demo: read by onauth.d/10-deny-hosts\n198.51.100.0/24\n"
                         + (f"{RHOST}\n" if deny else ""))
    passdb = pamrig.write_passdb(base / "passdb", [(USER, PASSWORD, SERVICE)])
    # `stdout`: the output of show_output hooks reaches the user, as in a real login.
    # A hook that may deny needs a `required` line; `optional` is the safe default.
    controls = pamrig.Controls(auth="required" if deny else "optional",
                               auth_options=("quiet", "stdout"), options=("quiet", "stdout"))
    lines = pamrig.matrix_service(root, passdb, controls)
    service_dir = base / "pam.d"
    pamrig.write_wrapper_service(service_dir, SERVICE, lines)

    print("hookrunner demo: a real PAM transaction through pam_exec.so under pam_wrapper")
    print(f"  user {USER}, rhost {RHOST}, tty {TTY}, service {SERVICE}")
    print(f"  hooks: {source}")
    print(f"  ROOT={root} (hookrunner run --root ROOT: hooks in ROOT/etc/security/PHASE.d)")
    print(f"  PAM stack (PAM_WRAPPER_SERVICE_DIR={service_dir}):")
    for line in lines:
        print(f"    {_short(line, root)}")

    with contextlib.ExitStack() as stack:
        try:  # the transaction's own /dev/log: this machine's syslog is neither used nor read
            sink: pamrig.SyslogSink | None = stack.enter_context(pamrig.SyslogSink())
        except pamrig.SyslogUnavailable:
            sink = None  # no mount namespace here: the hooks log to this machine's syslog
        outcome = pamrig.pamtester(service_dir, SERVICE, USER, tuple(OPS.values()),
                                   passwords=[PASSWORD], rhost=RHOST, tty=TTY, ruser=USER,
                                   syslog=sink, timeout=timeout)
        datagrams = sink.messages() if sink is not None else []

    print("\n== what the login program and the user saw (pamtester) ==")
    for line in outcome.stdout.splitlines():
        print(f"  {line}")

    if sink is not None:
        events, where = _syslog_by_phase(datagrams), "syslog, on the transaction's own /dev/log"
    else:
        events, where = _log_by_phase(log_file), f"the dispatcher's log file {log_file}"
    print(f"\n== phase by phase: the hooks (hookrunner list), then what was logged ({where}) ==")
    hookrunner = pamrig.dispatcher_argv(None, None)[:-1]  # without "run"
    for phase, op in OPS.items():
        print(f"\n{phase}  (pam_{op} -> pam_exec.so -> hookrunner run)")
        for line in _listing(hookrunner, phase, root):
            print(f"    {line}")
        for line in events.pop(phase, ["(nothing logged)"]):
            print(f"  > {line}")
    for line in events.pop("", []):
        print(f"  > {line}")

    ok = outcome.returncode == 0
    print(f"\nresult: {'the transaction succeeded' if ok else 'PAM refused'} "
          f"(pamtester exit {outcome.returncode}, {outcome.seconds:.2f} s)")
    if not ok:
        for line in outcome.stderr.splitlines():
            if not line.startswith("PWRAP_"):
                print(f"  {line}", file=sys.stderr)
    return 0 if ok else 1


def _short(line: str, root: Path) -> str:
    return line.replace(str(root), "ROOT")


def _listing(hookrunner: Sequence[str], phase: str, root: Path) -> list[str]:
    """``hookrunner list PHASE --root ROOT --json``, one line per candidate."""
    out = pamrig.run([*hookrunner, "list", phase, "--root", str(root), "--json"])
    try:
        rows = json.loads(out.stdout)
    except ValueError:
        return [f"(hookrunner list failed: {out.stderr.strip()})"]
    if not rows:
        return ["(no hooks)"]
    width = max(len(r["name"]) for r in rows)
    return [f"{r['name']:<{width}}  {r['kind']:<10} {r['action']:<5} {r['reason']}".rstrip()
            for r in rows]


def install_hooks(hooks: Path, root: Path, record_log: Path, log_file: Path) -> str:
    """Copy ``hooks``'s PHASE.d/ dirs and hookrunner.toml into ``root``; say what was used.

    Without any PHASE.d in ``hooks``, a recorder hook per phase stands in for them.
    """
    copied = 0
    for phase in pamrig.PHASE_NAMES:
        src = hooks / f"{phase}.d"
        if not src.is_dir():
            continue
        directory = pamrig.phase_dir(root, phase)
        pamrig.mkdirs(directory)
        for entry in sorted(src.iterdir()):
            if entry.is_file() or entry.is_symlink():
                target = directory / entry.name
                if entry.is_symlink():
                    target.symlink_to(os.readlink(entry))
                    os.lchown(target, 0, 0)
                else:
                    shutil.copyfile(entry, target)
                    os.chown(target, 0, 0)
                    target.chmod(entry.stat().st_mode & 0o755)
                copied += 1
    config = hooks / "hookrunner.toml"
    text = config.read_text() if config.is_file() else ""
    if copied == 0:
        for phase in OPS:
            pamrig.write_hook(root, phase, "50-demo-recorder",
                              pamrig.recorder_hook(record_log, say=f"demo: {phase} hook ran"))
        text += '\n[hook."50-demo-recorder"]\nshow_output = true\n'
        source = f"{hooks} has no PHASE.d yet: a stand-in recorder hook per phase"
    else:
        source = f"{hooks} ({copied} files)"
    if "log_file" not in text:  # top-level keys go before the first table
        text = f'log_file = "{log_file}"\n' + text
    pamrig.write_config(root, text)
    return source


def _log_by_phase(log_file: Path) -> dict[str, list[str]]:
    """The log's messages grouped by the phase they name (``onauth.d/10-x ...``)."""
    out: dict[str, list[str]] = {}
    try:
        lines = log_file.read_text().splitlines()
    except FileNotFoundError:
        return out
    for line in lines:
        message = line.split("]: ", 1)[-1]
        phase = next((p for p in pamrig.PHASE_NAMES if message.startswith(p)), "")
        out.setdefault(phase, []).append(message)
    return out


def _syslog_by_phase(datagrams: Sequence[bytes]) -> dict[str, list[str]]:
    """Syslog messages grouped by phase: a hook's own messages (logger, ...) come before the
    dispatcher's record of that hook, so they go with the next record's phase."""
    out: dict[str, list[str]] = {}
    pending: list[str] = []
    for datagram in datagrams:
        text = datagram.decode("utf-8", "replace").rstrip("\n\0")
        text = re.sub(r"^<\d+>(\w{3} [ \d]\d \d\d:\d\d:\d\d )?", "", text)
        tag, _, message = text.partition(": ")
        phase = next((p for p in pamrig.PHASE_NAMES if message.startswith(p)), "")
        if tag.split("[")[0] == "hookrunner" and phase:
            out.setdefault(phase, []).extend([*pending, text])
            pending = []
        else:
            pending.append(text)
    if pending:
        out.setdefault("", []).extend(pending)
    return out


if __name__ == "__main__":
    sys.exit(main())
