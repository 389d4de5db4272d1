"""hookrunner.pamaudit: PAM stack audit, on real files in tmp_path (and the real /etc/pam.d)."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hookrunner.commands import _parser
from hookrunner.pamaudit import audit_pam_dir as _audit_pam_dir
from hookrunner.pamconf import TYPES, Reader

REPO = Path(__file__).resolve().parent.parent


def audit_pam_dir(pam_dir: Path, *, root: Path | None = None) -> list[str]:
    """The audit as ``hookrunner check`` runs it (with hookrunner's own argument parser)."""
    return _audit_pam_dir(pam_dir, root=root, parser=_parser)
SCRIPT = "/usr/lib/python3/dist-packages/hookrunner/__main__.py"
DISPATCH = f"/usr/bin/python3 -I -S {SCRIPT} run"
HOOK = f"pam_exec.so quiet {DISPATCH}"
READENV = (
    "pam_env.so user_readenv=1 in a stack that runs hookrunner (a user's ~/.pam_environment "
    "can put LD_PRELOAD into a root hook's environment)"
)
ENV_LINE = "session required pam_env.so user_readenv=1 envfile=/etc/default/locale"
# Debian 12's /etc/pam.d/common-* as pam-auth-update writes them (the primary block).
DEBIAN = {
    "common-auth": "auth [success=1 default=ignore] pam_unix.so nullok\n"
                   "auth requisite pam_deny.so\nauth required pam_permit.so\n",
    "common-account": "account [success=1 new_authtok_reqd=done default=ignore] pam_unix.so\n"
                      "account requisite pam_deny.so\naccount required pam_permit.so\n",
    "common-password": "password [success=1 default=ignore] pam_unix.so obscure yescrypt\n"
                       "password requisite pam_deny.so\npassword required pam_permit.so\n",
    "common-session": "session [default=1] pam_permit.so\nsession requisite pam_deny.so\n"
                      "session required pam_permit.so\nsession required pam_unix.so\n",
}
INCLUDES = "".join(f"@include {name}\n" for name in DEBIAN)  # 4 lines


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A fake / with a root-owned /usr/bin/python3 and the dispatcher script."""
    if os.geteuid() != 0:
        pytest.skip("needs root: the audit requires root-owned dispatcher files")
    top = tmp_path / "root"
    for rel in ("usr/bin/python3", SCRIPT.lstrip("/"), "usr/sbin/hookrunner"):
        (top / rel).parent.mkdir(parents=True, exist_ok=True)
        (top / rel).write_text("")
    for path in [top, *top.rglob("*")]:
        path.chmod(0o755)
    return top


def pam(tmp_path: Path, files: dict[str, str]) -> Path:
    """A PAM directory holding ``files`` (name -> text)."""
    pam_dir = tmp_path / "pam.d"
    pam_dir.mkdir(exist_ok=True)
    for name, text in files.items():
        (pam_dir / name).write_text(text)
    return pam_dir


def audit(tmp_path: Path, root: Path | None, files: dict[str, str]) -> list[str]:
    return audit_pam_dir(pam(tmp_path, files), root=root)


def at(tmp_path: Path, name: str, line: int) -> str:
    return f"{tmp_path / 'pam.d' / name}:{line}"


# --- safe stacks ------------------------------------------------------------------------


def test_safe_stack_has_no_problem(tmp_path: Path, root: Path) -> None:
    svc = (
        "@include common-auth\n"
        f"auth optional {HOOK} onauth\n"
        f"auth [success=ok default=ignore] {HOOK} onauth\n"
        f"auth required {HOOK} onauth\n"
        f"auth requisite {HOOK} onauth\n"
        f"auth [success=ok new_authtok_reqd=ok ignore=ignore default=die] {HOOK} onauth\n"
        "@include common-account\n"
        f"account optional {HOOK} onaccount\n"
        f"account [default=bad success=ok] {HOOK} onaccount\n"
        f"session optional pam_exec.so quiet type=open_session {DISPATCH} onsessionopen\n"
        f"session required pam_exec.so quiet type=close_session {DISPATCH} onsessionclose\n"
        "session required pam_env.so readenv=1\n"
        "session required pam_env.so user_readenv=0\n"
        "session required pam_env.so [user_readenv=0]\n"
        "session required pam_env.so [user_readenv=1 envfile=/etc/default/locale] user_readenv=0\n"
        "session required pam_env.so [envfile=/etc/x user_readenv=1]\n"  # one odd envfile=
    )
    assert audit(tmp_path, root, {"svc": svc, **DEBIAN}) == []


def test_user_readenv_without_hookrunner_is_not_flagged(tmp_path: Path) -> None:
    svc = f"{ENV_LINE}\nsession optional pam_exec.so /usr/bin/logger hello\n"
    assert audit(tmp_path, None, {"svc": svc}) == []


def real_pam_d(tmp_path: Path) -> Path:
    """A copy of this machine's /etc/pam.d without other test runs' temporary services."""
    if not Path("/etc/pam.d/sshd").is_file():
        pytest.skip("no /etc/pam.d/sshd on this machine (openssh-server not installed)")
    pam_dir = tmp_path / "pam.d"
    shutil.copytree("/etc/pam.d", pam_dir, ignore=shutil.ignore_patterns("hookrunner-test-*"))
    return pam_dir


def test_real_etc_pam_d_has_no_problem(tmp_path: Path) -> None:
    assert audit_pam_dir(real_pam_d(tmp_path)) == []


def test_missing_pam_dir_is_one_problem(tmp_path: Path) -> None:
    assert audit_pam_dir(tmp_path / "nope") == [
        f"{tmp_path / 'nope'}: cannot read the PAM directory (No such file or directory)"
    ]


# --- (a) pam_env user_readenv ------------------------------------------------------------


def test_real_sshd_plus_hookrunner_session_line_is_flagged(tmp_path: Path, root: Path) -> None:
    pam_dir = real_pam_d(tmp_path)
    text = (pam_dir / "sshd").read_text()
    lines = text.splitlines()
    env_line = next(i for i, s in enumerate(lines, 1) if re.match(r"session.*user_readenv=1", s))
    (pam_dir / "sshd").write_text(f"{text}session optional {HOOK} onsessionopen\n")
    assert audit_pam_dir(pam_dir, root=root) == [f"{pam_dir / 'sshd'}:{env_line}: {READENV}"]


def test_user_readenv_in_same_file(tmp_path: Path, root: Path) -> None:
    svc = f"session optional {HOOK} onsessionopen\n{ENV_LINE}\n"
    assert audit(tmp_path, root, {"svc": svc}) == [f"{at(tmp_path, 'svc', 2)}: {READENV}"]


def test_user_readenv_in_another_phase_is_flagged(tmp_path: Path, root: Path) -> None:
    svc = f"auth required pam_env.so user_readenv=1\nsession optional {HOOK} onsessionopen\n"
    assert audit(tmp_path, root, {"svc": svc}) == [f"{at(tmp_path, 'svc', 1)}: {READENV}"]


@pytest.mark.parametrize("value", ["1", "2", "01", "+1", "1x", "-1", "99999999999999999999",
                                   "4294967297", "1 envfile=/etc/default/locale"])
def test_user_readenv_values_atoi_reads_as_nonzero(tmp_path: Path, root: Path, value: str) -> None:
    svc = f"session optional {HOOK} x\nsession required pam_env.so user_readenv={value}\n"
    assert audit(tmp_path, root, {"svc": svc}) == [f"{at(tmp_path, 'svc', 2)}: {READENV}"]


@pytest.mark.parametrize("value", ["0", "", "yes", "-0", "4294967296", "\u0661", "\u00a01", "=1"])
def test_user_readenv_values_atoi_reads_as_zero(tmp_path: Path, root: Path, value: str) -> None:
    svc = f"session optional {HOOK} x\nsession required pam_env.so user_readenv={value}\n"
    assert audit(tmp_path, root, {"svc": svc}) == []


@pytest.mark.parametrize("args", [
    "[user_readenv=1]", "[user_readenv=1 envfile=/etc/default/locale]", "readenv=1 [user_readenv=1]",
    "[user_readenv= 1]", "[user_readenv=\t+1]",
    "[user_readenv=0] user_readenv=1", "[user_readenv=\\]1]", "user_readenv=0 [user_readenv=1]",
])
def test_bracketed_user_readenv_is_flagged(tmp_path: Path, root: Path, args: str) -> None:
    """Linux-PAM takes ``[...]`` arguments apart before pam_env sees them (``\\]`` is ``]``)."""
    svc = f"session optional {HOOK} x\nsession required pam_env.so {args}\n"
    if "\\]" in args:  # "[user_readenv=\\]1]" is "user_readenv=]1": atoi reads 0
        assert audit(tmp_path, root, {"svc": svc}) == []
    else:
        assert audit(tmp_path, root, {"svc": svc}) == [f"{at(tmp_path, 'svc', 2)}: {READENV}"]


@pytest.mark.parametrize("args", [
    "[envfile=/etc/default/locale user_readenv=1]",  # one envfile= argument, no user_readenv
    "[user_readenv=1] user_readenv=0", "[ user_readenv=1]", "[User_readenv=1]",
])
def test_bracketed_user_readenv_that_pam_env_does_not_read(tmp_path: Path, root: Path, args: str) -> None:
    svc = f"session optional {HOOK} x\nsession required pam_env.so {args}\n"
    assert audit(tmp_path, root, {"svc": svc}) == []


def test_user_readenv_on_a_line_libpam_refuses_is_not_flagged(tmp_path: Path, root: Path) -> None:
    """An unknown type (``--session``: one dash only is taken off) installs a failing
    handler: pam_env never runs there."""
    svc = f"session optional {HOOK} x\n--session required pam_env.so user_readenv=1\n"
    assert audit(tmp_path, root, {"svc": svc}) == []


# --- include, substack, loops, missing files ----------------------------------------------


def test_user_readenv_through_at_include(tmp_path: Path, root: Path) -> None:
    files = {
        "svc": f"@include common-session\nsession optional {HOOK} onsessionopen\n",
        "common-session": f"session required pam_unix.so\n{ENV_LINE}\n",
    }
    assert audit(tmp_path, root, files) == [f"{at(tmp_path, 'common-session', 2)}: {READENV}"]


def test_hook_line_in_included_file_flags_the_including_service(tmp_path: Path, root: Path) -> None:
    files = {"svc": f"{ENV_LINE}\nsession include hooks\n", "hooks": f"session optional {HOOK} x\n"}
    assert audit(tmp_path, root, files) == [f"{at(tmp_path, 'svc', 1)}: {READENV}"]


def test_substack_and_nested_includes(tmp_path: Path, root: Path) -> None:
    files = {
        "svc": f"session optional {HOOK} x\nsession substack a\n",
        "a": "session include b\n",
        "b": "@include c\n",
        "c": f"account required pam_permit.so\n{ENV_LINE}\n",
    }
    assert audit(tmp_path, root, files) == [f"{at(tmp_path, 'c', 2)}: {READENV}"]


def test_typed_include_takes_only_that_type(tmp_path: Path, root: Path) -> None:
    files = {
        "svc": f"session include envs\nsession optional {HOOK} x\n",
        "envs": "auth required pam_env.so user_readenv=1\nsession required pam_permit.so\n",
    }
    assert audit(tmp_path, root, files) == []
    files["svc"] = f"auth include envs\nsession optional {HOOK} x\n"
    assert audit(tmp_path, root, files) == [f"{at(tmp_path, 'envs', 1)}: {READENV}"]


def test_absolute_include_is_looked_up_under_root(tmp_path: Path, root: Path) -> None:
    (root / "etc/pam.d").mkdir(parents=True)
    (root / "etc/pam.d/extra").write_text(f"{ENV_LINE}\n")
    files = {"svc": f"@include /etc/pam.d/extra\nsession optional {HOOK} x\n"}
    assert audit(tmp_path, root, files) == [f"{root / 'etc/pam.d/extra'}:1: {READENV}"]


def test_include_loops_terminate_and_report_once(tmp_path: Path, root: Path) -> None:
    files = {
        "a": f"@include a\n@include b\nsession optional {HOOK} x\n",
        "b": f"session include a\n{ENV_LINE}\n@include b\n",
    }
    assert audit(tmp_path, root, files) == [f"{at(tmp_path, 'b', 2)}: {READENV}"]


def test_missing_and_unreadable_includes_are_skipped(tmp_path: Path, root: Path) -> None:
    pam_dir = pam(tmp_path, {"svc": ""})
    os.mkfifo(pam_dir / "fifo")  # reading it would block: the audit must not open it for read
    (pam_dir / "subdir").mkdir()
    (pam_dir / "svc").write_text(
        f"@include missing\nsession include fifo\nsession substack subdir\n@include /nope\n"
        f"session optional {HOOK} x\n{ENV_LINE}\n"
    )
    assert audit_pam_dir(pam_dir, root=root) == [f"{at(tmp_path, 'svc', 6)}: {READENV}"]


def test_each_problem_is_reported_once(tmp_path: Path, root: Path) -> None:
    files = {f"svc{i}": "@include common-session\n" for i in range(3)}
    files["common-session"] = f"session sufficient {HOOK} x\n"
    problems = audit(tmp_path, root, files)
    assert len(problems) == 1
    assert problems[0].startswith(f"{at(tmp_path, 'common-session', 1)}: hookrunner line is")


# --- (b) sufficient ---------------------------------------------------------------------


SKIPS = "a hook's success would skip the rest of the stack, e.g. the password check; use optional"
ALONE = ("a hook's success alone would let the stack pass: no module before it has decided and none "
         "after it must succeed; put it after the modules that decide, e.g. after @include common-auth")


def controls_after_common_auth(tmp_path: Path, root: Path, control: str) -> list[str]:
    """The problems of a hookrunner line with ``control`` after Debian's common-auth (where
    an ``ok`` hook never decides), with the line number dropped."""
    where = f"{at(tmp_path, 'svc', 2)}: "
    problems = audit(tmp_path, root, {"svc": f"@include common-auth\nauth {control} {HOOK} x\n",
                                      **DEBIAN})
    assert all(p.startswith(f"{where}hookrunner line is '{control}' (") for p in problems), problems
    return [p.removeprefix(f"{where}hookrunner line is '{control}' (")[:-1] for p in problems]


@pytest.mark.parametrize("control", [
    "sufficient", "Sufficient", "SUFFICIENT", "[success=done default=ignore]",
    "[default=bad success=done]", "[default=done]", "success=done", "[ success = done ]",
    "[new_authtok_reqd=ok default=done]", "[success=done\tdefault=ignore]",
])
def test_success_that_ends_the_stack_is_flagged(tmp_path: Path, root: Path, control: str) -> None:
    assert controls_after_common_auth(tmp_path, root, control) == [SKIPS]


def test_sufficient_is_flagged_alone_too(tmp_path: Path, root: Path) -> None:
    """Where it is the only line (and where it is the last one: an "ok" would be fine there)."""
    problems = audit(tmp_path, root, {"svc": f"auth sufficient {HOOK} onauth\n"})
    assert problems == [f"{at(tmp_path, 'svc', 1)}: hookrunner line is 'sufficient' ({SKIPS})"]


@pytest.mark.parametrize(("control", "modules"), [
    ("[success=1 default=ignore]", 1), ("[default=1]", 1), ("[success=2]", 2),
    ("[default=ignore success=12]", 12), ("success=3", 3),
])
def test_success_that_jumps_is_flagged(tmp_path: Path, root: Path, control: str,
                                       modules: int) -> None:
    jump = (f"a hook's success would jump over the next {modules} module(s), e.g. the password "
            "check; use optional")
    failure = (f"a hook's failure (system_err, ignore, auth_err and 28 more) would jump over the "
               f"next {modules} module(s) without failing the stack; use optional")
    expected = [jump, failure] if control.startswith("[default=1") else [jump]
    assert controls_after_common_auth(tmp_path, root, control) == expected


@pytest.mark.parametrize(("control", "reason"), [
    ("[success=reset default=ignore]",
     "a hook's success would wipe out the failures of the modules before it; use optional"),
    ("[success=ok default=reset]",
     "a hook's failure (system_err, ignore, auth_err and 28 more) would wipe out the failures "
     "of the modules before it; use optional"),
    ("[success=ok default=2]",
     "a hook's failure (system_err, ignore, auth_err and 28 more) would jump over the next 2 "
     "module(s) without failing the stack; use optional"),
    ("[success=ok ignore=1 default=bad]",  # pam_exec type=..., the native module's "no hook"
     "a hook's failure (ignore) would jump over the next 1 module(s) without failing the stack; "
     "use optional"),
    ("[success=ok system_err=1 perm_denied=3 default=bad]",
     "a hook's failure (system_err, perm_denied) would jump over the next 1/3 module(s) without "
     "failing the stack; use optional"),
])
def test_failure_that_jumps_or_resets_is_flagged(tmp_path: Path, root: Path, control: str,
                                                 reason: str) -> None:
    assert controls_after_common_auth(tmp_path, root, control) == [reason]


@pytest.mark.parametrize(("control", "error"), [
    ("[Success=ok]", "expecting return value"),  # the pairs are case-sensitive
    ("[success=0]", "expecting non-zero"),
    ("[success=okay]", "expecting return value"),
    ("[success=ok default]", "expecting return value"),
    ("[success ok]", "expecting '='"),
    ("[success=]", "expecting action"),
    ("[success=2147483648]", "expecting smaller jump number"),
    ("[success=x1]", "expecting jump number"),
])
def test_control_libpam_cannot_parse_is_flagged(tmp_path: Path, root: Path, control: str,
                                                error: str) -> None:
    assert controls_after_common_auth(tmp_path, root, control) == [
        f"Linux-PAM cannot parse it: {error}; every result then counts as a failure, a hook's "
        "success too"]


@pytest.mark.parametrize("control", [
    "optional", "required", "requisite", "Optional", "[success=ok default=ignore]",
    "[success=ok default=die]", "[success=ok default=bad]", "[success=ok new_authtok_reqd=ok "
    "ignore=ignore default=bad]", "[success=die default=ok]", "[success=bad]", "[success=ignore]",
    "[default=done success=ok]",  # a failure that ends the stack ends it failed
    "[success=ok ignore=done default=die]", "success=ok", "[success=okdefault=bad]",
    "[default=1 success=ok ignore=ok system_err=bad perm_denied=bad auth_err=die session_err=die "
    "authtok_err=die open_err=bad symbol_err=bad service_err=bad buf_err=bad cred_insufficient=bad "
    "authinfo_unavail=bad user_unknown=bad maxtries=bad new_authtok_reqd=bad acct_expired=bad "
    "cred_unavail=bad cred_expired=bad cred_err=bad no_module_data=bad conv_err=bad "
    "authtok_recover_err=bad authtok_lock_busy=bad authtok_disable_aging=bad try_again=bad "
    "abort=bad authtok_expired=bad module_unknown=bad bad_item=bad conv_again=bad "
    "incomplete=bad]",  # default=1 covers no code at all
])
def test_controls_that_cannot_grant_are_not_flagged(tmp_path: Path, root: Path, control: str) -> None:
    assert controls_after_common_auth(tmp_path, root, control) == []


# --- (b2) an "ok" hook whose success decides the stack -----------------------------------


def with_sub_hooks(tmp_path: Path, files: dict[str, str]) -> Path:
    """A PAM directory with ``files`` and ``sub/hooks`` (a hookrunner line; no service)."""
    pam_dir = pam(tmp_path, files)
    (pam_dir / "sub").mkdir()
    (pam_dir / "sub" / "hooks").write_text(f"auth optional {HOOK} x\n")
    return pam_dir


@pytest.mark.parametrize("svc", [
    f"auth optional {HOOK} x\n",
    f"auth required {HOOK} x\n",
    f"auth sufficient pam_unix.so\nauth optional {HOOK} x\n",  # a wrong password, then the hook
    f"auth optional pam_unix.so\nauth [success=ok default=bad] {HOOK} x\n",
    # wheel members skip pam_deny: for them the hook's success is the whole authentication
    "auth [success=1 default=ignore] pam_succeed_if.so user ingroup wheel\n"
    f"auth requisite pam_deny.so\nauth optional {HOOK} x\n",
    # Debian's common-auth without its pam_permit: a jump leaves the verdict to the hook
    "auth [success=1 default=ignore] pam_unix.so\nauth requisite pam_deny.so\n"
    f"auth optional {HOOK} x\n",
    "auth substack sub/hooks\nauth optional pam_unix.so\n",
    f"account optional {HOOK} x\n",
    f"account optional {HOOK} x\naccount optional pam_unix.so\n",
])
def test_hook_whose_success_alone_passes_is_flagged(tmp_path: Path, root: Path, svc: str) -> None:
    problems = audit_pam_dir(with_sub_hooks(tmp_path, {"svc": svc}), root=root)
    assert len(problems) == 1, problems
    assert problems[0].endswith(f": hookrunner line is '{problems[0].split(chr(39))[1]}' ({ALONE})")
    name, line = ("sub/hooks", 1) if "substack" in svc else ("svc", svc.index(HOOK) and
                                                          svc[: svc.index(HOOK)].count("\n") + 1)
    assert problems[0].startswith(f"{at(tmp_path, name, line)}: ")


@pytest.mark.parametrize("svc", [
    f"@include common-auth\nauth optional {HOOK} x\n",
    f"auth optional {HOOK} x\n@include common-auth\n",  # before: common-auth decides after it
    f"auth required {HOOK} x\nauth required pam_unix.so\n",
    f"auth requisite pam_unix.so\nauth optional {HOOK} x\n",
    f"auth sufficient pam_rootok.so\n@include common-auth\nauth optional {HOOK} x\n",
    "auth substack sub/hooks\n@include common-auth\n",
    f"@include common-account\naccount optional {HOOK} x\n",
    f"session optional {HOOK} x\n",  # a session or password stack grants no access
    f"password optional {HOOK} x\n",
])
def test_hook_after_deciding_modules_is_not_flagged(tmp_path: Path, root: Path, svc: str) -> None:
    assert audit_pam_dir(with_sub_hooks(tmp_path, {"svc": svc, **DEBIAN}), root=root) == []


def test_real_services_with_the_recommended_lines_are_not_flagged(tmp_path: Path, root: Path) -> None:
    """This machine's services with the snippet's lines for their groups appended, as
    pam/hookrunner.pam says (after the includes): quiet, but where a hook's success would
    really be the only authentication (runuser: pam_rootok.so sufficient, then nothing)."""
    pam_dir = real_pam_d(tmp_path)
    snippet = [line for line in SNIPPET.read_text().splitlines() if line and line[0] != "#"]
    expected = []
    for service in sorted(pam_dir.iterdir()):
        text = service.read_text()
        stacks = {kind: Reader(pam_dir, None).stack(service, kind) for kind in TYPES}
        ours = [line for line in snippet if stacks[line.split()[0]]]  # groups it has
        if service.name.startswith("common-") or not ours:
            continue
        service.write_text(text + "\n".join(ours) + "\n")
        if service.name in ("runuser", "runuser-l") and ours[0].startswith("auth "):
            expected.append(f"{service}:{len(text.splitlines()) + 1}")
    problems = audit_pam_dir(pam_dir, root=root)
    flagged = [p for p in problems if "user_readenv" not in p]
    assert [p.split(": ", 1)[0] for p in flagged] == expected
    assert all(p.endswith(f"({ALONE})") for p in flagged)


# --- (c) dispatcher and interpreter paths ---------------------------------------------------


def test_relative_interpreter_is_flagged(tmp_path: Path, root: Path) -> None:
    svc = f"session optional pam_exec.so python3 -I {SCRIPT} run\n"
    problems = audit(tmp_path, root, {"svc": svc})
    assert problems == [
        f"{at(tmp_path, 'svc', 1)}: 'python3' is a relative path (use an absolute one: "
        "what it names depends on the caller's working directory)"
    ]


def test_relative_script_and_command_are_flagged(tmp_path: Path, root: Path) -> None:
    problems = audit(
        tmp_path,
        root,
        {
            "a": "session optional pam_exec.so /usr/bin/python3 -I hookrunner/__main__.py run\n",
            "b": "session optional pam_exec.so quiet hookrunner run\n",
        },
    )
    assert [p.split(": ", 1)[1].split(" (")[0] for p in problems] == [
        "'hookrunner/__main__.py' is a relative path",
        "'hookrunner' is a relative path",
    ]


def test_missing_dispatcher_is_flagged(tmp_path: Path, root: Path) -> None:
    svc = "session optional pam_exec.so /usr/bin/python3 -I /opt/hookrunner/__main__.py run\n"
    assert audit(tmp_path, root, {"svc": svc}) == [
        f"{at(tmp_path, 'svc', 1)}: /opt/hookrunner/__main__.py does not exist"
    ]


def test_dispatcher_not_owned_by_root_is_flagged(tmp_path: Path, root: Path) -> None:
    os.chown(root / SCRIPT.lstrip("/"), 1000, 0)
    assert audit(tmp_path, root, {"svc": f"session optional {HOOK} x\n"}) == [
        f"{at(tmp_path, 'svc', 1)}: {SCRIPT} is owned by uid 1000, not root"
    ]


def test_writable_interpreter_and_directory_are_flagged(tmp_path: Path, root: Path) -> None:
    (root / "usr/bin/python3").chmod(0o775)
    (root / "usr/lib/python3").chmod(0o1777)
    assert audit(tmp_path, root, {"svc": f"session optional {HOOK} x\n"}) == [
        f"{at(tmp_path, 'svc', 1)}: /usr/bin/python3 is writable by group or others (mode 0775)",
        f"{at(tmp_path, 'svc', 1)}: /usr/lib/python3 is writable by group or others (mode 1777)",
    ]


def test_writable_fake_root_itself_is_flagged(tmp_path: Path, root: Path) -> None:
    root.chmod(0o777)
    problems = audit(tmp_path, root, {"svc": f"session optional {HOOK} x\n"})
    assert problems == [f"{at(tmp_path, 'svc', 1)}: / is writable by group or others (mode 0777)"]


def test_real_interpreter_outside_a_fake_root(tmp_path: Path) -> None:
    if os.geteuid() != 0 or not Path("/usr/bin/python3").exists():
        pytest.skip("needs root and /usr/bin/python3")
    script = tmp_path / "pam.d" / "d.py"
    svc = f"session optional pam_exec.so /usr/bin/python3 -I {script} run hookrunner\n"
    pam_dir = pam(tmp_path, {"svc": svc})
    script.write_text("")
    # /tmp is world-writable (sticky): a dispatcher below it is not safe.
    assert f"{at(tmp_path, 'svc', 1)}: /tmp is writable by group or others (mode 1777)" in (
        audit_pam_dir(pam_dir)
    )


# --- (d) python without -I ------------------------------------------------------------------


@pytest.mark.parametrize(
    "options", ["-I", "-IS", "-I -S", "-SI", "-E -s -I", "-W ignore -I", "-X dev -I", "-I --"]
)
def test_isolated_python_is_accepted(tmp_path: Path, root: Path, options: str) -> None:
    svc = f"session optional pam_exec.so /usr/bin/python3 {options} {SCRIPT} run\n"
    assert audit(tmp_path, root, {"svc": svc}) == []


@pytest.mark.parametrize("options", ["", "-S", "-E -s", "-X I", "-W I", "-sE"])
def test_python_without_isolation_is_flagged(tmp_path: Path, root: Path, options: str) -> None:
    svc = f"session optional pam_exec.so /usr/bin/python3 {options} {SCRIPT} run\n"
    problems = audit(tmp_path, root, {"svc": svc})
    assert problems == [
        f"{at(tmp_path, 'svc', 1)}: /usr/bin/python3 runs without -I (PYTHON* variables or "
        "user site-packages could run code as root)"
    ]


def test_python_c_is_checked_without_a_script(tmp_path: Path, root: Path) -> None:
    svc = "session optional pam_exec.so /usr/bin/python3 -c import(hookrunner)\n"
    problems = audit(tmp_path, root, {"svc": svc})
    assert len(problems) == 1 and "runs without -I" in problems[0]


@pytest.mark.parametrize(
    ("shebang", "flagged"),
    [
        ("#!/usr/bin/python3\n", True),
        ("#!/usr/bin/python3.11 -s\n", True),
        ("#! /usr/bin/env python3\n", True),
        ("#!/usr/bin/env -S python3 -s\n", True),
        ("#!/usr/bin/python3 -I\n", False),
        ("#!/usr/bin/env -S python3 -IS\n", False),
        ("#!/bin/sh\n", False),
        ("\x7fELF\x02\x01", False),
    ],
)
def test_console_script_shebang(tmp_path: Path, root: Path, shebang: str, flagged: bool) -> None:
    (root / "usr/sbin/hookrunner").write_text(f"{shebang}import sys\n")
    svc = "session optional pam_exec.so quiet /usr/sbin/hookrunner run\n"
    problems = audit(tmp_path, root, {"svc": svc})
    assert len(problems) == flagged
    assert all("/usr/sbin/hookrunner (#!" in p and "without -I" in p for p in problems)


# --- pam_hookrunner.so ------------------------------------------------------------------


def test_native_module_dispatcher_path(tmp_path: Path, root: Path) -> None:
    files = {
        "ok": f"session optional /lib/security/pam_hookrunner.so dispatcher={SCRIPT}\n",
        "default": "session optional pam_hookrunner.so\n",
        "rel": "session optional pam_hookrunner.so debug dispatcher=lib/d.py\n",
        "env": f"{ENV_LINE}\nauth sufficient pam_hookrunner.so\n",
    }
    assert audit(tmp_path, root, files) == [
        f"{at(tmp_path, 'env', 1)}: {READENV}",
        f"{at(tmp_path, 'env', 2)}: hookrunner line is 'sufficient' (a hook's success would "
        "skip the rest of the stack, e.g. the password check; use optional)",
        f"{at(tmp_path, 'rel', 1)}: 'lib/d.py' is a relative path (use an absolute one: "
        "what it names depends on the caller's working directory)",
    ]


NATIVE = "pam_hookrunner.so"
REFUSED = "pam_hookrunner.so refuses the whole line: PAM_SYSTEM_ERR, no hook runs"
RELATIVE = "(use an absolute one: what it names depends on the caller's working directory)"


def native_tree(root: Path) -> None:
    """A hook tree and its config below the fake root, as ``root=``/``config=`` name them."""
    (root / "srv/tree/etc/security").mkdir(parents=True)
    (root / "srv/tree/etc/security/hookrunner.toml").write_text("")
    for path in [root / "srv", *(root / "srv").rglob("*")]:
        path.chmod(0o755)


@pytest.mark.parametrize("options", [
    "",
    f"dispatcher={SCRIPT} python=/usr/bin/python3 root=/srv/tree "
    "config=/srv/tree/etc/security/hookrunner.toml timeout=30 expose_authtok quiet debug",
    "timeout=1", "timeout=86400", "timeout=+5", "timeout=007", "[timeout=5]", "[quiet]",
    "nosocket", "socket=/run/hookrunner/dispatch.sock", "socket=/nonexistent/dispatch.sock",
])
def test_native_module_options_it_accepts_are_clean(tmp_path: Path, root: Path,
                                                    options: str) -> None:
    native_tree(root)
    svc = f"@include common-auth\nauth optional {NATIVE} {options}\n"
    assert audit(tmp_path, root, {"svc": svc, **DEBIAN}) == []


@pytest.mark.parametrize("option", [
    "timeout=0", "timeout=-5", "timeout=86401", "timeout=5s", "timeout=", "timeout=99999999999999999999",
    "timeout", "Quiet", "expose_authtok=1", "stdout", "type=open_session", "log=/var/log/x",
    "dispatcher", f"[dispatcher {SCRIPT}]", "/usr/bin/python3", "nosocket=1",
])
def test_native_module_options_it_refuses_are_flagged(tmp_path: Path, root: Path,
                                                     option: str) -> None:
    problems = audit(tmp_path, root, {"svc": f"session optional {NATIVE} quiet {option}\n"})
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{at(tmp_path, 'svc', 1)}: ")
    assert problems[0].endswith(f"({REFUSED})") or problems[0].endswith(
        f"whole seconds; {REFUSED})")


def test_native_module_relative_socket_is_flagged(tmp_path: Path, root: Path) -> None:
    native_tree(root)
    problems = audit(tmp_path, root, {"svc": f"session optional {NATIVE} socket=run/d.sock\n"})
    assert problems == [f"{at(tmp_path, 'svc', 1)}: 'run/d.sock' is a relative path "
                        "(use an absolute one: what it names depends on the caller's working "
                        "directory)"]


def test_native_module_python_is_checked_like_the_interpreter(tmp_path: Path, root: Path) -> None:
    where = at(tmp_path, "svc", 1)
    line = f"session optional {NATIVE} python={{}} dispatcher={SCRIPT}\n"
    assert audit(tmp_path, root, {"svc": line.format("python3")}) == [
        f"{where}: 'python3' is a relative path {RELATIVE}"]
    assert audit(tmp_path, root, {"svc": line.format("/opt/py/bin/python3")}) == [
        f"{where}: /opt/py/bin/python3 does not exist"]
    python = root / "opt/py/bin/python3"
    python.parent.mkdir(parents=True)
    python.write_text("")
    for path in (python, python.parent, python.parent.parent, root / "opt"):
        path.chmod(0o755)
    os.chown(python, 1000, 1000)
    (root / "opt/py").chmod(0o777)
    assert audit(tmp_path, root, {"svc": line.format("/opt/py/bin/python3")}) == [
        f"{where}: /opt/py/bin/python3 is owned by uid 1000, not root",
        f"{where}: /opt/py is writable by group or others (mode 0777)",
    ]
    # Never an -I complaint: the module itself always starts PYTHON -I -S DISPATCHER.
    os.chown(python, 0, 0)
    (root / "opt/py").chmod(0o755)
    assert audit(tmp_path, root, {"svc": line.format("/opt/py/bin/python3")}) == []


def test_native_module_default_paths_are_checked(tmp_path: Path, root: Path) -> None:
    where = at(tmp_path, "svc", 1)
    svc = {"svc": f"session optional {NATIVE}\n"}
    assert audit(tmp_path, root, svc) == []
    (root / SCRIPT.lstrip("/")).unlink()
    (root / "usr/bin/python3").chmod(0o777)
    assert audit(tmp_path, root, svc) == [
        f"{where}: /usr/bin/python3 is writable by group or others (mode 0777)",
        f"{where}: {SCRIPT} does not exist",
    ]
    other = f"/srv/tree/{SCRIPT.rsplit('/', 2)[-2]}/__main__.py"  # dispatcher= overrides it
    native_tree(root)
    (root / other.lstrip("/")).parent.mkdir(mode=0o755)
    (root / other.lstrip("/")).write_text("")
    (root / "usr/bin/python3").chmod(0o755)
    assert audit(tmp_path, root, {"svc": f"session optional {NATIVE} dispatcher={other}\n"}) == []


def test_native_module_root_and_config_paths_are_checked(tmp_path: Path, root: Path) -> None:
    where = at(tmp_path, "svc", 1)
    native_tree(root)
    line = f"session optional {NATIVE} root={{}} config={{}}\n"
    assert audit(tmp_path, root, {"svc": line.format("srv/tree", "h.toml")}) == [
        f"{where}: 'srv/tree' is a relative path {RELATIVE}",
        f"{where}: 'h.toml' is a relative path {RELATIVE}",
    ]
    (root / "srv/tree").chmod(0o775)
    assert audit(tmp_path, root, {"svc": line.format("/srv/tree", "/srv/nope.toml")}) == [
        f"{where}: /srv/tree is writable by group or others (mode 0775)",
        f"{where}: /srv/nope.toml does not exist",
    ]


def test_native_defaults_match_the_module_source() -> None:
    from hookrunner import pamcommand

    source = (REPO / "pam" / "pam_hookrunner.c").read_text()
    defines = dict(re.findall(r'(?m)^#define (DEFAULT_\w+|MAX_TIMEOUT) "?([^"\s]+)"?', source))
    assert pamcommand.NATIVE_PATHS["python"] == defines["DEFAULT_PYTHON"]
    assert pamcommand.NATIVE_PATHS["dispatcher"] == defines["DEFAULT_DISPATCHER"]
    assert int(defines["MAX_TIMEOUT"]) == pamcommand.NATIVE_MAX_TIMEOUT
    flags = set(re.findall(r'strcmp\(a, "(\w+)"\) == 0', source))
    options = set(re.findall(r'\{ "(\w+)", &o->|opt_value\(a, "(\w+)"\)', source))
    options = {name for pair in options for name in pair if name}
    assert flags == set(pamcommand.NATIVE_FLAGS)
    assert options == {*pamcommand.NATIVE_PATHS, "timeout", pamcommand.NATIVE_SOCKET}


# --- (c2) the dispatcher's --root and --config on a pam_exec.so line ---------------------

TREE = "/srv/tree"
TOML = "/srv/tree/etc/security/hookrunner.toml"


@pytest.mark.parametrize("command", [
    f"{DISPATCH} onauth --root {TREE}", f"{DISPATCH} --root={TREE} onauth",
    f"{DISPATCH} onauth --ro {TREE}",  # argparse takes a unique prefix
    f"{DISPATCH} onauth --config {TOML}", f"{DISPATCH} onauth --root {TREE} --conf={TOML}",
    f"{DISPATCH} onauth --root /", f"{DISPATCH} onauth -v --msg-fd 3 --ignore-empty --root {TREE}",
    f"/usr/bin/python3 -I -m hookrunner run onauth --root {TREE}",
    f"/usr/bin/python3 -Im hookrunner run onauth --root {TREE}",
    f"/usr/sbin/hookrunner run onauth --config {TOML}",
])
def test_safe_root_and_config_are_clean(tmp_path: Path, root: Path, command: str) -> None:
    native_tree(root)
    svc = f"session optional pam_exec.so quiet {command}\n"
    assert audit(tmp_path, root, {"svc": svc}) == []


@pytest.mark.parametrize(("command", "problem"), [
    (f"{DISPATCH} onauth --root srv/tree", f"'srv/tree' is a relative path {RELATIVE}"),
    (f"{DISPATCH} onauth --root=", f"'' is a relative path {RELATIVE}"),
    (f"{DISPATCH} onauth --conf h.toml", f"'h.toml' is a relative path {RELATIVE}"),
    (f"{DISPATCH} onauth --config /srv/nope.toml", "/srv/nope.toml does not exist"),
    (f"{DISPATCH} onauth --root /srv/tree --root /srv/gone", "/srv/gone does not exist"),  # the last
    (f"{DISPATCH} onauth --root {TREE} --config {TREE}/../w.toml", "/srv/w.toml does not exist"),
    ("/usr/bin/python3 -I -m hookrunner run --root srv", f"'srv' is a relative path {RELATIVE}"),
    ("/usr/sbin/hookrunner run x --config rel.toml", f"'rel.toml' is a relative path {RELATIVE}"),
    (f"{DISPATCH} onauth --bogus",
     "hookrunner refuses these arguments (unrecognized arguments: --bogus): it exits 2, "
     "no hook runs"),
    (f"{DISPATCH} onauth --msg-fd x", "hookrunner refuses these arguments (run: argument "
     "--msg-fd: invalid int value: 'x'): it exits 2, no hook runs"),
    (f"{DISPATCH} --he", "hookrunner would print its help and exit 0: no hook runs"),
    (f"/usr/bin/python3 -I -S {SCRIPT} list onauth", "'hookrunner list' runs no hook (use run)"),
    (f"/usr/bin/python3 -I -S {SCRIPT}", "hookrunner without a command: it exits 2, no hook runs"),
])
def test_unsafe_or_refused_dispatcher_arguments_are_flagged(tmp_path: Path, root: Path, command: str,
                                                           problem: str) -> None:
    native_tree(root)
    svc = f"session optional pam_exec.so quiet {command}\n"
    assert audit(tmp_path, root, {"svc": svc}) == [f"{at(tmp_path, 'svc', 1)}: {problem}"]


def test_root_and_config_that_fail_the_safety_rules_are_flagged(tmp_path: Path, root: Path) -> None:
    """As ``root=``/``config=`` on a pam_hookrunner.so line: the same checks, the same words."""
    native_tree(root)
    (root / "srv/tree").chmod(0o775)
    os.chown(root / TOML.lstrip("/"), 1000, 0)
    where = at(tmp_path, "svc", 1)
    expected = [f"{where}: /srv/tree is writable by group or others (mode 0775)",
                f"{where}: {TOML} is owned by uid 1000, not root"]  # each once
    exec_line = f"session optional pam_exec.so {DISPATCH} x --root {TREE} --config {TOML}\n"
    native_line = f"session optional {NATIVE} root={TREE} config={TOML}\n"
    assert audit(tmp_path, root, {"svc": exec_line}) == expected
    assert audit(tmp_path, root, {"svc": native_line}) == expected


def test_a_wrapper_script_s_arguments_are_not_read_as_the_dispatcher_s(tmp_path: Path, root: Path) -> None:
    (root / "usr/sbin/hookrunner-wrapper").write_text("#!/bin/sh\n")
    (root / "usr/sbin/hookrunner-wrapper").chmod(0o755)
    svc = "session optional pam_exec.so /usr/sbin/hookrunner-wrapper --root relative --bogus\n"
    assert audit(tmp_path, root, {"svc": svc}) == []


# --- syntax: dash, continuations, comments, brackets, pam_exec options -----------------------


def test_leading_dash_types_count(tmp_path: Path, root: Path) -> None:
    svc = f"-session optional {HOOK} x\n-session required pam_env.so user_readenv=1\n"
    assert audit(tmp_path, root, {"svc": svc}) == [f"{at(tmp_path, 'svc', 2)}: {READENV}"]


def test_continuation_lines_join_and_report_the_first_line(tmp_path: Path, root: Path) -> None:
    svc = (
        "# a comment \\\n"
        "session optional pam_exec.so quiet \\\n"
        "    /usr/bin/python3 -S \\\n"
        f"    {SCRIPT} run\n"
        "session required pam_env.so \\\n"
        "\tuser_readenv=1\n"
    )
    problems = audit(tmp_path, root, {"svc": svc})
    assert [p.split(": ", 1)[0] for p in problems] == [
        at(tmp_path, "svc", 5),
        at(tmp_path, "svc", 2),
    ]
    assert "without -I" in problems[1]


def test_comments_are_ignored(tmp_path: Path, root: Path) -> None:
    svc = (
        f"# session optional {HOOK} x\n"
        "session optional pam_permit.so # hookrunner\n"
        "session required pam_env.so # user_readenv=1\n"
    )
    assert audit(tmp_path, root, {"svc": svc}) == []
    svc += f"session optional {HOOK} x # trailing comment -S\n"
    assert audit(tmp_path, root, {"svc": svc}) == []


def test_bracket_control_with_spaces_is_one_token(tmp_path: Path, root: Path) -> None:
    svc = f"session [success=ok  new_authtok_reqd=ok\tdefault=ignore] {HOOK} x\n{ENV_LINE}\n"
    assert audit(tmp_path, root, {"svc": svc}) == [f"{at(tmp_path, 'svc', 2)}: {READENV}"]


def test_pam_exec_options_before_the_command(tmp_path: Path, root: Path) -> None:
    opts = "debug log=/var/log/hr.log type=open_session seteuid stdout quiet_log expose_authtok"
    svc = f"session optional /lib/x86_64-linux-gnu/security/pam_exec.so {opts} {DISPATCH} x\n"
    assert audit(tmp_path, root, {"svc": svc}) == []
    svc = "session optional pam_exec.so quiet stdout\n"  # no command, no hookrunner
    assert audit(tmp_path, root, {"svc": svc}) == []


# --- arbitrary input never crashes ------------------------------------------------------------

WORDS = [
    "auth",
    "-session",
    "account",
    "password",
    "include",
    "substack",
    "@include",
    "optional",
    "sufficient",
    "[success=done",
    "]",
    "[",
    "\\",
    "#",
    "pam_exec.so",
    "pam_env.so",
    "pam_hookrunner.so",
    "user_readenv=1",
    "dispatcher=",
    "dispatcher=/x",
    "/usr/bin/python3",
    "python3",
    "-I",
    "-X",
    "-c",
    "--",
    "-",
    "hookrunner",
    "a",
    "b",
    "/",
    "/dev/null",
    "\n",
    "\t",
    " ",
    "\x00",
    "\udcff",
    "é",
    "[success=ok default=1]",
    "[default=reset]",
    "[success=ok",
    "default=done]",
    "requisite",
    "required",
    "pam_deny.so",
    "pam_permit.so",
    "pam_unix.so",
    "[user_readenv=1]",
    "/usr/lib/python3/dist-packages/hookrunner/__main__.py",
    "run",
    "--root",
    "--config=",
    "--ro",
    "--help",
    "-m",
    "-Im",
    "list",
    "root=/",
]
pam_text = st.lists(st.sampled_from(WORDS) | st.text(max_size=8), max_size=40).map(" ".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(a=pam_text, b=pam_text, raw=st.binary(max_size=200))
def test_arbitrary_pam_files_never_crash(a: str, b: str, raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        pam_dir = Path(tmp, "pam.d")
        pam_dir.mkdir()
        (pam_dir / "a").write_text(a, errors="surrogateescape")
        (pam_dir / "b").write_text(b, errors="surrogateescape")
        (pam_dir / "raw").write_bytes(raw)
        problems = audit_pam_dir(pam_dir, root=Path(tmp))
    assert isinstance(problems, list)
    assert all(isinstance(p, str) and p for p in problems)
    assert len(problems) == len(set(problems))


# --- the shipped pam/ files --------------------------------------------------------------

PROFILE = REPO / "pam" / "pam-configs" / "hookrunner"
NATIVE_PROFILE = REPO / "pam" / "pam-configs" / "hookrunner-native"
SNIPPET = REPO / "pam" / "hookrunner.pam"
PHASES = ["onauth", "onaccount", "onpasswd", "onsessionopen", "onsessionclose"]


def profile_fields(text: str) -> dict[str, list[str]]:
    """Parse a pam-auth-update profile the way pam-auth-update does (Field: value + lines)."""
    fields: dict[str, list[str]] = {}
    name = ""
    for line in text.splitlines():
        if m := re.match(r"^(\S+):\s*(.*?)\s*$", line):
            name = m[1]
            fields[name] = [m[2]] if m[2] else []
        elif line.strip():
            fields[name].append(line.strip())
    return fields


@pytest.mark.parametrize("profile", [PROFILE, NATIVE_PROFILE], ids=lambda p: p.name)
def test_profile_is_off_by_default_and_never_sufficient(profile: Path) -> None:
    text = profile.read_text()
    fields = profile_fields(text)
    assert "sufficient" not in text.lower()
    assert fields["Default"] == ["no"]
    assert fields["Name"] and int(fields["Priority"][0]) >= 0
    for kind in ("Auth", "Account", "Session", "Password"):
        assert fields[f"{kind}-Type"] == ["Additional"]
        assert fields[kind], kind
        assert all(line.split()[0] == "optional" for line in fields[kind]), kind
    assert not any(line.lstrip().startswith("#") for line in text.splitlines())


def as_pam_auth_update(profile: Path) -> dict[str, str]:
    """Debian's common-* files with the profile's lines added after the primary block, as
    pam-auth-update writes them."""
    fields = profile_fields(profile.read_text())
    return {name: text + "".join(f"{name[7:]} {line}\n" for line in fields[name[7:].title()])
            for name, text in DEBIAN.items()}


@pytest.mark.parametrize("profile", [PROFILE, NATIVE_PROFILE], ids=lambda p: p.name)
def test_profile_lines_pass_the_audit(tmp_path: Path, root: Path, profile: Path) -> None:
    files = as_pam_auth_update(profile)
    assert audit(tmp_path, root, {"svc": INCLUDES, **files}) == []
    # Canaries: the audit does see these lines as hookrunner lines ...
    problems = audit(tmp_path, root, {"svc": f"{INCLUDES}{ENV_LINE}\n", **files})
    assert problems == [f"{at(tmp_path, 'svc', 5)}: {READENV}"]
    # ... and without Debian's primary block a hook's success would decide auth and account.
    problems = audit(tmp_path, root, {"svc": "".join(files[n][len(DEBIAN[n]):] for n in files)})
    assert [p.split(" (", 1)[1] for p in problems] == [f"{ALONE})", f"{ALONE})"]


def test_profiles_are_what_pam_auth_update_needs() -> None:
    fields = profile_fields(PROFILE.read_text())
    lines = [f"{kind.lower()} {line}" for kind in ("Auth", "Account", "Session", "Password")
             for line in fields[kind]]
    assert sorted(line.rsplit(" ", 1)[1] for line in lines) == sorted(PHASES)
    fields = profile_fields(NATIVE_PROFILE.read_text())
    assert fields["Conflicts"] == ["hookrunner"]  # both at once would run every hook twice
    lines = [f"{kind.lower()} {line}" for kind in ("Auth", "Account", "Session", "Password")
             for line in fields[kind]]
    # one line per group: the session line runs onsessionopen and onsessionclose
    assert [line.split()[:3] for line in lines] == [
        [group, "optional", "pam_hookrunner.so"] for group in ("auth", "account", "session", "password")]
    assert not any("expose_authtok" in line for line in lines)  # the password: opt in by hand


def test_snippet_lines_pass_the_audit(tmp_path: Path, root: Path) -> None:
    text = SNIPPET.read_text()
    active = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert sorted(line.rsplit(" ", 1)[1] for line in active) == sorted(PHASES)
    assert all(" -I " in line and line.split()[1] == "optional" for line in active)
    assert audit(tmp_path, root, {"svc": INCLUDES + text, **DEBIAN}) == []
    # The commented-out alternatives are sound too once uncommented.
    alternatives = re.sub(r"(?m)^#(auth|account|password|session)\b", r"\1", text)
    assert len(alternatives.splitlines()) == len(text.splitlines())
    assert alternatives.count("\nauth ") == text.count("\nauth ") + 2
    assert audit(tmp_path, root, {"svc": INCLUDES + alternatives, **DEBIAN}) == []
    assert audit(tmp_path, root, {"svc": f"{INCLUDES}{alternatives}{ENV_LINE}\n", **DEBIAN}) != []
