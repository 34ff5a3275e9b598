"""The run's stable state as compressed bytes, for the store and for resuming after a crash.

Layout: ``b"PDST"`` + one codec byte (``z`` zlib, ``x`` lzma) + the compressed msgpack encoding
of ``StableSnapshot``. Columns travel as raw array bytes in the writer's byte order (recorded,
swapped on read when it differs), so encoding costs one ``tobytes()`` per column.
"""

from __future__ import annotations

import lzma
import sys
import zlib
from array import array
from typing import TYPE_CHECKING, Any, Final, Literal

import msgspec

from progressd.errors import StateError
from progressd.workbook.fields import COLD_FIELDS, RESTORED_HOT, Field
from progressd.workbook.stable import STABLE_FIELDS, STABLE_TYPECODES

if TYPE_CHECKING:
    from progressd.workbook.core import Workbook

Codec = Literal["zlib", "lzma"]

MAGIC: Final = b"PDST"
_CODEC_BYTES: Final[dict[str, bytes]] = {"zlib": b"z", "lzma": b"x"}


class StableSnapshot(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything needed to rebuild a workbook at its stable points.

    ``columns``: the stable columns (``stable.STABLE_FIELDS`` order) as raw array bytes;
    ``errors``: the current error-count column; ``reached``: the reached-milestone bitmap;
    ``vars`` / ``payload``: the cold values referenced by stable points, by row.
    """

    format: int
    byteorder: Literal["little", "big"]
    milestones: tuple[str, ...]
    rows: int
    columns: list[bytes]
    errors: bytes
    reached: bytes
    vars: dict[int, Any]
    payload: dict[int, Any]
    rework: int
    rollbacks: int
    milestone_reaches: int


FORMAT: Final = 1
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(StableSnapshot)


def encode_snapshot(snapshot: StableSnapshot, codec: Codec = "zlib") -> tuple[bytes, int]:
    """Return the framed compressed bytes and the size of the uncompressed encoding."""
    raw = _encoder.encode(snapshot)
    if codec == "zlib":
        body = zlib.compress(raw, 6)
    elif codec == "lzma":
        body = lzma.compress(raw, preset=6)
    else:
        raise StateError(f"unknown snapshot codec {codec!r}: use 'zlib' or 'lzma'")
    return MAGIC + _CODEC_BYTES[codec] + body, len(raw)


def decode_snapshot(data: bytes) -> StableSnapshot:
    """Parse bytes made by ``encode_snapshot``.

    Raises:
        StateError: when the bytes are not a progressd stable snapshot, are corrupt, or come
            from an unknown format version.
    """
    if data[:4] != MAGIC or len(data) < 5:
        raise StateError("not a progressd stable snapshot (bad magic); was it written by store?")
    codec = data[4:5]
    try:
        if codec == b"z":
            raw = zlib.decompress(data[5:])
        elif codec == b"x":
            raw = lzma.decompress(data[5:])
        else:
            raise StateError(f"stable snapshot uses unknown codec byte {codec!r}")
        snapshot = _decoder.decode(raw)
    except (zlib.error, lzma.LZMAError, msgspec.DecodeError) as exc:
        raise StateError(f"stable snapshot is corrupt: {exc}") from None
    if snapshot.format != FORMAT:
        raise StateError(f"stable snapshot format {snapshot.format} is not supported ({FORMAT})")
    return snapshot


# export_stable / import_stable are friends of Workbook: they read and fill its private columns.


def export_stable(wb: Workbook) -> StableSnapshot:
    """The workbook's stable state as a record."""
    cold = wb._cold
    errors = wb._cols[Field.ERRORS]
    assert isinstance(errors, array)  # only the per-step fields are lists (fields.BOXED_FIELDS)
    return StableSnapshot(
        format=FORMAT,
        byteorder=native_byteorder(),
        milestones=wb._milestones,
        rows=wb._rows,
        columns=wb._stable.export(),
        errors=errors.tobytes(),
        reached=bytes(wb._reached),
        vars=dict(cold.stable[Field.VARS - COLD_FIELDS[0]]),
        payload=dict(cold.stable[Field.PAYLOAD - COLD_FIELDS[0]]),
        rework=wb._agg.rework,
        rollbacks=wb._agg.rollbacks,
        milestone_reaches=wb._agg.milestone_reaches,
    )


def import_stable(wb: Workbook, snap: StableSnapshot) -> None:
    """Fill a fresh workbook of ``snap.rows`` rows: stable points, rows standing at them,
    error counts, reached bitmap and history counters.

    Raises:
        StateError: when the snapshot's columns do not match its row count.
    """
    columns, errors = decode_columns(snap, STABLE_TYPECODES, len(wb._reached))
    wb._stable.load_columns(columns)
    milestone = STABLE_FIELDS.index(Field.MILESTONE)
    for row in range(wb._rows):
        if errors[row]:
            wb._write_hot(row, Field.ERRORS, errors[row])
        if columns[milestone][row] >= 0:
            for field, column in zip(RESTORED_HOT, columns, strict=False):
                wb._write_hot(row, field, column[row])
    for field, values in ((Field.VARS, snap.vars), (Field.PAYLOAD, snap.payload)):
        for row, value in values.items():
            wb._check_row(row)
            wb._cold.set(row, field, value)
            wb._cold.put_stable(row, field, value)
    wb._reached[:] = snap.reached
    wb._agg.milestone_reached = list(wb.recount().milestone_reached)
    wb._agg.rework = snap.rework
    wb._agg.rollbacks = snap.rollbacks
    wb._agg.milestone_reaches = snap.milestone_reaches


def native_byteorder() -> Literal["little", "big"]:
    return "little" if sys.byteorder == "little" else "big"


def decode_columns(
    snapshot: StableSnapshot, typecodes: tuple[str, ...], reached_bytes: int
) -> tuple[list[array[int]], array[int]]:
    """The stable columns and the error column as native arrays, checked against ``rows``.

    Raises:
        StateError: when a column has the wrong length or the bitmap the wrong size.
    """
    swap = snapshot.byteorder != native_byteorder()
    pairs = zip(typecodes, snapshot.columns, strict=True)
    columns = [_column(t, data, swap) for t, data in pairs]
    errors = _column("I", snapshot.errors, swap)
    lengths = {len(c) for c in [*columns, errors]}
    if lengths != {snapshot.rows} or len(snapshot.reached) != reached_bytes:
        raise StateError("stable snapshot is inconsistent: column lengths differ from its rows")
    return columns, errors


def _column(typecode: str, data: bytes, swap: bool) -> array[int]:
    column = array(typecode)
    try:
        column.frombytes(data)
    except ValueError as exc:
        raise StateError(f"stable snapshot is corrupt: {exc}") from None
    if swap:
        column.byteswap()
    return column
