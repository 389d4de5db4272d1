"""A mask must pass the hook rules, or anyone who can write a layer directory could switch
off a packaged deny hook: an empty file or a symlink to /dev/null that is not root's, or that
lies in a directory others can write, masks nothing, and ``check`` reports it."""

from __future__ import annotations

import os

import pytest
from hooktree import HookTree

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown)")

NOBODY = 65534
DENY = "#!/bin/sh\necho denied >&2\nexit 1\n"
ENV = {"PAM_SERVICE": "sshd", "PAM_USER": "alice", "PAM_TYPE": "auth"}


def packaged_deny(tree: HookTree) -> None:
    tree.hook("onauth", "50-deny", DENY, layer="usr/lib/hookrunner")


def empty_mask(tree: HookTree, owner: int = 0) -> None:
    path = tree.dir("onauth") / "50-deny"
    path.write_bytes(b"")
    os.chown(path, owner, owner)


def link_mask(tree: HookTree, owner: int = 0) -> None:
    path = tree.dir("onauth") / "50-deny"
    path.symlink_to("/dev/null")
    os.lchown(path, owner, owner)


def test_root_s_masks_in_a_safe_directory_mask(hooktree: HookTree) -> None:
    packaged_deny(hooktree)
    empty_mask(hooktree)
    assert hooktree.run("run", "onauth", env=ENV).returncode == 0
    (hooktree.dir("onauth") / "50-deny").unlink()
    link_mask(hooktree)
    assert hooktree.run("run", "onauth", env=ENV).returncode == 0
    assert hooktree.run("check").returncode == 0


@pytest.mark.parametrize("make_mask", [empty_mask, link_mask], ids=["empty-file", "symlink"])
def test_a_mask_someone_else_owns_masks_nothing(hooktree: HookTree, make_mask: object) -> None:
    packaged_deny(hooktree)
    make_mask(hooktree, NOBODY)  # type: ignore[operator]
    r = hooktree.run("run", "onauth", "-v", env=ENV)
    assert r.returncode == 1, r.stderr  # the packaged deny hook ran and denied
    assert b"unsafe mask ignored" in r.stderr and f"uid {NOBODY}".encode() in r.stderr
    listed = hooktree.run("list", "onauth").stdout.decode()
    assert "unsafe mask ignored" in listed
    check = hooktree.run("check")
    assert check.returncode == 1
    assert b"onauth.d/50-deny: refused: unsafe mask ignored" in check.stdout


@pytest.mark.parametrize("make_mask", [empty_mask, link_mask], ids=["empty-file", "symlink"])
def test_a_mask_in_a_directory_others_can_write_masks_nothing(hooktree: HookTree,
                                                              make_mask: object) -> None:
    packaged_deny(hooktree)
    make_mask(hooktree)  # type: ignore[operator]
    hooktree.dir("onauth").chmod(0o777)
    r = hooktree.run("run", "onauth", "-v", env=ENV)
    assert r.returncode == 1, r.stderr
    assert b"is writable by group (mode 0777)" in r.stderr
    assert hooktree.run("check").returncode == 1
