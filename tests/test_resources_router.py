from __future__ import annotations

import pytest

from progressd.clock import FakeClock
from progressd.errors import ResourceError
from progressd.resources import (
    FakeScheduler,
    HealthCheckSpec,
    LeaseRequest,
    PoolSpec,
    RecordingBinding,
    ResourceManager,
    RunRouter,
)

REQ = LeaseRequest(pool="shared", scenario="s")


def _shared(on_failure: str = "rollback") -> tuple[ResourceManager, RunRouter]:
    clock = FakeClock()
    router = RunRouter()
    manager = ResourceManager(clock, FakeScheduler(clock), router)
    check = HealthCheckSpec(on_failure=on_failure)  # type: ignore[arg-type]
    manager.add_pool(PoolSpec(name="shared", members=("h:1-2",), health_check=check))
    return manager, router


def test_router_gives_each_run_its_own_row_numbers() -> None:
    manager, router = _shared()
    run_a, run_b = RecordingBinding(), RecordingBinding()
    base_a, base_b = router.attach(run_a), router.attach(run_b)
    manager.acquire(base_a + 0, REQ)
    manager.acquire(base_b + 0, REQ)
    assert run_a.leases.keys() == {0} and run_b.leases.keys() == {0}
    assert run_a.leases[0] != run_b.leases[0]
    run_b.progress[0] = (0.25, "logged-in")
    records = {r.rows[0]: r for r in manager.lease_records()}
    assert records[base_b].milestone == "logged-in"


def test_router_splits_a_rollback_between_runs() -> None:
    manager, router = _shared()
    run_a, run_b = RecordingBinding(), RecordingBinding()
    base_a, base_b = router.attach(run_a), router.attach(run_b)
    for base in (base_a, base_b):  # round-robin: row 0 of each run on h:1, row 1 on h:2
        manager.acquire(base + 0, REQ)
        manager.acquire(base + 1, REQ)
    failing = manager.leases.by_row[base_a].member.address
    manager.record_result("shared", failing, "critical", "refused")
    assert [sorted(rows) for rows, _ in run_a.rollbacks] == [[0]]
    assert [sorted(rows) for rows, _ in run_b.rollbacks] == [[0]]
    assert run_a.leases.keys() == {0, 1} and run_b.leases.keys() == {0, 1}


def test_router_aborts_only_the_runs_holding_the_member() -> None:
    manager, router = _shared("abort")
    run_a, run_b = RecordingBinding(), RecordingBinding()
    base_a = router.attach(run_a)
    router.attach(run_b)
    manager.acquire(base_a + 7, REQ)
    member = manager.leases.by_row[base_a + 7].member.address
    manager.record_result("shared", member, "critical")
    assert [rows for rows, _ in run_a.aborts] == [(7,)]
    assert run_b.aborts == []


def test_router_drops_calls_for_detached_runs() -> None:
    manager, router = _shared()
    run = RecordingBinding()
    base = router.attach(run)
    manager.acquire(base + 1, REQ)
    router.detach(base)
    manager.release(base + 1)
    assert run.leases == {1: 1}  # the detached run heard nothing more
    with pytest.raises(ResourceError, match="belongs to no attached run"):
        router.holder_progress(base + 1)
