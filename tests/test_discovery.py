"""Discovery rules (layers, order, names, masks, overrides) on pyfakefs, plus file-name properties."""

from __future__ import annotations

import errno
import os
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyfakefs import helpers

from hookrunner.discovery import LAYERS, Candidate, EntryPoint, discover, hook_name, layer_dirs

ROOT = Path("/r")
# Paths are compared as strings: pyfakefs's Path class is not the one this module imported.
HOOK = b"#!/bin/sh\nexit 0\n"


@pytest.fixture
def fake(fs: object) -> object:
    helpers.set_uid(0)  # as root, whoever runs the tests (pyfakefs resets it afterwards)
    helpers.set_gid(0)
    os.chmod("/", 0o755)
    return fs


def put(name: str, content: bytes = HOOK, mode: int = 0o755, layer: str = "etc/security",
        phase: str = "onauth") -> Path:
    path = ROOT / layer / f"{phase}.d" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    path.chmod(mode)
    return path


def link(name: str, target: str, layer: str = "etc/security", phase: str = "onauth") -> Path:
    path = ROOT / layer / f"{phase}.d" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)
    return path


def by_name(found: list[Candidate]) -> dict[str, Candidate]:
    assert len({c.name for c in found}) == len(found), found
    return {c.name: c for c in found}


def runnable(found: list[Candidate]) -> list[str]:
    return [c.name for c in found if c.action == "run"]


def test_layers_are_below_root_highest_first() -> None:
    assert layer_dirs("onauth", Path("/x")) == [
        "/x/etc/security/onauth.d", "/x/run/hookrunner/onauth.d",
        "/x/usr/local/lib/hookrunner/onauth.d", "/x/usr/lib/hookrunner/onauth.d",
    ]
    assert layer_dirs("onsessionclose")[0] == "/etc/security/onsessionclose.d"


def test_missing_directories_are_not_errors(fake: object) -> None:
    assert discover("onauth", ROOT) == []


def test_order_is_c_locale_byte_order(fake: object) -> None:
    for name in ("a", "_x", "A", "9-b", "10-a"):
        put(name)
    assert runnable(discover("onauth", ROOT)) == ["10-a", "9-b", "A", "_x", "a"]


def test_order_is_merged_across_layers(fake: object) -> None:
    put("a", layer=LAYERS[0])
    put("_x", layer=LAYERS[1])
    put("A", layer=LAYERS[2])
    put("9-b", layer=LAYERS[3])
    put("10-a", layer=LAYERS[1])
    put("50-plugin.py", b"x = 1\n", mode=0o644, layer=LAYERS[3])
    assert runnable(discover("onauth", ROOT)) == ["10-a", "50-plugin", "9-b", "A", "_x", "a"]


@pytest.mark.parametrize("name", ["x.sh", "x~", ".x", "x.dpkg-old", "x.dpkg-dist", "x.rpmnew",
                                  "x.rpmsave", "x y", "x.py~", ".x.py", "x.sh.py", "#x#", "x\n"])
def test_names_outside_run_parts_rule_are_skipped(fake: object, name: str) -> None:
    put(name)
    [c] = discover("onauth", ROOT)
    assert (c.name, c.action) == (name, "skip")
    assert "^[A-Za-z0-9_-]+$" in c.reason


def test_plugin_file_needs_no_exec_bit(fake: object) -> None:
    put("50-motd.py", b"x = 1\n", mode=0o644)
    [c] = discover("onauth", ROOT)
    assert (c.name, c.kind, c.action) == ("50-motd", "python", "run")
    assert str(c.path) == "/r/etc/security/onauth.d/50-motd.py"


def test_mask_by_symlink_to_dev_null(fake: object) -> None:
    put("20-x", layer="usr/lib/hookrunner")
    link("20-x", "/dev/null")
    found = discover("onauth", ROOT)
    assert [(c.name, c.action) for c in found] == [("20-x", "mask"), ("20-x", "skip")]
    assert found[0].reason == "masked (symlink to /dev/null)"
    assert found[1].reason == f"overridden by {ROOT}/etc/security/onauth.d/20-x"
    assert runnable(found) == []


def test_mask_by_empty_file(fake: object) -> None:
    put("20-x", layer="run/hookrunner")
    put("20-x", b"", mode=0o644)
    found = discover("onauth", ROOT)
    assert [(c.name, c.action) for c in found] == [("20-x", "mask"), ("20-x", "skip")]
    assert found[0].reason == "masked (empty file)"


def test_mask_by_symlink_chain_to_dev_null(fake: object) -> None:
    put("20-x", layer="usr/lib/hookrunner")
    Path("/r/null").symlink_to("/dev/null")
    link("20-x", "/r/null")
    assert [c.action for c in discover("onauth", ROOT)] == ["mask", "skip"]


