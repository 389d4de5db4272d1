"""Per-hook conditions: ``services``, ``users``, ``groups``, ``rhosts``.

Each is a list; an entry starting with ``!`` excludes. A condition holds when the PAM value
matches one of its plain entries (if it has any) and none of its ``!`` entries; a hook runs
only if every condition it has holds. An unset PAM item matches no entry.

- ``services``, ``users``: the PAM service and user, compared byte for byte.
- ``groups``: the PAM user's groups, its primary group included (``getgrouplist``); a group
  or user unknown to NSS is no membership (``check`` reports unknown groups).
- ``rhosts``: ``"local"`` (an unset or empty rhost, a loopback address, ``localhost``), an
  address, a CIDR network (``192.0.2.0/24``, ``2001:db8::/32``) or a host name (compared
  without case; only as trustworthy as the reverse DNS the service used). IPv4-mapped IPv6
  addresses (``::ffff:192.0.2.1``) are the IPv4 address, a trailing dot and ``[...]`` are
  dropped, on both sides. ``ipaddress`` is imported only for a hook with ``rhosts``.

Conditions are evaluated before anything of the hook is touched: a hook whose conditions
fail is skipped without opening, starting or importing it, and is not a failure.
"""

from __future__ import annotations

import os

from .record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: every login pays imports
if TYPE_CHECKING:
    import ipaddress
    from collections.abc import Mapping
    from typing import Any

    Address = ipaddress.IPv4Address | ipaddress.IPv6Address
    Network = ipaddress.IPv4Network | ipaddress.IPv6Network

KINDS = ("services", "users", "groups", "rhosts")  # the order they are checked and shown in
LOCAL = "local"
_ITEM = {"services": b"PAM_SERVICE", "users": b"PAM_USER"}
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


class ConditionError(ValueError):
    """A malformed condition: ``kind`` (services, ...) and what is wrong."""

    def __init__(self, kind: str, problem: str) -> None:
        super().__init__(f"{kind}: {problem}")
        self.kind = kind
        self.problem = problem


class Rule(Record):
    """One condition: the entries to match (any) and those to exclude (all)."""

    __slots__ = ("exclude", "include", "spelled")
    _fields = ("include", "exclude", "spelled")

    def __init__(self, include: tuple[Any, ...], exclude: tuple[Any, ...],
                 spelled: tuple[str, ...]) -> None:
        self.include = include
        self.exclude = exclude
        self.spelled = spelled  # as the config wrote it, for list and the debug record


class Conditions(Record):
    __slots__ = KINDS
    _fields = KINDS

    def __init__(self, services: Rule | None = None, users: Rule | None = None,
                 groups: Rule | None = None, rhosts: Rule | None = None) -> None:
        self.services = services
        self.users = users
        self.groups = groups
        self.rhosts = rhosts

    def rules(self) -> list[tuple[str, Rule]]:
        return [(kind, rule) for kind in KINDS if (rule := getattr(self, kind)) is not None]

    def describe(self) -> str:
        """``users=alice,!root rhosts=local``: what ``list`` shows of a conditional hook."""
        return " ".join(f"{kind}={','.join(rule.spelled)}" for kind, rule in self.rules())


def from_table(table: Mapping[str, Any]) -> Conditions:
    """The conditions of a ``[hook."NAME"]`` table; ConditionError for a malformed one."""
    return Conditions(**{kind: parse_rule(kind, table[kind]) for kind in KINDS if kind in table})


def parse_rule(kind: str, value: object) -> Rule:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConditionError(kind, f"expected a non-empty list of strings, got {value!r}")
    include: list[object] = []
    exclude: list[object] = []
    for entry in value:
        negated = entry.startswith("!")
        text = entry[1:] if negated else entry
        if not text or "\0" in text or not text.isprintable():
            raise ConditionError(kind, f"not a valid entry: {entry!r}")
        (exclude if negated else include).append(
            parse_rhost_entry(text) if kind == "rhosts" else os.fsencode(text))
    return Rule(tuple(include), tuple(exclude), tuple(value))


def parse_rhost_entry(text: str) -> object:
    """``LOCAL``, an ip_network (an address is its /32 or /128), or a lower-case host name."""
    import ipaddress

    if text == LOCAL:
        return LOCAL
    spelled = text
    text = text.strip("[]") if text.startswith("[") else text
    if "/" in text or ":" in text or _numeric(text):
        try:
            network = ipaddress.ip_network(text)
        except ValueError as e:
            raise ConditionError("rhosts", f"not an address or network: {spelled!r} ({e})") from None
        return _unmapped_network(network)
    name = text.removesuffix(".").lower()
    labels = name.split(".")
    if len(name) > 253 or not all(
            0 < len(label) <= 63 and _HOST_CHARS.issuperset(label) and label[0] != "-"
            and label[-1] != "-" for label in labels):
        raise ConditionError("rhosts", f"not \"local\", an address, a network or a host name: {spelled!r}")
    return name


