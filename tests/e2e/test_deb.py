"""The Debian packages, for real: build, lint, install, run through PAM, enable, purge.

``make deb`` builds ``hookrunner`` and ``libpam-hookrunner`` (once per module); apt-get
installs them on this machine; pamtester drives real PAM services in ``/etc/pam.d`` that
call the *installed* dispatcher and module; ``pam-auth-update`` enables and disables the
profile; the example third-party package ``examples/hookrunner-hook-example`` is built as
1.0 and 1.1 to show that an admin's mask survives an upgrade; purge must leave nothing.

This changes the system while it runs, so it runs only as root, refuses to start on a
machine where hookrunner is already installed (it would purge it), and restores what it
touched: the ``guard`` fixture snapshots ``/etc/pam.d/common-*`` and ``/var/lib/pam``,
and at the end purges the packages, removes every file the tests made, and compares
(restoring, and failing, if anything differs).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import subprocess
import sysconfig
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from harness import missing, rig

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_SRC = REPO / "examples" / "hookrunner-hook-example"
MULTIARCH = sysconfig.get_config_var("MULTIARCH") or "x86_64-linux-gnu"

PYTHON = "/usr/bin/python3"
DISPATCHER = "/usr/lib/python3/dist-packages/hookrunner/__main__.py"
HOOKRUNNER = "/usr/sbin/hookrunner"
PAM_MODULE = Path(f"/usr/lib/{MULTIARCH}/security/pam_hookrunner.so")
PROFILE = Path("/usr/share/pam-configs/hookrunner")
CONFIG = Path("/etc/security/hookrunner.toml")
PACKAGES = ("hookrunner-hook-example", "libpam-hookrunner", "hookrunner")
PHASES = ("onauth", "onaccount", "onpasswd", "onsessionopen", "onsessionclose")

EXAMPLE = "hookrunner-hook-example"
EXAMPLE_HOOK = Path("/usr/lib/hookrunner/onsessionopen.d/50-example")
EXAMPLE_MASK = Path("/etc/security/onsessionopen.d/50-example")
EXAMPLE_FRAGMENT = Path("/usr/lib/hookrunner/hookrunner.toml.d/50-example.toml")
EXAMPLE_FRAGMENT_MASK = Path("/etc/security/hookrunner.toml.d/50-example.toml")
EXAMPLE_DATA = Path("/var/lib/hookrunner-hook-example")
EXAMPLE_USERS = EXAMPLE_DATA / "users"

# What the packages install (or their scripts create) and purge must take away again.
OWNED = (
    Path("/usr/lib/python3/dist-packages/hookrunner"),
    Path("/usr/lib/python3/dist-packages/hookrunner-0.1.0.dist-info"),
    Path(HOOKRUNNER), PROFILE, Path("/usr/share/pam-configs/hookrunner-native"), CONFIG, PAM_MODULE,
    Path("/usr/lib/hookrunner"), Path("/var/cache/hookrunner"),
    Path("/usr/share/doc/hookrunner"), Path("/usr/share/doc/libpam-hookrunner"),
    Path("/usr/share/man/man8/hookrunner.8.gz"), Path("/usr/share/man/man5/hookrunner.toml.5.gz"),
    EXAMPLE_HOOK, EXAMPLE_FRAGMENT, EXAMPLE_DATA,
    Path("/lib/systemd/system/hookrunner.socket"), Path("/lib/systemd/system/hookrunner.service"),
)
# The administrator's layer directories (dpkg removes them at purge when empty).
PHASE_DIRS = (*(Path(f"/etc/security/{p}.d") for p in PHASES), Path("/etc/security/hookrunner.toml.d"))

# Debian's tools and python3, whatever pyenv or venv is first on the caller's PATH.
ENV = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")} | {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C.UTF-8"}

TOOLS = ("dpkg-buildpackage", "dpkg", "apt-get", "lintian", "pamtester", "pam-auth-update", "make")


# ----------------------------------------------------------------------------- helpers


def run(argv: Sequence[str | Path], *, cwd: Path | None = None, timeout: float = 120.0,
        check: bool = True, tmpdir: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``argv`` with Debian's tools; ``tmpdir``: its TMPDIR (lintian leaves its mldbm-* files)."""
    env = ENV if tmpdir is None else ENV | {"TMPDIR": str(tmpdir)}
    p = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=timeout, errors="replace")
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, argv))} exited {p.returncode}\n"
                             f"--- stdout\n{p.stdout[-4000:]}\n--- stderr\n{p.stderr[-4000:]}")
    return p


