"""The shipped Python plugins, for real: the example distribution installed into the test
venv with pip (entry point ``50-example``), and ``hooks.d/onaccount.d/40-hours.py``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from hooktree import MAIN, PYTHON, REPO, HookTree, run_hookrunner

from hookrunner.entrypoints import CACHE

EXAMPLE = REPO / "examples/hookrunner-example-plugin"
DIST = "hookrunner-example-plugin"
SESSION = {"PAM_USER": "bob", "PAM_SERVICE": "sshd", "PAM_TTY": "pts/3"}
PIP = [str(PYTHON), "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]


def site_packages() -> Path:
    out = subprocess.run([str(PYTHON), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                         capture_output=True, text=True, check=True, timeout=30).stdout
    return Path(out.strip())


def is_installed() -> bool:
    return any(site_packages().glob("hookrunner_example_plugin-*.dist-info"))


def pip_install(scratch: Path) -> None:
    # From a copy: setuptools builds in the source tree (build/, *.egg-info).
    src = scratch / "hookrunner-example-plugin"
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(EXAMPLE, src)
    result = subprocess.run([*PIP, "install", "--no-deps", "--no-build-isolation", "--no-index", str(src)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def pip_uninstall() -> None:
    result = subprocess.run([*PIP, "uninstall", "-y", DIST], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def example_dist(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The example distribution installed into the test venv; uninstalled afterwards."""
    if os.geteuid() != 0:
        pytest.skip("installed plugins must be root-owned: run the tests as root")
    if Path(PYTHON) != REPO / ".venv/bin/python":
        pytest.skip("installs into the test venv only (run scripts/deps)")
    if is_installed():
        pytest.skip(f"{DIST} is already installed in the venv: not touching it")
    pip_install(tmp_path_factory.mktemp("dist"))
    from hookrunner.safety import check_file

    problem = check_file(site_packages() / "hookrunner_example.py")
    if problem is not None:  # e.g. a checkout below /tmp: world-writable, so refused by design
        pip_uninstall()
        pytest.skip(f"installed plugins in this venv are refused, as they must be: {problem}")
    try:
        yield site_packages() / "hookrunner_example.py"
    finally:
        if is_installed():
            pip_uninstall()


def log(tree: HookTree) -> list[str]:
    path = tree.root / "log"
    return path.read_text().splitlines() if path.exists() else []


def records(tree: HookTree) -> list[str]:
    """``PHASE.d/NAME what`` of each log line, in order."""
    return [line.split("]: ", 1)[1] for line in log(tree)]


def rows(tree: HookTree, phase: str) -> list[tuple[str, str, str]]:
    result = tree.run("list", phase, "--json")
    assert result.returncode == 0, result.stderr
    return [(r["name"], r["kind"], r["action"]) for r in json.loads(result.stdout)]


def test_onsessionopen_installed_plugin_runs_in_its_place(hooktree: HookTree, example_dist: Path) -> None:
    t = hooktree
    t.config(f'log_file = "{t.root}/log"\n')
    t.hook("onsessionopen", "40-x", t.order_script("40-x"))
    t.hook("onsessionopen", "60-y", t.order_script("60-y"), layer="usr/lib/hookrunner")
    assert rows(t, "onsessionopen") == [("40-x", "exec", "run"), ("50-example", "entrypoint", "run"),
                                        ("60-y", "exec", "run")]
    result = t.run("run", "onsessionopen", env=SESSION)
    assert result.returncode == 0, result.stderr
    got = [r.split(" (")[0] for r in records(t)]
    assert got == ["onsessionopen.d/40-x exited with status 0",
                   "onsessionopen.d/50-example: session opened for bob on pts/3 from -",
                   "onsessionopen.d/50-example returned",
                   "onsessionopen.d/60-y exited with status 0"]
    assert (t.out / "order").read_text() == "40-x\n60-y\n"
    # onsessionclose: the same entry point, its other hook
    assert t.run("run", "onsessionclose", env=SESSION).returncode == 0
    assert "onsessionclose.d/50-example: session closed for bob" in records(t)[-2]
    # a phase it has no hook for: imported, nothing called, skipped as if absent (debug record)
    before = len(records(t))
    assert t.run("run", "onauth", "--ignore-empty", env=SESSION).returncode == 4
    assert len(records(t)) == before
    result = t.run("run", "onauth", "-v", env=SESSION)
    assert result.returncode == 0
    assert b"onauth.d/50-example implements no onauth hook" in result.stderr


