from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import pytest

from progressd.clock import FakeClock
from progressd.errors import ResourceError
from progressd.resources import (
    CheckResult,
    FailureAction,
    FakeScheduler,
    HealthCheckConfig,
    HealthCheckSpec,
    LeaseRequest,
    ListSink,
    MemberTransition,
    OnFailure,
    PoolSpec,
    RecordingBinding,
    ResourceManager,
)


class ScriptedCheck:
    """Answers each member's probes from a script; passing once the script runs out."""

    kind = "scripted"

    def __init__(self) -> None:
        self.script: dict[int, deque[CheckResult]] = {}
        self.probes: list[int] = []

    async def probe(self, host: str, port: int) -> tuple[CheckResult, str]:
        self.probes.append(port)
        queue = self.script.get(port)
        return (queue.popleft() if queue else "passing"), "scripted"


class Setup:
    def __init__(
        self,
        on_failure: OnFailure = "rollback",
        *,
        members: str = "h:1-2",
        successes: int = 1,
        failures: int = 1,
        capacity: int | None = None,
        binding: RecordingBinding | None = None,
    ) -> None:
        self.clock = FakeClock(0.0)
        self.scheduler = FakeScheduler(self.clock)
        self.binding = binding or RecordingBinding()
        self.events = ListSink()
        self.check = ScriptedCheck()
        self.manager = ResourceManager(
            self.clock, self.scheduler, self.binding, self.events, check_factory=self._factory
        )
        check = HealthCheckSpec(
            interval_s=1.0,
            timeout_s=0.5,
            on_failure=on_failure,
            successes_before_passing=successes,
            failures_before_critical=failures,
        )
        spec = PoolSpec(
            name="p", members=(members,), health_check=check, max_leases_per_member=capacity
        )
        self.manager.add_pool(spec)

    def _factory(self, config: HealthCheckConfig) -> ScriptedCheck:
        return self.check

    def lease_ports(self) -> dict[int, int]:
        by_id = {lease.id: lease.member.port for lease in self.manager.leases.by_id.values()}
        return {row: by_id[lease_id] for row, lease_id in self.binding.leases.items()}

    async def run_checks(self, rounds: int) -> None:
        for _ in range(rounds):
            self.scheduler.advance(1.0)
            await self.manager.wait_checks_idle()


REQ = LeaseRequest(pool="p", scenario="s")


def _lease_all(s: Setup, rows: range, request: LeaseRequest = REQ) -> None:
    for row in rows:
        s.manager.acquire(row, request)


def test_manager_rollback_rolls_holders_back_and_re_leases_a_healthy_member() -> None:
    s = Setup("rollback")
    _lease_all(s, range(4))
    assert s.lease_ports() == {0: 1, 1: 2, 2: 1, 3: 2}
    s.manager.record_result("p", "h:1", "critical", "connection refused")
    assert len(s.binding.rollbacks) == 1
    rows, reason = s.binding.rollbacks[0]
    assert sorted(rows) == [0, 2]
    assert reason == "health-check-failed"
    assert s.lease_ports() == {0: 2, 1: 2, 2: 2, 3: 2}
    stats = s.manager.statistics()
    assert (stats.rollbacks_triggered_total, stats.rows_rolled_back_total) == (1, 2)
    action = [e for e in s.events.events if isinstance(e, FailureAction)]
    assert [(a.action, a.rows, a.leases) for a in action] == [("rollback", 2, 2)]
    assert action[0].reason == "p/h:1 critical (critical: connection refused)"


def test_manager_release_moves_holders_without_rollback() -> None:
    s = Setup("release")
    _lease_all(s, range(4))
    s.manager.record_result("p", "h:1", "critical")
    assert s.binding.rollbacks == []
    assert set(s.lease_ports().values()) == {2}
    assert s.manager.statistics().leases.releases_total == 2


def test_manager_ignore_only_records() -> None:
    s = Setup("ignore")
    _lease_all(s, range(4))
    before = s.lease_ports()
    s.manager.record_result("p", "h:1", "critical")
    assert s.lease_ports() == before
    assert s.binding.rollbacks == [] and s.binding.aborts == []
    kinds = [type(e).__name__ for e in s.events.events]
    assert kinds == ["CheckCompleted", "MemberTransition", "FailureAction"]


def test_manager_abort_fails_the_run() -> None:
    s = Setup("abort")
    _lease_all(s, range(2))
    s.manager.record_result("p", "h:2", "critical", "HTTP 503")
    assert s.binding.aborts == [((1,), "p/h:2 critical (critical: HTTP 503)")]
    assert s.binding.rollbacks == []
    assert s.manager.statistics().aborts_total == 1


