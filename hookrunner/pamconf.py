"""Linux-PAM's configuration as libpam reads it: lines, tokens, controls and stacks.

A port of libpam 1.5.2 (Debian 12), for ``hookrunner check --pam-dir``: ``_pam_assemble_line``
(``#`` cuts a line and ends it, a trailing ``\\`` joins the next one, blank and comment lines
inside a continuation are skipped), ``_pam_StrTok`` (blanks are space, tab and newline only;
``[...]`` is one token, the first ``]`` ends it, ``\\]`` inside is ``]``), ``_pam_parse_control``
(``return=action`` pairs, case-sensitive, matched by prefix; any error makes every return
``bad``) and ``_pam_parse_conf_file``: a line of an unknown type, without control or module,
or an include whose file cannot be opened is installed as a handler that always fails.
``substack`` puts its lines one level deeper. Debian's ``@include FILE`` takes FILE's lines
of the type being read. An include loop or nesting deeper than 16 is a failing handler
(libpam 1.5.2 recurses until it runs out of descriptors; later versions refuse it).
"""

from __future__ import annotations

import os
import posixpath
import stat
from pathlib import Path
from typing import NamedTuple, final

TYPES = ("auth", "account", "password", "session")
# pam_tokens.h: the index is the PAM return code; "default" (32) sets every unset one.
RETURNS = (
    "success", "open_err", "symbol_err", "service_err", "system_err", "buf_err",
    "perm_denied", "auth_err", "cred_insufficient", "authinfo_unavail", "user_unknown",
    "maxtries", "new_authtok_reqd", "acct_expired", "session_err", "cred_unavail",
    "cred_expired", "cred_err", "no_module_data", "conv_err", "authtok_err",
    "authtok_recover_err", "authtok_lock_busy", "authtok_disable_aging", "try_again",
    "ignore", "abort", "authtok_expired", "module_unknown", "bad_item", "conv_again",
    "incomplete",
)  # fmt: skip
_RETURN_WORDS = (*RETURNS, "default")
SUCCESS, PERM_DENIED, PAM_IGNORE = 0, 6, 25
# Actions: a jump over N modules is N > 0; the others are these (pam_private.h).
IGNORE, OK, DONE, BAD, DIE, RESET = 0, -1, -2, -3, -4, -5
ACTION_NAMES = ("ignore", "ok", "done", "bad", "die", "reset")
_UNDEF = -6
_INT_MAX = 2**31 - 1
_BLANKS = " \n\t"  # _pam_StrTok's delimiters and _pam_assemble_line's
_C_SPACE = " \t\n\v\f\r"  # isspace() in the C locale
_MAX_LEVEL = 16  # PAM_SUBSTACK_MAX_LEVEL
_KEYWORDS: dict[str, tuple[dict[int, int], int]] = {  # control: (set actions, default)
    "required": ({SUCCESS: OK, 12: OK, PAM_IGNORE: IGNORE}, BAD),
    "requisite": ({SUCCESS: OK, 12: OK, PAM_IGNORE: IGNORE}, DIE),
    "optional": ({SUCCESS: OK, 12: OK}, IGNORE),
    "sufficient": ({SUCCESS: DONE, 12: DONE}, IGNORE),
}
ALL_BAD = (BAD,) * len(RETURNS)


@final
class Line(NamedTuple):
    """One logical line; ``where`` is ``FILE:LINE``. ``actions`` holds one action per return
    code (empty for include and substack); ``error`` is why libpam could not parse the
    control, if it could not (then every action is ``bad``)."""

    where: str
    type: str
    control: str
    actions: tuple[int, ...]
    error: str | None
    module: str
    args: tuple[str, ...]

    @property
    def name(self) -> str:
        return posixpath.basename(self.module)


@final
class Entry(NamedTuple):
    """A handler in a stack: ``kind`` is ``module``, ``fail`` (always fails with
    PAM_PERM_DENIED, acting on its line's actions) or ``substack`` (where a deeper level
    starts); ``level`` is the substack depth."""

    line: Line
    level: int
    kind: str


def tokens(text: str) -> list[str]:
    """``_pam_StrTok``: the words of a line, a ``[...]`` word without its brackets."""
    return [word for word, _written in words(text)]


