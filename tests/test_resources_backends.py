"""The resource manager against real backends on 127.0.0.1: a killed member, a flapping one,
and the plain-loop scheduler in real time."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter

import pytest

from progressd.clock import FakeClock, LoopClock
from progressd.resources import (
    CheckCompleted,
    FailureAction,
    FakeScheduler,
    HealthCheckSpec,
    LeaseRequest,
    ListSink,
    LoopScheduler,
    PoolSpec,
    RecordingBinding,
    ResourceEvent,
    ResourceManager,
)

pytestmark = pytest.mark.integration


class Backend:
    """A real HTTP/1.1 backend on 127.0.0.1 answering with a cycle of statuses."""

    def __init__(self, statuses: tuple[int, ...] = (200,)) -> None:
        self.statuses = itertools.cycle(statuses)
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def start(self) -> Backend:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def kill(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.writers):
            writer.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(f"HTTP/1.1 {next(self.statuses)} X\r\nContent-Length: 0\r\n\r\n".encode())
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.writers.discard(writer)
            writer.close()


class Harness:
    def __init__(self, backends: list[Backend], check: HealthCheckSpec) -> None:
        self.clock = FakeClock(0.0)
        self.scheduler = FakeScheduler(self.clock)
        self.binding = RecordingBinding()
        self.events = ListSink()
        self.manager = ResourceManager(self.clock, self.scheduler, self.binding, self.events)
        members = tuple(f"127.0.0.1:{b.port}" for b in backends)
        self.manager.add_pool(PoolSpec(name="backends", members=members, health_check=check))
        self.manager.start()

    async def check_round(self) -> None:
        """Run every member's due check for real, then move to the next interval."""
        self.scheduler.run_due()
        await self.manager.wait_checks_idle()
        self.clock.advance(1.0)

    def holders_by_port(self) -> Counter[int]:
        by_id = {lease.id: lease.member.port for lease in self.manager.leases.by_id.values()}
        return Counter(by_id[lease_id] for lease_id in self.binding.leases.values())

    def actions(self) -> list[FailureAction]:
        return [e for e in self.events.events if isinstance(e, FailureAction)]


REQ = LeaseRequest(pool="backends", scenario="browse")


async def test_killed_backend_rolls_back_its_holders_onto_healthy_members() -> None:
    backends = [await Backend().start() for _ in range(3)]
    check = HealthCheckSpec(
        kind="http", interval_s=1.0, timeout_s=0.5,
        successes_before_passing=2, failures_before_critical=2,
    )  # fmt: skip
    h = Harness(backends, check)
    for row in range(30):
        h.manager.acquire(row, REQ)
    await h.check_round()
    killed = backends[1]
    doomed = {
        row for row, lease in h.manager.leases.by_row.items() if lease.member.port == killed.port
    }
    assert len(doomed) == 10
    await killed.kill()
    await h.check_round()
    assert h.binding.rollbacks == []  # one failure is not enough
    await h.check_round()
    ((rolled, reason),) = h.binding.rollbacks
    assert set(rolled) == doomed
    assert reason == "health-check-failed"
    (action,) = h.actions()
    assert f"127.0.0.1:{killed.port} critical" in action.reason
    assert h.holders_by_port() == {backends[0].port: 15, backends[2].port: 15}
    assert len(h.binding.leases) == 30
    await killed.start()  # same port again
    await h.check_round()
    await h.check_round()
    h.manager.acquire(30, REQ)
    assert h.holders_by_port()[killed.port] == 1
    await h.manager.close()
    for backend in (backends[0], backends[2], killed):
        await backend.kill()


async def test_flapping_backend_with_hysteresis_causes_no_rollback_storm() -> None:
    flapping = await Backend((200, 503, 503)).start()
    steady = await Backend().start()
    check = HealthCheckSpec(
        kind="http", interval_s=1.0, timeout_s=0.5,
        successes_before_passing=2, failures_before_critical=3,
    )  # fmt: skip
    h = Harness([flapping, steady], check)
    for row in range(20):
        h.manager.acquire(row, REQ)
    for _ in range(30):
        await h.check_round()
    stats = h.manager.statistics()
    assert stats.checks.by_result["critical"] == 20  # the backend really did fail, often
    assert h.binding.rollbacks == []
    assert stats.transitions_total == 0
    assert h.holders_by_port() == {flapping.port: 10, steady.port: 10}
    await h.manager.close()
    await flapping.kill()
    await steady.kill()


async def test_loop_scheduler_runs_checks_in_real_time() -> None:
    backend = await Backend().start()
    loop = asyncio.get_running_loop()
    seen: asyncio.Future[None] = loop.create_future()
    results: list[ResourceEvent] = []

    class Sink:
        def emit(self, event: ResourceEvent) -> None:
            results.append(event)
            if sum(isinstance(e, CheckCompleted) for e in results) >= 3 and not seen.done():
                seen.set_result(None)

    manager = ResourceManager(LoopClock(loop), LoopScheduler(loop), RecordingBinding(), Sink())
    check = HealthCheckSpec(kind="tcp", interval_s=0.02, timeout_s=0.01)
    manager.add_pool(PoolSpec(name="p", members=(f"127.0.0.1:{backend.port}",), health_check=check))
    manager.start()
    await asyncio.wait_for(seen, 5.0)
    await manager.close()
    assert {e.result for e in results if isinstance(e, CheckCompleted)} == {"passing"}
    await backend.kill()