def test_mask_hides_a_plugin_file_and_an_entry_point(fake: object) -> None:
    put("50-quota.py", b"x = 1\n", mode=0o644, layer="usr/lib/hookrunner")
    link("50-quota", "/dev/null")
    eps = [EntryPoint("60-ep", "pkg.mod", "pkg")]
    link("60-ep", "/dev/null", layer="run/hookrunner")
    found = discover("onauth", ROOT, eps)
    assert runnable(found) == []
    assert {(c.name, c.kind, c.action) for c in found} == {
        ("50-quota", "exec", "mask"), ("50-quota", "python", "skip"),
        ("60-ep", "exec", "mask"), ("60-ep", "entrypoint", "skip"),
    }


@pytest.mark.parametrize("high,low", [(h, lo) for h in range(4) for lo in range(4) if h < lo])
def test_higher_layer_overrides_lower(fake: object, high: int, low: int) -> None:
    lower = put("50-x", b"#!/bin/sh\nexit 1\n", layer=LAYERS[low])
    upper = put("50-x", layer=LAYERS[high])
    found = discover("onauth", ROOT)
    assert [(str(c.path), c.action) for c in found] == [(str(upper), "run"), (str(lower), "skip")]
    assert found[1].reason == f"overridden by {upper}"


def test_all_four_layers_shadowed_ones_listed_after_the_winner(fake: object) -> None:
    paths = [put("50-x", layer=layer) for layer in LAYERS]
    found = discover("onauth", ROOT)
    assert [str(c.path) for c in found] == [str(p) for p in paths]
    assert [c.action for c in found] == ["run", "skip", "skip", "skip"]
    assert all(c.reason == f"overridden by {paths[0]}" for c in found[1:])


def test_overriding_file_that_is_not_runnable_still_wins(fake: object) -> None:
    # Like systemd: the name is taken by the higher layer, whatever it holds.
    put("50-x", layer="usr/lib/hookrunner")
    put("50-x", mode=0o644)
    found = discover("onauth", ROOT)
    assert [(c.action, c.reason) for c in found] == [
        ("skip", "not executable"), ("skip", f"overridden by {ROOT}/etc/security/onauth.d/50-x")]
    assert runnable(found) == []


def test_same_name_exec_and_plugin_in_one_directory_is_deterministic(fake: object) -> None:
    put("50-x")
    put("50-x.py", b"x = 1\n", mode=0o644)
    found = discover("onauth", ROOT)
    assert [(c.kind, c.action) for c in found] == [("exec", "run"), ("python", "skip")]


def test_entry_points_merge_by_name(fake: object) -> None:
    put("50-b")
    eps = [EntryPoint("40-a", "pkg.a", "pkg"), EntryPoint("50-b", "pkg.b", "pkg"),
           EntryPoint("bad.name", "pkg.c", "pkg")]
    found = discover("onauth", ROOT, eps)
    assert [(c.name, c.kind, c.action) for c in found] == [
        ("40-a", "entrypoint", "run"), ("50-b", "exec", "run"), ("50-b", "entrypoint", "skip"),
        ("bad.name", "entrypoint", "skip")]


def test_subdirectory_is_skipped(fake: object) -> None:
    (ROOT / "etc/security/onauth.d/10-dir").mkdir(parents=True)
    [c] = discover("onauth", ROOT)
    assert (c.action, c.reason) == ("skip", "is a directory")


def test_symlink_to_directory_is_skipped(fake: object) -> None:
    Path("/r/somedir").mkdir(parents=True)
    link("10-dir", "/r/somedir")
    [c] = discover("onauth", ROOT)
    assert (c.action, c.reason) == ("skip", "is a directory")


@pytest.mark.parametrize("mode", [0o644, 0o600, 0o400, 0o000])
def test_non_executable_is_skipped(fake: object, mode: int) -> None:
    put("10-x", mode=mode)
    [c] = discover("onauth", ROOT)
    assert (c.action, c.reason) == ("skip", "not executable")


@pytest.mark.parametrize("mode", [0o700, 0o744, 0o755, 0o711, 0o701])
def test_any_exec_bit_makes_a_hook(fake: object, mode: int) -> None:
    put("10-x", mode=mode)
    assert runnable(discover("onauth", ROOT)) == ["10-x"]


def test_dangling_symlink_is_skipped(fake: object) -> None:
    link("10-x", "/r/nowhere")
    [c] = discover("onauth", ROOT)
    assert (c.action, c.reason) == ("skip", "dangling symlink")


def test_symlink_to_executable_runs_under_its_own_name(fake: object) -> None:
    target = put("real", layer="usr/lib/hookrunner", phase="lib")
    path = link("10-x", str(target))
    [c] = discover("onauth", ROOT)
    assert (c.name, str(c.path), c.action) == ("10-x", str(path), "run")


def test_other_phases_directories_are_not_read(fake: object) -> None:
    put("10-auth", phase="onauth")
    put("10-open", phase="onsessionopen")
    assert runnable(discover("onsessionopen", ROOT)) == ["10-open"]


