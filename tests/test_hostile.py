"""Hostile input, property-tested: PAM items, file names and config values from outside.

PAM items come from the network (the login name is typed before authentication, the
remote host is the client's), so they may hold any byte but NUL: spaces, quotes, ``$()``,
backticks, ``;``, newlines, carriage returns, terminal escapes, ``%n``, 64 KiB, bytes that
are not UTF-8. The properties:

* no crash: the dispatcher exits 0 or 1 only as the hooks decide, and says nothing on stderr;
* each value reaches the hook byte for byte (an executable hook dumps its environment
  NUL-separated; a Python plugin writes ``os.fsencode(ctx.user)``...);
* no command other than the hooks runs (values that would ``touch`` a canary file in any
  shell leave no file);
* every log record stays one line of printable ASCII (the config's ``log_file``: as many
  lines as records), and nothing the caller put in the environment leaks to a hook.

The bulk runs in-process (``hook_environment``, ``escape``, ``Log``, ``discover``,
``load_config``) with thousands of examples; a smaller number runs the real dispatcher.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _hardening import Tree, tree
from hooktree import environ, run_hookrunner
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hookrunner.config import Config, ConfigError
from hookrunner.discovery import discover
from hookrunner.dropins import load_config
from hookrunner.environment import FIXED_PATH, hook_environment
from hookrunner.log import Log, escape

# The deny-list and the reserved names as DESIGN.md states them: an oracle independent of
# hookrunner's string checks.
FORBIDDEN = re.compile(rb"^(LD_.*|PYTHON.*|BASH_ENV|ENV|IFS|BASH_FUNC_.*|PERL5.*|GCONV_PATH|LOCPATH)\Z")
RESERVED = re.compile(rb"^(PAM_.*|HOOKRUNNER_.*|PATH|HOME|USER|LOGNAME|SHELL)\Z")

BULK = settings(max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck))
REAL = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))

CANARY = Path(f"/tmp/hookrunner-pwned-{os.getpid()}")
EVIL = Path(f"/tmp/hookrunner-evil-{os.getpid()}")  # an rc file that would touch CANARY
_C = str(CANARY).encode()
# What a hostile PAM environment might add around the items: must reach no hook, run nothing.
EXTRA = {b"BASH_ENV": bytes(EVIL), b"ENV": bytes(EVIL), b"PS4": b"$(touch " + _C + b")",
         b"SHELLOPTS": b"xtrace", b"IFS": b"/", b"PYTHONSTARTUP": bytes(EVIL),
         b"PYTHONPATH": b"/tmp", b"FOO": b"$(touch " + _C + b")", b"PATH": b"/tmp"}
PIECES = [
    b" ", b"  ", b"\t", b"'", b'"', b"\\", b"$", b"$(touch " + _C + b")", b"`touch " + _C + b"`",
    b";touch " + _C + b";", b"|touch " + _C, b"&& touch " + _C, b"\ntouch " + _C + b"\n",
    b"${IFS}", b"$((1+1))", b"*", b"?", b"~", b"<", b">", b"\n", b"\r", b"\r\n", b"\x1b[2J",
    b"\x1b]0;owned\x07", b"\x0b", b"\x0c", b"\x85", b"\x7f", b"%n", b"%s%s%s%s", b"%x", b"=",
    b"-", b"--help", b"../../etc/passwd", b"\xff", b"\xfe\xfe", b"\xc3\x28", b"\xed\xa0\x80",
    "é".encode(), "\u2028".encode(), "\u202e".encode(), b"root", b"hookrunner[1]: forged",
]
ITEMS = (b"PAM_USER", b"PAM_RHOST", b"PAM_RUSER", b"PAM_TTY", b"PAM_SERVICE")


def _no_nul(b: bytes) -> bytes:
    return b.replace(b"\0", b"")


SHORT = st.lists(st.sampled_from(PIECES) | st.binary(min_size=1, max_size=12), max_size=10).map(
    lambda parts: _no_nul(b"".join(parts)))
HUGE = SHORT.map(lambda v: ((v or b"x") * (65536 // len(v or b"x") + 1))[:65536])  # 64 KiB
VALUE = st.one_of(SHORT, SHORT, SHORT, HUGE)  # one in four is 64 KiB long
SHORT_ITEMS = st.fixed_dictionaries({}, optional={k: SHORT for k in ITEMS})  # the bulk
ITEM_SETS = st.fixed_dictionaries({}, optional={k: VALUE for k in ITEMS})


# -------------------------------------------------------------------------- in-process

_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_0123456789"
ENV_NAMES = st.builds(str.__add__, st.sampled_from(_ALNUM[:53]), st.text(_ALNUM, max_size=11)) | \
    st.sampled_from(["LD_PRELOAD", "LD_LIBRARY_PATH", "PYTHONPATH", "PYTHONSTARTUP", "BASH_ENV",
                     "ENV", "IFS", "BASH_FUNC_x%%", "PERL5OPT", "GCONV_PATH", "LOCPATH", "PATH",
                     "HOME", "PAM_USER", "HOOKRUNNER_HOOK", "SHELL", "LANG", "TZ"])


@BULK
@given(items=SHORT_ITEMS, caller=st.dictionaries(ENV_NAMES, SHORT, max_size=8),
       pass_env=st.lists(ENV_NAMES, max_size=8))
def test_environment_is_the_allowlist_and_values_pass_unchanged(
        items: dict[bytes, bytes], caller: dict[str, bytes], pass_env: list[str]) -> None:
    caller_b = {k.encode(): v for k, v in caller.items()}
    env = hook_environment(items, "onauth", "10-x", pass_env=pass_env, caller=caller_b)
    for key, value in items.items():
        assert env[key] == value  # byte for byte
    for key, value in env.items():
        assert b"\0" not in key + value
        assert not FORBIDDEN.match(key)
        if key in items or key in (b"HOOKRUNNER_PHASE", b"HOOKRUNNER_HOOK", b"PATH"):
            continue
        # anything else is a pass_env name, taken from the caller, never a reserved one
        assert key.decode() in pass_env and not RESERVED.match(key)
        assert value == caller_b[key]
    assert env[b"PATH"] == FIXED_PATH
    assert (env[b"HOOKRUNNER_PHASE"], env[b"HOOKRUNNER_HOOK"]) == (b"onauth", b"10-x")


def unescape(text: str) -> bytes:
    if text.startswith('"') and text.endswith('"') and len(text) >= 2:
        text = text[1:-1]
    return re.sub(rb"\\x([0-9a-f]{2})", lambda m: bytes([int(m[1], 16)]), text.encode())


@BULK
@given(value=SHORT | st.text(max_size=64))
def test_escape_is_one_printable_line_and_unambiguous(value: bytes | str) -> None:
    text = escape(value)
    assert all(0x20 <= ord(c) < 0x7F for c in text)
    raw = os.fsencode(value) if isinstance(value, str) else value
    assert unescape(text) == raw


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    base = Path(tempfile.mkdtemp(prefix="hookrunner-hostile-", dir=shm))
    yield base
    shutil.rmtree(base, ignore_errors=True)


@BULK
@given(message=st.text(max_size=80) | SHORT.map(lambda b: b.decode("utf-8", "surrogateescape")),
       items=SHORT_ITEMS)
def test_every_log_record_is_one_line(scratch: Path, message: str, items: dict[bytes, bytes]) -> None:
    """Even text nobody escaped (a plugin's Deny message quoting ctx.user) stays one line."""
    path = scratch / "log"
    path.unlink(missing_ok=True)
    log = Log(path=str(path), root=str(scratch), use_syslog=False)  # /dev/shm: world-writable
    log.warning(f"onauth.d/50-x denied: {message} " + " ".join(escape(v) for v in items.values()))
    log.info(message)
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 3
    for line in lines[:2]:
        assert all(0x20 <= b < 0x7F for b in line), line


@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
@given(items=st.fixed_dictionaries({k: HUGE for k in ITEMS}))
def test_64_kib_values(scratch: Path, items: dict[bytes, bytes]) -> None:
    env = hook_environment(items, "onauth", "10-x")
    assert all(env[k] == v for k, v in items.items())
    for value in items.values():
        assert unescape(escape(value)) == value
    test_every_log_record_is_one_line.hypothesis.inner_test(  # type: ignore[attr-defined]
        scratch, "x", items)


# File names: any bytes but NUL and "/", as a package or an attacker with a writable
# directory elsewhere might produce them.
FILE_NAMES = st.binary(min_size=1, max_size=40).map(lambda b: b.replace(b"\0", b"").replace(b"/", b"")) \
    .filter(lambda b: b not in (b"", b".", b"..")) | st.sampled_from(
        [b"10-ok", b"20-ok.py", b"x.sh", b".hidden", b"x~", b"x.dpkg-old", b"a\n", b"a b", b"-",
         b"_", b"Z9", b"\xff", b"10-ok\n", b"x.py.py", b".py", b"a.PY"])
RUNNABLE = re.compile(rb"\A[A-Za-z0-9_-]+(\.py)?\Z")


@BULK
@given(names=st.lists(FILE_NAMES, max_size=6, unique=True))
def test_discovery_runs_only_run_parts_names_in_byte_order(scratch: Path, names: list[bytes]) -> None:
    root = scratch / "root"
    shutil.rmtree(root, ignore_errors=True)
    directory = root / "etc/security/onauth.d"
    directory.mkdir(parents=True)
    for name in names:
        path = os.path.join(os.fsencode(directory), name)
        with open(path, "wb") as f:
            f.write(b"#!/bin/sh\nexit 0\n")
        os.chmod(path, 0o755)
    found = discover("onauth", root)
    assert sorted(os.fsencode(os.path.basename(c.path)) for c in found) == sorted(names)  # nothing lost
    run = [c for c in found if c.action == "run"]
    for c in found:
        raw = os.fsencode(os.path.basename(c.path))
        assert (c.action == "run") <= bool(RUNNABLE.match(raw))
        if c.action == "skip":
            assert c.reason and "\n" not in escape(c.reason)
    expected = {os.fsencode(n) for n in (os.path.basename(c.path) for c in run)}
    assert expected == {n for n in names if RUNNABLE.match(n)} - {
        n + b".py" for n in names if RUNNABLE.match(n + b".py") and not n.endswith(b".py")}
    keys = [c.sort_key for c in run]
    assert keys == sorted(keys)


# Config: any structure of TOML values under known and unknown keys, and any bytes at all.

def toml_string(s: str) -> str:
    out = []
    for c in s:
        if c in '"\\':
            out.append("\\" + c)
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v).replace("inf", "inf").replace("nan", "nan")
    if isinstance(v, str):
        return toml_string(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{toml_string(k)} = {toml_value(x)}" for k, x in v.items()) + "}"


