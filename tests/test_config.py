"""hookrunner.toml: defaults, every key, and errors that name the file, the key and the line."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hookrunner.config import Config, ConfigError, HookConfig, PhaseConfig
from hookrunner.dropins import load_config


def load(tmp_path: Path, text: str | bytes) -> Config:
    path = tmp_path / "hookrunner.toml"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return load_config(path)


def error(tmp_path: Path, text: str | bytes) -> str:
    with pytest.raises(ConfigError) as e:
        load(tmp_path, text)
    message = str(e.value)
    assert len(message.splitlines()) == 1, message
    return message


def test_missing_file_is_the_defaults(tmp_path: Path) -> None:
    config = load_config(tmp_path / "nope.toml")
    assert config == Config()
    assert (config.timeout, config.phase_timeout, config.kill_grace, config.max_output) == (10, 30, 1, 65536)
    assert (config.pass_env, config.log_file, config.path) == ((), None, None)
    assert config.hook("any") == HookConfig()
    assert config.phase("onauth") == PhaseConfig()


def test_missing_file_when_required_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"^{tmp_path}/nope.toml: no such file$"):
        load_config(tmp_path / "nope.toml", required=True)


def test_empty_file_is_the_defaults(tmp_path: Path) -> None:
    config = load(tmp_path, "# nothing\n")
    assert config == Config(path=tmp_path / "hookrunner.toml")


def test_every_key(tmp_path: Path) -> None:
    config = load(tmp_path, """
timeout = 2.5
phase_timeout = 20
kill_grace = 0.2
max_output = 1024
pass_env = ["LANG", "TZ", "LD_PRELOAD", "PYTHONPATH"]
log_file = "/var/log/hookrunner.log"

[phase.onsessionclose]
stop_on_failure = false
[phase.onauth]
stop_on_failure = true
timeout = 5

[hook."50-slow"]
timeout = 2
optional = true
runas = "nobody"
authtok = true
show_output = true
args = ["--flag", "two words"]

