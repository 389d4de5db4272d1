"""One base for hookrunner's small immutable-by-convention records.

NamedTuple's equality, repr and ``_replace``, without importing ``typing`` (NamedTuple) or
``dataclasses``: either would cost every PAM phase milliseconds. A subclass lists its
attributes in ``__slots__`` and, in constructor order, in ``_fields``.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Self


class Record:
    __slots__ = ()
    _fields: tuple[str, ...] = ()

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def _replace(self, **changes: object) -> Self:
        new = object.__new__(type(self))
        for name in self._fields:
            object.__setattr__(new, name, changes.pop(name, getattr(self, name)))
        if changes:
            raise TypeError(f"{type(self).__name__} has no field {', '.join(changes)}")
        return new

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._values() == other._values()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({inner})"