TEXT = st.text(st.characters(codec="utf-8"), max_size=20)
SCALARS = st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False) | TEXT | \
    st.sampled_from(["nobody", "@user", "root", "/var/log/x", "LANG", "LD_PRELOAD", "50-x"])
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(TEXT, inner, max_size=3), max_leaves=8)
KEYS = st.sampled_from(["timeout", "phase_timeout", "kill_grace", "max_output", "pass_env",
                        "log_file", "optional", "runas", "authtok", "show_output", "args",
                        "stop_on_failure"]) | TEXT
HOOK_TABLE = st.dictionaries(KEYS, VALUES, max_size=4)
DOCS = st.fixed_dictionaries({}, optional={
    "timeout": VALUES, "pass_env": st.lists(TEXT | st.sampled_from(["LANG", "LD_PRELOAD"])),
    "log_file": VALUES, "max_output": VALUES, "phase": st.dictionaries(
        st.sampled_from(["onauth", "onsessionclose"]) | TEXT, HOOK_TABLE, max_size=2),
    "hook": st.dictionaries(st.from_regex(r"\A[A-Za-z0-9_-]{1,8}\Z") | TEXT, HOOK_TABLE, max_size=3),
}) | st.dictionaries(KEYS, VALUES, max_size=4)


def render(doc: dict[str, Any]) -> str:
    return "".join(f"{toml_string(k)} = {toml_value(v)}\n" for k, v in doc.items())