def test_manager_rolled_back_users_wait_then_resume_when_member_recovers() -> None:
    s = Setup("rollback", members="h:1", successes=2)
    _lease_all(s, range(3))
    s.manager.record_result("p", "h:1", "critical")
    assert s.binding.leases == {}
    assert all(s.manager.leases.waiting(row) for row in range(3))
    assert s.manager.statistics().pools[0].waiters == 3
    s.manager.record_result("p", "h:1", "passing")
    assert s.binding.leases == {}  # one success is not enough
    s.manager.record_result("p", "h:1", "passing")
    assert s.lease_ports() == {0: 1, 1: 1, 2: 1}


def test_manager_flapping_member_with_hysteresis_causes_no_rollback_storm() -> None:
    s = Setup("rollback", failures=3, successes=2)
    _lease_all(s, range(10))
    s.manager.record_result("p", "h:1", "passing")  # the first result is taken as it is
    for result in ["critical", "critical", "passing"] * 30:
        s.manager.record_result("p", "h:1", result)  # type: ignore[arg-type]
    assert s.binding.rollbacks == []
    assert s.manager.statistics().transitions_total == 0


async def test_manager_schedules_one_pending_check_per_member() -> None:
    s = Setup()
    s.manager.start()
    assert len(s.scheduler.pending()) == 2
    s.scheduler.run_due()
    await s.manager.wait_checks_idle()
    await s.run_checks(3)
    assert sorted(s.check.probes) == [1, 1, 1, 1, 2, 2, 2, 2]
    assert len(s.scheduler.pending()) == 2
    assert s.manager.statistics().checks.by_result["passing"] == 8


async def test_manager_check_results_drive_failure_and_recovery() -> None:
    s = Setup("rollback", failures=2, successes=2)
    s.check.script[1] = deque(["passing", "critical", "critical", "passing", "passing"])
    _lease_all(s, range(2))
    s.manager.start()
    s.scheduler.run_due()
    await s.manager.wait_checks_idle()
    await s.run_checks(1)
    assert s.binding.rollbacks == []  # one failure is not enough
    await s.run_checks(1)
    assert [sorted(rows) for rows, _ in s.binding.rollbacks] == [[0]]
    await s.run_checks(2)
    transitions = [(e.old, e.new) for e in s.events.events if isinstance(e, MemberTransition)]
    assert transitions == [("passing", "critical"), ("critical", "passing")]


async def test_manager_priority_inheritance_moves_member_checks_to_health_class() -> None:
    s = Setup(members="h:1")
    s.manager.start()
    assert [c.priority_class for c in s.scheduler.pending()] == ["step"]
    s.manager.acquire(1, LeaseRequest(pool="p", scenario="vip", priority=5))
    assert [c.priority_class for c in s.scheduler.pending()] == ["health"]
    assert s.manager.member_records("p")[0].inherited_class == "health"
    s.manager.acquire(2, LeaseRequest(pool="p", scenario="bulk", priority=0))
    s.manager.release(1)
    assert [c.priority_class for c in s.scheduler.pending()] == ["step"]
    s.scheduler.run_due()
    assert s.scheduler.ran == [(0.0, "step")]
    await s.manager.wait_checks_idle()


def test_manager_drained_member_takes_no_new_leases() -> None:
    s = Setup(members="h:1-2")
    s.manager.acquire(0, REQ)
    record = s.manager.drain("p", "h:1")
    assert record.state == "draining" and record.holders == 1
    _lease_all(s, range(1, 4))
    assert s.lease_ports() == {0: 1, 1: 2, 2: 2, 3: 2}
    s.manager.drain("p", "h:1", draining=False)
    s.manager.acquire(4, REQ)
    assert s.lease_ports()[4] == 1


def test_manager_undrain_serves_waiters() -> None:
    s = Setup(members="h:1", capacity=1)
    s.manager.drain("p", "h:1")
    assert s.manager.acquire(0, REQ) is None
    s.manager.drain("p", "h:1", draining=False)
    assert s.lease_ports() == {0: 1}


def test_manager_lease_records_show_holder_progress() -> None:
    s = Setup()
    s.manager.acquire(3, REQ)
    s.binding.progress[3] = (0.5, "logged-in")
    (record,) = s.manager.lease_records()
    assert (record.rows, record.progress, record.milestone) == ((3,), 0.5, "logged-in")
    assert record.member == "h:1" and record.expires_at is None


def test_manager_remove_pool_revokes_leases_and_waits() -> None:
    s = Setup(members="h:1", capacity=1)
    _lease_all(s, range(2))
    assert sorted(s.manager.remove_pool("p")) == [0, 1]
    assert s.binding.leases == {}
    assert s.manager.statistics().pools == ()


async def test_manager_close_releases_every_lease_and_stops_checks() -> None:
    s = Setup()
    s.manager.start()
    _lease_all(s, range(3))
    await s.manager.close()
    assert s.binding.leases == {}
    assert s.scheduler.pending() == []


