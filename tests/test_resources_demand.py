from __future__ import annotations

import pytest

from progressd.clock import FakeClock
from progressd.resources import (
    CapacityForecast,
    CheckResult,
    DemandForecast,
    FakeScheduler,
    HealthCheckConfig,
    HealthCheckSpec,
    LeaseRequest,
    ListSink,
    PoolSpec,
    RecordingBinding,
    ResourceManager,
)


def _trained(gap_s: float, hold_s: float, samples: int = 10) -> DemandForecast:
    demand = DemandForecast()
    for i in range(samples + 1):
        demand.on_request(i * gap_s)
        demand.on_release(hold_s)
    return demand


def test_demand_forecast_is_held_back_until_it_has_samples() -> None:
    demand = DemandForecast(min_samples=3)
    demand.on_request(0.0)
    demand.on_request(1.0)
    demand.on_release(5.0)
    assert demand.predict(active=4, horizon_s=10.0) is None


def test_demand_forecast_learns_rate_and_hold_time() -> None:
    demand = _trained(gap_s=0.5, hold_s=10.0)
    assert demand.rate_per_s == pytest.approx(2.0)
    assert demand.hold_s == pytest.approx(10.0)


def test_demand_forecast_follows_littles_law_and_decay() -> None:
    demand = _trained(gap_s=0.5, hold_s=10.0)
    assert demand.predict(active=7, horizon_s=0.0) == pytest.approx(7.0)
    assert demand.predict(active=7, horizon_s=1_000.0) == pytest.approx(20.0)  # λ·W
    mid = demand.predict(active=0, horizon_s=10.0)
    assert mid == pytest.approx(20.0 * (1 - 2.718281828**-1), rel=1e-6)


class AlwaysPassing:
    kind = "always"

    async def probe(self, host: str, port: int) -> tuple[CheckResult, str]:
        return "passing", "ok"


def _passing(config: HealthCheckConfig) -> AlwaysPassing:
    return AlwaysPassing()


class Setup:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.scheduler = FakeScheduler(self.clock)
        self.events = ListSink()
        self.manager = ResourceManager(
            self.clock, self.scheduler, RecordingBinding(), self.events, check_factory=_passing
        )
        check = HealthCheckSpec(interval_s=60.0, timeout_s=1.0)
        spec = PoolSpec(name="p", members=("h:1-2",), health_check=check, max_leases_per_member=5)
        self.manager.add_pool(spec)

    def train(self, users: int, gap_s: float, hold_s: float) -> None:
        """Users arrive every ``gap_s`` and each holds its lease ``hold_s``."""
        releases: list[tuple[float, int]] = []
        for row in range(users):
            self.clock.set(row * gap_s)
            while releases and releases[0][0] <= self.clock.now():
                self.manager.release(releases.pop(0)[1])
            self.manager.acquire(row, LeaseRequest(pool="p"))
            releases.append((self.clock.now() + hold_s, row))


def test_manager_forecast_reports_predicted_use_against_healthy_capacity() -> None:
    s = Setup()
    s.train(users=12, gap_s=1.0, hold_s=4.0)
    record = s.manager.forecast("p", horizon_s=60.0)
    assert record.healthy_capacity == 10
    assert record.rate_per_s == pytest.approx(1.0)
    assert record.hold_s == pytest.approx(4.0)
    assert record.predicted == pytest.approx(4.0, rel=0.01)


async def test_manager_prepare_brings_critical_members_checks_forward() -> None:
    s = Setup()
    s.manager.start()
    s.scheduler.run_due()
    await s.manager.wait_checks_idle()  # first checks done; the next are due at t=60
    s.manager.record_result("p", "h:2", "critical")
    s.train(users=40, gap_s=0.5, hold_s=5.0)  # λ·W = 10 leases wanted, 5 healthy places
    pending = {c.when for c in s.scheduler.pending() if c.kind == "health"}
    assert min(pending) > s.clock.now()
    (event,) = s.manager.prepare(horizon_s=10.0)
    assert isinstance(event, CapacityForecast)
    assert (event.pool, event.capacity, event.prepared) == ("p", 5, ("h:2",))
    assert event.predicted > 5
    assert event in s.events.events
    due_now = [c for c in s.scheduler.pending() if c.when == s.clock.now()]
    assert [c.priority_class for c in due_now] == ["step"]


def test_manager_prepare_does_nothing_when_capacity_suffices() -> None:
    s = Setup()
    s.train(users=12, gap_s=1.0, hold_s=2.0)
    assert s.manager.prepare(horizon_s=10.0) == []


def test_manager_moves_after_a_failure_are_not_demand() -> None:
    s = Setup()
    s.train(users=8, gap_s=1.0, hold_s=100.0)
    demand = s.manager.leases.forecast("p")
    before = (demand.rate_per_s, demand.hold_s)
    s.manager.record_result("p", "h:1", "critical")
    assert (demand.rate_per_s, demand.hold_s) == before