def load_or_error(path: Path) -> Config | str:
    """The config if it loaded; else its one-line error (any other exception fails)."""
    try:
        config = load_config(path, required=True)
    except ConfigError as e:
        message = str(e)
        assert message.startswith(str(path)) and message.isprintable()  # one clean line
        return message
    for name in config.pass_env:
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) and not FORBIDDEN.match(name.encode())
    assert config.log_file is None or (config.log_file.startswith("/") and "\0" not in config.log_file)
    for name, hook in config.hooks.items():
        assert re.fullmatch(r"[A-Za-z0-9_-]+", name)
        assert hook.timeout is None or 0 < hook.timeout <= 86400
        assert hook.runas is None or hook.runas == "@user" or re.fullmatch(
            r"[a-z_][a-z0-9_.-]*\$?", hook.runas, re.I)
        assert all(isinstance(a, str) and "\0" not in a for a in hook.args)
    return config


@BULK
@given(doc=DOCS)
def test_config_values_load_or_fail_with_one_line(scratch: Path, doc: dict[str, Any]) -> None:
    path = scratch / "hookrunner.toml"
    path.write_text(render(doc))
    load_or_error(path)


@BULK
@given(data=st.binary(max_size=200) | DOCS.map(render).map(str.encode).flatmap(
    lambda b: st.integers(0, max(0, len(b) - 1)).map(lambda i: b[:i] + b"[=\"\xff" + b[i:])))
def test_config_bytes_load_or_fail_with_one_line(scratch: Path, data: bytes) -> None:
    path = scratch / "hookrunner.toml"
    path.write_bytes(data)
    load_or_error(path)


# -------------------------------------------------------------- the real dispatcher

