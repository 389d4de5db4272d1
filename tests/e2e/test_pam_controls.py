"""The audit's model of libpam (hookrunner.pamconf + pamflow) against the real libpam.

Random stacks of modules whose return codes are known (pam_permit: success, pam_deny:
auth_err, pam_exec running false: system_err, pam_exec with another type=: ignore), with
random controls (keywords, ``[...]`` pairs, malformed ones), a substack, continuations and
comments: the model's verdict must be what ``pamtester authenticate`` gets under pam_wrapper.
Then the one thing the audit concludes from the model, checked for real: a stack it flags
as "a hook's success alone would let the stack pass" lets a wrong password in when the hook
succeeds, and the sane stack does not.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from harness import missing, rig
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hookrunner.commands import _parser
from hookrunner.pamaudit import audit_pam_dir
from hookrunner.pamconf import Reader
from hookrunner.pamflow import outcomes

pytestmark = pytest.mark.e2e

CODES = {  # module and arguments -> the code it returns in pam_authenticate
    "pam_permit.so": 0,
    "pam_deny.so": 7,
    "pam_exec.so quiet /bin/false": 4,
    "pam_exec.so quiet type=account /bin/true": 25,
}
RETURNS = ["success", "auth_err", "system_err", "ignore", "perm_denied", "default", "new_authtok_reqd"]
ACTIONS = ["ok", "done", "bad", "die", "ignore", "reset", "1", "2", "3"]
pairs = st.lists(st.tuples(st.sampled_from(RETURNS), st.sampled_from(ACTIONS)), min_size=1, max_size=4)
controls = st.one_of(
    st.sampled_from(["required", "requisite", "optional", "sufficient", "Required", "SUFFICIENT"]),
    pairs.map(lambda ps: "[" + " ".join(f"{r}={a}" for r, a in ps) + "]"),
    pairs.map(lambda ps: "".join(f"{r}={a}" for r, a in ps)),  # no brackets, no blanks
    st.sampled_from(["[Success=ok]", "[success=0]", "[succes=ok]", "[success ok]",
                     "[ success = done\tdefault=bad ]", "[success=okdefault=bad]", "[default=1",
                     "[success=99999999999]", "[]", "[default=reset success=ok]"]),
)
gaps = st.sampled_from([" ", "\t", "  ", " \\\n  ", "\t\\\n"])  # "\\\n": a continuation
lines = st.lists(st.tuples(controls, st.sampled_from(sorted(CODES)), gaps, st.booleans()),
                 min_size=1, max_size=6)


def text(rows: list[tuple[str, str, str, bool]]) -> list[str]:
    """One string per logical line."""
    out = []
    for control, module, gap, comment in rows:
        end = " # a comment\n# a whole-line comment\n\n" if comment else "\n"
        out.append(f"auth{gap}{control}{gap}{module}{end}")
    return out


def real_verdict(service_dir: Path, service: str) -> bool:
    for _ in range(5):  # pam_wrapper's copies in /tmp/pam.X race with other processes
        out = rig.pamtester(service_dir, service, "alice", ["authenticate"])
        if "Initialization failure" not in out.stderr + out.stdout:
            return out.returncode == 0
    raise AssertionError(f"pam_start kept failing: {out.stderr}")


def rows(*pairs: tuple[str, str]) -> list[tuple[str, str, str, bool]]:
    return [(control, module, " ", False) for control, module in pairs]


PERMIT, DENY = "pam_permit.so", "pam_deny.so"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(main=lines, sub=st.none() | lines, at=st.integers(0, 6))
# a jump past the end ("bad jump in stack"): fails after a positive verdict
@example(main=rows(("required", PERMIT), ("[success=3 default=ignore]", PERMIT)), sub=None, at=0)
# done in a substack ends the substack only
@example(main=rows(("required", DENY)), sub=rows(("sufficient", PERMIT)), at=0)
# reset forgets a failure; a jump counts a substack as one module
@example(main=rows(("required", DENY), ("[success=reset]", PERMIT), ("required", PERMIT)), sub=None,
         at=0)
@example(main=rows(("[success=1 default=bad]", PERMIT), ("required", PERMIT)),
         sub=rows(("requisite", DENY), ("required", DENY)), at=1)
# a reset inside a substack returns to the state where the substack began
@example(main=rows(("required", PERMIT)), sub=rows(("required", DENY), ("[default=reset]", DENY)),
         at=1)
def test_model_agrees_with_libpam(main: list[tuple[str, str, str, bool]],
                                  sub: list[tuple[str, str, str, bool]] | None, at: int) -> None:
    if reason := missing(tools=["pamtester"], files=[rig.PAM_WRAPPER_LIB]):
        pytest.skip(reason)
    with tempfile.TemporaryDirectory() as tmp:
        service_dir = Path(tmp)
        rows = text(main)
        if sub is not None:
            (service_dir / "sub").write_text("".join(text(sub)))
            rows.insert(min(at, len(rows)), f"auth substack {service_dir / 'sub'}\n")
        body = "".join(rows)
        (service_dir / "svc").write_text(body)
        stack = Reader(service_dir, None).stack(service_dir / "svc", "auth")
        codes = {i: (CODES[" ".join([e.line.module, *e.line.args])],) for i, e in enumerate(stack)
                 if e.kind == "module"}
        predicted = outcomes(stack, codes.__getitem__)
        assert len(predicted) == 1, predicted  # known codes: one verdict
        ((passes, _same),) = predicted
        assert passes == real_verdict(service_dir, "svc"), body


def test_a_flagged_stack_lets_a_wrong_password_in(tmp_path: Path) -> None:
    """pam_matrix checks the password; the hook line runs the real dispatcher over an empty
    tree (exit 0, a success). Where the audit says the hook's success alone passes the
    stack, a wrong password gets in; in the sane stack it does not, and the audit is quiet."""
    if reason := missing(tools=["pamtester"], files=[rig.PAM_WRAPPER_LIB, rig.PAM_MATRIX]):
        pytest.skip(reason)
    root = rig.make_root(tmp_path)
    passdb = rig.write_passdb(tmp_path / "passdb", [("alice", "right", "svc")])
    matrix = f"{rig.PAM_MATRIX} passdb={passdb}"
    hook = rig.exec_line("auth", "optional", root, "onauth")
    service_dir = tmp_path / "pam.d"
    weak = [f"auth [success=1 default=ignore] {matrix}", "auth optional pam_permit.so", hook]
    sane = [f"auth [success=1 default=ignore] {matrix}", "auth requisite pam_deny.so",
            "auth required pam_permit.so", hook]
    for lines_, gets_in in ((weak, True), (sane, False)):
        rig.write_wrapper_service(service_dir, "svc", lines_)
        problems = audit_pam_dir(service_dir, parser=_parser)
        alone = [p for p in problems if "success alone would let the stack pass" in p]
        assert bool(alone) == gets_in, problems
        out = rig.pamtester(service_dir, "svc", "alice", ["authenticate"], passwords=["wrong"])
        assert (out.returncode == 0) == gets_in, out
