"""Storage for the workbook: typed hot columns and sparse cold maps.

``HotColumns`` keeps one ``array`` per hot field plus the per-row version and dirty mask, all
indexed by row. ``ColdStore`` keeps, per cold field, a dict of the rows that hold a value now and
a dict of the values referenced by their stable points; a value shared by both is one object and
is counted once. Its byte count is maintained on every transition, so ``memory_bytes()`` never
walks the rows.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from progressd.workbook.fields import (
    COLD_FIELDS,
    HOT_DEFAULTS,
    HOT_FIELDS,
    HOT_TYPECODES,
    RESTORED_COLD,
    Field,
)

_COLD_BASE = COLD_FIELDS[0].value


def sizeof_value(value: object) -> int:
    """Bytes held by a cold value: the object plus what it contains (shared parts twice)."""
    if value is None:
        return 0
    size = sys.getsizeof(value)
    if isinstance(value, Mapping):
        size += sum(sizeof_value(k) + sizeof_value(v) for k, v in value.items())
    elif isinstance(value, list | tuple | set | frozenset):
        size += sum(sizeof_value(item) for item in value)
    return size


def _filled(typecode: str, fill: int | float, count: int) -> array[Any]:
    return array(typecode, [fill]) * count


@dataclass(slots=True)
class HotColumns:
    """One typed array per hot field, plus ``version`` (uint32) and ``dirty`` (uint16) per row.

    ``columns[f]`` is the array of ``Field`` ``f`` (indexable by the field's value).
    """

    columns: list[array[Any]] = field(
        default_factory=lambda: [array(HOT_TYPECODES[f]) for f in HOT_FIELDS]
    )
    version: array[Any] = field(default_factory=lambda: array("I"))
    dirty: array[Any] = field(default_factory=lambda: array("H"))

    def grow(self, count: int) -> None:
        """Append ``count`` rows holding the default values."""
        for f in HOT_FIELDS:
            self.columns[f].extend(_filled(HOT_TYPECODES[f], HOT_DEFAULTS[f], count))
        self.version.extend(_filled("I", 0, count))
        self.dirty.extend(_filled("H", 0, count))

    def nbytes(self) -> int:
        """Bytes allocated by the arrays (including their over-allocation)."""
        arrays = [*self.columns, self.version, self.dirty]
        return sum(sys.getsizeof(a) for a in arrays) + sys.getsizeof(self.columns)


class ColdStore:
    """Sparse maps for the cold fields, current values and stable-point references.

    Invariants: no map holds ``None``; ``value_bytes`` equals the sum over rows and cold fields of
    ``size(current) + size(stable if stable is not current)``.
    """

    __slots__ = ("current", "stable", "value_bytes")

    def __init__(self) -> None:
        self.current: list[dict[int, object]] = [{} for _ in COLD_FIELDS]
        self.stable: list[dict[int, object]] = [{} for _ in COLD_FIELDS]
        self.value_bytes = 0

    def get(self, row: int, f: Field) -> object | None:
        return self.current[f - _COLD_BASE].get(row)

    def rows_with(self, f: Field) -> int:
        """How many rows hold a current value for ``f``."""
        return len(self.current[f - _COLD_BASE])

    def set(self, row: int, f: Field, value: object | None) -> bool:
        """Set (or with ``None`` clear) a current value; return whether it changed."""
        i = f - _COLD_BASE
        old = self.current[i].get(row)
        if old is value or (old is not None and value is not None and old == value):
            return False
        stable = self.stable[i].get(row)
        self.value_bytes -= _pair_bytes(old, stable)
        _put(self.current[i], row, value)
        self.value_bytes += _pair_bytes(value, stable)
        return True

    def save_stable(self, row: int) -> None:
        """Make the row's stable references point at its current values."""
        for i in range(len(COLD_FIELDS)):
            cur = self.current[i].get(row)
            old_stable = self.stable[i].get(row)
            if cur is old_stable:
                continue
            self.value_bytes -= _pair_bytes(cur, old_stable)
            _put(self.stable[i], row, cur)
            self.value_bytes += _pair_bytes(cur, cur)

    def restore_stable(self, row: int, *, has_stable: bool) -> int:
        """Reset the restorable cold fields to the stable references (or clear them).

        Returns the dirty mask of the fields that changed.
        """
        mask = 0
        for f in RESTORED_COLD:
            target = self.stable[f - _COLD_BASE].get(row) if has_stable else None
            if self.set(row, f, target):
                mask |= f.mask
        return mask

    def stable_value(self, row: int, f: Field) -> object | None:
        return self.stable[f - _COLD_BASE].get(row)

    def put_stable(self, row: int, f: Field, value: object | None) -> None:
        """Set a stable reference directly (used when restoring a snapshot)."""
        i = f - _COLD_BASE
        cur = self.current[i].get(row)
        self.value_bytes -= _pair_bytes(cur, self.stable[i].get(row))
        _put(self.stable[i], row, value)
        self.value_bytes += _pair_bytes(cur, value)

    def nbytes(self) -> int:
        """Dict tables plus the values they hold."""
        maps = [*self.current, *self.stable]
        return sum(sys.getsizeof(m) for m in maps) + self.value_bytes


def _pair_bytes(current: object | None, stable: object | None) -> int:
    size = sizeof_value(current)
    if stable is not current:
        size += sizeof_value(stable)
    return size


def _put(target: dict[int, object], row: int, value: object | None) -> None:
    if value is None:
        target.pop(row, None)
    else:
        target[row] = value
