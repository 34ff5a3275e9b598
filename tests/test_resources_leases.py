from __future__ import annotations

import pytest

from progressd.clock import FakeClock
from progressd.errors import ResourceError
from progressd.resources import (
    FakeScheduler,
    LeaseRequest,
    LeasesExpired,
    LeaseSpec,
    LeaseTable,
    ListSink,
    Pool,
    RecordingBinding,
)


class Setup:
    def __init__(self, members: str = "h:1-2", capacity: int | None = None) -> None:
        self.clock = FakeClock(100.0)
        self.scheduler = FakeScheduler(self.clock)
        self.binding = RecordingBinding()
        self.events = ListSink()
        self.pools = {"p": Pool("p", members, capacity=capacity)}
        self.table = LeaseTable(self.pools, self.clock, self.scheduler, self.binding, self.events)


def _req(**kw: object) -> LeaseRequest:
    return LeaseRequest(pool="p", **kw)  # type: ignore[arg-type]


def test_lease_grant_binds_row_and_member() -> None:
    s = Setup()
    lease = s.table.acquire(7, _req())
    assert lease is not None
    assert s.binding.leases == {7: lease.id}
    assert lease.member.holders == 1
    assert s.table.acquire(7, _req()) is lease  # idempotent
    assert s.table.statistics().grants_total == 1


def test_lease_release_frees_member_and_tells_binding() -> None:
    s = Setup()
    lease = s.table.acquire(1, _req())
    assert lease is not None
    assert s.table.release(1)
    assert s.binding.leases == {}
    assert lease.member.holders == 0
    assert not s.table.release(1)
    stats = s.table.statistics()
    assert (stats.active, stats.releases_total) == (0, 1)


def test_lease_unknown_pool_is_a_clear_error() -> None:
    s = Setup()
    with pytest.raises(ResourceError, match=r"unknown pool 'nope' \(known pools: p\)"):
        s.table.acquire(1, LeaseRequest(pool="nope"))


def test_lease_expires_after_ttl_without_progress() -> None:
    s = Setup()
    s.table.acquire(1, _req(ttl=5.0))
    s.table.acquire(2, _req(ttl=5.0))
    s.scheduler.advance(3.0)
    s.table.renew(2)  # row 2 progresses; row 1 is stuck
    s.scheduler.advance(2.0)
    assert s.binding.leases.keys() == {2}
    assert s.events.events == [LeasesExpired(pool="p", rows=(1,), at=105.0)]
    s.scheduler.advance(2.9)
    assert s.binding.leases.keys() == {2}
    s.scheduler.advance(0.1)
    assert s.binding.leases == {}
    assert s.table.statistics().expiries_total == 2


def test_lease_expiry_uses_one_scheduler_entry_for_all_leases() -> None:
    s = Setup(members="h:1-10")
    for row in range(100):
        s.table.acquire(row, _req(ttl=5.0 + row))
    assert len(s.scheduler.pending()) == 1


def test_lease_without_ttl_never_expires() -> None:
    s = Setup()
    s.table.acquire(1, _req())
    s.scheduler.advance(10_000.0)
    assert 1 in s.binding.leases


def test_lease_released_on_its_milestone_only() -> None:
    s = Setup()
    spec = LeaseSpec(pool="p", release_milestone="paid")
    s.table.acquire(1, LeaseRequest.from_config(spec, scenario="buy"))
    assert not s.table.on_milestone(1, "logged-in")
    assert 1 in s.binding.leases
    assert s.table.on_milestone(1, "paid")
    assert s.binding.leases == {}


def test_lease_milestone_renews_the_ttl() -> None:
    s = Setup()
    s.table.acquire(1, _req(ttl=5.0, release_on="paid"))
    s.scheduler.advance(4.0)
    s.table.on_milestone(1, "logged-in")
    s.scheduler.advance(4.0)
    assert 1 in s.binding.leases


def test_lease_released_when_user_finishes() -> None:
    s = Setup()
    s.table.acquire(1, _req(release_on="never-reached"))
    assert s.table.on_finished(1)
    assert s.binding.leases == {}


def test_lease_per_scenario_is_shared_until_last_row_lets_go() -> None:
    s = Setup()
    req = _req(per="scenario", scenario="batch")
    first, second = s.table.acquire(1, req), s.table.acquire(2, req)
    assert first is second and first is not None
    assert first.member.holders == 1
    s.table.release(1)
    assert s.table.statistics().active == 1
    s.table.release(2)
    assert s.table.statistics().active == 0
    assert first.member.holders == 0


def test_lease_queue_orders_by_priority_then_arrival() -> None:
    s = Setup(members="h:1", capacity=1)
    s.table.acquire(0, _req())
    assert s.table.acquire(1, _req(priority=0)) is None
    assert s.table.acquire(2, _req(priority=5)) is None
    assert s.table.acquire(3, _req(priority=0)) is None
    assert s.table.acquire(4, _req(priority=5)) is None
    assert s.table.waiting(1) and s.table.waiters("p") == 4
    served = []
    holder = 0
    for _ in range(4):
        s.table.release(holder)
        (holder,) = s.binding.leases
        served.append(holder)
    assert served == [2, 4, 1, 3]
    assert s.table.waiters("p") == 0


def test_lease_new_request_never_overtakes_a_waiter() -> None:
    s = Setup(members="h:1", capacity=1)
    s.table.acquire(0, _req())
    s.table.acquire(1, _req())
    s.table.release(0)
    assert s.binding.leases.keys() == {1}
    assert s.table.acquire(2, _req()) is None


def test_lease_waiter_can_withdraw() -> None:
    s = Setup(members="h:1", capacity=1)
    s.table.acquire(0, _req())
    s.table.acquire(1, _req())
    s.table.acquire(2, _req())
    assert s.table.release(1)  # gives up waiting
    s.table.release(0)
    assert s.binding.leases.keys() == {2}


def test_lease_scenario_waiters_share_one_grant() -> None:
    s = Setup(members="h:1", capacity=1)
    s.table.acquire(0, _req())
    req = _req(per="scenario", scenario="batch")
    assert s.table.acquire(1, req) is None
    assert s.table.acquire(2, req) is None
    s.table.release(0)
    assert s.binding.leases[1] == s.binding.leases[2]
    assert s.table.statistics().active == 1


def test_lease_row_cannot_hold_two_pools() -> None:
    s = Setup()
    s.pools["q"] = Pool("q", "h:9")
    s.table.acquire(1, _req())
    with pytest.raises(ResourceError, match="already holds a lease on pool p"):
        s.table.acquire(1, LeaseRequest(pool="q"))
