"""How libpam walks a stack, to tell whether a hook's success alone can let it pass.

A port of ``_pam_dispatch_aux`` (pam_dispatch.c, Linux-PAM 1.5.2) for pam_authenticate,
pam_acct_mgmt, pam_chauthtok and pam_open_session: the impression (undecided, positive,
negative) and whether the status is PAM_SUCCESS; ``ok`` and ``done`` count a result only
while nothing failed, ``done`` ends the stack once it is positive, ``bad`` and ``die`` make it
negative (``die`` ends it), ``reset`` returns to the state where the (sub)stack began, a jump
skips N modules without touching the verdict (a substack counts as one; past the end it is
"bad jump in stack": negative); ``done`` and ``die`` in a substack end only the substack. The
stack passes if its status is PAM_SUCCESS and its impression positive. Not modelled: the
frozen chains of pam_setcred and pam_close_session (actions chosen by the codes of
authenticate and open_session), PAM_INCOMPLETE.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple, final

from .pamconf import BAD, DIE, DONE, OK, PERM_DENIED, RESET, SUCCESS, Entry, Line

UNDEF, POSITIVE, NEGATIVE = 0, 1, -1
INVALID = -1  # a code outside 0..31 (libpam acts as for "bad")
_START = (UNDEF, False)
# What a module may return: anything (not PAM_INCOMPLETE), but for three whose source says
# more; PAM_MODULE_UNKNOWN (28) if it cannot be loaded.
_ANY = (*range(31), INVALID)
_UNIX = tuple(code for code in _ANY if code != 25)  # pam_unix never returns PAM_IGNORE
_DENY = {"auth": 7, "account": 7, "password": 20, "session": 14}  # pam_deny.c
_GET_USER_ERRORS = (4, 5, 10, 19, 26)  # pam_permit's authenticate asks pam_get_user


@final
class Run(NamedTuple):
    """One walk's state: impression, status is PAM_SUCCESS, the states where the levels
    began (``substates`` in libpam)."""

    impression: int
    success: bool
    saved: tuple[tuple[int, bool], ...]

    @property
    def passes(self) -> bool:
        return self.success and self.impression == POSITIVE

    def enter(self, level: int) -> Run:
        saved = list(self.saved) + [_START] * (level + 1 - len(self.saved))
        saved[level] = (self.impression, self.success)
        return self._replace(saved=tuple(saved))

    def act(self, action: int, code: int, level: int) -> Run:
        if action == RESET:
            impression, success = self.saved[level] if level < len(self.saved) else _START
            return self._replace(impression=impression, success=success)
        if action in (OK, DONE) and (
            self.impression == UNDEF or (self.impression == POSITIVE and self.success)
        ):
            return self._replace(impression=POSITIVE, success=code == SUCCESS)
        if action in (BAD, DIE) and self.impression != NEGATIVE:
            return self._replace(impression=NEGATIVE, success=code == SUCCESS)
        return self  # ignore, a jump, or a verdict that this action does not change

    def bad_jump(self) -> Run:
        return self._replace(impression=NEGATIVE, success=False)


START = Run(UNDEF, False, (_START,))
Codes = Callable[[int], Iterable[int]]


def module_codes(line: Line) -> tuple[int, ...]:
    """The codes a module on ``line`` may return."""
    if line.name == "pam_deny.so":
        return (_DENY.get(line.type, 7), 28)
    if line.name == "pam_permit.so":
        return (SUCCESS, 28, *(_GET_USER_ERRORS if line.type == "auth" else ()))
    return _UNIX if line.name == "pam_unix.so" else _ANY


def outcomes(entries: Sequence[Entry], codes: Codes, hook: int | None = None
             ) -> set[tuple[bool, bool]]:
    """Every (the stack passes, it passes when ``entries[hook]`` does nothing) over all the
    codes ``codes(index)`` lets each module return. Both walks take the same path: they
    differ only after the hook's ``ok`` made one positive where the other is undecided, and
    every action that ends or skips treats those two alike."""
    results: set[tuple[bool, bool]] = set()
    todo: list[tuple[int, int, Run, Run]] = [(0, 0, START, START)]
    seen: set[tuple[int, int, Run, Run]] = set()
    while todo:
        item = todo.pop()
        if item in seen:
            continue
        seen.add(item)
        pos, prev, a, b = item
        if pos >= len(entries):
            results.add((a.passes, b.passes))
            continue
        entry = entries[pos]
        level = entry.level
        if prev < level:
            a, b = a.enter(level), b.enter(level)
        if entry.kind == "substack":
            todo.append((pos + 1, level, a, b))
            continue
        for code in (PERM_DENIED,) if entry.kind == "fail" else codes(pos):
            action = BAD if code == INVALID else entry.line.actions[code]
            ra = a.act(action, code, level)
            rb = b if pos == hook else b.act(action, code, level)
            decided = action == DIE or (action == DONE and ra.impression == POSITIVE)
            after, bad = _next(entries, pos, action, decided)
            if bad:
                ra, rb = ra.bad_jump(), rb.bad_jump()
            todo.append((after, level, ra, rb))
    return results


def _next(entries: Sequence[Entry], pos: int, action: int, decided: bool) -> tuple[int, bool]:
    """Where the walk goes on after ``entries[pos]``, and whether a jump ran past the end."""
    level, j, last = entries[pos].level, pos, len(entries) - 1
    if decided:
        while j < last and entries[j + 1].level >= level:
            j += 1
        return j + 1, False
    left = max(action, 0)
    while j < last and entries[j + 1].level >= level and left > 0:
        j += 1
        while j < last and entries[j + 1].level > level:
            j += 1
        left -= 1
    return j + 1, left > 0


def success_alone_passes(entries: Sequence[Entry], hook: int) -> bool:
    """Whether the hook at ``entries[hook]``, by succeeding, can make the stack pass where it
    would fail if the hook did nothing (every other module returning what it may)."""

    def codes(pos: int) -> tuple[int, ...]:
        return (SUCCESS,) if pos == hook else module_codes(entries[pos].line)

    return (True, False) in outcomes(entries, codes, hook)