def installed_version(package: str) -> str | None:
    p = run(["dpkg-query", "-W", "-f", "${Status}\t${Version}", package], check=False)
    status, _, version = p.stdout.partition("\t")
    return version if p.returncode == 0 and status.endswith(" installed") else None


def known_to_dpkg(package: str) -> bool:
    """Installed or with config files left: anything `dpkg --purge` has to take away."""
    p = run(["dpkg-query", "-W", "-f", "${Status}", package], check=False)
    return p.returncode == 0 and not p.stdout.endswith("not-installed")


def apt_install(*debs: Path) -> None:
    run(["apt-get", "install", "-y", "--no-install-recommends", *debs], timeout=300)


def hookrunner_lines() -> dict[str, list[str]]:
    """/etc/pam.d/common-* file -> its lines that mention hookrunner."""
    return {p.name: [ln for ln in p.read_text().splitlines() if "hookrunner" in ln]
            for p in sorted(rig.PAM_D.glob("common-*"))}


def enable_profile() -> None:
    out = run(["pam-auth-update", "--enable", "hookrunner"])
    if "Local modifications" in out.stdout + out.stderr:
        pytest.skip("pam-auth-update does not manage this machine's /etc/pam.d/common-* "
                    "(local modifications); cannot test the profile here")


def list_json(phase: str, *extra: str) -> list[dict[str, str]]:
    out = run([HOOKRUNNER, "list", phase, "--json", *extra])
    return list(json.loads(out.stdout))


def write_root_file(path: Path, text: str, mode: int = 0o755) -> Path:
    path.write_text(text)
    os.chown(path, 0, 0)
    path.chmod(mode)
    return path


# ---------------------------------------------------------------------- the safety net


@dataclasses.dataclass
class Guard:
    """What the module found before it started, and the files tests made (removed at end)."""

    saved: dict[Path, bytes]
    phase_dirs_before: set[Path]
    made: list[Path] = dataclasses.field(default_factory=list)

    def track(self, path: Path) -> Path:
        self.made.append(path)
        return path

    def remove_made(self) -> None:
        while self.made:
            with contextlib.suppress(FileNotFoundError):
                self.made.pop().unlink()


def snapshot() -> dict[Path, bytes]:
    files = [*rig.PAM_D.glob("common-*"), *Path("/var/lib/pam").glob("*")]
    return {p: p.read_bytes() for p in sorted(files) if p.is_file() and not p.is_symlink()}


def refusal() -> str:
    """'' when this machine can run the module; else why not."""
    if why := missing(tools=TOOLS):
        return why
    for package in PACKAGES:
        if known_to_dpkg(package):
            return f"{package} is installed on this machine; the test would purge it"
    for path in OWNED:
        if os.path.lexists(path):
            return f"{path} exists (installed by hand?); the packages would replace it and purge it"
    if any(hookrunner_lines().values()):
        return "/etc/pam.d/common-* already mention hookrunner"
    return ""


def purge_everything() -> None:
    present = [p for p in PACKAGES if known_to_dpkg(p)]
    if present:
        run(["dpkg", "--purge", *present], check=False, timeout=300)


@pytest.fixture(scope="module")
def guard() -> Iterator[Guard]:
    if reason := refusal():
        pytest.skip(reason)
    g = Guard(snapshot(), {d for d in PHASE_DIRS if d.exists()})
    try:
        yield g
    finally:
        g.remove_made()
        if any(hookrunner_lines().values()) and PROFILE.exists():
            run(["pam-auth-update", "--disable", "hookrunner"], check=False)
        purge_everything()
        for d in PHASE_DIRS:  # left by dpkg while a test's hook was in it
            if d not in g.phase_dirs_before:
                with contextlib.suppress(FileNotFoundError, OSError):
                    d.rmdir()
        now = snapshot()
        changed = sorted(p for p in g.saved if now.get(p) != g.saved[p])
        for path in changed:
            path.write_bytes(g.saved[path])
            path.chmod(0o644)
        if changed:
            raise AssertionError(f"restored after the test changed them: {changed}")


