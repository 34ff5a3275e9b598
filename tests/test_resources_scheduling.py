from __future__ import annotations

import asyncio

from progressd.clock import FakeClock
from progressd.poller import PollableKind, Poller
from progressd.resources import (
    FakeScheduler,
    LeaseRequest,
    PollerScheduler,
    PoolSpec,
    RecordingBinding,
    ResourceManager,
)
from progressd.resources.spec import HealthCheckSpec


def test_fake_scheduler_runs_due_calls_most_urgent_class_first() -> None:
    clock = FakeClock()
    scheduler = FakeScheduler(clock)
    ran: list[str] = []
    scheduler.call_at(1.0, lambda: ran.append("step"), "step")
    scheduler.call_at(1.0, lambda: ran.append("health"), "health")
    scheduler.call_at(2.0, lambda: ran.append("late"), "health")
    cancelled = scheduler.call_at(1.0, lambda: ran.append("cancelled"), "health")
    cancelled.cancel()
    assert scheduler.advance(1.5) == 2
    assert ran == ["health", "step"]
    assert clock.now() == 1.5
    scheduler.advance(1.0)
    assert ran == ["health", "step", "late"]


def test_fake_scheduler_advance_runs_calls_scheduled_by_calls() -> None:
    clock = FakeClock()
    scheduler = FakeScheduler(clock)
    times: list[float] = []

    def tick() -> None:
        times.append(clock.now())
        scheduler.call_at(clock.now() + 1.0, tick, "health")

    scheduler.call_at(0.0, tick, "health")
    scheduler.advance(3.0)
    assert times == [0.0, 1.0, 2.0, 3.0]


def test_poller_scheduler_files_each_call_as_one_pollable_in_its_class() -> None:
    clock = FakeClock()
    poller = Poller(clock)
    scheduler = PollerScheduler(poller)
    ran: list[str] = []
    handle = scheduler.call_at(1.0, lambda: ran.append("check"), "health", "health")
    assert handle.kind is PollableKind.HEALTH
    assert handle.rank == poller.rank_of("health")
    dropped = scheduler.call_at(1.0, lambda: ran.append("dropped"), "step")
    dropped.cancel()
    clock.advance(1.0)
    assert poller.run_ready() == 1
    assert ran == ["check"]


async def test_manager_on_the_poller_keeps_one_timer_per_member_and_expires_leases() -> None:
    server = await asyncio.start_server(_hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    clock = FakeClock()
    poller = Poller(clock)
    binding = RecordingBinding()
    manager = ResourceManager(clock, PollerScheduler(poller), binding)
    check = HealthCheckSpec(kind="tcp", interval_s=10.0, timeout_s=1.0)
    manager.add_pool(PoolSpec(name="p", members=(f"127.0.0.1:{port}",), health_check=check))
    manager.start()
    for row in range(50):
        manager.acquire(row, LeaseRequest(pool="p", scenario="s", ttl=5.0 + row))
    poller.run_ready()  # the first health check starts (its probe is one task until it ends)
    await manager.wait_checks_idle()
    # one next health check and one lease-expiry timer for 50 leases: no task per anything
    assert poller.statistics().timers_waiting == 2
    clock.advance(5.0)
    poller.run_ready()
    assert sorted(binding.leases) == list(range(1, 50))
    assert manager.statistics().checks.by_result["passing"] == 1
    await manager.close()
    server.close()
    await server.wait_closed()


async def _hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()
