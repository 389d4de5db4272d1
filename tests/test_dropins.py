"""Config drop-ins: hookrunner.toml.d/*.toml in four layers, merged like hooks, then hookrunner.toml.

Real files below a root-owned --root, the real dispatcher as a process where behaviour is
what counts (a vendor's timeout, an admin's mask), ``dropins.load`` for the merge rules.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import pytest
from hooktree import MAIN, HookTree
from hypothesis import given, settings
from hypothesis import strategies as st

from hookrunner.config import CACHE, ConfigError
from hookrunner.dropins import fragment_name, load

LAYERS = ("etc/security", "run/hookrunner", "usr/local/lib/hookrunner", "usr/lib/hookrunner")
ADMIN, RUNTIME, LOCAL, VENDOR = LAYERS


def fragment(root: Path, layer: str, name: str, text: str) -> Path:
    d = root / layer / "hookrunner.toml.d"
    d.mkdir(mode=0o755, parents=True, exist_ok=True)
    path = d / name
    path.write_text(text)
    path.chmod(0o644)
    return path


def mask(root: Path, layer: str, name: str) -> Path:
    d = root / layer / "hookrunner.toml.d"
    d.mkdir(mode=0o755, parents=True, exist_ok=True)
    (d / name).symlink_to("/dev/null")
    return d / name


def records(tree: HookTree) -> str:
    log = tree.root / "log"
    return log.read_text() if log.exists() else ""


# ---- through the real dispatcher ----------------------------------------------------------

def test_a_vendor_fragment_timeout_applies_and_the_admin_masks_it(hooktree: HookTree) -> None:
    hooktree.hook("onsessionopen", "50-slow", "#!/bin/sh\nsleep 2\n")
    hooktree.config(f'log_file = "{hooktree.root}/log"\nkill_grace = 0.1\n')
    fragment(hooktree.root, VENDOR, "50-slow.toml", '[hook."50-slow"]\ntimeout = 0.3\n')
    proc = hooktree.run("run", "onsessionopen")
    assert proc.returncode == 1, proc.stderr
    assert "onsessionopen.d/50-slow timed out after 0.3 s" in records(hooktree)

    mask(hooktree.root, ADMIN, "50-slow.toml")  # the global 10 s timeout again
    proc = hooktree.run("run", "onsessionopen")
    assert proc.returncode == 0, proc.stderr
    assert records(hooktree).count("onsessionopen.d/50-slow exited with status 0") == 1


def test_an_admin_fragment_of_the_same_name_replaces_the_vendor_one(hooktree: HookTree) -> None:
    hooktree.hook("onsessionopen", "50-x", "#!/bin/sh\nexit 3\n")
    fragment(hooktree.root, VENDOR, "50-x.toml", '[hook."50-x"]\noptional = false\n')
    assert hooktree.run("run", "onsessionopen").returncode == 1
    fragment(hooktree.root, LOCAL, "50-x.toml", '[hook."50-x"]\noptional = true\n')
    assert hooktree.run("run", "onsessionopen").returncode == 0
    # An empty file masks, too: back to the defaults (not optional).
    fragment(hooktree.root, ADMIN, "50-x.toml", "")
    assert hooktree.run("run", "onsessionopen").returncode == 1


def test_an_error_names_the_fragment_and_its_line(hooktree: HookTree) -> None:
    hooktree.hook("onsessionopen", "10-ok")
    path = fragment(hooktree.root, VENDOR, "50-pkg.toml", '# pkg\n[hook."10-ok"]\ntimeout = "2"\n')
    proc = hooktree.run("run", "onsessionopen")
    assert proc.returncode == 3
    assert proc.stderr.decode().strip() == (
        f"hookrunner: {path}:3: hook.10-ok.timeout: expected a number of seconds in (0, 86400], got '2'")
    path.write_text("timeout = = 1\n")
    proc = hooktree.run("run", "onsessionopen")
    assert proc.returncode == 3 and proc.stderr.decode().startswith(f"hookrunner: {path}:1: ")


def test_a_fragment_others_can_write_is_refused(hooktree: HookTree) -> None:
    hooktree.hook("onsessionopen", "10-ok")
    path = fragment(hooktree.root, RUNTIME, "10-x.toml", "timeout = 5\n")
    path.chmod(0o664)
    proc = hooktree.run("run", "onsessionopen")
    assert proc.returncode == 3
    assert f"{path}: refused: file {path} is writable by group" in proc.stderr.decode()
    path.chmod(0o644)
    path.parent.chmod(0o757)
    proc = hooktree.run("run", "onsessionopen")
    assert proc.returncode == 3
    assert f"directory {path.parent} is writable by others" in proc.stderr.decode()


def _importtime(tree: HookTree, phase: str = "onsessionopen") -> tuple[int, str]:
    out = subprocess.run([sys.executable, "-X", "importtime", "-I", "-S", str(MAIN), "run", phase,
                          "--root", str(tree.root)], capture_output=True, text=True, env={}, timeout=60)
    return out.returncode, out.stderr


def test_the_parse_cache_covers_every_file_of_the_set(hooktree: HookTree) -> None:
    hooktree.hook("onsessionopen", "10-slow", "#!/bin/sh\nsleep 5\n")
    hooktree.config("kill_grace = 0.1\n")
    vendor = fragment(hooktree.root, VENDOR, "50-v.toml", '[hook."10-slow"]\ntimeout = 0.3\noptional = true\n')
    status, imports = _importtime(hooktree)
    assert status == 0 and "tomllib" in imports
    assert (hooktree.root / CACHE).stat().st_mode & 0o077 == 0
    status, imports = _importtime(hooktree)  # cached: no TOML parser, no re
    assert status == 0 and "tomllib" not in imports and " re\n" not in imports
    assert "hookrunner.tomlmerge" not in imports
    # A change in a fragment is seen:
    vendor.write_text('[hook."10-slow"]\ntimeout = 0.3\noptional = false\n')
    status, imports = _importtime(hooktree)
    assert status == 1 and "tomllib" in imports
    # a new fragment that sorts later is seen:
    fragment(hooktree.root, LOCAL, "60-l.toml", '[hook."10-slow"]\noptional = true\n')
    assert _importtime(hooktree)[0] == 0
    # a mask of it is seen:
    mask(hooktree.root, ADMIN, "60-l.toml")
    assert _importtime(hooktree)[0] == 1
    # and the same bytes under another name (a different order of application) too:
    os.unlink(hooktree.root / ADMIN / "hookrunner.toml.d/60-l.toml")
    os.rename(hooktree.root / LOCAL / "hookrunner.toml.d/60-l.toml",
              hooktree.root / LOCAL / "hookrunner.toml.d/00-l.toml")
    assert _importtime(hooktree)[0] == 1  # 50-v's optional = false now comes after it


def test_comment_only_fragments_keep_the_empty_phase_fast(hooktree: HookTree) -> None:
    fragment(hooktree.root, VENDOR, "50-v.toml", "# nothing set here\n")
    mask(hooktree.root, ADMIN, "60-masked.toml")
    fragment(hooktree.root, VENDOR, "README", "not a fragment\n")
    hooktree.run("run", "onsessionopen")  # warms the entry-point cache
    status, imports = _importtime(hooktree)
    assert status == 0
    for heavy in ("hookrunner.cli", "hookrunner.dispatch", "hookrunner.dropins", "tomllib"):
        assert heavy not in imports, heavy
    fragment(hooktree.root, VENDOR, "50-v.toml", "timeout = -1\n")  # now it must be validated
    status, imports = _importtime(hooktree)
    assert status == 3 and "hookrunner.cli" in imports


# ---- the merge rules ------------------------------------------------------------------------

def test_key_by_key_merge_and_precedence_across_all_layers(hooktree: HookTree) -> None:
    root = hooktree.root
    fragment(root, VENDOR, "10-a.toml", """