# ------------------------------------------------------------------------ the packages


@dataclasses.dataclass(frozen=True)
class Debs:
    hookrunner: Path
    libpam: Path
    changes: Path


@pytest.fixture(scope="module")
def debs(guard: Guard, tmp_path_factory: pytest.TempPathFactory) -> Debs:
    dist = tmp_path_factory.mktemp("dist")  # not the checkout's dist/: tests write nothing there
    run(["make", "-C", REPO, "deb", f"DIST={dist}"], timeout=600)

    def one(pattern: str) -> Path:
        found = sorted(dist.glob(pattern))
        assert len(found) == 1, (pattern, found)
        return found[0]

    return Debs(one("hookrunner_*_all.deb"), one("libpam-hookrunner_*.deb"),
                one("hookrunner_*.changes"))


@pytest.fixture(scope="module")
def installed(guard: Guard, debs: Debs) -> Iterator[Debs]:
    apt_install(debs.hookrunner, debs.libpam)
    try:
        yield debs
    finally:
        purge_everything()


@pytest.fixture(scope="module")
def example_debs(guard: Guard, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """hookrunner-hook-example 1.0 and 1.1, built side by side from copies of the example."""
    base = tmp_path_factory.mktemp("example")
    builds = {}
    for version in ("1.0", "1.1"):
        src = base / version / EXAMPLE
        shutil.copytree(EXAMPLE_SRC, src, symlinks=True)
        if version != "1.0":
            changelog = src / "debian" / "changelog"
            first = changelog.read_text().splitlines()[-1]  # " -- Maintainer  Date"
            changelog.write_text(f"{EXAMPLE} ({version}) unstable; urgency=medium\n\n"
                                 f"  * Test upgrade.\n\n{first}\n\n" + changelog.read_text())
        builds[version] = subprocess.Popen(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src,
                                           env=ENV, stdout=subprocess.PIPE,
                                           stderr=subprocess.STDOUT, text=True)
    out = {}
    for version, proc in builds.items():
        log, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, log[-4000:]
        out[version] = base / version / f"{EXAMPLE}_{version}_all.deb"
        assert out[version].is_file(), log[-2000:]
    return out


@pytest.fixture(autouse=True)
def _remove_made(guard: Guard) -> Iterator[None]:
    """The files a test made (hooks, masks in /etc/security) go when the test ends."""
    yield
    guard.remove_made()


@pytest.fixture
def user() -> Iterator[rig.User]:
    with rig.temp_user() as u:
        yield u


# ---------------------------------------------------------------------------- the tests


def test_lintian_reports_no_errors(debs: Debs, example_debs: dict[str, Path], tmp_path: Path) -> None:
    for target in (debs.changes, example_debs["1.0"]):
        out = run(["lintian", "--fail-on", "error", "--display-level", ">=warning", target],
                  check=False, timeout=300, tmpdir=tmp_path)
        print(f"lintian {target.name}:\n{out.stdout}")
        assert out.returncode == 0, out.stdout + out.stderr
        assert not [ln for ln in out.stdout.splitlines() if ln.startswith("E:")], out.stdout


def test_install_changes_no_login_stack_and_runs_through_pam(
        guard: Guard, installed: Debs, user: rig.User, tmp_path: Path) -> None:
    # Installing adds no line to any PAM stack, and the profile is there but off.
    assert not any(hookrunner_lines().values())
    assert {p: guard.saved[p] for p in guard.saved if p.parent == rig.PAM_D} == \
        {p: p.read_bytes() for p in guard.saved if p.parent == rig.PAM_D}
    assert "Default: no" in PROFILE.read_text()
    for phase in (*PHASES, "hookrunner.toml"):
        assert Path(f"/etc/security/{phase}.d").is_dir()
        assert Path(f"/usr/lib/hookrunner/{phase}.d").is_dir()
    # The shipped config is valid: no problem but, on a machine without syslog, that one.
    check = run([HOOKRUNNER, "check", "--pam-dir", tmp_path], check=False)
    assert not [ln for ln in check.stdout.splitlines() if "hookrunner's records are lost" not in ln]
    assert check.returncode == (1 if check.stdout else 0), check

    # `hookrunner list` over the real directories, then over a tree with recorder hooks.
    assert isinstance(list_json("onsessionopen"), list)
    root = rig.make_root(tmp_path)
    log = tmp_path / "records.jsonl"
    for phase in PHASES:
        for name in ("10-first", "20-second"):
            rig.write_hook(root, phase, name, rig.recorder_hook(log))
    listed = list_json("onsessionopen", "--root", str(root))
    assert [(e["name"], e["action"]) for e in listed] == [("10-first", "run"), ("20-second", "run")]

    exec_lines = [
        "auth     requisite pam_unix.so",
        f"auth     optional  pam_exec.so quiet {PYTHON} -I -S {DISPATCHER} run onauth --root {root}",
        "account  required  pam_unix.so",
        f"account  optional  pam_exec.so quiet {PYTHON} -I -S {DISPATCHER} run onaccount --root {root}",
        "session  required  pam_unix.so",
        # No phase: the dispatcher takes it from PAM_TYPE.
        f"session  optional  pam_exec.so quiet type=open_session {PYTHON} -I -S {DISPATCHER} run --root {root}",
        f"session  optional  pam_exec.so quiet type=close_session {PYTHON} -I -S {DISPATCHER} run"
        f" --root {root}",
    ]
    native_lines = [
        "auth     requisite pam_unix.so",
        f"auth     required  pam_hookrunner.so root={root}",
        "account  required  pam_unix.so",
        f"account  required  pam_hookrunner.so root={root}",
        "session  required  pam_unix.so",
        f"session  required  pam_hookrunner.so root={root}",
    ]
    want = [(p, h) for p in ("onauth", "onaccount", "onsessionopen", "onsessionclose")
            for h in ("10-first", "20-second")]
    for lines in (exec_lines, native_lines):
        log.unlink(missing_ok=True)
        with rig.pam_service(lines) as service:
            out = rig.pamtester(None, service, user.name, passwords=[user.password],
                                rhost="203.0.113.9", tty="/dev/pts/9")
        assert out.returncode == 0, out
        records = rig.read_records(log)
        assert [(r.phase, r.hook) for r in records] == want, lines
        for r in records:
            assert r.env["PAM_USER"] == user.name
            assert r.env["PAM_SERVICE"] == service
            assert r.env["PAM_RHOST"] == "203.0.113.9"
            assert r.env["HOOKRUNNER_ROOT"] == str(root)
            assert r.stdin == ""


def test_systemd_units_serve_a_login_through_the_installed_module(
        installed: Debs, user: rig.User, tmp_path: Path) -> None:
    """The units are installed (the socket enabled), and the service's own ExecStart, run
    under systemd-socket-activate on a socket of the test's (not /run/hookrunner: the machine
    may have a daemon there), serves a login through the installed module."""
    units = Path("/lib/systemd/system")
    socket_unit = (units / "hookrunner.socket").read_text()
    for line in ("ListenStream=/run/hookrunner/dispatch.sock", "SocketMode=0600",
                 "DirectoryMode=0755", "WantedBy=sockets.target"):
        assert line in socket_unit
    assert Path("/etc/systemd/system/sockets.target.wants/hookrunner.socket").is_symlink()
    service_unit = (units / "hookrunner.service").read_text()
    [exec_start] = [ln.split("=", 1)[1] for ln in service_unit.splitlines()
                    if ln.startswith("ExecStart=")]
    assert exec_start.split()[:4] == [PYTHON, "-I", "-S", DISPATCHER]
    if shutil.which("systemd-socket-activate") is None:
        pytest.skip("systemd-socket-activate not installed")
    root = rig.make_root(tmp_path)
    log = tmp_path / "records.jsonl"
    rig.write_hook(root, "onsessionopen", "10-rec", rig.recorder_hook(log))
    # Cannot be exec'd: a login that succeeds was served by the daemon.
    rig.write_hook(root, "onsessionopen", "20-only-in-daemon",
                   "#!/bin/sh\ntr '\\0' ' ' < /proc/$PPID/cmdline | grep -q ' serve' || exit 1\n")
    directory = Path("/run") / f"hookrunner-test-{secrets.token_hex(4)}"
    directory.mkdir(mode=0o755)
    sock = directory / "dispatch.sock"
    daemon = subprocess.Popen(["systemd-socket-activate", "-l", str(sock), *exec_start.split()],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        assert rig.wait_for(sock.exists)
        sock.chmod(0o600)
        lines = ["session required pam_permit.so",
                 f"session required pam_hookrunner.so root={root} socket={sock}"]
        with rig.pam_service(lines) as service:
            out = rig.pamtester(None, service, user.name, ("open_session",))
        assert out.returncode == 0, out
        assert [r.hook for r in rig.read_records(log)] == ["10-rec"]
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
        shutil.rmtree(directory, ignore_errors=True)


def test_pam_auth_update_enable_runs_session_hooks_and_disable_removes_them(
        guard: Guard, installed: Debs, user: rig.User, tmp_path: Path) -> None:
    log = tmp_path / "records.jsonl"
    name = f"50-hrt-{secrets.token_hex(3)}"
    for phase in ("onsessionopen", "onsessionclose"):
        hook = guard.track(Path(f"/etc/security/{phase}.d/{name}"))
        write_root_file(hook, rig.recorder_hook(log))

    enable_profile()
    try:
        lines = hookrunner_lines()
        assert len(lines["common-session"]) == 2, lines
        assert all(f"{DISPATCHER} run onsession" in ln and "\toptional\t" in ln
                   for ln in lines["common-session"]), lines
        for group in ("auth", "account", "password"):
            assert len(lines[f"common-{group}"]) == 1, lines
        assert lines["common-session-noninteractive"] == []  # interactive sessions only
        with rig.pam_service(["auth     required pam_permit.so",
                              "account  required pam_permit.so",
                              "@include common-session"]) as service:
            out = rig.pamtester(None, service, user.name, ["open_session", "close_session"],
                                tty="/dev/pts/9")
        assert out.returncode == 0, out
        ours = [r for r in rig.read_records(log) if r.hook == name]
        assert [r.phase for r in ours] == ["onsessionopen", "onsessionclose"]
        assert all(r.env["PAM_USER"] == user.name and r.env["PAM_SERVICE"] == service
                   for r in ours)
    finally:
        run(["pam-auth-update", "--disable", "hookrunner"])
    assert not any(hookrunner_lines().values())
    for path, data in guard.saved.items():
        if path.parent == rig.PAM_D:
            assert path.read_bytes() == data, f"{path} differs after --disable"


def test_example_package_hook_order_mask_upgrade_and_removal(
        guard: Guard, installed: Debs, example_debs: dict[str, Path]) -> None:
    tag = secrets.token_hex(3)
    user = f"hrt-example-{tag}"
    for number, word in (("40", "before"), ("60", "after")):
        hook = guard.track(Path(f"/etc/security/onsessionopen.d/{number}-hrt-{tag}"))
        write_root_file(hook, f"#!/bin/sh\nprintf '{word} %s\\n' \"$PAM_USER\" >> {EXAMPLE_USERS}\n")
    guard.track(EXAMPLE_MASK)

    def session() -> list[str]:
        """Run onsessionopen for `user`; the lines it added to the example's file."""
        before = EXAMPLE_USERS.read_text().splitlines() if EXAMPLE_USERS.exists() else []
        out = run([HOOKRUNNER, "simulate", "onsessionopen", "--user", user])
        after = EXAMPLE_USERS.read_text().splitlines() if EXAMPLE_USERS.exists() else []
        assert after[:len(before)] == before, out.stdout
        return after[len(before):]

    def example_entry() -> dict[str, str] | None:
        names = [e["name"] for e in list_json("onsessionopen")]
        assert names == sorted(names, key=os.fsencode)  # C-locale order, every layer merged
        return next((e for e in list_json("onsessionopen") if e["name"] == "50-example"), None)

    apt_install(example_debs["1.0"])
    assert installed_version(EXAMPLE) == "1.0"
    assert EXAMPLE_HOOK.is_file() and os.access(EXAMPLE_HOOK, os.X_OK)
    entry = example_entry()
    assert entry is not None and entry["action"] == "run", entry
    assert entry["path"] == str(EXAMPLE_HOOK)
    # Its place in the order: between the admin's 40-… and 60-…, whichever layer they are in.
    assert session() == [f"before {user}", user, f"after {user}"]

    # Its settings come from the package's config drop-in, which the admin can mask.
    assert EXAMPLE_FRAGMENT.is_file()
    shown = run([HOOKRUNNER, "config"]).stdout
    assert f"timeout = 5  # {EXAMPLE_FRAGMENT}:11" in shown, shown
    assert f'services = ["!cron"]  # {EXAMPLE_FRAGMENT}:13' in shown, shown
    cron = next(e for e in list_json("onsessionopen", "--service", "cron") if e["name"] == "50-example")
    assert cron["action"] == "skip" and "excluded by !cron" in cron["reason"], cron
    guard.track(EXAMPLE_FRAGMENT_MASK)
    EXAMPLE_FRAGMENT_MASK.symlink_to("/dev/null")
    assert "timeout = 5" not in run([HOOKRUNNER, "config"]).stdout
    unmasked = example_entry()  # the hook itself is not masked by that, now unconditional
    assert unmasked is not None and (unmasked["action"], unmasked["reason"]) == ("run", ""), unmasked
    EXAMPLE_FRAGMENT_MASK.unlink()

    # The admin masks it; the mask holds, and survives the upgrade to 1.1.
    EXAMPLE_MASK.symlink_to("/dev/null")
    entry = example_entry()
    assert entry is not None and entry["action"] == "mask", entry
    assert session() == [f"before {user}", f"after {user}"]
    apt_install(example_debs["1.1"])
    assert installed_version(EXAMPLE) == "1.1"
    assert EXAMPLE_HOOK.is_file()
    assert EXAMPLE_MASK.is_symlink() and os.readlink(EXAMPLE_MASK) == "/dev/null"
    assert session() == [f"before {user}", f"after {user}"]

    # Unmasked, the upgraded hook runs in its place again.
    EXAMPLE_MASK.unlink()
    assert session() == [f"before {user}", user, f"after {user}"]

    # Removing the package removes the hook; purging removes its data.
    run(["apt-get", "remove", "-y", EXAMPLE], timeout=300)
    assert not EXAMPLE_HOOK.exists() and not EXAMPLE_FRAGMENT.exists()
    assert example_entry() is None
    assert session() == [f"before {user}", f"after {user}"]
    run(["apt-get", "purge", "-y", EXAMPLE], timeout=300)
    assert not EXAMPLE_DATA.exists()
    assert not known_to_dpkg(EXAMPLE)


def test_purge_leaves_nothing_behind(guard: Guard, installed: Debs) -> None:
    # Runs last: with the profile enabled, purge must also take the lines out of common-*.
    run([HOOKRUNNER, "list", "onauth"])  # creates the entry-point cache purge must remove
    assert Path("/var/cache/hookrunner").is_dir()
    enable_profile()
    assert any(hookrunner_lines().values())

    run(["apt-get", "purge", "-y", "hookrunner", "libpam-hookrunner"], timeout=300)

    assert not known_to_dpkg("hookrunner") and not known_to_dpkg("libpam-hookrunner")
    assert not any(hookrunner_lines().values()), hookrunner_lines()
    left = [p for p in OWNED if os.path.lexists(p)]
    left += [d for d in PHASE_DIRS if d.exists() and d not in guard.phase_dirs_before]
    assert left == []
    assert not [p for p in Path("/usr/lib/python3/dist-packages").glob("hookrunner*")]
    changed = [p for p, data in guard.saved.items() if p.read_bytes() != data]
    assert changed == []  # common-* and pam-auth-update's own state, as before the install
