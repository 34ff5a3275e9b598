from __future__ import annotations

import pytest

from progressd.errors import StateError
from progressd.workbook import Field, Status, Workbook, fields_in


def make(rows: int = 4) -> Workbook:
    return Workbook(["logged-in", "paid"], rows=rows)


def test_workbook_new_rows_start_pending_at_step_zero() -> None:
    wb = make(3)
    assert wb.rows == 3
    assert wb.status(2) is Status.PENDING
    assert wb.get(2, Field.STEP) == 0
    assert wb.get(2, Field.LEASE) == -1
    assert wb.get(2, Field.MILESTONE) == -1
    assert wb.get_cold(2, Field.VARS) is None
    assert wb.totals().status_counts[Status.PENDING] == 3


def test_workbook_add_rows_returns_the_new_indices() -> None:
    wb = make(2)
    assert wb.add_rows(3) == range(2, 5)
    assert wb.totals().rows == 5


def test_workbook_set_commits_bumps_version_and_marks_dirty() -> None:
    wb = make()
    wb.set(1, Field.STEP, 4)
    assert wb.get(1, Field.STEP) == 4
    assert wb.version(1) == 1
    changes = wb.take_changes()
    assert changes.rows == [(1, Field.STEP.mask, 1)]
    assert not wb.has_changes


def test_workbook_set_of_an_equal_value_commits_nothing() -> None:
    wb = make()
    wb.set(0, Field.STEP, 0)
    assert wb.version(0) == 0
    assert not wb.has_changes


def test_workbook_dirty_mask_accumulates_fields_of_one_row() -> None:
    wb = make()
    wb.set(0, Field.STEP, 1)
    wb.set(0, Field.STATUS, Status.ACTIVE)
    wb.set(2, Field.DUE, 1.5)
    rows = wb.take_changes().rows
    assert [r for r, _, _ in rows] == [0, 2]
    assert fields_in(rows[0][1]) == [Field.STEP, Field.STATUS]


def test_workbook_add_sums_into_counters_and_totals() -> None:
    wb = make()
    wb.add(0, Field.DONE, 3)
    wb.add(1, Field.DONE, 4)
    wb.add(1, Field.DONE, 0)
    assert wb.get(1, Field.DONE) == 4
    assert wb.version(1) == 1
    assert wb.totals().done_work == 7


def test_workbook_status_counts_follow_status_writes() -> None:
    wb = make()
    wb.set(0, Field.STATUS, Status.ACTIVE)
    wb.set(1, Field.STATUS, Status.DONE)
    wb.set(0, Field.STATUS, Status.THINKING)
    counts = wb.totals().status_counts
    assert counts[Status.PENDING] == 2
    assert counts[Status.THINKING] == 1
    assert counts[Status.DONE] == 1
    assert counts[Status.ACTIVE] == 0


def test_workbook_set_rejects_bad_fields_and_values() -> None:
    wb = make()
    with pytest.raises(StateError, match="milestone cannot be set directly"):
        wb.set(0, Field.MILESTONE, 1)
    with pytest.raises(StateError, match="is not a Status"):
        wb.set(0, Field.STATUS, 99)
    with pytest.raises(StateError, match=r"step=1\.5"):
        wb.set(0, Field.STEP, 1.5)
    with wb.dispatching(), pytest.raises(StateError, match="expected an integer"):
        wb.set(0, Field.STEP, 1.5)
    with pytest.raises(StateError, match="does not fit"):
        wb.set(0, Field.STEP, 2**40)
    with pytest.raises(StateError, match="not a counter"):
        wb.add(0, Field.STATUS, 1)
    with pytest.raises(StateError, match="row 9 out of range"):
        wb.get(9, Field.STEP)
    assert wb.version(0) == 0