timeout = 1
pass_env = ["LANG", "TZ"]
[hook.h]
timeout = 1
optional = true
args = ["a", "b"]
[phase.onauth]
timeout = 7
""")
    fragment(root, VENDOR, "20-b.toml", "timeout = 99\n")
    fragment(root, LOCAL, "20-b.toml", "timeout = 2\n[hook.h]\nargs = [\"c\"]\n")  # replaces vendor's
    fragment(root, RUNTIME, "30-c.toml", "[hook.h]\ntimeout = 3\n[hook.other]\noptional = true\n")
    fragment(root, ADMIN, "05-admin.toml", "kill_grace = 0.5\ntimeout = 50\n")  # applied first
    hooktree.config("phase_timeout = 20\n[hook.h]\nrunas = \"nobody\"\n")
    config = load(str(root))
    assert config.path == str(root / "etc/security/hookrunner.toml")
    assert config.timeout == 2  # 20-b (local) over 10-a over 05-admin: name order, not layer order
    assert config.kill_grace == 0.5 and config.phase_timeout == 20
    assert config.pass_env == ("LANG", "TZ")
    h = config.hook("h")
    assert (h.timeout, h.optional, h.runas, h.args) == (3.0, True, "nobody", ("c",))  # arrays replaced
    assert config.hook("other").optional
    assert config.phase("onauth").timeout == 7


def test_only_name_dot_toml_is_read() -> None:
    assert fragment_name("50-x.toml") == "50-x"
    for name in ("50-x.toml.dpkg-old", ".50-x.toml", "50 x.toml", "x.conf", ".toml", "x.toml~",
                 "a.b.toml"):
        assert fragment_name(name) is None, name


def test_drop_ins_apply_without_a_main_file(hooktree: HookTree) -> None:
    fragment(hooktree.root, VENDOR, "10-a.toml", "timeout = 4\n")
    config = load(str(hooktree.root))
    assert config.timeout == 4 and config.path is None


def test_hookrunner_config_prints_each_value_with_its_file_and_line(hooktree: HookTree) -> None:
    vendor = fragment(hooktree.root, VENDOR, "50-v.toml", '# v\ntimeout = 2\n[hook."50-x"]\ntimeout = 1\n')
    admin = fragment(hooktree.root, ADMIN, "60-a.toml", '[hook."50-x"]\noptional = true\n')
    masked = fragment(hooktree.root, VENDOR, "70-m.toml", "timeout = 9\n")
    mask(hooktree.root, ADMIN, "70-m.toml")
    main = hooktree.config('pass_env = ["LANG"]\n')
    proc = hooktree.run("config")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode()
    assert f"#   {vendor}\n#   {admin}\n#   {main}\n" in out
    assert f"#   not applied: {masked}: masked" in out
    assert f"timeout = 2  # {vendor}:2\n" in out
    assert f'pass_env = ["LANG"]  # {main}:1\n' in out
    assert f"[hook.50-x]\ntimeout = 1  # {vendor}:4\noptional = true  # {admin}:2\n" in out
    assert tomllib.loads(out) == {"timeout": 2, "pass_env": ["LANG"],
                                  "hook": {"50-x": {"timeout": 1, "optional": True}}}
    admin.write_text("[hook.x]\noptional = 1\n")
    proc = hooktree.run("config")
    assert proc.returncode == 3 and f"{admin}:2: hook.x.optional" in proc.stderr.decode()


def test_check_reports_forbidden_pass_env_in_a_fragment(hooktree: HookTree) -> None:
    path = fragment(hooktree.root, VENDOR, "50-v.toml", '\npass_env = ["LD_PRELOAD"]\n')
    proc = hooktree.run("check", "--pam-dir", hooktree.out)
    assert proc.returncode == 1
    assert f"{path}:2: pass_env: LD_PRELOAD is never passed to hooks" in proc.stdout.decode()


def test_a_directory_that_cannot_be_read_is_a_config_error(hooktree: HookTree) -> None:
    (hooktree.root / VENDOR).mkdir(parents=True)
    (hooktree.root / VENDOR / "hookrunner.toml.d").write_text("a file, not a directory\n")
    with pytest.raises(ConfigError, match=r"hookrunner\.toml\.d: cannot read directory"):
        load(str(hooktree.root))


# ---- property: whatever the names and layers, the documented order --------------------------

NAMES = st.sampled_from(["10-a.toml", "20-b.toml", "9-c.toml", "A.toml", "_x.toml", "a.toml", "x.conf",
                         ".h.toml", "b.toml.dpkg-old", "z~.toml", "50-x.toml"])
ENTRY = st.tuples(st.sampled_from(LAYERS), NAMES, st.sampled_from(["value", "mask", "empty"]))


@settings(max_examples=150)
@given(st.lists(ENTRY, max_size=12, unique_by=lambda e: (e[0], e[1])))
def test_the_winner_is_the_last_effective_fragment_in_name_order(entries: list[tuple[str, str, str]]) -> None:
    if os.geteuid() != 0:
        pytest.skip("fragments must be owned by root")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.chmod(root, 0o755)
        for number, (layer, name, what) in enumerate(entries, 1):
            if what == "mask":
                mask(root, layer, name)
            else:
                fragment(root, layer, name, f"timeout = {number}\n" if what == "value" else "")
        # The oracle: per name the highest layer's entry; read ones in byte order; last wins.
        effective: dict[str, tuple[int, str]] = {}
        for number, (layer, name, what) in enumerate(entries, 1):
            if fragment_name(name) is None:
                continue
            if name not in effective or LAYERS.index(layer) < effective[name][0]:
                effective[name] = (LAYERS.index(layer), what if what != "value" else str(number))
        values = [v for _, (_, v) in sorted(effective.items(), key=lambda kv: kv[0].encode())
                  if v not in ("mask", "empty")]
        assert load(str(root)).timeout == (float(values[-1]) if values else 10.0)


def test_a_mask_others_could_have_made_is_refused(hooktree: HookTree) -> None:
    # As for hook masks: a mask must pass the rules, or anyone who can write a layer
    # directory could switch a package's settings off. Here the fast path (no hook) agrees.
    fragment(hooktree.root, VENDOR, "50-v.toml", "timeout = 5\n")
    path = fragment(hooktree.root, RUNTIME, "50-v.toml", "")
    os.chown(path, 65534, 65534)
    for phase_has_hook in (False, True):
        if phase_has_hook:
            hooktree.hook("onsessionopen", "10-ok")
        proc = hooktree.run("run", "onsessionopen")
        assert proc.returncode == 3, proc.stderr
        assert f"{path}: refused: unsafe mask: file {path} is owned by uid 65534" in proc.stderr.decode()
    os.chown(path, 0, 0)
    assert hooktree.run("run", "onsessionopen").returncode == 0
    assert load(str(hooktree.root)).timeout == 10  # masked