def _numeric(text: str) -> bool:
    """Looks like an IPv4 address (``10.0.0.300``): must parse as one, never a host name."""
    return text.rstrip(".").rsplit(".", 1)[-1].isdigit()


def _unmapped_network(network: Network) -> Network:
    import ipaddress

    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96 \
            and network.subnet_of(ipaddress.IPv6Network("::ffff:0:0/96")):
        address = ipaddress.IPv4Address(int(network.network_address) & 0xFFFFFFFF)
        return ipaddress.IPv4Network((address, network.prefixlen - 96))
    return network


class Subject:
    """The PAM values the conditions look at, each worked out once per phase when needed."""

    def __init__(self, items: Mapping[bytes, bytes]) -> None:
        self.items = items
        self._gids: set[int] | None = None
        self._group_gid: dict[bytes, int | None] = {}
        self._rhost: tuple[bool, Address | None, str | None] | None = None

    def value(self, kind: str) -> bytes | None:
        return self.items.get(_ITEM[kind])

    def in_group(self, group: bytes) -> bool:
        import grp

        if self._gids is None:
            self._gids = self._user_gids()
        if group not in self._group_gid:
            try:
                self._group_gid[group] = grp.getgrnam(os.fsdecode(group)).gr_gid
            except (KeyError, ValueError):
                self._group_gid[group] = None
        return self._group_gid[group] in self._gids

    def _user_gids(self) -> set[int]:
        import pwd

        user = self.items.get(b"PAM_USER")
        if not user:
            return set()
        try:
            entry = pwd.getpwnam(os.fsdecode(user))
            return set(os.getgrouplist(entry.pw_name, entry.pw_gid))
        except (KeyError, ValueError, OSError):
            return set()

    def rhost(self) -> tuple[bool, Address | None, str | None]:
        """(local?, the address if it is one, the lower-case host name if it is one)."""
        if self._rhost is None:
            self._rhost = normalize_rhost(self.items.get(b"PAM_RHOST"))
        return self._rhost

    def matches(self, kind: str, entry: Any) -> bool:
        if kind == "groups":
            return self.in_group(entry)
        if kind != "rhosts":
            return bool(self.value(kind) == entry)
        local, address, name = self.rhost()
        if entry == LOCAL:
            return local
        if isinstance(entry, str):
            return name == entry
        return address is not None and address.version == entry.version and bool(address in entry)


def normalize_rhost(raw: bytes | None) -> tuple[bool, Address | None, str | None]:
    import ipaddress

    try:
        text = (raw or b"").decode("ascii").strip()
    except UnicodeDecodeError:
        return False, None, None  # no address, no host name of ours: matches nothing but "!"
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.removesuffix(".")
    if not text:
        return True, None, None
    try:
        address: Address = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        name = text.lower()
        return name == "localhost" or name.endswith(".localhost"), None, name
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback, address, None


def unmet(conditions: Conditions, subject: Subject) -> str | None:
    """None if every condition holds; else why not, for the debug record and ``list``."""
    for kind, rule in conditions.rules():
        excluded = [spelled for spelled, entry in zip(
            [s for s in rule.spelled if s.startswith("!")], rule.exclude, strict=True)
            if subject.matches(kind, entry)]
        if excluded:
            return f"{kind}: excluded by {excluded[0]}"
        if rule.include and not any(subject.matches(kind, entry) for entry in rule.include):
            wanted = ",".join(s for s in rule.spelled if not s.startswith("!"))
            return f"{kind}: {_shown(kind, subject)} is not one of {wanted}"
    return None


def _shown(kind: str, subject: Subject) -> str:
    from .log import escape

    if kind == "groups":
        return f"user {escape(subject.items.get(b'PAM_USER'))}"
    if kind == "rhosts":
        return f"rhost {escape(subject.items.get(b'PAM_RHOST'))}"
    return f"{kind[:-1]} {escape(subject.value(kind))}"


def unknown_groups(conditions: Conditions) -> list[str]:
    """The group names of a ``groups`` condition that NSS does not know (for ``check``)."""
    import grp

    if conditions.groups is None:
        return []
    unknown = []
    for entry in conditions.groups.spelled:
        name = entry.removeprefix("!")
        try:
            grp.getgrnam(name)
        except (KeyError, ValueError):
            unknown.append(name)
    return unknown
