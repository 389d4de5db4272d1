"""The environment a hook gets: exactly the allowlist, values byte for byte."""

from __future__ import annotations

import pwd
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hookrunner.context import PAM_ITEMS, items_from_environ
from hookrunner.environment import FIXED_PATH, forbidden, hook_environment, passable, reserved
from hookrunner.phases import PAM_EXEC_TAIL, pam_exec_block, pam_items

ITEMS = {b"PAM_USER": b"alice", b"PAM_SERVICE": b"sshd", b"PAM_RHOST": b"192.0.2.7",
         b"PAM_RUSER": b"bob", b"PAM_TTY": b"ssh", b"PAM_TYPE": b"auth"}
FORBIDDEN = ["LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "LD_DEBUG", "PYTHONPATH", "PYTHONHOME",
             "PYTHONSTARTUP", "PYTHONINSPECT", "BASH_ENV", "ENV", "IFS", "BASH_FUNC_ls%%", "BASH_FUNC_x",
             "PERL5LIB", "PERL5OPT", "GCONV_PATH", "LOCPATH"]
RESERVED = ["PATH", "HOME", "USER", "LOGNAME", "SHELL", "PAM_USER", "PAM_RHOST", "PAM_AUTHTOK",
            "HOOKRUNNER_PHASE", "HOOKRUNNER_HOOK", "HOOKRUNNER_X"]


def test_exact_allowlist() -> None:
    caller = {b"HOME": b"/root", b"LANG": b"C.UTF-8", b"LD_PRELOAD": b"/x.so", b"TERM": b"xterm",
              b"SSH_AUTH_SOCK": b"/tmp/s", b"PAM_USER": b"mallory"}
    env = hook_environment(ITEMS, "onauth", "10-x", caller=caller)
    assert env == {**ITEMS, b"HOOKRUNNER_PHASE": b"onauth", b"HOOKRUNNER_HOOK": b"10-x", b"PATH": FIXED_PATH}


def test_unset_items_are_absent_not_empty() -> None:
    env = hook_environment({b"PAM_USER": b"alice"}, "onsessionopen", "10-x")
    assert env == {b"PAM_USER": b"alice", b"HOOKRUNNER_PHASE": b"onsessionopen", b"HOOKRUNNER_HOOK": b"10-x",
                   b"PATH": FIXED_PATH}


def test_empty_item_is_passed_as_empty() -> None:
    assert hook_environment({b"PAM_RHOST": b""}, "onauth", "x")[b"PAM_RHOST"] == b""


def test_fixed_path() -> None:
    assert FIXED_PATH == b"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def test_items_only_pam_names() -> None:
    env = hook_environment({b"PAM_USER": b"a", b"LD_PRELOAD": b"/x.so", b"PATH": b"/tmp"}, "onauth", "x")
    assert b"LD_PRELOAD" not in env
    assert env[b"PATH"] == FIXED_PATH


def test_pass_env_passes_named_variables_that_are_set() -> None:
    caller = {b"LANG": b"de_DE.UTF-8", b"TZ": b"UTC", b"OTHER": b"1"}
    env = hook_environment(ITEMS, "onauth", "x", pass_env=["LANG", "TZ", "UNSET"], caller=caller)
    assert (env[b"LANG"], env[b"TZ"]) == (b"de_DE.UTF-8", b"UTC")
    assert b"OTHER" not in env and b"UNSET" not in env


@pytest.mark.parametrize("name", FORBIDDEN)
def test_forbidden_names_never_pass_even_in_pass_env(name: str) -> None:
    key = name.encode()
    env = hook_environment(ITEMS, "onauth", "x", pass_env=[name, "LANG"],
                           caller={key: b"() { evil; }", b"LANG": b"C"})
    assert key not in env
    assert env[b"LANG"] == b"C"


@pytest.mark.parametrize("name", RESERVED)
def test_reserved_names_cannot_be_supplied_or_overridden_by_pass_env(name: str) -> None:
    key = name.encode()
    items = {b"PAM_USER": b"alice"}
    env = hook_environment(items, "onauth", "x", pass_env=[name], caller={key: b"from-caller"})
    assert env.get(key) != b"from-caller"
    assert env[b"PATH"] == FIXED_PATH
    assert env[b"PAM_USER"] == b"alice"
    assert env[b"HOOKRUNNER_HOOK"] == b"x"


def test_runas_adds_the_users_home_user_logname_shell() -> None:
    nobody = pwd.getpwnam("nobody")
    env = hook_environment(ITEMS, "onsessionopen", "x", user=nobody,
                           pass_env=["HOME", "USER"], caller={b"HOME": b"/root", b"USER": b"root"})
    assert env[b"HOME"] == nobody.pw_dir.encode()
    assert env[b"USER"] == env[b"LOGNAME"] == b"nobody"
    assert env[b"SHELL"] == nobody.pw_shell.encode()
    assert set(env) == {*ITEMS, b"HOOKRUNNER_PHASE", b"HOOKRUNNER_HOOK", b"PATH", b"HOME", b"USER",
                        b"LOGNAME", b"SHELL"}


def test_runas_user_without_shell_gets_bin_sh() -> None:
    entry = pwd.struct_passwd(("svc", "x", 999, 999, "", "/var/lib/svc", ""))
    assert hook_environment({}, "onauth", "x", user=entry)[b"SHELL"] == b"/bin/sh"


