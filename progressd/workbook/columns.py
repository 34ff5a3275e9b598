"""Storage for the workbook: hot columns and sparse cold maps.

``HotColumns`` keeps one column per hot field (a typed ``array``, or a list for the fields every
step writes) plus the per-row version and dirty mask, all indexed by row. ``ColdStore`` keeps,
per cold field, a dict of the rows that hold a value now and a dict of the values referenced by
their stable points; a value shared by both is one object and is counted once. Its byte count is
maintained on every transition, so ``memory_bytes()`` never walks the rows.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Mapping, MutableSequence
from dataclasses import dataclass, field
from typing import Any

from progressd.workbook.fields import (
    BOXED_FIELDS,
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


_SMALL_INTS = range(-5, 257)  # CPython's cached ints: a list holding one stores a pointer only
_INT_BYTES = sys.getsizeof(1 << 20)
_SAMPLE_ROWS = 1024


def _new_column(f: Field) -> MutableSequence[Any]:
    return [] if f in BOXED_FIELDS else array(HOT_TYPECODES[f])


@dataclass(slots=True)
class HotColumns:
    """One column per hot field, plus ``version`` (uint32 values) and ``dirty`` (field mask)
    per row: arrays, except the per-step fields (``BOXED_FIELDS``), the version and the dirty
    mask, which are lists (fields.py says why).

    ``columns[f]`` is the column of ``Field`` ``f`` (indexable by the field's value).
    """

    columns: list[MutableSequence[Any]] = field(
        default_factory=lambda: [_new_column(f) for f in HOT_FIELDS]
    )
    version: list[int] = field(default_factory=list)
    dirty: list[int] = field(default_factory=list)

    def grow(self, count: int) -> None:
        """Append ``count`` rows holding the default values."""
        for f in HOT_FIELDS:
            column = self.columns[f]
            if isinstance(column, array):
                column.extend(_filled(HOT_TYPECODES[f], HOT_DEFAULTS[f], count))
            else:
                column.extend([HOT_DEFAULTS[f]] * count)
        self.version.extend([0] * count)
        self.dirty.extend([0] * count)

    def nbytes(self) -> int:
        """Bytes held by the columns (with over-allocation) and by the ints the lists hold.

        The lists' own ints are estimated from at most ``_SAMPLE_ROWS`` evenly spaced rows, so
        this stays cheap at any size (telemetry reads it at scrape time).
        """
        lists = [c for c in self.columns if isinstance(c, list)] + [self.version, self.dirty]
        size = sum(sys.getsizeof(c) for c in [*self.columns, self.version, self.dirty])
        return size + sys.getsizeof(self.columns) + sum(_boxed_bytes(c) for c in lists)


def _boxed_bytes(column: list[int]) -> int:
    """Estimated bytes of the int objects a list column holds beyond the cached small ints."""
    rows = len(column)
    if not rows:
        return 0
    stride = max(1, rows // _SAMPLE_ROWS)
    sample = column[::stride]
    boxed = sum(1 for v in sample if v not in _SMALL_INTS)
    return boxed * rows * _INT_BYTES // len(sample)


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
