"""The empty-phase fast path (hookrunner/quick.py) must agree with the full path."""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path

import pytest
from hooktree import MAIN, REPO, HookTree
from hypothesis import given, settings
from hypothesis import strategies as st

from hookrunner.quick import could_be_hook, only_comments

COMMENTISH = st.lists(st.one_of(
    st.just(""), st.just("   "), st.just("\t"),
    st.text(max_size=40).map(lambda t: "#" + t),
    st.text(max_size=40).map(lambda t: "  # " + t),
    st.text(max_size=20),
), max_size=8).map("\n".join)


@settings(max_examples=5000)
@given(COMMENTISH, st.sampled_from(["\n", "\r\n"]))
def test_only_comments_is_sound(text: str, newline: str) -> None:
    raw = text.replace("\n", newline).encode("utf-8", "surrogatepass")
    if only_comments(raw):  # then tomllib must agree: a valid, empty document
        assert tomllib.loads(raw.decode("utf-8")) == {}


@settings(max_examples=2000)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=12))
def test_could_be_hook_is_run_parts_rule(name: str) -> None:
    import re

    stem = name[:-3] if name.endswith(".py") else name
    assert could_be_hook(name) == bool(re.fullmatch(r"[A-Za-z0-9_-]+", stem))


def test_debian_default_config_is_only_comments() -> None:
    raw = (REPO / "debian" / "hookrunner.toml").read_bytes()
    assert only_comments(raw)
    assert tomllib.loads(raw.decode()) == {}


@pytest.mark.parametrize("text", ["timeout = 5\n", "#ok\n[phase]\n", "# bad \x01 control\n", "#\r",
                                  "# a\rb\n", "\ufeff# bom\n"])
def test_anything_else_is_for_tomllib(text: str) -> None:
    assert not only_comments(text.encode())


def _importtime(tree: HookTree, *args: str) -> tuple[int, str]:
    import subprocess

    out = subprocess.run([sys.executable, "-X", "importtime", "-I", "-S", str(MAIN), "run",
                          "onsessionopen", "--root", str(tree.root), *args],
                         capture_output=True, text=True, env={}, timeout=60)
    return out.returncode, out.stderr


@pytest.mark.parametrize("config", [None, "debian"])
def test_empty_phase_answers_without_the_full_path(hooktree: HookTree, config: str | None) -> None:
    if config:
        hooktree.config((REPO / "debian" / "hookrunner.toml").read_text())
    hooktree.run("run", "onsessionopen")  # warms the entry-point cache
    status, imports = _importtime(hooktree)
    assert status == 0
    assert "hookrunner.quick" in imports
    for heavy in ("hookrunner.cli", "tomllib", "pathlib", "typing", " re\n"):
        assert heavy not in imports, heavy
    status, imports = _importtime(hooktree, "--ignore-empty")
    assert status == 4


def test_a_hook_or_a_real_config_takes_the_full_path(hooktree: HookTree) -> None:
    hooktree.hook("onsessionopen", "10-ok")
    hooktree.run("run", "onsessionopen")
    status, imports = _importtime(hooktree)
    assert status == 0 and "hookrunner.dispatch" in imports
    for heavy in ("hookrunner.commands", "argparse", "hookrunner.schema", "tomllib", "typing", " re\n"):
        assert heavy not in imports, heavy  # the run path of a phase with hooks
    os.unlink(hooktree.dir("onsessionopen") / "10-ok")
    hooktree.config("timeout = 5\n")
    status, imports = _importtime(hooktree)
    assert status == 0 and "tomllib" in imports
    hooktree.config("timeout = -1\n")  # a broken config is an error even for an empty phase
    status, imports = _importtime(hooktree)
    assert status == 3


def test_an_unsafe_comment_only_config_is_refused(hooktree: HookTree) -> None:
    path = hooktree.config("# nothing\n")
    Path(path).chmod(0o666)
    status, _ = _importtime(hooktree)
    assert status == 3


def test_config_parse_is_cached_by_its_exact_bytes(hooktree: HookTree) -> None:
    from hookrunner.config import CACHE

    hooktree.hook("onsessionopen", "10-slow", "#!/bin/sh\nsleep 5\n")
    hooktree.config('timeout = 0.3\nkill_grace = 0.1\n[hook."10-slow"]\noptional = true\n')
    status, imports = _importtime(hooktree)  # parses with tomllib, writes the cache
    assert status == 0 and "tomllib" in imports
    cache = hooktree.root / CACHE
    assert cache.stat().st_uid == 0 and cache.stat().st_mode & 0o077 == 0
    status, imports = _importtime(hooktree)
    assert status == 0 and "tomllib" not in imports and " re\n" not in imports
    # Other bytes, other answer: the hook is no longer optional, so its timeout fails the phase.
    hooktree.config('timeout = 0.3\nkill_grace = 0.1\n[hook."10-slow"]\noptional = false\n')
    status, imports = _importtime(hooktree)
    assert status == 1 and "tomllib" in imports
    # A cache others could write is not trusted.
    cache.chmod(0o666)
    status, imports = _importtime(hooktree)
    assert status == 1 and "tomllib" in imports


def test_a_broken_config_is_never_cached(hooktree: HookTree) -> None:
    from hookrunner.config import CACHE

    hooktree.config("timeout = -1\n")
    for _ in range(2):
        status, imports = _importtime(hooktree)
        assert status == 3 and "tomllib" in imports
    assert not (hooktree.root / CACHE).exists()