def test_manager_rejects_duplicate_and_invalid_pools() -> None:
    s = Setup()
    with pytest.raises(ResourceError, match="pool 'p' is already declared"):
        s.manager.add_pool(PoolSpec(name="p", members=("h:9",)))
    with pytest.raises(ResourceError, match=r"resources\.ip-port-pool\.q: expected"):
        s.manager.add_pool(_Config(name="q", members=("nohost",)))


def test_manager_unknown_member_is_a_clear_error() -> None:
    s = Setup()
    with pytest.raises(ResourceError, match="pool 'p' has no member 'h:9'"):
        s.manager.record_result("p", "h:9", "passing")


def test_manager_statistics_count_member_states() -> None:
    s = Setup(members="h:1-3")
    s.manager.record_result("p", "h:1", "critical")
    s.manager.record_result("p", "h:2", "warning")
    s.manager.acquire(1, REQ)
    (pool,) = s.manager.statistics().pools
    assert pool.member_states == {"passing": 1, "warning": 1, "critical": 1, "draining": 0}
    assert pool.leases_active == 1


class _Config:
    def __init__(self, name: str, members: tuple[str, ...]) -> None:
        self.name = name
        self.members = members
        self.health_check = None
        self.max_leases_per_member = None


def test_manager_rolled_back_users_queue_behind_existing_waiters() -> None:
    s = Setup("rollback", members="h:1-2", capacity=1)
    _lease_all(s, range(3))
    assert s.lease_ports() == {0: 1, 1: 2} and s.manager.leases.waiting(2)
    s.manager.record_result("p", "h:1", "critical")
    assert s.manager.leases.waiting(0)
    s.manager.release(1)
    assert s.lease_ports() == {2: 2}
    s.manager.record_result("p", "h:1", "passing")
    assert s.lease_ports() == {0: 1, 2: 2}


def test_manager_rollback_moves_a_scenario_lease_with_all_its_rows() -> None:
    s = Setup("rollback", members="h:1-2")
    shared = LeaseRequest(pool="p", per="scenario", scenario="batch")
    _lease_all(s, range(3), shared)
    (old_id,) = set(s.binding.leases.values())
    s.manager.record_result("p", "h:1", "critical")
    assert [sorted(rows) for rows, _ in s.binding.rollbacks] == [[0, 1, 2]]
    (new_id,) = set(s.binding.leases.values())
    assert new_id != old_id
    assert s.lease_ports() == {0: 2, 1: 2, 2: 2}
    assert s.manager.statistics().leases.active == 1


def test_manager_moved_lease_gets_a_fresh_ttl() -> None:
    s = Setup("release", members="h:1-2")
    s.manager.acquire(0, LeaseRequest(pool="p", ttl=5.0))
    s.scheduler.advance(3.0)
    s.manager.record_result("p", "h:1", "critical")
    assert s.lease_ports() == {0: 2}
    s.scheduler.advance(4.0)
    assert s.lease_ports() == {0: 2}  # re-leased at t=3: expires at t=8
    s.scheduler.advance(1.0)
    assert s.binding.leases == {}


def test_manager_pool_records_show_check_action_load_and_members() -> None:
    s = Setup("release", members="h:1-2")
    s.manager.acquire(0, REQ)
    s.manager.drain("p", "h:2")
    (pool,) = s.manager.pool_records()
    assert (pool.name, pool.check, pool.on_failure) == ("p", "tcp", "release")
    assert pool.interval_s == 1.0
    assert pool.leases_active == 1 and pool.waiters == 0
    assert [(m.address, m.state, m.holders) for m in pool.members] == [
        ("h:1", "passing", 1),
        ("h:2", "draining", 0),
    ]


async def test_manager_keeps_checking_when_a_binding_callback_raises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    s = Setup("abort", members="h:1", binding=BrokenAbort())
    s.check.script[1] = deque(["critical", "passing", "passing"])
    _lease_all(s, range(1))
    s.manager.start()
    s.scheduler.run_due()
    await s.manager.wait_checks_idle()
    assert "handling a health-check result raised" in caplog.text
    await s.run_checks(2)
    assert s.check.probes == [1, 1, 1]  # the member is still checked on schedule


class BrokenAbort(RecordingBinding):
    __slots__ = ()

    def abort(self, rows: Sequence[int], reason: str) -> None:
        raise RuntimeError("runner bug")


async def test_manager_member_down_at_start_is_critical_after_one_check() -> None:
    s = Setup("rollback", failures=3, successes=2)
    s.check.script[1] = deque(["critical"])
    s.manager.start()
    s.scheduler.run_due()
    await s.manager.wait_checks_idle()
    _lease_all(s, range(4))
    assert set(s.lease_ports().values()) == {2}