def test_installed_plugin_is_masked_or_overridden_like_a_file(hooktree: HookTree, example_dist: Path) -> None:
    t = hooktree
    t.config(f'log_file = "{t.root}/log"\n')
    mask = t.dir("onsessionopen") / "50-example"
    mask.symlink_to("/dev/null")
    assert rows(t, "onsessionopen") == [("50-example", "exec", "mask"), ("50-example", "entrypoint", "skip")]
    assert t.run("run", "onsessionopen", env=SESSION).returncode == 0
    assert not [r for r in records(t) if "50-example" in r]
    mask.unlink()
    t.hook("onsessionopen", "50-example", t.order_script("admin-50-example"), layer="usr/local/lib/hookrunner")
    assert t.run("run", "onsessionopen", env=SESSION).returncode == 0
    assert (t.out / "order").read_text() == "admin-50-example\n"
    assert not [r for r in records(t) if "session opened" in r]


def test_installed_plugin_files_obey_the_safety_rules(hooktree: HookTree, example_dist: Path) -> None:
    t = hooktree
    t.config(f'log_file = "{t.root}/log"\n')
    mode = example_dist.stat().st_mode
    example_dist.chmod(0o664)
    try:
        result = t.run("run", "onsessionopen", env=SESSION)
    finally:
        example_dist.chmod(mode)
    assert result.returncode == 0  # refused: skipped with the reason logged, like a hook file
    assert re.search(r"onsessionopen\.d/50-example refused: file \S+/hookrunner_example\.py is "
                     r"writable by group", "\n".join(log(t))), log(t)
    assert not [r for r in records(t) if "session opened" in r]


def test_installed_plugin_with_runas_fails_in_every_phase_without_being_imported(
        hooktree: HookTree, example_dist: Path, tmp_path: Path) -> None:
    """Not imported, so which phases it implements is unknown: it fails wherever it would run."""
    t = hooktree
    t.config(f'log_file = "{t.root}/hookrunner.log"\n[hook."50-example"]\nrunas = "nobody"\n')
    t.hook("onsessionopen", "60-y", t.order_script("60-y"))
    assert t.run("run", "onsessionopen", env=SESSION).returncode == 1
    assert t.run("run", "onauth", env=SESSION).returncode == 1
    assert (t.out / "order").read_text() == "60-y\n"  # a session phase runs the others
    lines = (t.root / "hookrunner.log").read_text().splitlines()
    failed = [line.split("]: ", 1)[1].split(" (")[0] for line in lines if "50-example" in line]
    reason = "not run: a Python plugin cannot honour runas = nobody"
    assert failed == [f"onsessionopen.d/50-example {reason}", f"onauth.d/50-example {reason}"]
    assert all("outcome=error" in line for line in lines if "50-example" in line)
    r = run_hookrunner(["run", "onauth", "--root", t.root], env=SESSION,
                       python_args=("-X", "importtime", "-I", "-S", str(MAIN)))
    assert r.returncode == 1 and b"| hookrunner.dispatch" in r.stderr
    assert b"hookrunner_example" not in r.stderr and b"| pluggy" not in r.stderr
    (tmp_path / "pam.d").mkdir()
    r = t.run("check", "--pam-dir", tmp_path / "pam.d")
    assert r.returncode == 1
    reported = r.stdout.decode().splitlines()
    assert len(reported) == 5 and all(f"50-example: fails: {reason}" in line for line in reported)


def test_install_and_uninstall_invalidate_the_entry_point_cache(
        hooktree: HookTree, example_dist: Path, tmp_path: Path) -> None:
    t = hooktree
    t.hook("onsessionopen", "40-x", t.order_script("40-x"))
    cache = t.root / CACHE
    with_example = [("40-x", "exec", "run"), ("50-example", "entrypoint", "run")]

    def warm(expected: list[tuple[str, str, str]]) -> None:
        """List until the cache is written (not while site-packages changed < 50 ms ago)."""
        deadline = time.monotonic() + 10
        while True:
            assert rows(t, "onsessionopen") == expected
            if cache.exists() and ("\n50-example\t" in cache.read_text()) == (len(expected) == 2):
                return
            assert time.monotonic() < deadline, "the entry-point cache is never written"

    warm(with_example)
    assert cache.stat().st_uid == 0 and cache.stat().st_mode & 0o022 == 0
    pip_uninstall()
    try:
        warm(with_example[:1])  # the warm cache that listed it is not used any more
    finally:
        pip_install(tmp_path)  # as the fixture left it
    warm(with_example)

    # The cache is used (a name written into it shows up) but only while safe: one that
    # others can write is ignored and rebuilt.
    cache.write_text(cache.read_text() + "55-planted\thookrunner_example\tx\n")
    assert rows(t, "onsessionopen") == [*with_example, ("55-planted", "entrypoint", "run")]
    cache.chmod(0o666)
    assert rows(t, "onsessionopen") == with_example


