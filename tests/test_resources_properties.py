"""Random sequences of lease, health and drain operations keep the lease table consistent."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from progressd.clock import FakeClock
from progressd.resources import (
    FakeScheduler,
    HealthCheckSpec,
    LeaseRequest,
    PoolSpec,
    RecordingBinding,
    ResourceManager,
)

MEMBERS = ("h:1", "h:2", "h:3")
REQUESTS = (
    LeaseRequest(pool="p", scenario="a", priority=0, ttl=3.0, release_on="m"),
    LeaseRequest(pool="p", scenario="b", priority=5),
    LeaseRequest(pool="p", per="scenario", scenario="c", priority=2, ttl=2.0),
)

acquire = st.tuples(st.just("acquire"), st.integers(0, 7), st.integers(0, len(REQUESTS) - 1))
ops = st.one_of(
    acquire,
    acquire,
    acquire,
    st.tuples(st.just("release"), st.integers(0, 7)),
    st.tuples(st.just("milestone"), st.integers(0, 7)),
    st.tuples(st.just("renew"), st.integers(0, 7)),
    st.tuples(st.just("check"), st.sampled_from(MEMBERS), st.sampled_from(["passing", "critical"])),
    st.tuples(st.just("drain"), st.sampled_from(MEMBERS), st.booleans()),
    st.tuples(st.just("advance"), st.sampled_from([0.5, 1.0, 2.5])),
)


def _apply(manager: ResourceManager, scheduler: FakeScheduler, op: tuple[object, ...]) -> None:
    match op:
        case ("acquire", int(row), int(index)):
            held = manager.leases.by_row.get(row)
            if held is None or held.request is REQUESTS[index]:
                manager.acquire(row, REQUESTS[index])
        case ("release", int(row)):
            manager.release(row)
        case ("milestone", int(row)):
            manager.on_milestone(row, "m")
        case ("renew", int(row)):
            manager.renew(row)
        case ("check", str(member), "passing" | "critical" as result):
            manager.record_result("p", member, result)
        case ("drain", str(member), bool(draining)):
            manager.drain("p", member, draining)
        case ("advance", float(seconds)):
            scheduler.advance(seconds)


def _check_invariants(manager: ResourceManager, binding: RecordingBinding) -> None:
    table = manager.leases
    pool = manager.pools["p"]
    assert binding.leases == {row: lease.id for row, lease in table.by_row.items()}
    for lease in table.by_id.values():
        assert lease.rows, "a lease without rows must be freed"
        assert all(table.by_row[row] is lease for row in lease.rows)
    for member in pool.members.values():
        on_member = table.leases_on("p", member)
        assert member.holders == len(on_member)
        assert member.capacity is None or member.holders <= member.capacity
        assert member.high_holders == sum(lease.high for lease in on_member)
        assert member.health != "critical" or not on_member  # rollback moved them all
    waiting = [row for row in range(8) if table.waiting(row)]
    assert not set(waiting) & set(table.by_row)
    if waiting:
        assert pool.select() is None, "nobody waits while a member has room"
    assert table.waiters("p") == len(waiting)


class EagerBinding(RecordingBinding):
    """A runner that re-asks for a lease the moment it loses one, and releases a rolled-back
    row's lease itself inside ``rollback_users`` (both call back into the manager)."""

    __slots__ = ("manager", "wanted")

    def __init__(self) -> None:
        super().__init__()
        self.manager: ResourceManager | None = None
        self.wanted: dict[int, LeaseRequest] = {}

    def lease_changed(self, row: int, lease_id: int | None) -> None:
        super().lease_changed(row, lease_id)
        request = self.wanted.get(row)
        if lease_id is None and request is not None and self.manager is not None:
            self.manager.acquire(row, request)

    def rollback_users(self, rows: Sequence[int], reason: str) -> None:
        super().rollback_users(rows, reason)
        if self.manager is not None and rows:
            self.manager.release(rows[0])


def _run(script: list[tuple[object, ...]], binding: RecordingBinding) -> None:
    clock = FakeClock()
    scheduler = FakeScheduler(clock)
    manager = ResourceManager(clock, scheduler, binding)
    if isinstance(binding, EagerBinding):
        binding.manager = manager
    check = HealthCheckSpec(successes_before_passing=2, failures_before_critical=2)
    manager.add_pool(
        PoolSpec(name="p", members=("h:1-3",), health_check=check, max_leases_per_member=1)
    )
    for op in script:
        if isinstance(binding, EagerBinding):
            match op:
                case ("acquire", int(row), int(index)):
                    binding.wanted.setdefault(row, REQUESTS[index])
                case ("release", int(row)):
                    binding.wanted.pop(row, None)
        _apply(manager, scheduler, op)
        _check_invariants(manager, binding)


@settings(max_examples=150, deadline=None)
@given(st.lists(ops, min_size=20, max_size=80))
def test_lease_table_invariants_hold_under_random_operations(
    script: list[tuple[object, ...]],
) -> None:
    _run(script, RecordingBinding())


@settings(max_examples=100, deadline=None)
@given(st.lists(ops, min_size=20, max_size=80))
def test_lease_table_stays_consistent_when_the_binding_calls_back(
    script: list[tuple[object, ...]],
) -> None:
    _run(script, EagerBinding())