def test_workbook_cold_field_holds_only_rows_with_values() -> None:
    wb = make()
    wb.set_cold(1, Field.VARS, {"token": "abc"})
    assert wb.get_cold(1, Field.VARS) == {"token": "abc"}
    before = wb.memory_bytes()
    wb.set_cold(1, Field.VARS, None)
    assert wb.get_cold(1, Field.VARS) is None
    assert wb.memory_bytes() < before
    assert wb.version(1) == 2


def test_workbook_cold_and_hot_fields_are_kept_apart() -> None:
    wb = make()
    with pytest.raises(StateError, match="not a hot field"):
        wb.get(0, Field.VARS)
    with pytest.raises(StateError, match="not a cold field"):
        wb.set_cold(0, Field.STEP, 3)


def test_workbook_record_error_counts_and_keeps_last_text() -> None:
    wb = make()
    wb.record_error(2, "connection refused")
    wb.record_error(2, "timeout")
    assert wb.get(2, Field.ERRORS) == 2
    assert wb.get_cold(2, Field.ERROR_TEXT) == "timeout"
    assert wb.totals().errors == 2


def test_workbook_reach_milestone_counts_current_and_reached_once() -> None:
    wb = make()
    wb.reach_milestone(0, 0)
    wb.reach_milestone(0, 0)
    wb.reach_milestone(1, 0)
    wb.reach_milestone(0, 1)
    totals = wb.totals()
    assert totals.milestone_current == (1, 1)
    assert totals.milestone_reached == (2, 1)
    assert totals.milestone_reaches == 4
    journal = wb.take_changes().journal
    assert [(e.kind, e.row, e.milestone) for e in journal] == [
        ("milestone", 0, 0),
        ("milestone", 0, 0),
        ("milestone", 1, 0),
        ("milestone", 0, 1),
    ]


def test_workbook_reach_milestone_rejects_unknown_index() -> None:
    wb = make()
    with pytest.raises(StateError, match="milestone index 2 out of range"):
        wb.reach_milestone(0, 2)
    with pytest.raises(StateError, match="unknown milestone 'shipped'"):
        wb.milestone_index("shipped")
    assert wb.milestone_index("paid") == 1


def test_workbook_rollback_returns_to_the_stable_point() -> None:
    wb = make()
    wb.set(0, Field.STEP, 2)
    wb.add(0, Field.DONE, 2)
    wb.set(0, Field.STATUS, Status.ACTIVE)
    wb.set_cold(0, Field.VARS, {"token": "t1"})
    wb.reach_milestone(0, 0)
    wb.set(0, Field.STEP, 5)
    wb.add(0, Field.DONE, 3)
    wb.set_cold(0, Field.VARS, {"token": "t2"})
    wb.set(0, Field.LEASE, 7)
    wb.record_error(0, "backend down")
    wb.rollback([0], "health-check-failed")
    assert wb.get(0, Field.STEP) == 2
    assert wb.get(0, Field.DONE) == 2
    assert wb.get_cold(0, Field.VARS) == {"token": "t1"}
    assert wb.get(0, Field.MILESTONE) == 0
    assert wb.get(0, Field.LEASE) == 7, "the lease describes the present and is kept"
    assert wb.get(0, Field.ERRORS) == 1, "errors are history and are kept"
    totals = wb.totals()
    assert totals.rework == 3
    assert totals.rollbacks == 1
    assert totals.done_work == 2
    entry = wb.take_changes().journal[-1]
    assert (entry.kind, entry.milestone, entry.reason, entry.undone) == (
        "rollback",
        0,
        "health-check-failed",
        3,
    )


def test_workbook_rollback_without_stable_point_goes_to_the_start() -> None:
    wb = make()
    wb.set(3, Field.STEP, 4)
    wb.set(3, Field.ITERATION, 2)
    wb.add(3, Field.DONE, 6)
    wb.set(3, Field.STATUS, Status.WAITING)
    wb.set_cold(3, Field.VARS, {"a": 1})
    wb.rollback([3], "manual")
    assert wb.row_record(3).step == 0
    assert wb.get(3, Field.ITERATION) == 0
    assert wb.status(3) is Status.PENDING
    assert wb.get_cold(3, Field.VARS) is None
    assert wb.totals().rework == 6
    assert wb.take_changes().journal[-1].milestone == -1


