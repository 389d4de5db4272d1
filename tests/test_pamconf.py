"""hookrunner.pamconf: Linux-PAM's line, token and control syntax, property-tested.

What libpam does with these lines is checked against the real libpam in
tests/e2e/test_pam_controls.py; here: hostile text never crashes the parser, and what it
returns keeps its invariants.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hookrunner.pamconf import (
    ACTION_NAMES,
    ALL_BAD,
    BAD,
    DONE,
    IGNORE,
    OK,
    RETURNS,
    Reader,
    logical_lines,
    parse_control,
    tokens,
)

INT_MAX = 2**31 - 1
PIECES = [*" \t\n\r\v\f[]\\#=-_0123456789", "success", "default", "ok", "done", "ignore", "reset",
          "auth", "é", "\x00", "\udcff", "\u2028", "\u0661"]
hostile = st.lists(st.sampled_from(PIECES) | st.characters(), max_size=80).map("".join)


@settings(max_examples=1000, deadline=None)
@given(text=hostile)
def test_hostile_text_never_crashes_and_keeps_the_invariants(text: str) -> None:
    for word in tokens(text):
        assert isinstance(word, str)
    for number, line in logical_lines(text):
        assert 1 <= number <= text.count("\n") + 1
        assert "#" not in line and "\0" not in line
    actions, error = parse_control(text)
    assert len(actions) == len(RETURNS) == 32
    assert all(-5 <= a <= INT_MAX for a in actions)
    assert error is None or actions == ALL_BAD


@settings(max_examples=500, deadline=None)
@given(text=hostile.filter(lambda t: "[" not in t))
def test_without_brackets_words_are_split_at_space_tab_newline_only(text: str) -> None:
    assert tokens(text) == [w for w in re.split("[ \t\n]+", text) if w]


plain_word = st.text(st.characters(blacklist_characters=" \t\n"), min_size=1).filter(
    lambda w: not w.startswith("["))
bracketed = st.text(st.characters(blacklist_characters="\n"), max_size=20).filter(
    lambda w: not w.endswith("\\"))


@settings(max_examples=500, deadline=None)
@given(words=st.lists(st.tuples(st.booleans(), plain_word, bracketed), max_size=8),
       gap=st.sampled_from([" ", "\t", "  \t "]))
def test_words_and_escaped_brackets_round_trip(words: list[tuple[bool, str, str]], gap: str) -> None:
    expected = [inner if use_brackets else plain for use_brackets, plain, inner in words]
    written = ["[" + inner.replace("]", "\\]") + "]" if use_brackets else plain
               for use_brackets, plain, inner in words]
    assert tokens(gap.join(written)) == expected


RETURN_WORDS = [*RETURNS, "default"]
pairs = st.lists(st.tuples(st.sampled_from(RETURN_WORDS),
                           st.sampled_from([*ACTION_NAMES, "1", "7", "2147483647"])), max_size=10)


@settings(max_examples=1000, deadline=None)
@given(pairs=pairs, gaps=st.lists(st.sampled_from(["", " ", "\t", " \v\f\r"]), min_size=40, max_size=40))
def test_controls_mean_what_pam_conf_5_says(pairs: list[tuple[str, str]], gaps: list[str]) -> None:
    """``return=action`` pairs; later ones win; ``default`` sets those not set yet (so far);
    what is left is ``bad``. A pair may follow an action with no blank in between."""
    undef = object()
    expected: list[object] = [undef] * 32
    for ret, act in pairs:
        action = -ACTION_NAMES.index(act) if act in ACTION_NAMES else int(act)
        if ret == "default":
            expected = [action if e is undef else e for e in expected]
        else:
            expected[RETURNS.index(ret)] = action
    text = "".join(f"{gaps[i]}{r}{gaps[i + 1]}={gaps[i + 2]}{a}{gaps[i + 3] or ' '}"
                   for i, (r, a) in enumerate(pairs))
    assert parse_control(text) == (tuple(BAD if e is undef else e for e in expected), None)


@pytest.mark.parametrize(("control", "success", "failure", "ignore"), [
    ("required", OK, BAD, IGNORE), ("Requisite", OK, -4, IGNORE), ("OPTIONAL", OK, IGNORE, IGNORE),
    ("sufficient", DONE, IGNORE, IGNORE), ("[default=1]"[1:-1], 1, 1, 1),
    ("success=ok", OK, BAD, BAD), ("default=die success=done", DONE, -4, -4),
])
def test_keywords_and_pairs(control: str, success: int, failure: int, ignore: int) -> None:
    actions, error = parse_control(control)
    assert error is None
    assert (actions[0], actions[4], actions[25]) == (success, failure, ignore)


def test_lines_as_libpam_assembles_them() -> None:
    text = ("  # comment \\\n"
            "auth required \\\n"
            "\n"
            "# skipped inside a continuation too\n"
            "   pam_unix.so \\  # a comment ends the line, the backslash stays\n"
            "auth\trequired\tpam_permit.so\t\\\t\n"
            "  nullok\n"
            "session required pam_x.so \\")
    assert logical_lines(text) == [
        (2, "auth required     pam_unix.so \\  "),
        (6, "auth\trequired\tpam_permit.so\t   nullok"),
        (8, "session required pam_x.so  "),
    ]


def test_reader_levels_and_failing_handlers() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        pam_dir = Path(tmp)
        (pam_dir / "svc").write_text(
            "auth substack sub\n"
            "auth include missing\n"
            "auht required pam_typo.so\n"  # unknown type: a failing auth handler
            "auth required\n"  # no module: failing
            "auth [success=1 default=ignore] pam_unix.so\n"
            "account include svc\n"  # a loop: failing
            "@include sub\n")
        (pam_dir / "sub").write_text("auth required pam_a.so\nsession required pam_b.so\n"
                                     "auth substack sub2\n")
        (pam_dir / "sub2").write_text("auth sufficient pam_c.so\n")
        reader = Reader(pam_dir, None)
        auth = [(e.kind, e.level, e.line.module, e.line.where.rsplit("/", 1)[1])
                for e in reader.stack(pam_dir / "svc", "auth")]
        assert auth == [
            ("substack", 0, "sub", "svc:1"), ("module", 1, "pam_a.so", "sub:1"),
            ("substack", 1, "sub2", "sub:3"), ("module", 2, "pam_c.so", "sub2:1"),
            ("fail", 0, "missing", "svc:2"), ("fail", 0, "pam_typo.so", "svc:3"),
            ("fail", 0, "", "svc:4"), ("module", 0, "pam_unix.so", "svc:5"),
            ("module", 0, "pam_a.so", "sub:1"),  # @include: same level, this type
            ("substack", 0, "sub2", "sub:3"), ("module", 1, "pam_c.so", "sub2:1"),
        ]
        account = [(e.kind, e.line.where.rsplit("/", 1)[1]) for e in reader.stack(pam_dir / "svc", "account")]
        assert account == [("fail", "svc:6")]
        assert [e.line.module for e in reader.stack(pam_dir / "svc", "session")] == ["pam_b.so"]
