"""Stable points: a copy of each row's progress fields taken when it reaches a milestone.

The copy lives in typed columns split into segments of ``SEGMENT_ROWS`` rows. A segment no row
has saved into yet holds nothing at all; a segment nobody touched since the previous
``compact()`` is compressed with zlib and thawed again on its next read or write. Stable points
are written on milestones and read on rollbacks, both rare next to ordinary updates, so most
segments sit compressed. No per-row object exists at any time.
"""

from __future__ import annotations

import sys
import zlib
from array import array
from dataclasses import dataclass
from typing import Final

from progressd.workbook.fields import HOT_TYPECODES, Field

_SHIFT: Final = 10
SEGMENT_ROWS: Final = 1 << _SHIFT
STABLE_FIELDS: Final = (
    Field.STEP,
    Field.ITERATION,
    Field.DONE,
    Field.STATUS,
    Field.MILESTONE,
    Field.LEASE,
)
_MILESTONE_AT: Final = STABLE_FIELDS.index(Field.MILESTONE)
STABLE_TYPECODES: Final = tuple(HOT_TYPECODES[f] for f in STABLE_FIELDS)
_TYPECODES: Final = STABLE_TYPECODES
_ROW_BYTES: Final = sum(array(t).itemsize for t in _TYPECODES)
SEGMENT_RAW_BYTES: Final = _ROW_BYTES * SEGMENT_ROWS

StableRow = tuple[int, int, int, int, int, int]
"""A stable point in ``STABLE_FIELDS`` order: step, iteration, done, status, milestone, lease."""


def _empty_columns() -> list[array[int]]:
    columns: list[array[int]] = []
    for f, t in zip(STABLE_FIELDS, _TYPECODES, strict=True):
        fill = -1 if f in (Field.MILESTONE, Field.LEASE) else 0
        columns.append(array(t, [fill]) * SEGMENT_ROWS)
    return columns


@dataclass(slots=True)
class _Segment:
    """Either empty (both ``None``), live (``columns``) or compressed (``blob``)."""

    columns: list[array[int]] | None = None
    blob: bytes | None = None
    touched: bool = False


class StableColumns:
    """Per-row stable points in segmented, periodically compressed columns."""

    __slots__ = ("_compressed_bytes", "_rows", "_segments", "stable_rows")

    def __init__(self) -> None:
        self._segments: list[_Segment] = []
        self._rows = 0
        self._compressed_bytes = 0
        self.stable_rows = 0

    def grow(self, rows: int) -> None:
        """Make room for ``rows`` rows in total (new rows have no stable point)."""
        self._rows = rows
        while len(self._segments) * SEGMENT_ROWS < rows:
            self._segments.append(_Segment())

    def save(self, row: int, values: StableRow) -> None:
        """Record ``values`` as the row's stable point."""
        columns = self._live(row >> _SHIFT, create=True)
        assert columns is not None
        i = row & (SEGMENT_ROWS - 1)
        if columns[_MILESTONE_AT][i] < 0:
            self.stable_rows += 1
        for column, value in zip(columns, values, strict=True):
            column[i] = value

    def load(self, row: int) -> StableRow | None:
        """The row's stable point, or ``None`` when it never reached a milestone."""
        columns = self._live(row >> _SHIFT, create=False)
        if columns is None:
            return None
        i = row & (SEGMENT_ROWS - 1)
        if columns[_MILESTONE_AT][i] < 0:
            return None
        s, it, d, st, m, le = (c[i] for c in columns)
        return (s, it, d, st, m, le)

    def compact(self) -> int:
        """Compress every live segment untouched since the previous call; return how many."""
        compressed = 0
        for seg in self._segments:
            if seg.columns is None:
                continue
            if seg.touched:
                seg.touched = False
                continue
            seg.blob = zlib.compress(b"".join(c.tobytes() for c in seg.columns), 6)
            seg.columns = None
            self._compressed_bytes += len(seg.blob)
            compressed += 1
        return compressed

    def export(self) -> list[bytes]:
        """Each stable column over all rows as raw native-order bytes (for snapshots)."""
        parts: list[list[bytes]] = [[] for _ in STABLE_FIELDS]
        for seg in self._segments:
            columns = _decode(seg) if seg.columns is None else seg.columns
            columns = columns if columns is not None else _empty_columns()
            for part, column in zip(parts, columns, strict=True):
                part.append(column.tobytes())
        return [self._trim(b"".join(p), t) for p, t in zip(parts, _TYPECODES, strict=True)]

    def load_columns(self, data: list[array[int]]) -> None:
        """Replace every stable point with full columns in ``STABLE_FIELDS`` order."""
        self._segments = []
        self._compressed_bytes = 0
        self.grow(self._rows)
        self.stable_rows = 0
        for row, milestone in enumerate(data[_MILESTONE_AT]):
            if milestone >= 0:
                s, it, d, st, m, le = (c[row] for c in data)
                self.save(row, (s, it, d, st, m, le))

    def raw_bytes(self) -> int:
        """What the non-empty segments would take uncompressed."""
        return sum(SEGMENT_RAW_BYTES for s in self._segments if s.columns or s.blob)

    def stored_bytes(self) -> int:
        """What the non-empty segments take now (live arrays plus compressed blobs)."""
        live = sum(SEGMENT_RAW_BYTES for s in self._segments if s.columns is not None)
        return live + self._compressed_bytes

    def nbytes(self) -> int:
        """Memory held: segment records, live arrays and blobs."""
        per_segment = sys.getsizeof(_Segment())
        live_overhead = sys.getsizeof(array("i")) * len(STABLE_FIELDS) + 120
        total = sys.getsizeof(self._segments) + per_segment * len(self._segments)
        for seg in self._segments:
            if seg.columns is not None:
                total += SEGMENT_RAW_BYTES + live_overhead
            elif seg.blob is not None:
                total += sys.getsizeof(seg.blob)
        return total

    def _live(self, index: int, *, create: bool) -> list[array[int]] | None:
        seg = self._segments[index]
        if seg.columns is None:
            if seg.blob is not None:
                seg.columns = _decode(seg)
                self._compressed_bytes -= len(seg.blob)
                seg.blob = None
            elif create:
                seg.columns = _empty_columns()
            else:
                return None
        seg.touched = True
        return seg.columns

    def _trim(self, data: bytes, typecode: str) -> bytes:
        return data[: self._rows * array(typecode).itemsize]


def _decode(seg: _Segment) -> list[array[int]] | None:
    if seg.blob is None:
        return None
    raw = zlib.decompress(seg.blob)
    columns: list[array[int]] = []
    offset = 0
    for t in _TYPECODES:
        column = array(t)
        size = column.itemsize * SEGMENT_ROWS
        column.frombytes(raw[offset : offset + size])
        columns.append(column)
        offset += size
    return columns
