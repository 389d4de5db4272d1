"""Safety rules (OpenSSH safe_path grade) on pyfakefs: owners, modes, symlinks, the --root walk."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
from pyfakefs import fake_os, helpers

from hookrunner.safety import UnsafeError, Verified, check_file, open_checked, read_checked

ROOT = Path("/r")
HOOKS = ROOT / "etc/security/onauth.d"
HOOK = HOOKS / "10-x"


@pytest.fixture(autouse=True)
def tree(fs: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """/r/etc/security/onauth.d/10-x, everything root-owned, 755 (the fake / is 777 by default)."""
    # pyfakefs 6.3 applies os.open's mode argument to a file that already exists (no O_CREAT),
    # which would quietly "repair" the modes these tests set up; restore the mode afterwards.
    original = fake_os.FakeOsModule.open

    def open_keeping_mode(self: fake_os.FakeOsModule, path: Any, flags: int, mode: int | None = None,
                          *, dir_fd: int | None = None) -> int:
        try:
            before: int | None = stat.S_IMODE(self.stat(path).st_mode)
        except OSError:
            before = None
        fd = original(self, path, flags, mode, dir_fd=dir_fd)
        if before is not None and not flags & os.O_CREAT:
            self.chmod(path, before)
        return fd

    monkeypatch.setattr(fake_os.FakeOsModule, "open", open_keeping_mode)
    helpers.set_uid(0)  # fake files are root's even when the tests do not run as root
    helpers.set_gid(0)
    os.chown("/", 0, 0)  # made before set_uid
    os.chmod("/", 0o755)
    HOOKS.mkdir(parents=True)
    HOOK.write_bytes(b"#!/bin/sh\nexit 0\n")
    HOOK.chmod(0o755)


def test_clean_tree_is_safe() -> None:
    assert check_file(HOOK) is None
    assert check_file(HOOK, ROOT) is None


def test_open_checked_gives_the_real_path_and_a_descriptor_on_it() -> None:
    checked = open_checked(HOOK, ROOT)
    try:
        assert str(checked.real) == str(HOOK)
        assert os.read(checked.fd, 9) == b"#!/bin/sh"
    finally:
        os.close(checked.fd)


@pytest.mark.parametrize("mode,who", [(0o775, "group"), (0o757, "others"), (0o777, "group"),
                                      (0o620, "group"), (0o602, "others")])
def test_writable_file_is_refused(mode: int, who: str) -> None:
    HOOK.chmod(mode)
    assert check_file(HOOK, ROOT) == f"file {HOOK} is writable by {who} (mode {mode:04o})"


@pytest.mark.parametrize("directory", [HOOKS, HOOKS.parent, ROOT / "etc", ROOT])
@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o775, 0o757])
def test_writable_parent_is_refused(directory: Path, mode: int) -> None:
    directory.chmod(mode)
    reason = check_file(HOOK, ROOT)
    assert reason is not None
    assert reason.startswith(f"directory {directory} is writable by")


def test_world_writable_parent_above_root_is_refused_without_root() -> None:
    os.chmod("/", 0o1777)
    assert check_file(HOOK, ROOT) is None  # --root stops the walk at ROOT
    assert check_file(HOOK) == "directory / is writable by group (mode 1777)"


def test_root_stops_the_walk_at_root_inclusive() -> None:
    Path("/tmp").mkdir(mode=0o1777, exist_ok=True)
    os.chmod("/tmp", 0o1777)
    top = Path("/tmp/t")
    (top / "etc/security/onauth.d").mkdir(parents=True)
    hook = top / "etc/security/onauth.d/10-x"
    hook.write_bytes(b"#!/bin/sh\n")
    hook.chmod(0o755)
    assert check_file(hook, top) is None
    assert check_file(hook) is not None
    top.chmod(0o777)
    assert check_file(hook, top) == f"directory {top} is writable by group (mode 0777)"


@pytest.mark.parametrize("uid", [1, 1000, 65534])
def test_non_root_owner_of_file_is_refused(uid: int) -> None:
    os.chown(HOOK, uid, 0)
    assert check_file(HOOK, ROOT) == f"file {HOOK} is owned by uid {uid}, not root"


def test_non_root_group_alone_is_fine() -> None:
    os.chown(HOOK, 0, 1000)
    assert check_file(HOOK, ROOT) is None


@pytest.mark.parametrize("directory", [HOOKS, ROOT / "etc", ROOT])
def test_non_root_owner_of_parent_is_refused(directory: Path) -> None:
    os.chown(directory, 1000, 1000)
    assert check_file(HOOK, ROOT) == f"directory {directory} is owned by uid 1000, not root"


def test_symlink_to_safe_target_is_accepted() -> None:
    target = ROOT / "usr/lib/hooks/real"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"#!/bin/sh\n")
    target.chmod(0o755)
    (HOOKS / "20-link").symlink_to(target)
    checked = open_checked(HOOKS / "20-link", ROOT)
    os.close(checked.fd)
    assert str(checked.real) == str(target)


@pytest.mark.parametrize("problem", ["file-mode", "file-owner", "dir-mode", "dir-owner"])
def test_symlink_to_unsafe_target_is_refused(problem: str) -> None:
    target_dir = ROOT / "opt/hooks"
    target_dir.mkdir(parents=True)
    target = target_dir / "real"
    target.write_bytes(b"#!/bin/sh\n")
    target.chmod(0o755)
    if problem == "file-mode":
        target.chmod(0o777)
    elif problem == "file-owner":
        os.chown(target, 1000, 1000)
    elif problem == "dir-mode":
        target_dir.chmod(0o777)
    else:
        os.chown(target_dir, 1000, 1000)
    (HOOKS / "20-link").symlink_to(target)
    reason = check_file(HOOKS / "20-link", ROOT)
    assert reason is not None
    assert str(target if problem.startswith("file") else target_dir) in reason


def test_symlink_to_target_outside_root_checks_the_targets_directories() -> None:
    Path("/opt/hooks").mkdir(parents=True)
    target = Path("/opt/hooks/real")
    target.write_bytes(b"#!/bin/sh\n")
    target.chmod(0o755)
    (HOOKS / "20-link").symlink_to(target)
    assert check_file(HOOKS / "20-link", ROOT) is None
    os.chmod("/opt", 0o777)  # not below --root, yet on the way to the hook
    assert check_file(HOOKS / "20-link", ROOT) == "directory /opt is writable by group (mode 0777)"


@pytest.mark.parametrize("relative", [False, True])
def test_symlink_chain_through_a_writable_directory_is_refused(relative: bool) -> None:
    # 20-link -> /r/tmp/hop -> /r/etc/security/onauth.d/10-x: the final file and the link's own
    # directory are safe, but whoever can write /r/tmp can re-point "hop" between check and exec.
    tmp = ROOT / "tmp"
    tmp.mkdir(mode=0o1777)
    tmp.chmod(0o1777)
    (tmp / "hop").symlink_to("../etc/security/onauth.d/10-x" if relative else HOOK)
    (HOOKS / "20-link").symlink_to("../../../tmp/hop" if relative else tmp / "hop")
    assert check_file(HOOKS / "20-link", ROOT) == f"directory {tmp} is writable by group (mode 1777)"
    tmp.chmod(0o755)
    assert check_file(HOOKS / "20-link", ROOT) is None


def test_symlinked_directory_on_the_way_through_a_writable_directory_is_refused() -> None:
    tmp = ROOT / "tmp"
    tmp.mkdir()
    tmp.chmod(0o777)
    (tmp / "d").symlink_to(HOOKS)
    (ROOT / "etc/security/onsessionopen.d").symlink_to(tmp / "d")
    reason = check_file(ROOT / "etc/security/onsessionopen.d/10-x", ROOT)
    assert reason == f"directory {tmp} is writable by group (mode 0777)"


def test_symlink_loop_is_refused() -> None:
    (HOOKS / "20-a").symlink_to(HOOKS / "20-b")
    (HOOKS / "20-b").symlink_to(HOOKS / "20-a")
    reason = check_file(HOOKS / "20-a", ROOT)
    assert reason is not None and reason.startswith(f"cannot open {HOOKS / '20-a'}")


def test_dot_dot_after_a_symlinked_directory_is_physical() -> None:
    # Like the kernel: <link>/.. is the parent of the link's target, not of the link.
    (ROOT / "a/b").mkdir(parents=True)
    (ROOT / "a/x").write_bytes(b"#!/bin/sh\n")
    (ROOT / "a/x").chmod(0o755)
    (HOOKS / "lnk").symlink_to(ROOT / "a/b")
    checked = open_checked(HOOKS / "lnk/../x", ROOT)
    os.close(checked.fd)
    assert str(checked.real) == str(ROOT / "a/x")


def test_symlink_in_unsafe_directory_is_refused_even_with_safe_target() -> None:
    evil = ROOT / "evil"
    evil.mkdir(mode=0o777)
    evil.chmod(0o777)
    (evil / "10-x").symlink_to(HOOK)
    assert check_file(evil / "10-x", ROOT) == f"directory {evil} is writable by group (mode 0777)"


def test_symlink_chain_checks_the_final_target() -> None:
    bad = ROOT / "bad"
    bad.write_bytes(b"#!/bin/sh\n")
    bad.chmod(0o757)
    (ROOT / "middle").symlink_to(bad)
    (HOOKS / "20-link").symlink_to(ROOT / "middle")
    assert check_file(HOOKS / "20-link", ROOT) == f"file {bad} is writable by others (mode 0757)"


def test_symlinked_hook_directory_to_a_safe_directory_is_accepted() -> None:
    # /etc/security/onauth.d -> /usr/share/site-hooks: a symlink's own mode bits (0777) mean nothing.
    shared = ROOT / "usr/share/site-hooks"
    shared.mkdir(parents=True)
    hook = shared / "10-y"
    hook.write_bytes(b"#!/bin/sh\n")
    hook.chmod(0o755)
    (ROOT / "etc/security/onsessionopen.d").symlink_to(shared)
    assert check_file(ROOT / "etc/security/onsessionopen.d/10-y", ROOT) is None


def test_symlinked_hook_directory_owned_by_a_user_is_refused() -> None:
    shared = ROOT / "home/u/hooks"
    shared.mkdir(parents=True)
    hook = shared / "10-y"
    hook.write_bytes(b"#!/bin/sh\n")
    hook.chmod(0o755)
    os.chown(shared, 1000, 1000)
    (ROOT / "etc/security/onsessionopen.d").symlink_to(shared)
    reason = check_file(ROOT / "etc/security/onsessionopen.d/10-y", ROOT)
    assert reason == f"directory {shared} is owned by uid 1000, not root"


def test_dangling_symlink_is_refused() -> None:
    (HOOKS / "20-link").symlink_to(ROOT / "nowhere")
    reason = check_file(HOOKS / "20-link", ROOT)
    assert reason is not None and reason.startswith(f"cannot open {HOOKS / '20-link'}")


def test_missing_file_is_refused() -> None:
    with pytest.raises(UnsafeError, match="cannot open"):
        open_checked(HOOKS / "nope", ROOT)


def test_directory_is_refused() -> None:
    assert check_file(HOOKS, ROOT) == f"{HOOKS} is not a regular file"


def test_relative_path_is_made_absolute() -> None:
    os.chdir(HOOKS)
    assert check_file(Path("10-x"), ROOT) is None
    HOOK.chmod(0o777)
    assert check_file(Path("10-x"), ROOT) is not None


@pytest.mark.parametrize("name", ["x\nFORGED line", "x\x1b[2J", "x\u2028y"])  # non-UTF-8: test_cli
def test_reasons_are_one_printable_line_whatever_the_file_name(name: str) -> None:
    # A root-made symlink to a file whose name someone else chose.
    target = ROOT / "home" / name
    target.parent.mkdir()
    target.write_bytes(b"#!/bin/sh\n")
    os.chown(target, 1000, 1000)
    (HOOKS / "20-link").symlink_to(target)
    reason = check_file(HOOKS / "20-link", ROOT)
    assert reason is not None and reason.isprintable(), reason
    escaped = "".join(c if c.isprintable() else "".join(f"\\x{b:02x}" for b in os.fsencode(c)) for c in name)
    assert reason == f"file {ROOT}/home/{escaped} is owned by uid 1000, not root"


def _outcome(path: Path, top: Path, verified: Verified | None) -> str:
    try:
        checked = open_checked(path, top, verified)
    except UnsafeError as e:
        return f"refused: {e}"
    os.close(checked.fd)
    return f"ok: {checked.real}"


def test_a_phase_checks_each_directory_once_with_the_same_results() -> None:
    # A mixed tree: safe hooks, a symlink to a safe target elsewhere, a link through a
    # writable directory, a symlinked layer directory, "..", a writable file, a missing file.
    (ROOT / "tmp").mkdir(mode=0o777)
    os.chmod(ROOT / "tmp", 0o777)
    (ROOT / "opt/hooks").mkdir(parents=True)
    for path in (HOOKS / "20-y", ROOT / "opt/hooks/real", ROOT / "tmp/hop", HOOKS / "40-open"):
        path.write_bytes(b"#!/bin/sh\n")
        path.chmod(0o755)
    (HOOKS / "40-open").chmod(0o757)
    (HOOKS / "30-link").symlink_to(ROOT / "opt/hooks/real")
    (HOOKS / "35-hop").symlink_to(ROOT / "tmp/hop")
    (ROOT / "etc/security/layer.d").symlink_to(ROOT / "opt/hooks")
    paths = [HOOK, HOOKS / "20-y", HOOKS / "30-link", HOOKS / "35-hop", HOOKS / "40-open",
             HOOKS / "50-missing", ROOT / "etc/security/layer.d/real",
             HOOKS / "../onauth.d/10-x", ROOT / "tmp/hop", ROOT / "opt/hooks/real"]
    for top in (ROOT, Path("/")):
        alone = [_outcome(p, top, None) for p in paths]
        assert alone.count("ok: /r/etc/security/onauth.d/10-x") == 2
        assert sum(o.startswith("refused") for o in alone) == 4, alone
        for order in (paths, paths[::-1], paths[3:] + paths[:3]):
            verified = Verified(top)
            got = {p: _outcome(p, top, verified) for p in order}
            assert [got[p] for p in paths] == alone
            assert all(not d.startswith(str(ROOT / "tmp")) for d in verified.dirs)


def test_verified_directories_are_not_checked_again_within_a_phase() -> None:
    verified = Verified(ROOT)
    os.close(open_checked(HOOK, ROOT, verified).fd)
    assert str(HOOKS) in verified.dirs
    HOOKS.chmod(0o777)  # only root could do this to a verified directory mid-phase
    os.close(open_checked(HOOK, ROOT, verified).fd)  # not looked at again: checked once
    assert check_file(HOOK, ROOT) == f"directory {HOOKS} is writable by group (mode 0777)"
    assert _outcome(HOOK, ROOT, Verified(ROOT)).startswith("refused")  # the next phase sees it
    assert _outcome(HOOK, Path("/"), verified).startswith("refused")  # another top: no cache
    HOOK.chmod(0o777)
    assert _outcome(HOOK, ROOT, verified).startswith("refused: file")  # files: every time


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 70_000, 1 << 20, (1 << 20) + 1, 3 << 20])
def test_read_checked_reads_the_whole_file_up_to_the_limit(size: int) -> None:
    data = bytes(i % 251 for i in range(size))
    HOOK.write_bytes(data)
    assert read_checked(HOOK, ROOT) == data[: 1 << 20]
    assert read_checked(HOOK, ROOT, limit=1000) == data[:1000]


def test_read_checked_refuses_what_open_checked_refuses() -> None:
    HOOK.chmod(0o757)
    with pytest.raises(UnsafeError, match="writable"):
        read_checked(HOOK, ROOT)
