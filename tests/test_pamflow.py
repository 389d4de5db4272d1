"""hookrunner.pamflow: the model of how libpam walks a stack.

Its verdicts are checked against the real libpam in tests/e2e/test_pam_controls.py; here:
hand-made stacks whose outcome pam.conf(5) states, and properties over random stacks.
"""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from hookrunner.pamconf import OK, SUCCESS, Entry, Reader
from hookrunner.pamflow import module_codes, outcomes, success_alone_passes


def stack(text: str, files: dict[str, str] | None = None) -> list[Entry]:
    with tempfile.TemporaryDirectory() as tmp:
        for name, body in {"svc": text, **(files or {})}.items():
            Path(tmp, name).write_text(body)
        return Reader(Path(tmp), None).stack(Path(tmp, "svc"), "auth")


def verdict(entries: list[Entry], codes: dict[str, int]) -> bool:
    """The stack's verdict when each module (by name) returns the code given."""
    (result,) = outcomes(entries, lambda i: (codes[entries[i].line.name],))
    assert result[0] == result[1]  # no hook: both walks are the same
    return result[0]


CODES = {"ok.so": 0, "no.so": 7, "ign.so": 25, "err.so": 4}


@pytest.mark.parametrize(("text", "passes"), [
    ("auth required ok.so\n", True),
    ("auth optional no.so\n", False),  # nothing decided: PAM_PERM_DENIED
    ("auth optional ok.so\nauth optional no.so\n", True),
    ("auth required ign.so\n", False),
    ("auth sufficient ok.so\nauth required no.so\n", True),
    ("auth required no.so\nauth sufficient ok.so\nauth [default=reset] ok.so\nauth required ok.so\n", True),
    ("auth [success=1 default=ignore] ok.so\nauth requisite no.so\nauth required ok.so\n", True),
    ("auth [success=1 default=ignore] err.so\nauth requisite no.so\nauth required ok.so\n", False),
    ("auth required ok.so\nauth [success=1 default=ignore] ok.so\n", False),  # bad jump
    ("auth [ignore=ok default=bad] ign.so\nauth required ok.so\n", False),  # status PAM_IGNORE
    ("auth required ok.so\nauth [default=done] err.so\nauth required ok.so\n", False),
    ("auth substack sub\nauth required no.so\n", False),  # done ends the substack only
    ("auth required ok.so\nauth substack sub2\n", True),  # reset to where the substack began
    ("auth [success=1] ok.so\nauth substack sub2\nauth required ok.so\n", True),  # one module
])
def test_stacks_whose_outcome_pam_conf_states(text: str, passes: bool) -> None:
    files = {"sub": "auth sufficient ok.so\n", "sub2": "auth required no.so\nauth [default=reset] no.so\n"}
    assert verdict(stack(text, files), CODES) == passes


def test_module_codes() -> None:
    [deny, permit, unix, other] = stack("auth required pam_deny.so\nauth required pam_permit.so\n"
                                        "auth required pam_unix.so\nauth required pam_x.so\n")
    assert SUCCESS not in module_codes(deny.line)
    assert 25 not in module_codes(permit.line) and 25 not in module_codes(unix.line)
    assert set(module_codes(other.line)) >= set(range(31))


CONTROLS = ["required", "requisite", "optional", "sufficient", "[success=ok default=1]",
            "[default=reset]", "[success=done default=die]", "[ignore=ignore default=bad]",
            "[success=2 default=ignore]", "[Success=ok]", "[success=ok ignore=reset default=done]"]
rows = st.lists(st.tuples(st.sampled_from(["auth", "-auth", "account"]), st.sampled_from(CONTROLS),
                          st.sampled_from(["m.so", "pam_deny.so", "pam_permit.so"])), max_size=4)
FEW = (0, 7, 25)  # success, a failure, PAM_IGNORE


@settings(max_examples=100, deadline=None)
@given(main=rows, sub=rows, at=st.integers(0, 4))
def test_the_paired_walk_is_the_brute_force_answer(main: list[tuple[str, str, str]],
                                                   sub: list[tuple[str, str, str]], at: int) -> None:
    """For every "ok" line: its success alone passes the stack iff some assignment of codes
    to the other modules passes it with the hook succeeding and fails it with the hook's
    line made inert (all "ignore"), each walked on its own."""
    lines = [" ".join(row) + "\n" for row in main]
    lines.insert(min(at, len(lines)), "auth substack sub\n")
    entries = stack("".join(lines), {"sub": "".join(" ".join(row) + "\n" for row in sub)})
    modules = [i for i, e in enumerate(entries) if e.kind == "module"]

    def walk(inert: int | None, choice: dict[int, int]) -> bool:
        walked = [e._replace(line=e.line._replace(actions=(0,) * 32)) if i == inert else e
                  for i, e in enumerate(entries)]
        (result,) = outcomes(walked, lambda i: (choice[i],))
        return result[0]

    for hook in modules:
        if entries[hook].line.actions[SUCCESS] != OK:
            continue
        others = [i for i in modules if i != hook]
        expected = any(
            walk(None, {hook: SUCCESS, **dict(zip(others, codes, strict=True))})
            and not walk(hook, {hook: SUCCESS, **dict(zip(others, codes, strict=True))})
            for codes in itertools.product(*[[c for c in FEW if c in module_codes(entries[i].line)]
                                             for i in others]))

        def few(j: int, hook: int = hook) -> tuple[int, ...]:
            return (SUCCESS,) if j == hook else tuple(c for c in FEW if c in module_codes(entries[j].line))

        event(f"alone: {expected}")
        both = outcomes(entries, few, hook)
        assert ((True, False) in both) == expected
        assert all(a or not b for a, b in both)  # the hook's success never fails the stack
        assert success_alone_passes(entries, hook) or not expected  # all codes: a superset
    assert outcomes(entries, lambda i: module_codes(entries[i].line))  # every stack ends
