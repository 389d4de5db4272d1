"""Refuse logins outside the hours configured for a group (a Python plugin, like pam_time).

Rules are read, at each login, from /etc/security/hookrunner-hours.conf (below ``--root``
when the dispatcher runs with one: ``ctx.path``), one a line, ``#`` starts a comment::

    # GROUP    DAYS        HOURS
    students   Mon-Fri     08:00-18:00
    students   Sat,Sun     10:00-14:00
    night      *           22:00-06:00

DAYS is ``*`` or a comma-separated list of days (``Mon`` ... ``Sun``) and ranges
(``Mon-Fri``, ``Fri-Mon``). HOURS is ``HH:MM-HH:MM`` in local time, the end excluded
(``24:00`` is the end of the day); a window whose end is not after its start runs past
midnight into the next day (``Fri 22:00-06:00`` covers Saturday until 06:00).

A user in none of the listed groups (primary or supplementary) is not restricted. A member
of listed groups may log in while any line of any of those groups allows it. A malformed
line is logged with its file and line and allows nothing: members of its group are refused
unless another line lets them in. No file: nothing is restricted.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import time

import hookrunner

CONFIG = "/etc/security/hookrunner-hours.conf"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # time.struct_time.tm_wday order
HOURS_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]|24):([0-5]\d)$")


class Rule:
    """One line of the file. A plain class: ``typing.NamedTuple`` would make every account
    phase import ``typing`` (~2 ms), which hookrunner itself avoids."""

    __slots__ = ("days", "end", "group", "start", "text")

    def __init__(self, group: str, days: frozenset[int], start: int, end: int, text: str) -> None:
        self.group = group
        self.days = days  # 0 = Monday
        self.start = start  # minutes after midnight
        self.end = end
        self.text = text  # "Mon-Fri 08:00-18:00", for the message


def parse_days(field: str) -> frozenset[int]:
    if field == "*":
        return frozenset(range(7))
    days: set[int] = set()
    for part in field.lower().split(","):
        first, dash, last = part.partition("-")
        if first not in DAYS or (dash and last not in DAYS):
            raise ValueError(f"bad days {field!r} (expected *, Mon, Mon-Fri, Sat,Sun)")
        a, b = DAYS.index(first), DAYS.index(last if dash else first)
        days.update((a + i) % 7 for i in range((b - a) % 7 + 1))
    return frozenset(days)


def parse_line(line: str) -> Rule | None:
    """A rule, None for a blank or comment line; ValueError for anything else."""
    fields = line.split("#", 1)[0].split()
    if not fields:
        return None
    if len(fields) != 3:
        raise ValueError(f"expected GROUP DAYS HH:MM-HH:MM, got {len(fields)} fields")
    group, days, hours = fields
    m = HOURS_RE.match(hours)
    if not m or (m[3] == "24" and m[4] != "00"):
        raise ValueError(f"bad hours {hours!r} (expected HH:MM-HH:MM)")
    start, end = int(m[1]) * 60 + int(m[2]), int(m[3]) * 60 + int(m[4])
    return Rule(group, parse_days(days), start, end, f"{days} {hours}")


def allows(rule: Rule, weekday: int, minute: int) -> bool:
    """Does ``rule`` let one in on ``weekday`` (0 = Monday) at ``minute`` after midnight?"""
    if rule.start < rule.end:
        return weekday in rule.days and rule.start <= minute < rule.end
    # past midnight: the evening of a listed day, or the early hours of the day after one
    return (weekday in rule.days and minute >= rule.start) or \
        ((weekday - 1) % 7 in rule.days and minute < rule.end)


def read_rules(path: str, ctx: hookrunner.PamContext) -> dict[str, list[Rule]]:
    """Rules by group; a group whose line is malformed is present with no rule from it."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read(1 << 20).splitlines()
    except FileNotFoundError:
        return {}
    except OSError as e:
        ctx.log.error("%s: cannot read: %s; nothing is restricted", path, e.strerror)
        return {}
    rules: dict[str, list[Rule]] = {}
    for number, line in enumerate(lines, 1):
        try:
            rule = parse_line(line)
        except ValueError as e:
            ctx.log.error("%s:%d: %s; this line allows nothing", path, number, e)
            rules.setdefault(line.split("#", 1)[0].split()[0], [])
            continue
        if rule is not None:
            rules.setdefault(rule.group, []).append(rule)
    return rules


def member_of(user: str, groups: list[str]) -> list[str]:
    """Which of ``groups`` ``user`` belongs to (by primary or supplementary group id)."""
    try:
        entry = pwd.getpwnam(user)
    except (KeyError, ValueError):
        return []  # an unknown user is another module's business
    gids = set(os.getgrouplist(entry.pw_name, entry.pw_gid))
    found = []
    for group in groups:
        try:
            if grp.getgrnam(group).gr_gid in gids:
                found.append(group)
        except (KeyError, ValueError):
            continue
    return found


@hookrunner.hookimpl
def onaccount(ctx: hookrunner.PamContext) -> None:
    if not ctx.user:
        return
    path = ctx.path(CONFIG)
    rules = read_rules(path, ctx)
    groups = member_of(ctx.user, list(rules))
    if not groups:
        return
    now = time.localtime()
    minute = now.tm_hour * 60 + now.tm_min
    if any(allows(rule, now.tm_wday, minute) for group in groups for rule in rules[group]):
        return
    allowed = "; ".join(f"{r.group} {r.text}" for g in groups for r in rules[g]) or "never"
    raise hookrunner.Deny(f"login refused at this time (allowed: {allowed})")