PLUGIN = '''import os
import hookrunner

@hookrunner.hookimpl
def onsessionopen(ctx):
    values = [ctx.user, ctx.rhost, ctx.ruser, ctx.tty, ctx.service]
    with open(OUT + "/ctx", "wb") as f:
        f.write(b"\\0".join(b"-" if v is None else b"+" + os.fsencode(v) for v in values))
    if WANT == 2:
        raise hookrunner.Deny("no entry for " + str(ctx.user) + " from " + str(ctx.rhost))
'''


@pytest.fixture(scope="module")
def real() -> Iterator[Tree]:
    if os.geteuid() != 0:
        pytest.skip("hook trees must be owned by root (safety rules): run the tests as root")
    with tree() as t:
        t.hook("onsessionopen", "10-dump", f"#!/bin/sh\ncat /proc/$$/environ > {t.out}/env\n")
        t.hook("onsessionopen", "20-plugin.py",
               f"OUT = {str(t.out)!r}\nWANT = int(open(OUT + '/want').read())\n{PLUGIN}", mode=0o644)
        t.hook("onsessionopen", "30-echo", f"""#!/bin/sh
printf '%s' "$PAM_USER"
printf '%s' "$PAM_RHOST" >&2
want=$(cat {t.out}/want)
[ "$want" = 2 ] && exit 0
exit "$want"
""")
        t.config()
        EVIL.write_text(f"touch {CANARY}\n")
        try:
            yield t
        finally:
            EVIL.unlink(missing_ok=True)
            CANARY.unlink(missing_ok=True)


@REAL
@given(items=ITEM_SETS, want=st.sampled_from([0, 1, 2]))
def test_hostile_items_through_the_real_dispatcher(real: Tree, items: dict[bytes, bytes],
                                                   want: int) -> None:
    """want: 0 every hook succeeds, 1 the last exits 1, 2 the plugin denies."""
    t = real
    for name in ("env", "ctx"):
        (t.out / name).unlink(missing_ok=True)
    t.log_file.unlink(missing_ok=True)
    (t.out / "want").write_text(str(want))
    env = {**EXTRA, **items}
    r = t.run("run", "onsessionopen", env=env, timeout=60)

    assert r.returncode == (0 if want == 0 else 1), r.stderr
    assert r.stderr == b""
    assert not CANARY.exists(), "a PAM value was run as a command"

    got = environ(t.out / "env")
    assert {k: v for k, v in got.items() if k.startswith(b"PAM_")} == {
        **items, b"PAM_TYPE": b"open_session"}
    assert set(got) == {*items, b"PAM_TYPE", b"HOOKRUNNER_PHASE", b"HOOKRUNNER_HOOK", b"PATH",
                        b"HOOKRUNNER_ROOT"}
    assert got[b"PATH"] == FIXED_PATH

    ctx = (t.out / "ctx").read_bytes().split(b"\0")
    assert ctx == [b"+" + items[k] if k in items else b"-" for k in ITEMS]

    # one record per hook, plus one per non-empty output stream of 30-echo
    expected = 3 + bool(items.get(b"PAM_USER")) + bool(items.get(b"PAM_RHOST"))
    lines = t.log_file.read_bytes().split(b"\n")
    assert lines[-1] == b""
    for line in lines[:-1]:
        assert re.match(rb"\A\S+ hookrunner\[\d+\]: onsessionopen\.d/[\x20-\x7e]*\Z", line), line
    # (a plugin installed in the interpreter's site-packages may add records of its own)
    ours = [line for line in lines if re.search(rb"\.d/(10-dump|20-plugin|30-echo) ", line)]
    assert len(ours) == expected, lines


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=DOCS.map(render).map(str.encode) | st.binary(max_size=100))
def test_bad_config_is_exit_3_and_one_line(real: Tree, scratch: Path, data: bytes) -> None:
    """Whatever the config holds: the dispatcher runs (0) or refuses with one line (3)."""
    path = scratch / "fuzz.toml"
    path.write_bytes(data)
    try:
        loaded = load_or_error(path)
    except Exception:  # the in-process tests above report it
        return
    valid = isinstance(loaded, Config)
    # A fuzzed log_file could be any absolute path: never let the dispatcher write there.
    assume(not valid or loaded.log_file is None)  # type: ignore[union-attr]
    config = Path(real.root / "etc/security/fuzz.toml")
    shutil.copy(path, config)
    config.chmod(0o644)
    (real.out / "want").write_text("0")
    r = run_hookrunner(["run", "onsessionopen", "--root", real.root, "--config", config])
    if valid:
        assert r.returncode in (0, 1), r.stderr  # 1: a fuzzed config may set runas, timeouts...
    else:
        assert r.returncode == 3
        assert r.stderr.count(b"\n") == 1 and r.stderr.startswith(b"hookrunner: " + bytes(config))
    assert stat.S_IMODE(config.stat().st_mode) == 0o644
