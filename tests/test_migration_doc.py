"""docs/migration-from-pam-script.md's claims about hookrunner, run for real.

pam_script's side is measured (PAM-FACTS.md, "pam_script 1.1.9, checked with the real
module"); what the guide tells a migrating administrator to write must work with hookrunner.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from hooktree import HookTree

GUIDE = Path(__file__).resolve().parent.parent / "docs/migration-from-pam-script.md"
SESSION = {"onsessionopen": "open_session", "onsessionclose": "close_session"}


def guide_script() -> str:
    """The guide's shell example that tells the session phases apart."""
    blocks = re.findall(r"```sh\n(.*?)```", GUIDE.read_text(), re.S)
    (block,) = [b for b in blocks if "HOOKRUNNER_PHASE" in b]
    return "\n".join(line.removeprefix("  ") for line in block.splitlines()) + "\n"


def test_the_guides_session_test_tells_open_from_close(hooktree: HookTree) -> None:
    said = hooktree.out / "said"
    body = guide_script().replace("logger -p authpriv.info -t legacy --", f"echo >> {said}")
    assert body != guide_script()  # the example still logs the way this test rewrites
    body += (f'[ "$PAM_TYPE" = session ] && echo "pam_script-era test matched" >> {said}\n'
             f'case "$PAM_TYPE" in open_session|close_session) echo "either: $PAM_TYPE" >> {said};; esac\n')
    for phase, pam_type in SESSION.items():
        hooktree.hook(phase, "50-legacy", body)
        r = hooktree.run("run", phase, env={"PAM_USER": "alice", "PAM_TYPE": pam_type})
        assert r.returncode == 0, r.stderr
    assert said.read_text().splitlines() == [
        "open for alice", "either: open_session", "close for alice", "either: close_session"]


@pytest.mark.parametrize(("mode", "runs"), [(0o755, True), (0o700, True), (0o754, True),
                                            (0o775, False), (0o757, False)])
def test_the_modes_the_guide_names(hooktree: HookTree, mode: int, runs: bool) -> None:
    """0700 and 0754 run (pam_script 1.1.9 refuses 0754), 0775 is refused (pam_script runs it),
    whatever the file's group."""
    hook = hooktree.hook("onsessionopen", "50-legacy", hooktree.order_script("50-legacy"), mode=mode)
    os.chown(hook, 0, 65534)  # group nogroup: pam_script wants gid 0, hookrunner does not care
    r = hooktree.run("run", "onsessionopen", env={"PAM_USER": "alice"})
    assert r.returncode == 0, r.stderr
    assert hooktree.order() == (["50-legacy"] if runs else [])
    check = hooktree.run("check")
    assert (check.returncode == 1) == (not runs), check.stdout