def test_dirs_argument_replaces_layers(fake: object) -> None:
    put("10-a", layer="x")
    assert runnable(discover("onauth", ROOT, dirs=[ROOT / "x/onauth.d"])) == ["10-a"]


# ---- properties: any bytes a Linux file name may hold -------------------------------------

RUN_PARTS = re.compile(rb"[A-Za-z0-9_-]+")
# Raw bytes, and names built from the pieces that matter (so near-misses are common).
PIECES = [b"a", b"Z", b"09", b"-", b"_", b".", b".py", b"~", b"\n", b" ", b"\xff", b"\xc3\xa9", b"\t", b"$"]
file_names = st.one_of(
    st.binary(min_size=1, max_size=40),
    st.lists(st.sampled_from(PIECES), min_size=1, max_size=6).map(b"".join),
).filter(lambda b: b"/" not in b and b"\0" not in b and b not in (b".", b"..") and len(b) <= 255)


def allowed(name: bytes) -> bool:
    stem = name[:-3] if name.endswith(b".py") else name
    return RUN_PARTS.fullmatch(stem) is not None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(names=st.lists(file_names, min_size=1, max_size=8, unique=True))
def test_any_file_names_never_crash_and_only_run_parts_names_run(names: list[bytes]) -> None:
    # A real directory: pyfakefs is not a faithful model of undecodable names.
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        for name in names:
            fd = os.open(os.fsencode(tmp) + b"/" + name, os.O_WRONLY | os.O_CREAT, 0o755)
            os.write(fd, HOOK)
            os.close(fd)
        found = discover("onauth", dirs=[directory])
        assert len(found) == len(names)
        assert sorted(os.fsencode(os.path.basename(c.path)) for c in found) == sorted(names)
        for c in found:
            raw = os.fsencode(os.path.basename(c.path))
            shadowed = c.reason.startswith("overridden by ")  # "a" and "a.py" are both hook "a"
            assert (c.action == "run") == (allowed(raw) and not shadowed), (raw, c)
            if c.action != "run":
                assert c.reason
        order = [c.sort_key for c in found if c.action == "run"]
        assert order == sorted(order)


@given(st.text(max_size=30))
def test_hook_name_accepts_only_run_parts_names(name: str) -> None:
    result = hook_name(name)
    if result is None:
        assert not allowed(os.fsencode(name))
    else:
        assert re.fullmatch(r"[A-Za-z0-9_-]+", result)
        assert name in (result, result + ".py")


@pytest.mark.parametrize("name", ["a\n", "a\n.py", "10-x\n"])
def test_trailing_newline_is_not_a_hook_name(name: str) -> None:
    assert hook_name(name) is None


def test_a_scanned_candidate_is_the_record_it_stands_for(fake: object) -> None:
    """Scanned candidates keep their layer directory once and build ``path`` on demand: the
    same path, equality, repr and ``_replace`` as a candidate given its full path."""
    put("10-a")
    put("20-b.py", mode=0o644)
    put("20-b.py", mode=0o644, layer="usr/lib/hookrunner")
    got = discover("onauth", str(ROOT))
    a, b, shadowed = got
    assert a == Candidate("10-a", f"{ROOT}/etc/security/onauth.d/10-a", "exec", "run", "")
    assert b == Candidate("20-b", f"{ROOT}/etc/security/onauth.d/20-b.py", "python", "run", "")
    assert shadowed.path == f"{ROOT}/usr/lib/hookrunner/onauth.d/20-b.py" and shadowed.action == "skip"
    assert repr(a) == ("Candidate(name='10-a', path='/r/etc/security/onauth.d/10-a', kind='exec', "
                       "action='run', reason='')")
    assert (a.file_name, b.file_name) == ("10-a", "20-b.py")
    moved = a._replace(path="/elsewhere/10-a")
    assert (moved.path, moved.file_name) == ("/elsewhere/10-a", "10-a")
    assert a.path == f"{ROOT}/etc/security/onauth.d/10-a"
    # the layer directory is one string shared by its candidates
    assert a._dir is b._dir


@pytest.mark.parametrize("code", [errno.EMFILE, errno.ENFILE, errno.ENOMEM])
def test_out_of_descriptors_or_memory_is_not_an_unreadable_layer(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, code: int) -> None:
    """Skipping the layer would run the phase without its deny hooks: raised instead (the
    dispatcher's one error path then fails the phase, exit 3)."""
    (tmp_path / "etc/security/onauth.d").mkdir(parents=True)

    def scandir(path: object) -> object:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(OSError) as raised:
        discover("onauth", tmp_path)
    assert raised.value.errno == code


def test_other_errors_still_skip_the_layer_with_the_reason(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def scandir(path: object) -> object:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "scandir", scandir)
    skipped = discover("onauth", tmp_path)
    assert {c.reason for c in skipped} == {"cannot read directory: Input/output error"}