def words(text: str) -> list[tuple[str, str]]:
    """The words of a line as libpam takes them, each with the text it was written as."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in _BLANKS:
            i += 1
        if i >= n:
            return out
        start = i
        if text[i] == "[":
            word, i = [], i + 1
            while i < n and text[i] != "]":
                if text[i] == "\\" and i + 1 < n and text[i + 1] == "]":
                    i += 1
                word.append(text[i])
                i += 1
            out.append(("".join(word), text[start : i + 1]))
            i += 1  # past "]": the next word may follow it directly
        else:
            while i < n and text[i] not in _BLANKS:
                i += 1
            out.append((text[start:i], text[start:i]))
            i += 1


def logical_lines(text: str) -> list[tuple[int, str]]:
    """``_pam_assemble_line``: (number of its first physical line, the assembled line)."""
    out: list[tuple[int, str]] = []
    start, parts = 0, list[str]()
    for number, physical in enumerate(text.split("\n"), 1):
        line = physical.split("\0", 1)[0]  # C strings end there
        content = line.lstrip(_BLANKS)
        if not content or content[0] == "#":
            continue  # blank or comment: skipped, also inside a continuation
        start = start or number
        if "#" in content:
            parts.append(line.split("#", 1)[0])  # a comment ends the line, "\" or not
        else:
            line = line.rstrip(_BLANKS)
            if line.endswith("\\"):
                parts.append(line[:-1] + " ")
                continue
            parts.append(line)
        out.append((start, "".join(parts)))
        start, parts = 0, []
    if parts:  # a continuation at the end of the file
        out.append((start, "".join(parts)))
    return out


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i] in _C_SPACE:
        i += 1
    return i


def parse_control(text: str) -> tuple[tuple[int, ...], str | None]:
    """A control's actions, one per return code, and libpam's parse error if any."""
    keyword = _KEYWORDS.get(text.lower()) if text.isascii() else None  # strcasecmp
    if keyword is not None:
        given, default = keyword
        return tuple(given.get(code, default) for code in range(len(RETURNS))), None
    actions = [_UNDEF] * len(RETURNS)
    i = 0
    while (i := _skip_space(text, i)) < len(text):
        ret = next((r for r, name in enumerate(_RETURN_WORDS) if text.startswith(name, i)), None)
        if ret is None or i + len(_RETURN_WORDS[ret]) >= len(text):
            return ALL_BAD, "expecting return value"
        i = _skip_space(text, i + len(_RETURN_WORDS[ret]))
        if i >= len(text) or text[i] != "=":
            return ALL_BAD, "expecting '='"
        i = _skip_space(text, i + 1)
        if i >= len(text):
            return ALL_BAD, "expecting action"
        act = next((a for a, name in enumerate(ACTION_NAMES) if text.startswith(name, i)), None)
        if act is not None:
            action, i = -act, i + len(ACTION_NAMES[act])
        else:
            end = i
            while end < len(text) and text[end] in "0123456789":
                end += 1
            if end == i:
                return ALL_BAD, "expecting jump number"
            action, i = int(text[i:end]), end
            if action > _INT_MAX:  # 1.5.2 wraps it around; later versions refuse it
                return ALL_BAD, "expecting smaller jump number"
            if action == 0:
                return ALL_BAD, "expecting non-zero"
        if ret == len(RETURNS):
            actions = [action if a == _UNDEF else a for a in actions]
        else:
            actions[ret] = action
    return tuple(BAD if a == _UNDEF else a for a in actions), None


def read_text(path: Path, limit: int = 1 << 20) -> str | None:
    """A file's text (bounded; "" for a directory, FIFO or device, which is never read),
    or None when it cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except (OSError, ValueError):
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        chunks: list[bytes] = []
        while (size := sum(map(len, chunks))) < limit and (chunk := os.read(fd, limit - size)):
            chunks.append(chunk)
        return b"".join(chunks).decode("utf-8", "replace")
    except OSError:
        return ""
    finally:
        os.close(fd)


def on_disk(path: str, root: Path | None) -> Path:
    """The file an absolute path names, looked up under ``root`` when given."""
    return (root or Path("/")) / path.lstrip("/")


@final
class Reader:
    """Builds the stacks of the services in one PAM directory; each file is read once."""

    def __init__(self, pam_dir: Path, root: Path | None) -> None:
        self.pam_dir, self.root = pam_dir, root
        self._texts: dict[Path, str | None] = {}

    def stack(self, service: Path, kind: str) -> list[Entry]:
        """The handlers libpam installs for ``kind`` (auth, account, ...) of a service."""
        return self._load(service, kind, True, 0, (service,)) or []

    def _text(self, path: Path) -> str | None:
        if path not in self._texts:
            self._texts[path] = read_text(path)
        return self._texts[path]

    def _target(self, name: str) -> Path:
        return on_disk(name, self.root) if name.startswith("/") else self.pam_dir / name

    def _load(self, path: Path, want: str, any_type: bool, level: int,
              chain: tuple[Path, ...]) -> list[Entry] | None:
        """``path``'s handlers of type ``want``; None if it cannot be opened. ``any_type``:
        read as libpam reads a service file (a line of an unknown type counts as auth)."""
        text = self._text(path)
        if text is None:
            return None
        stack: list[Entry] = []
        for number, assembled in logical_lines(text):
            parsed = self._line(f"{path}:{number}", words(assembled), want, any_type)
            if parsed is None:
                continue
            line, usable = parsed
            if line.control in ("@include", "include", "substack"):
                stack += self._include(line, any_type and line.control == "@include", level,
                                       chain)
            else:
                stack.append(Entry(line, level, "module" if usable else "fail"))
        return stack

    @staticmethod
    def _line(where: str, written: list[tuple[str, str]], want: str, any_type: bool
              ) -> tuple[Line, bool] | None:
        """One line of a file read for type ``want`` (None: another type), and whether libpam
        can use it (a known type, a control and a module: else it installs a failing one)."""
        if not written:
            return None
        plain = [word for word, _ in written] + ["", ""]
        if plain[0] == "@include":  # Debian: the file's lines of the type being read
            return Line(where, want, "@include", ALL_BAD, None, plain[1], ()), True
        name = plain[0].removeprefix("-")
        known = name.isascii() and name.lower() in TYPES
        if (name.lower() if known else "auth" if any_type else want) != want:
            return None
        control = plain[1]
        if control.isascii() and control.lower() in ("include", "substack"):
            return Line(where, want, control.lower(), ALL_BAD, None, plain[2], ()), True
        actions, error = parse_control(control) if len(written) > 1 else (ALL_BAD, None)
        shown = written[1][1] if len(written) > 1 else ""
        line = Line(where, want, shown, actions, error, plain[2], tuple(plain[3:-2]))
        return line, known and len(written) > 2

    def _include(self, line: Line, any_type: bool, level: int,
                 chain: tuple[Path, ...]) -> list[Entry]:
        deeper = line.control == "substack"
        head = [Entry(line, level, "substack")] if deeper else []
        target = self._target(line.module) if line.module else None
        body = None
        if target is not None and target not in chain and level + deeper < _MAX_LEVEL:
            body = self._load(target, line.type, any_type, level + deeper, (*chain, target))
        return head + (body if body is not None else [Entry(line, level, "fail")])