def test_items_from_environ_takes_the_pam_table_only() -> None:
    environ = {b"PAM_USER": b"a\xff\nb", b"PAM_TTY": b"", b"PAM_AUTHTOK": b"secret", b"PAM_FOO": b"1",
               b"LD_PRELOAD": b"x"}
    assert items_from_environ(environ) == {b"PAM_USER": b"a\xff\nb", b"PAM_TTY": b""}
    assert [var for _, var in PAM_ITEMS] == [b"PAM_USER", b"PAM_SERVICE", b"PAM_RHOST", b"PAM_RUSER",
                                             b"PAM_TTY", b"PAM_TYPE"]


values = st.binary(max_size=64).filter(lambda b: b"\0" not in b)


@given(st.fixed_dictionaries({}, optional={var: values for _, var in PAM_ITEMS}),
       st.dictionaries(st.binary(min_size=1, max_size=12).filter(lambda b: b"=" not in b and b"\0" not in b),
                       values, max_size=6))
def test_values_pass_byte_for_byte_and_nothing_else(items: dict[bytes, bytes],
                                                    caller: dict[bytes, bytes]) -> None:
    env = hook_environment(items, "onauth", "h", caller=caller)
    assert env == {**items, b"HOOKRUNNER_PHASE": b"onauth", b"HOOKRUNNER_HOOK": b"h", b"PATH": FIXED_PATH}


_FORBIDDEN_RE = re.compile(rb"^(LD_.*|PYTHON.*|BASH_ENV|ENV|IFS|BASH_FUNC_.*|PERL5.*|GCONV_PATH|LOCPATH)\Z")
_RESERVED_RE = re.compile(rb"^(PAM_.*|HOOKRUNNER_.*|PATH|HOME|USER|LOGNAME|SHELL)\Z")
_PIECES = ["LD_", "LD", "PYTHON", "PYTHO", "BASH_ENV", "BASH_FUNC_", "BASH_FUNC", "ENV", "IFS", "PERL5",
           "PERL", "GCONV_PATH", "LOCPATH", "PAM_", "PAM", "HOOKRUNNER_", "HOOKRUNNER", "PATH", "HOME",
           "USER", "LOGNAME", "SHELL", "_", "X", "a", "1"]


@given(st.lists(st.sampled_from(_PIECES), min_size=1, max_size=3).map("".join))
def test_string_checks_match_the_documented_patterns(name: str) -> None:
    """forbidden()/reserved() are string checks (no `re` on the login path): same answers."""
    key = name.encode()
    assert forbidden(key) == bool(_FORBIDDEN_RE.match(key))
    assert reserved(key) == bool(_RESERVED_RE.match(key))
    assert passable(key) == (not _FORBIDDEN_RE.match(key) and not _RESERVED_RE.match(key))


# ---------------------------------------------------------------- PAM items vs the PAM environment

ITEM_VARS = [var for _, var in PAM_ITEMS]


def pam_exec_env(pam_env: list[tuple[bytes, bytes]], items: dict[bytes, bytes],
                 pam_type: bytes) -> list[tuple[bytes, bytes]]:
    """What pam_exec.c execs with: the PAM environment list, then its items, PAM_TYPE last."""
    tail = [(name, items[name]) for name in PAM_EXEC_TAIL if name in items]
    return [*pam_env, *tail, (b"PAM_TYPE", pam_type)]


def test_pam_exec_items_win_over_the_pam_environment() -> None:
    raw = pam_exec_env([(b"PAM_USER", b"root"), (b"LANG", b"C"), (b"PAM_RUSER", b"root")],
                       {b"PAM_SERVICE": b"sshd", b"PAM_USER": b"alice", b"PAM_RHOST": b"h"},
                       b"auth")
    items, spoofed = pam_items(raw)
    assert items == {b"PAM_SERVICE": b"sshd", b"PAM_USER": b"alice", b"PAM_RHOST": b"h",
                     b"PAM_TYPE": b"auth"}
    assert spoofed == [b"PAM_USER", b"PAM_RUSER"]  # RUSER: PAM did not set it, not taken


def test_without_pam_exec_layout_the_last_occurrence_wins_and_is_reported() -> None:
    # pam_hookrunner.so's own environment ends with PATH: no PAM environment, no duplicates.
    native = [(b"PAM_USER", b"alice"), (b"PAM_SERVICE", b"s"), (b"PAM_TYPE", b"auth"),
              (b"PATH", b"/bin")]
    assert pam_items(native) == ({b"PAM_USER": b"alice", b"PAM_SERVICE": b"s",
                                  b"PAM_TYPE": b"auth"}, [])
    assert pam_items([(b"PAM_USER", b"x"), (b"PAM_USER", b"y")]) == ({b"PAM_USER": b"y"},
                                                                     [b"PAM_USER"])
    assert pam_exec_block([(b"PAM_USER", b"x"), (b"PAM_TYPE", b"auth")]) is None


values = st.binary(max_size=20).filter(lambda v: b"\0" not in v)
names = st.sampled_from([*ITEM_VARS, b"LANG", b"LD_PRELOAD", b"PAM_X"])


@given(pam_env=st.lists(st.tuples(names, values), max_size=12),
       items=st.dictionaries(st.sampled_from(PAM_EXEC_TAIL[1:]), values),
       service=values, pam_type=values)
def test_nothing_in_the_pam_environment_changes_pam_execs_items(
        pam_env: list[tuple[bytes, bytes]], items: dict[bytes, bytes], service: bytes,
        pam_type: bytes) -> None:
    given_items = {b"PAM_SERVICE": service, **items}
    got, spoofed = pam_items(pam_exec_env(pam_env, given_items, pam_type))
    assert got == {**given_items, b"PAM_TYPE": pam_type}
    assert set(spoofed) == {name for name, _ in pam_env if name in ITEM_VARS}