[hook.as_user]
runas = "@user"
""")
    assert (config.timeout, config.phase_timeout, config.kill_grace) == (2.5, 20.0, 0.2)
    assert config.max_output == 1024
    assert config.pass_env == ("LANG", "TZ")  # forbidden names dropped, whatever the config says
    assert config.log_file == "/var/log/hookrunner.log"
    assert config.phase("onsessionclose") == PhaseConfig(stop_on_failure=False)
    assert config.phase("onauth") == PhaseConfig(stop_on_failure=True, timeout=5.0)
    assert config.phase("onaccount") == PhaseConfig()
    assert config.hook("50-slow") == HookConfig(timeout=2.0, optional=True, runas="nobody", authtok=True,
                                                show_output=True, args=("--flag", "two words"))
    assert config.hook("as_user").runas == "@user"
    assert config.hook("other") == HookConfig()


@pytest.mark.parametrize("name", ["LD_PRELOAD", "LD_LIBRARY_PATH", "PYTHONPATH", "PYTHONHOME", "BASH_ENV",
                                  "ENV", "IFS", "BASH_FUNC_x", "PERL5LIB", "PERL5OPT", "GCONV_PATH",
                                  "LOCPATH"])
def test_forbidden_pass_env_names_are_dropped(tmp_path: Path, name: str) -> None:
    assert load(tmp_path, f'pass_env = ["LANG", "{name}"]\n').pass_env == ("LANG",)


def test_unknown_top_level_key(tmp_path: Path) -> None:
    message = error(tmp_path, "timeout = 3\n\ntimeuot = 3\n")
    assert message.startswith(f"{tmp_path}/hookrunner.toml:3: timeuot: unknown key (known: ")


def test_unknown_hook_key(tmp_path: Path) -> None:
    message = error(tmp_path, '[hook."50-x"]\ntimeout = 1\noptinal = true\n')
    assert message.startswith(f"{tmp_path}/hookrunner.toml:3: hook.50-x.optinal: unknown key")


def test_unknown_phase_key(tmp_path: Path) -> None:
    message = error(tmp_path, "[phase.onauth]\nstop = true\n")
    assert message.startswith(f"{tmp_path}/hookrunner.toml:2: phase.onauth.stop: unknown key")


def test_unknown_phase(tmp_path: Path) -> None:
    message = error(tmp_path, "\n[phase.onlogin]\nstop_on_failure = true\n")
    assert message.startswith(f"{tmp_path}/hookrunner.toml:2: phase.onlogin: unknown phase")


@pytest.mark.parametrize("text,line,key", [
    ('timeout = "10"', 1, "timeout"),
    ("timeout = 0", 1, "timeout"),
    ("timeout = -1", 1, "timeout"),
    ("timeout = true", 1, "timeout"),
    ("timeout = nan", 1, "timeout"),
    ("timeout = inf", 1, "timeout"),
    ("timeout = 86401", 1, "timeout"),
    ("phase_timeout = [1]", 1, "phase_timeout"),
    ('kill_grace = "1s"', 1, "kill_grace"),
    ("max_output = 1.5", 1, "max_output"),
    ("max_output = -1", 1, "max_output"),
    ("max_output = true", 1, "max_output"),
    ('pass_env = "LANG"', 1, "pass_env"),
    ("pass_env = [1]", 1, "pass_env"),
    ('pass_env = ["A B"]', 1, "pass_env"),
    ('pass_env = ["LANG\\n"]', 1, "pass_env"),
    ('log_file = "relative.log"', 1, "log_file"),
    ("log_file = 3", 1, "log_file"),
    ("phase = 1", 1, "phase"),
    ("[phase]\nonauth = 1", 2, "phase.onauth"),
    ("[phase.onauth]\nstop_on_failure = 1", 2, "phase.onauth.stop_on_failure"),
    ('[phase.onauth]\ntimeout = "x"', 2, "phase.onauth.timeout"),
    ("hook = []", 1, "hook"),
    ('[hook."x.sh"]\noptional = true', 1, 'hook."x.sh"'),
    ("[hook]\nx = 1", 2, "hook.x"),
    ('[hook.x]\noptional = "yes"', 2, "hook.x.optional"),
    ("[hook.x]\nauthtok = 1", 2, "hook.x.authtok"),
    ("[hook.x]\nshow_output = 0", 2, "hook.x.show_output"),
    ("[hook.x]\ntimeout = 0", 2, "hook.x.timeout"),
    ('[hook.x]\nrunas = "no body"', 2, "hook.x.runas"),
    ('[hook.x]\nrunas = "nobody\\n"', 2, "hook.x.runas"),
    ("[hook.x]\nrunas = 0", 2, "hook.x.runas"),
    ('[hook.x]\nargs = "-v"', 2, "hook.x.args"),
    ("[hook.x]\nargs = [1]", 2, "hook.x.args"),
    ('[hook.x]\nargs = ["a\\u0000b"]', 2, "hook.x.args"),
])
def test_wrong_types_and_values_name_file_line_and_key(tmp_path: Path, text: str, line: int, key: str) -> None:
    message = error(tmp_path, "# hookrunner\n" + text + "\n")
    assert message.startswith(f"{tmp_path}/hookrunner.toml:{line + 1}: {key}: "), message


def test_line_is_found_in_the_right_table(tmp_path: Path) -> None:
    message = error(tmp_path, 'timeout = 3\n[hook.a]\ntimeout = 2\n[hook.b]\ntimeout = "2"\n')
    assert message.startswith(f"{tmp_path}/hookrunner.toml:5: hook.b.timeout: ")


def test_line_is_found_after_a_header_with_a_comment(tmp_path: Path) -> None:
    message = error(tmp_path, '[hook."50-slow"]   # the slow one\ntimeout = "2"\n')
    assert message.startswith(f"{tmp_path}/hookrunner.toml:2: hook.50-slow.timeout: ")


@pytest.mark.parametrize("key,shown", [('"a\\nb"', '"a\\nb"'), ('"a\\u2028b"', '"a\\U00002028b"'),
                                       ('"q\\"x"', '"q\\"x"')])
def test_hostile_key_names_stay_on_one_line(tmp_path: Path, key: str, shown: str) -> None:
    # (the line is found when the key is spelled the way the message spells it)
    line = ":1" if "2028" not in key else ""
    message = error(tmp_path, f"{key} = 1\n")
    assert message.startswith(f"{tmp_path}/hookrunner.toml{line}: {shown}: unknown key"), message
    message = error(tmp_path, f"[hook.{key}]\n")
    assert message.startswith(f"{tmp_path}/hookrunner.toml{line}: hook.{shown}: a hook name"), message


def test_key_in_inline_table_still_names_file_and_key(tmp_path: Path) -> None:
    message = error(tmp_path, 'hook = { x = { timeout = "2" } }\n')
    assert message.startswith(f"{tmp_path}/hookrunner.toml")
    assert "hook.x.timeout" in message


@pytest.mark.parametrize("text,line", [
    ("timeout = \n", 1),
    ("a = 1\nb = [1,\n", 3),
    ("\n\n[hook.x\n", 3),
    ('x = "unterminated\n', 1),
    ("timeout = 1\ntimeout = 2\n", 2),
])
def test_bad_toml_names_file_and_line(tmp_path: Path, text: str, line: int) -> None:
    message = error(tmp_path, text)
    assert message.startswith(f"{tmp_path}/hookrunner.toml:{line}: "), message


def test_not_utf8(tmp_path: Path) -> None:
    message = error(tmp_path, b'log_file = "/var/log/\xff"\n')
    assert message.startswith(f"{tmp_path}/hookrunner.toml")
    assert "UTF-8" in message


def test_deeply_nested_value_is_a_config_error(tmp_path: Path) -> None:
    message = error(tmp_path, "x = " + "[" * 5000 + "]" * 5000 + "\n")
    assert message.startswith(f"{tmp_path}/hookrunner.toml")


def test_unreadable_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"^{tmp_path}: cannot read: "):
        load_config(tmp_path)


# ---- property: whatever the text, only ConfigError ----------------------------------------

TOKENS = ["timeout", "phase_timeout", "kill_grace", "max_output", "pass_env", "log_file", "phase",
          "hook", "onauth", "onsessionclose", "stop_on_failure", "optional", "runas", "authtok",
          "show_output", "args", '"50-x"', "x", "=", ".", "[", "]", "[[", "]]", "{", "}", ",", '"', "'",
          "1", "-1", "0", "1e400", "nan", "inf", "true", "false", '"@user"', '"/log"', '"LANG"', "\n", " ",
          "#", "\\", "\\n", "\\u2028", "\\\"", "\x00", "\x7f", "\ud800", "é", "1979-05-27T07:32:00Z", '"""',
          "0x10", "_"]
toml_ish = st.one_of(
    st.lists(st.sampled_from(TOKENS), max_size=40).map("".join),
    st.text(max_size=200),
    st.binary(max_size=100),
)


@settings(max_examples=400, deadline=None)
@given(toml_ish)
def test_any_text_raises_nothing_but_config_error(text: str | bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "hookrunner.toml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
        try:
            config = load_config(path)
        except ConfigError as e:
            assert len(str(e).splitlines()) == 1, str(e)
            assert str(e).startswith(str(path))
        else:
            assert isinstance(config, Config)


@settings(max_examples=3000)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=12))
def test_valid_user_name_is_the_documented_rule(name: str) -> None:
    import re

    from hookrunner.config import valid_user_name

    rule = re.fullmatch(r"[a-z_][a-z0-9_.-]*\$?", name, re.I | re.ASCII)
    assert valid_user_name(name) == bool(rule)