def test_workbook_rollback_validates_every_row_before_changing_any() -> None:
    wb = make()
    wb.set(0, Field.STEP, 3)
    with pytest.raises(StateError, match="row 10 out of range"):
        wb.rollback([0, 10], "manual")
    assert wb.get(0, Field.STEP) == 3
    with pytest.raises(StateError, match="unknown rollback reason"):
        wb.rollback([0], "because")  # type: ignore[arg-type]


def test_workbook_rollback_keeps_stable_vars_even_after_later_replacement() -> None:
    wb = make()
    first = {"cart": [1, 2]}
    wb.set_cold(1, Field.VARS, first)
    wb.reach_milestone(1, 1)
    wb.set_cold(1, Field.VARS, None)
    wb.rollback([1], "lease-lost")
    assert wb.get_cold(1, Field.VARS) is first


def test_workbook_dispatch_stages_writes_until_the_block_ends() -> None:
    wb = make()
    with wb.dispatching():
        wb.set(0, Field.STEP, 3)
        wb.add(0, Field.DONE, 1)
        wb.add(0, Field.DONE, 2)
        wb.reach_milestone(0, 0)
        assert wb.get(0, Field.STEP) == 0
        assert wb.statistics().staged_writes == 4
        assert not wb.has_changes
    assert wb.get(0, Field.STEP) == 3
    assert wb.get(0, Field.DONE) == 3
    assert wb.stable_milestone(0) == 0
    assert wb.totals().done_work == 3


def test_workbook_dispatch_coalesces_sets_and_sums_adds() -> None:
    wb = make()
    with wb.dispatching():
        wb.set(1, Field.STEP, 1)
        wb.set(1, Field.STEP, 2)
        wb.add(1, Field.STEP, 5)
        wb.add(1, Field.DONE, 1)
        wb.add(1, Field.DONE, 1)
    assert wb.get(1, Field.STEP) == 7
    assert wb.get(1, Field.DONE) == 2
    assert wb.version(1) == 2, "two coalesced writes, two commits"


def test_workbook_dispatch_keeps_order_across_a_milestone() -> None:
    wb = make()
    with wb.dispatching():
        wb.add(2, Field.DONE, 4)
        wb.reach_milestone(2, 0)
        wb.add(2, Field.DONE, 5)
        wb.rollback([2], "manual")
    assert wb.get(2, Field.DONE) == 4
    assert wb.totals().rework == 5


def test_workbook_dispatch_reports_a_staged_write_that_does_not_fit() -> None:
    wb = make()
    wb.set(0, Field.STEP, 2**31 - 2)
    with pytest.raises(StateError, match="1 staged write"), wb.dispatching():
        wb.add(0, Field.STEP, 5)
        wb.add(1, Field.DONE, 1)
    assert wb.get(0, Field.STEP) == 2**31 - 2
    assert wb.get(1, Field.DONE) == 1, "the other staged writes still apply"


def test_workbook_nested_dispatch_joins_the_outer_one() -> None:
    wb = make()
    with wb.dispatching():
        with wb.dispatching():
            wb.set(0, Field.STEP, 1)
        assert wb.get(0, Field.STEP) == 0
    assert wb.get(0, Field.STEP) == 1


def test_workbook_on_change_fires_once_per_clean_to_dirty_transition() -> None:
    wb = make()
    calls: list[int] = []
    wb.on_change = lambda: calls.append(1)
    wb.set(0, Field.STEP, 1)
    wb.set(1, Field.STEP, 1)
    wb.reach_milestone(2, 0)
    assert len(calls) == 1
    wb.take_changes()
    wb.reach_milestone(2, 1)
    assert len(calls) == 2


