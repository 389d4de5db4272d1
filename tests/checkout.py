"""What the tests may leave in the checkout: the guard conftest.py runs around every session.

``make test`` twice in one checkout must behave like once, so no test may write into the
source tree (CI does not set PYTHONDONTWRITEBYTECODE: importing a ``.py`` with importlib writes
``__pycache__/`` next to it, and inside ``hooks.d/`` that is an entry ``list`` then shows).

Build and tool state that ``.gitignore`` lists and ``make test`` itself creates is allowed:

* ``.venv/`` and ``hookrunner.egg-info/`` (``scripts/deps``: the editable install);
* ``.mypy_cache/``, ``.ruff_cache/`` (``make lint``), ``.pytest_cache/``, ``.hypothesis/``;
* ``pam/pam_hookrunner.so`` (``make pam``: the native-module tests build it where
  ``make install-pam`` looks for it);
* Python's bytecode next to the modules the tests import or run (``hookrunner/``, ``tests/``,
  ``tests/e2e/``, ``pam/``, ``bench/``): the interpreter's own cache, absent with
  PYTHONDONTWRITEBYTECODE.

Anything else that appears during a session (or a tracked file that changes) is reported,
and the session fails. Paths are as git prints them, relative to the top of the checkout.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ALLOWED_DIRS = (".venv/", "hookrunner.egg-info/", ".mypy_cache/", ".ruff_cache/", ".pytest_cache/",
                ".hypothesis/")
ALLOWED_FILES = ("pam/pam_hookrunner.so",)
BYTECODE_DIRS = ("hookrunner", "tests", "tests/e2e", "pam", "bench")


def status(repo: Path) -> set[str] | None:
    """``git status`` of ``repo`` as a set of ``XY path`` entries, ignored and untracked files
    one by one; None when this is not a git checkout (a tarball) or git is missing."""
    if shutil.which("git") is None:
        return None
    p = subprocess.run(["git", "--no-optional-locks", "-C", str(repo), "status", "--porcelain=v1", "-z",
                        "--ignored", "--untracked-files=all"], capture_output=True, timeout=120)
    if p.returncode != 0:
        return None
    entries, fields = set(), iter(p.stdout.split(b"\0"))
    for entry in fields:
        if not entry:
            continue
        if entry[:1] in (b"R", b"C"):  # a rename or copy: its source path follows
            next(fields, None)
        entries.add(entry.decode("utf-8", "surrogateescape"))
    return entries


def allowed(path: str) -> bool:
    if path.startswith(ALLOWED_DIRS) or path in ALLOWED_FILES:
        return True
    parent, _, name = path.rpartition("/")
    directory, _, cache = parent.rpartition("/")
    return (cache == "__pycache__" and directory in BYTECODE_DIRS and name.endswith(".pyc"))


def unexpected(before: set[str], after: set[str]) -> list[str]:
    """The entries of ``after`` that are new since ``before`` and not allowed, sorted."""
    return sorted(e for e in after - before if not allowed(e[3:]))
