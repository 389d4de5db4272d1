"""``make install`` / ``make uninstall`` into a DESTDIR: the profile and the printed PAM lines name
what was installed, the dispatcher runs from there, and uninstall takes everything away."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hooktree import REPO, HookTree

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="make install sets root ownership: run as root"),
    pytest.mark.skipif(shutil.which("make") is None, reason="make not installed"),
]

SHIPPED_PROFILE = REPO / "pam/pam-configs/hookrunner"
PYTHON3 = "/usr/bin/python3"


def make(*args: str) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(["make", "-s", "-C", str(REPO), *args], capture_output=True, text=True,
                       timeout=120, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    assert p.returncode == 0, p.stdout + p.stderr
    return p


def dispatcher_lines(text: str) -> list[tuple[str, str]]:
    """(interpreter, script) of every pam_exec line in ``text``."""
    return re.findall(r"pam_exec\.so .*?(/\S+python3) -I -S (/\S+/__main__\.py) run", text)


def files_in(destdir: Path) -> list[str]:
    return sorted(str(p.relative_to(destdir)) for p in destdir.rglob("*") if not p.is_dir())


def test_install_writes_a_profile_for_its_prefix_and_uninstall_takes_everything(
        tmp_path: Path, hooktree: HookTree) -> None:
    destdir, prefix = tmp_path / "dest", "/opt/hookrunner-test"
    out = make("install", f"DESTDIR={destdir}", f"PREFIX={prefix}", f"PYTHON3={PYTHON3}").stdout
    profile = destdir / "usr/share/pam-configs/hookrunner"
    shipped = dispatcher_lines(SHIPPED_PROFILE.read_text())
    lines = dispatcher_lines(profile.read_text())
    assert len(lines) == len(shipped) == 5
    printed = dispatcher_lines(out)
    assert len(printed) == 5, out
    main = f"{prefix}/lib/python3/dist-packages/hookrunner/__main__.py"
    assert set(lines) == set(printed) == {(PYTHON3, main)}
    assert (destdir / main.lstrip("/")).is_file()
    # the profile is the shipped one, only the dispatcher's path differs
    assert profile.read_text() == SHIPPED_PROFILE.read_text().replace(shipped[0][1], main)
    assert main in (destdir / prefix.lstrip("/") / "sbin/hookrunner").read_text()
    for phase in ("onauth", "onsessionclose"):
        assert (destdir / f"etc/security/{phase}.d").is_dir()
        assert (destdir / prefix.lstrip("/") / f"lib/hookrunner/{phase}.d").is_dir()

    # The installed dispatcher runs, from DESTDIR alone (-I -S: nothing else on sys.path).
    hooktree.hook("onsessionopen", "10-mark", f"#!/bin/sh\necho \"$PAM_USER\" > {hooktree.out}/mark\n")
    run = subprocess.run([PYTHON3, "-I", "-S", str(destdir / main.lstrip("/")), "simulate",
                          "onsessionopen", "--user", "alice", "--root", str(hooktree.root)],
                         capture_output=True, text=True, timeout=60, cwd="/")
    assert run.returncode == 0, run.stdout + run.stderr
    assert (hooktree.out / "mark").read_text() == "alice\n"
    assert any(f.startswith(f"{prefix.lstrip('/')}/lib/python3/dist-packages/hookrunner/__pycache__/")
               for f in files_in(destdir))  # compiled at install: the first login does not pay

    # A hook an administrator added stays, with its directory; everything else goes.
    kept = destdir / "etc/security/onauth.d/50-admin"
    kept.write_text("#!/bin/sh\n")
    make("uninstall", f"DESTDIR={destdir}", f"PREFIX={prefix}")
    assert files_in(destdir) == ["etc/security/onauth.d/50-admin"]
    assert not [p for p in destdir.rglob("*") if p.name == "hookrunner" or
                (p.name.endswith(".d") and p != kept.parent)]


def test_install_with_debians_prefix_writes_the_shipped_profile_unchanged(tmp_path: Path) -> None:
    make("install", f"DESTDIR={tmp_path}", "PREFIX=/usr")
    assert (tmp_path / "usr/share/pam-configs/hookrunner").read_bytes() == SHIPPED_PROFILE.read_bytes()
    make("uninstall", f"DESTDIR={tmp_path}", "PREFIX=/usr")
    assert files_in(tmp_path) == []


def test_uninstall_keeps_a_profile_it_did_not_write(tmp_path: Path) -> None:
    make("install", f"DESTDIR={tmp_path}")
    profile = tmp_path / "usr/share/pam-configs/hookrunner"
    profile.write_text(profile.read_text() + "# edited\n")
    p = subprocess.run(["make", "-s", "-C", str(REPO), "uninstall", f"DESTDIR={tmp_path}"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "is not the one make install wrote: kept" in p.stderr
    assert files_in(tmp_path) == ["usr/share/pam-configs/hookrunner"]
