"""The entry-point cache's key, on real files: what a package revision changes is seen.

The dispatcher's own use of the cache (an installed distribution, pip, the real ``run``) is in
test_plugin_examples.py; these build a site directory by hand, so they need neither root nor
pip.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from hookrunner import entrypoints
from hookrunner.entrypoints import _key, _still_valid

ENTRY_POINTS = "[hookrunner]\n50-audit = audit_plugin\n"


def site(tmp_path: Path) -> Path:
    d = tmp_path / "site-packages"
    info = d / "audit_plugin-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: audit-plugin\nVersion: 1.0\n")
    (d / "plain_module.py").write_text("")
    return d


def times(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_atime_ns, st.st_mtime_ns


def wait_for_the_clock(path: Path) -> None:
    """Until a new change time can differ from ``path``'s: the kernel's file clock is coarse
    (a jiffy), and the key is only as good as the time stamps it holds."""
    before = path.stat().st_ctime_ns
    deadline = time.monotonic() + 5
    while time.time_ns() <= before + 20_000_000:
        assert time.monotonic() < deadline


def test_a_cache_key_is_still_valid_while_nothing_changed(tmp_path: Path) -> None:
    d = site(tmp_path)
    key, newest = _key([str(d)])
    assert _still_valid(key, [str(d)])
    assert newest >= (d / "audit_plugin-1.0.dist-info/entry_points.txt").stat().st_ctime_ns
    assert [line.split("\t")[1] for line in key if line.startswith("\t")] == ["audit_plugin-1.0.dist-info"]
    assert not _still_valid(key, [str(d), str(tmp_path)])  # another directory searched
    assert not _still_valid(key, [])
    assert not _still_valid([entrypoints.MAGIC, "/other/python", *key[2:]], [str(d)])


@pytest.mark.parametrize("how", ["in place", "renamed over"])
def test_entry_points_txt_replaced_with_the_same_size_and_times(tmp_path: Path, how: str) -> None:
    """What dpkg does to a package's files on an upgrade (a new revision that ships a deny
    plugin): the *.dist-info directory stays, so the site directory's time does not move;
    even with the size and both settable times put back, the key sees it."""
    d = site(tmp_path)
    info = d / "audit_plugin-1.0.dist-info"
    ep = info / "entry_points.txt"
    key, _ = _key([str(d)])
    kept = {p: times(p) for p in (d, info, ep)}
    wait_for_the_clock(ep)
    replacement = ENTRY_POINTS.replace("50-audit", "05-audit")  # same size
    if how == "in place":
        with ep.open("r+") as f:
            f.write(replacement)
    else:
        new = info / "entry_points.txt.dpkg-new"
        new.write_text(replacement)
        new.rename(ep)
    for path, (atime, mtime) in kept.items():
        os.utime(path, ns=(atime, mtime))
    assert ep.stat().st_size == len(ENTRY_POINTS) and times(ep) == kept[ep] and times(d) == kept[d]
    assert not _still_valid(key, [str(d)])
    assert _key([str(d)])[0] != key


def test_entry_points_txt_added_to_an_existing_dist_info(tmp_path: Path) -> None:
    d = site(tmp_path)
    info = d / "audit_plugin-1.0.dist-info"
    ep = info / "entry_points.txt"
    ep.unlink()
    key, _ = _key([str(d)])
    assert key[-1] == "\taudit_plugin-1.0.dist-info\t-"
    kept = {p: times(p) for p in (d, info)}
    ep.write_text(ENTRY_POINTS)
    for path, (atime, mtime) in kept.items():
        os.utime(path, ns=(atime, mtime))
    assert not _still_valid(key, [str(d)])


def test_a_distribution_added_with_the_directory_time_put_back(tmp_path: Path) -> None:
    """tar restores a directory's modification time; its change time moves all the same."""
    d = site(tmp_path)
    key, _ = _key([str(d)])
    kept = times(d)
    wait_for_the_clock(d)
    (d / "deny_plugin-2.0.egg-info").mkdir()
    os.utime(d, ns=kept)
    assert not _still_valid(key, [str(d)])
    assert "\tdeny_plugin-2.0.egg-info\t-" in _key([str(d)])[0]


def test_egg_directories_and_case_as_importlib_metadata_finds_them(tmp_path: Path) -> None:
    egg = tmp_path / "Audit-1.0-py3.11.egg"
    (egg / "EGG-INFO").mkdir(parents=True)
    (egg / "EGG-INFO/entry_points.txt").write_text(ENTRY_POINTS)
    (egg / "Other.DIST-INFO").mkdir()
    (egg / "not-an-info-dir").mkdir()
    lines = [line.split("\t") for line in _key([str(egg)])[0] if line.startswith("\t")]
    assert [name for _, name, _ in lines] == ["EGG-INFO", "Other.DIST-INFO"]
    st = (egg / "EGG-INFO/entry_points.txt").stat()
    assert lines[0][2] == f"{st.st_dev} {st.st_ino} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns}"
    assert lines[1][2] == "-"
