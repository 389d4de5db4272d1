"""``hookrunner list --json``: valid JSON text for any file name, and the exact bytes too.

A file name (or a ``--root``) may hold bytes that are not UTF-8. Python holds them as lone
surrogates, which ``json.dumps`` writes as ``"\\udcff"``: not Unicode, and JSON tools turn it
into U+FFFD, losing the byte. So every key is valid UTF-8 text (such a byte shows as U+FFFD),
and ``name_base64``/``path_base64`` hold the exact bytes (RFC 4648 base64).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
from hooktree import run_hookrunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hookrunner.commands import list_json

KEYS = ["name", "path", "kind", "action", "reason", "name_base64", "path_base64"]
# Any bytes but NUL and "/" (what a file name can hold), and some that matter here.
FILE_NAMES = st.binary(min_size=1, max_size=30).map(lambda b: b.replace(b"\0", b"").replace(b"/", b"")) \
    .filter(lambda b: b not in (b"", b".", b"..")) | st.sampled_from(
        [b"\xff", b"10-\xff.py", b"\xed\xa0\x80", b"\xc3\x28", "é".encode(), b"a\nb", b'q"\\',
         b"\x7f", b"10-ok", b"20-ok.py", "\U0001f600".encode(), b"\xf4\x90\x80\x80"])
BULK = settings(max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck))
REAL = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))


def strings(value: Any) -> Iterator[str]:
    """Every str in a parsed JSON document, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from strings(v)


def parse_strictly(text: str | bytes) -> Any:
    """What a strict JSON consumer takes: ASCII out (so any locale reads it), no NaN, and
    Unicode strings only (a lone surrogate cannot be encoded as UTF-8)."""
    raw = text.encode("ascii") if isinstance(text, str) else text
    raw.decode("ascii")

    def no_constant(name: str) -> None:
        raise ValueError(f"not JSON: {name}")

    document = json.loads(raw, parse_constant=no_constant)
    for s in strings(document):
        s.encode("utf-8")  # UnicodeEncodeError on a lone surrogate
    return document


@BULK
@given(rows=st.lists(st.tuples(FILE_NAMES, FILE_NAMES, st.sampled_from(["exec", "python", "entrypoint"]),
                               FILE_NAMES), max_size=5))
def test_every_key_is_text_and_the_bytes_round_trip(rows: list[tuple[bytes, bytes, str, bytes]]) -> None:
    def decode(raw: bytes, kind: str) -> str:  # as discovery (a file) or the cache (an entry point) does
        return raw.decode("utf-8", "surrogateescape") if kind == "entrypoint" else os.fsdecode(raw)

    listed = [(decode(name, kind), decode(b"/r\xff/" + path, kind), kind, "skip",
               "refused: " + decode(reason, kind)) for name, path, kind, reason in rows]
    document = parse_strictly(list_json(listed))
    assert len(document) == len(rows)
    for entry, (name, path, kind, reason) in zip(document, rows, strict=True):
        assert list(entry) == KEYS
        assert base64.b64decode(entry["name_base64"], validate=True) == name
        assert base64.b64decode(entry["path_base64"], validate=True) == b"/r\xff/" + path
        assert entry["name"] == name.decode("utf-8", "replace")
        assert entry["path"] == (b"/r\xff/" + path).decode("utf-8", "replace")
        assert entry["reason"] == "refused: " + reason.decode("utf-8", "replace")
        assert (entry["kind"], entry["action"]) == (kind, "skip")


@pytest.fixture(scope="module")
def scratch() -> Iterator[bytes]:
    if os.geteuid() != 0:
        pytest.skip("hook trees must be owned by root (safety rules): run the tests as root")
    base = tempfile.mkdtemp(prefix="hookrunner-list-json-")
    yield os.fsencode(base)
    shutil.rmtree(base, ignore_errors=True)


def make_tree(scratch: bytes, names: list[bytes]) -> tuple[bytes, bytes]:
    """ROOT (its own name not UTF-8) with ``names`` in ROOT/etc/security/onauth.d: (ROOT, dir)."""
    root = os.path.join(scratch, b"root-\xff\xfe")
    shutil.rmtree(root, ignore_errors=True)
    directory = os.path.join(root, b"etc/security/onauth.d")
    os.makedirs(directory, mode=0o755)
    for name in names:
        path = os.path.join(directory, name)
        with open(path, "wb") as f:
            f.write(b"#!/bin/sh\nexit 0\n")
        os.chmod(path, 0o755)
    return root, directory


@REAL
@given(names=st.lists(FILE_NAMES, min_size=1, max_size=5, unique=True))
def test_list_json_of_any_file_names(scratch: bytes, names: list[bytes]) -> None:
    root, directory = make_tree(scratch, names)
    r = run_hookrunner(["list", "onauth", "--json", "--root", os.fsdecode(root)])
    assert r.returncode == 0, r.stderr
    rows = [row for row in parse_strictly(r.stdout) if row["kind"] != "entrypoint"]
    assert all(list(row) == KEYS for row in rows)
    paths = [base64.b64decode(row["path_base64"], validate=True) for row in rows]
    assert sorted(paths) == sorted(os.path.join(directory, n) for n in names)  # each, exactly
    for row, path in zip(rows, paths, strict=True):
        file_name = os.path.basename(path)
        name = base64.b64decode(row["name_base64"], validate=True)
        plugin = re.fullmatch(rb"[A-Za-z0-9_-]+\.py", file_name)  # a plugin file's name drops .py
        assert name == (file_name[:-3] if plugin else file_name)
        assert row["name"] == name.decode("utf-8", "replace")
        assert row["path"] == path.decode("utf-8", "replace")


def test_jq_and_base64_give_the_bytes_back(scratch: bytes) -> None:
    """The recipe in the README and hookrunner(8), with the real tools."""
    if shutil.which("jq") is None:
        pytest.skip("jq is not installed (scripts/deps installs it)")
    root, directory = make_tree(scratch, [b"10-caf\xe9", b"20-ok"])
    listed = run_hookrunner(["list", "onauth", "--json", "--root", os.fsdecode(root)])
    assert listed.returncode == 0, listed.stderr
    program = '.[] | select(.name == "10-caf\\ufffd") | .path_base64'
    b64 = subprocess.run(["jq", "-r", program], input=listed.stdout, capture_output=True,
                         check=True, timeout=30).stdout
    path = subprocess.run(["base64", "-d"], input=b64, capture_output=True, check=True,
                          timeout=30).stdout
    assert path == os.path.join(directory, b"10-caf\xe9")
    # ... where the text key alone cannot: jq reads "\udcxx" and U+FFFD alike as U+FFFD
    text = subprocess.run(["jq", "-j", '.[] | select(.name == "10-caf\\ufffd") | .path'],
                          input=listed.stdout, capture_output=True, check=True, timeout=30).stdout
    assert text == path.decode("utf-8", "replace").encode() != path
