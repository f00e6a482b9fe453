"""What parsing one POST skipped or left out, for one summary log line.

A body may hold thousands of malformed items; a WARNING for each would let one
POST write thousands of log lines. Parsing records each one in a
:class:`SkipLog` instead (a count per kind, the offending field names, where
the first one was) and logs :meth:`SkipLog.summary` once per POST. Field
names come from our schemas and paths hold only indexes: no value from the
payload is ever recorded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SkipLog", "field_names"]

#: Field names kept per kind; more are summed up as "...".
_MAX_NAMES = 8


def field_names(messages: Any) -> list[str]:
    """The field names a marshmallow error's ``messages`` points at, never their values.

    Keys of elements of a list loaded with ``many=True`` (indexes) are named
    ``[]`` followed by the field inside them (``[].code``). At most a few
    names are returned, however large the error.
    """
    if not isinstance(messages, Mapping):
        return ["body"]
    names: set[str] = set()
    for key, inner in messages.items():
        if len(names) >= _MAX_NAMES:
            break
        if not isinstance(key, int):
            names.add(str(key))
        elif isinstance(inner, Mapping) and inner:
            names.update(f"[].{name}" for name in field_names(inner))
        else:
            names.add("[]")
    return sorted(names)[:_MAX_NAMES]


@dataclass(slots=True)
class _Tally:
    count: int
    first: str
    names: set[str] = field(default_factory=set)
    more: bool = False

    def describe(self, kind: str) -> str:
        names = ", ".join(sorted(self.names)) + (", ..." if self.more else "")
        fields = f"{names}; " if names else ""
        return f"{kind} x{self.count} ({fields}first at {self.first})"


class SkipLog:
    """Counts by kind of what was skipped (malformed) or left out of what was kept."""

    __slots__ = ("left_out", "skipped")

    def __init__(self) -> None:
        self.skipped: dict[str, _Tally] = {}
        self.left_out: dict[str, _Tally] = {}

    def __bool__(self) -> bool:
        return bool(self.skipped or self.left_out)

    def skip(self, kind: str, where: str, names: Iterable[str] = ()) -> None:
        """An item of ``kind`` at ``where`` was skipped; ``names`` are its offending fields."""
        _add(self.skipped, kind, where, names)

    def leave_out(self, kind: str, where: str, names: Iterable[str] = ()) -> None:
        """A part of the item at ``where`` was left out; the item itself was kept."""
        _add(self.left_out, kind, where, names)

    def summary(self) -> str:
        """One line: how many of each kind, their field names, where the first one was."""
        parts = []
        if self.skipped:
            total = sum(tally.count for tally in self.skipped.values())
            kinds = "; ".join(tally.describe(kind) for kind, tally in self.skipped.items())
            parts.append(f"{total} malformed item(s) skipped: {kinds}")
        if self.left_out:
            kinds = "; ".join(tally.describe(kind) for kind, tally in self.left_out.items())
            parts.append(f"kept without a part: {kinds}")
        return ". ".join(parts)


def _add(tallies: dict[str, _Tally], kind: str, where: str, names: Iterable[str]) -> None:
    tally = tallies.get(kind)
    if tally is None:
        tally = tallies[kind] = _Tally(0, where)
    tally.count += 1
    if tally.more:
        return
    for name in names:
        if len(tally.names) >= _MAX_NAMES and name not in tally.names:
            tally.more = True
            break
        tally.names.add(name)
