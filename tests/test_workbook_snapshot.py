from __future__ import annotations

import random
from array import array

import msgspec
import pytest

from progressd.errors import StateError
from progressd.workbook import Field, Status, Workbook
from progressd.workbook.fields import HOT_TYPECODES
from progressd.workbook.snapshot import decode_snapshot, encode_snapshot
from progressd.workbook.stable import STABLE_FIELDS

MILESTONES = ["logged-in", "browsed", "paid"]


def busy_workbook(rows: int = 3000, seed: int = 1) -> Workbook:
    rng = random.Random(seed)
    wb = Workbook(MILESTONES, rows=rows)
    for row in range(rows):
        wb.set(row, Field.STATUS, Status.ACTIVE)
        wb.set(row, Field.STEP, rng.randrange(8))
        wb.add(row, Field.DONE, rng.randrange(20))
        wb.set(row, Field.LEASE, rng.randrange(3))
        if row % 10 == 0:
            wb.set_cold(row, Field.VARS, {"token": f"tok-{row}", "n": row})
        if row % 7 == 0:
            wb.set_cold(row, Field.PAYLOAD, [row, "report"])
        if row % 3:
            wb.reach_milestone(row, rng.randrange(len(MILESTONES)))
        if row % 11 == 0:
            wb.record_error(row, "boom")
    wb.rollback(range(0, rows, 13), "manual")
    return wb


def test_snapshot_round_trips_exactly() -> None:
    wb = busy_workbook()
    data = wb.snapshot()
    restored = Workbook.restore(data)
    assert restored.snapshot() == data
    assert restored.milestones == wb.milestones
    assert restored.totals().rework == wb.totals().rework
    assert restored.totals().rollbacks == wb.totals().rollbacks
    assert restored.totals().milestone_reached == wb.totals().milestone_reached
    assert restored.recount() == restored.totals()


def test_snapshot_restore_puts_rows_at_their_stable_points() -> None:
    wb = busy_workbook()
    restored = Workbook.restore(wb.snapshot())
    for row in range(wb.rows):
        stable = wb.stable_milestone(row)
        assert restored.stable_milestone(row) == stable
        assert restored.get(row, Field.ERRORS) == wb.get(row, Field.ERRORS)
        assert restored.get(row, Field.LEASE) == -1, "leases do not survive a restart"
        if stable < 0:
            assert restored.status(row) is Status.PENDING
            assert restored.get(row, Field.DONE) == 0
            assert restored.get_cold(row, Field.VARS) is None
            continue
        assert restored.get(row, Field.MILESTONE) == stable
    probe = Workbook(MILESTONES, rows=2)
    probe.set(0, Field.STEP, 4)
    probe.add(0, Field.DONE, 9)
    probe.set_cold(0, Field.VARS, {"k": "v"})
    probe.reach_milestone(0, 2)
    probe.add(0, Field.DONE, 5)
    back = Workbook.restore(probe.snapshot())
    assert (back.get(0, Field.STEP), back.get(0, Field.DONE)) == (4, 9)
    assert back.get_cold(0, Field.VARS) == {"k": "v"}
    assert back.row_record(0).milestone == "paid"


def test_snapshot_is_unchanged_by_stable_compaction() -> None:
    wb = busy_workbook()
    before = wb.snapshot()
    wb.compact_stable()
    assert wb.compact_stable() > 0
    assert wb.snapshot() == before


def test_snapshot_reports_its_compression_ratio() -> None:
    wb = busy_workbook()
    data = wb.snapshot()
    stats = wb.statistics()
    assert stats.snapshot_bytes == len(data)
    assert stats.snapshot_raw_bytes > 2 * stats.snapshot_bytes


def test_snapshot_lzma_codec_round_trips() -> None:
    wb = busy_workbook(500)
    data = wb.snapshot("lzma")
    assert data[4:5] == b"x"
    assert Workbook.restore(data).snapshot("lzma") == data


def test_snapshot_rejects_garbage_and_unknown_codecs() -> None:
    with pytest.raises(StateError, match="bad magic"):
        Workbook.restore(b"not a snapshot")
    data = busy_workbook(100).snapshot()
    with pytest.raises(StateError, match="corrupt"):
        Workbook.restore(data[:-20])
    with pytest.raises(StateError, match="unknown codec byte"):
        Workbook.restore(data[:4] + b"q" + data[5:])
    with pytest.raises(StateError, match="unknown snapshot codec"):
        busy_workbook(10).snapshot("gzip")  # type: ignore[arg-type]


def test_snapshot_rejects_inconsistent_columns() -> None:
    snap = decode_snapshot(busy_workbook(100).snapshot())
    broken = msgspec.structs.replace(snap, rows=99)
    data, _ = encode_snapshot(broken)
    with pytest.raises(StateError, match="inconsistent"):
        Workbook.restore(data)


def test_snapshot_from_the_other_byte_order_is_swapped_on_restore() -> None:
    wb = busy_workbook(300)
    snap = decode_snapshot(wb.snapshot())
    swapped_columns = []
    for f, raw in zip(STABLE_FIELDS, snap.columns, strict=True):
        column = array(HOT_TYPECODES[f])
        column.frombytes(raw)
        column.byteswap()
        swapped_columns.append(column.tobytes())
    errors = array("I")
    errors.frombytes(snap.errors)
    errors.byteswap()
    other = "big" if snap.byteorder == "little" else "little"
    foreign = msgspec.structs.replace(
        snap, byteorder=other, columns=swapped_columns, errors=errors.tobytes()
    )
    data, _ = encode_snapshot(foreign)
    assert Workbook.restore(data).snapshot() == wb.snapshot()