def test_entry_points_txt_replaced_in_place_is_seen_by_the_next_run(
        hooktree: HookTree, example_dist: Path) -> None:
    """A package revision rewrites entry_points.txt inside a *.dist-info that stays: no
    directory time moves. Here the same size, and the size and times put back: only the
    change time (which nothing can set) differs, and the next run runs the new plugin."""
    t = hooktree
    t.config(f'log_file = "{t.root}/hookrunner.log"\n')
    t.hook("onsessionopen", "40-x", t.order_script("40-x"))
    cache = t.root / CACHE
    deadline = time.monotonic() + 10
    while not (cache.exists() and "\n50-example\t" in cache.read_text()):
        assert rows(t, "onsessionopen") == [("40-x", "exec", "run"), ("50-example", "entrypoint", "run")]
        assert time.monotonic() < deadline, "the entry-point cache is never written"
    [info] = site_packages().glob("hookrunner_example_plugin-*.dist-info")
    ep = info / "entry_points.txt"
    original = ep.read_bytes()
    revised = original.replace(b"50-example", b"05-example")  # the same size
    assert revised != original and len(revised) == len(original)
    kept = {p: (p.stat().st_atime_ns, p.stat().st_mtime_ns) for p in (ep, info, info.parent)}
    while time.time_ns() < ep.stat().st_ctime_ns + 20_000_000:  # a change time of its own
        pass
    try:
        with ep.open("r+b") as f:  # in place: the same inode
            f.write(revised)
        for path, ns in kept.items():
            os.utime(path, ns=ns)
        assert (ep.stat().st_size, ep.stat().st_mtime_ns) == (len(original), kept[ep][1])
        assert rows(t, "onsessionopen") == [("05-example", "entrypoint", "run"), ("40-x", "exec", "run")]
        result = t.run("run", "onsessionopen", env=SESSION)
        assert result.returncode == 0, result.stderr
        got = [line.split("]: ", 1)[1].split(" (")[0]
               for line in (t.root / "hookrunner.log").read_text().splitlines()]
        assert got == ["onsessionopen.d/05-example: session opened for bob on pts/3 from -",
                       "onsessionopen.d/05-example returned",
                       "onsessionopen.d/40-x exited with status 0"]
    finally:
        with ep.open("r+b") as f:
            f.write(original)


# -- hooks.d/onaccount.d/40-hours.py ------------------------------------------------------

HOURS = REPO / "hooks.d/onaccount.d/40-hours.py"


def load_hours() -> ModuleType:
    """The plugin's module, compiled from its source as the dispatcher does: importlib's loader
    would write ``__pycache__/`` into hooks.d/ (a non-hook entry there) unless bytecode is off."""
    sys.path.insert(0, str(REPO))
    module = ModuleType("hookrunner_hours")
    module.__file__ = str(HOURS)
    exec(compile(HOURS.read_bytes(), str(HOURS), "exec", dont_inherit=True), module.__dict__)
    return module


@pytest.fixture(scope="module")
def hours() -> ModuleType:
    """The plugin's module, for its pure functions (the hook itself runs in the dispatcher)."""
    return load_hours()


@pytest.mark.parametrize("line,weekday,minute,allowed", [
    ("g * 08:00-18:00", 0, 8 * 60, True),
    ("g * 08:00-18:00", 0, 18 * 60, False),  # the end is excluded
    ("g * 08:00-18:00", 6, 7 * 60 + 59, False),
    ("g Mon-Fri 08:00-18:00", 5, 12 * 60, False),
    ("g Mon-Fri 08:00-18:00", 4, 12 * 60, True),
    ("g Fri-Mon 00:00-24:00", 6, 0, True),  # a range that wraps the week
    ("g Fri-Mon 00:00-24:00", 2, 0, False),
    ("g sat,SUN 10:00-14:00", 6, 13 * 60 + 59, True),
    ("g Fri 22:00-06:00", 4, 23 * 60, True),  # past midnight: Friday evening...
    ("g Fri 22:00-06:00", 5, 5 * 60 + 59, True),  # ...and early Saturday
    ("g Fri 22:00-06:00", 5, 22 * 60, False),  # not Saturday evening
    ("g Fri 22:00-06:00", 4, 5 * 60, False),  # nor early Friday
    ("g * 00:00-00:00", 3, 12 * 60, True),  # the end not after the start: all day round
])
def test_hours_rules(hours: ModuleType, line: str, weekday: int, minute: int, allowed: bool) -> None:
    assert hours.allows(hours.parse_line(line), weekday, minute) is allowed