def test_workbook_memory_bytes_grows_with_rows_and_cold_values() -> None:
    wb = Workbook(["m"], rows=1000)
    base = wb.memory_bytes()
    assert 30_000 < base < 100_000
    for row in range(0, 1000, 10):
        wb.set_cold(row, Field.VARS, {"token": f"t{row:08d}"})
    with_vars = wb.memory_bytes()
    assert with_vars - base > 100 * 200
    wb.reach_milestone(5, 0)
    assert wb.memory_bytes() > with_vars, "the first stable point allocates a segment"


def test_workbook_memory_counts_a_value_shared_with_a_stable_point_once() -> None:
    wb = make()
    wb.set_cold(0, Field.VARS, {"k": "v" * 100})
    one = wb.memory_bytes()
    wb.reach_milestone(0, 0)
    shared = wb.memory_bytes()
    wb.set_cold(0, Field.VARS, {"k": "w" * 100})
    both = wb.memory_bytes()
    assert both - shared > 200, "the replaced value lives on in the stable point"
    assert shared - one < 30_000


def test_workbook_compact_stable_compresses_idle_segments() -> None:
    wb = Workbook(["m"], rows=5000)
    for row in range(5000):
        wb.add(row, Field.DONE, 2)
        wb.reach_milestone(row, 0)
    assert wb.compact_stable() == 0, "segments touched since the last pass stay live"
    assert wb.compact_stable() == 5
    stats = wb.statistics()
    assert stats.stable_compression_ratio > 10
    before = wb.memory_bytes()
    wb.rollback([4999], "manual")
    assert wb.get(4999, Field.DONE) == 2
    assert wb.memory_bytes() > before, "a rollback thaws its segment"


def test_workbook_row_record_reads_a_whole_row() -> None:
    wb = make()
    wb.set(1, Field.STATUS, Status.WAITING_FOR_RESOURCE)
    wb.reach_milestone(1, 1)
    wb.set_cold(1, Field.PAYLOAD, {"rows": 10})
    record = wb.row_record(1)
    assert record.status == "waiting_for_resource"
    assert record.milestone == "paid"
    assert record.stable_milestone == "paid"
    assert record.payload == {"rows": 10}


def test_workbook_recount_matches_incremental_totals() -> None:
    wb = make(20)
    for row in range(20):
        wb.add(row, Field.DONE, row)
        wb.set(row, Field.STATUS, row % len(Status))
        if row % 3 == 0:
            wb.reach_milestone(row, row % 2)
        if row % 4 == 0:
            wb.record_error(row, "x")
    wb.rollback(range(0, 20, 5), "manual")
    assert wb.recount() == wb.totals()


def test_workbook_duplicate_milestone_names_are_rejected() -> None:
    with pytest.raises(StateError, match="unique"):
        Workbook(["a", "a"])


def test_workbook_memory_bytes_agrees_with_tracemalloc_and_stays_under_the_bar() -> None:
    import tracemalloc

    rows = 5_000
    Workbook(["m"], rows=10).set_cold(0, Field.VARS, {"warm": "up"})
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        wb = Workbook(["logged-in", "paid"], rows=rows)
        for row in range(rows):
            wb.set(row, Field.STATUS, Status.ACTIVE)
            wb.set(row, Field.STEP, 3)
            wb.add(row, Field.DONE, 1 + row % 40)
            wb.set(row, Field.DUE, 1000.0 + row)
            if row % 10 == 0:
                wb.set_cold(row, Field.VARS, {"token": f"tok-{row:028x}"})
                wb.record_error(row, f"HTTP 503 from backend {row}")
            wb.reach_milestone(row, 0)
            if row % 1024 == 0:
                wb.take_changes()
        wb.take_changes()
        traced = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    reported = wb.memory_bytes()
    assert reported / rows < 400
    assert abs(reported - traced) / traced < 0.25, (reported, traced)