@pytest.mark.parametrize("line", ["g * 8-18", "g Mon-Fry 08:00-18:00", "g * 08:00-24:30",
                                  "g * 25:00-26:00", "g *", "g * 08:00-18:00 extra"])
def test_hours_malformed_lines(hours: ModuleType, line: str) -> None:
    with pytest.raises(ValueError):
        hours.parse_line(line)


def local_now() -> tuple[int, int]:
    """(weekday, minute) as the dispatcher sees it: the same interpreter, no TZ."""
    out = subprocess.run([str(PYTHON), "-I", "-S", "-c",
                          "import time; t = time.localtime(); print(t.tm_wday, t.tm_hour * 60 + t.tm_min)"],
                         capture_output=True, text=True, check=True, env={}, timeout=30).stdout
    weekday, minute = out.split()
    return int(weekday), int(minute)


def hhmm(minute: int) -> str:
    minute %= 24 * 60
    return f"{minute // 60:02d}:{minute % 60:02d}"


@pytest.fixture
def hours_tree(hooktree: HookTree) -> HookTree:
    t = hooktree
    t.config(f'log_file = "{t.root}/log"\n')
    t.hook("onaccount", "40-hours.py", HOURS.read_bytes(), 0o644)
    t.hook("onaccount", "90-after", t.order_script("90-after"))
    return t


def simulate(tree: HookTree, user: str) -> subprocess.CompletedProcess[bytes]:
    return tree.run("simulate", "onaccount", "--user", user, "--service", "sshd")


def test_onaccount_hours_refuses_a_member_outside_the_hours(hours_tree: HookTree) -> None:
    t = hours_tree
    _, now = local_now()
    # root (primary group root) may log in only in a window an hour from now; nobody is not in it
    (t.root / "etc/security/hookrunner-hours.conf").write_text(
        f"# GROUP DAYS HOURS\nroot  *  {hhmm(now + 60)}-{hhmm(now + 120)}\n")
    result = simulate(t, "root")
    assert result.returncode == 1, result.stdout
    assert any(re.search(r"onaccount\.d/40-hours denied: login refused at this time \(allowed: root \* "
                         r"\d\d:\d\d-\d\d:\d\d\) .*user=root .*outcome=deny", line) for line in log(t)), log(t)
    assert not (t.out / "order").exists()  # account stops at the first failure
    assert simulate(t, "nobody").returncode == 0
    assert simulate(t, "no-such-user-here").returncode == 0


def test_onaccount_hours_lets_a_member_in_during_the_hours(hours_tree: HookTree) -> None:
    t = hours_tree
    _, now = local_now()
    (t.root / "etc/security/hookrunner-hours.conf").write_text(
        f"root * {hhmm(now + 60)}-{hhmm(now + 120)}\nroot * {hhmm(now - 60)}-{hhmm(now + 60)}\n")
    result = simulate(t, "root")
    assert result.returncode == 0, (result.stdout, log(t))
    assert (t.out / "order").read_text() == "90-after\n"


def test_onaccount_hours_malformed_line_allows_nothing(hours_tree: HookTree) -> None:
    t = hours_tree
    (t.root / "etc/security/hookrunner-hours.conf").write_text("# comment\n\nroot * 8-18\n")
    assert simulate(t, "root").returncode == 1
    assert any(re.search(r"onaccount\.d/40-hours: \S+/etc/security/hookrunner-hours\.conf:3: bad hours "
                         r"'8-18'", line) for line in log(t)), log(t)
    assert simulate(t, "nobody").returncode == 0


def test_onaccount_hours_without_a_config_restricts_nobody(hours_tree: HookTree) -> None:
    t = hours_tree
    assert simulate(t, "root").returncode == 0
    assert (t.out / "order").read_text() == "90-after\n"
