"""Health monitoring: when each member's next check runs, and running it.

Design note: checks are never one task per member per interval. Each watched member has one
``_Slot``: either ONE pending scheduler entry (its next check, a ``health`` pollable on the
poller) or ONE check in flight (one task awaiting one probe), never both. When the probe ends
the result goes to ``report`` (the manager's ``record_result``) and the next check is
scheduled ``interval`` after this one started. The slot's scheduler entry is filed in the
``high`` class while the member serves a high-priority holder (priority inheritance), else in
the ``low`` class; ``reclass`` re-files a pending entry when that changes.

Invariants: ``slot.handle is not None`` and ``slot.running`` are never both true; a slot
removed by ``unwatch`` never reports again (a check in flight finds its slot gone).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from progressd.clock import Clock
from progressd.resources.checks import HealthCheck, run_check
from progressd.resources.members import CHECK_RESULTS, CheckResult, Member
from progressd.resources.pool import Pool
from progressd.resources.records import CheckStatistics
from progressd.resources.seams import Cancellable, Scheduler

_log = logging.getLogger("progressd.resources")

Report = Callable[[str, str, CheckResult, str, float], None]
"""``(pool, address, result, detail, duration_s)``: where a finished check's result goes."""


@dataclass(slots=True)
class _Plan:
    check: HealthCheck
    interval: float
    timeout: float


@dataclass(slots=True)
class _Slot:
    plan: _Plan
    pool: str
    member: Member
    due: float = 0.0
    handle: Cancellable | None = None
    running: bool = False


class HealthMonitor:
    """Schedules and runs the health checks of watched pools on a ``Scheduler``."""

    def __init__(
        self,
        clock: Clock,
        scheduler: Scheduler,
        report: Report,
        *,
        high_class: str = "health",
        low_class: str = "step",
    ) -> None:
        self._clock, self._scheduler, self._report = clock, scheduler, report
        self.high_class, self.low_class = high_class, low_class
        self._slots: dict[tuple[str, str], _Slot] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._started = False
        self.timeouts = 0
        self.by_result: dict[str, int] = dict.fromkeys(CHECK_RESULTS, 0)

    def watch(self, pool: Pool, check: HealthCheck, interval: float, timeout: float) -> None:
        """Check every member of ``pool``; the first checks are due at once once started."""
        plan = _Plan(check, interval, timeout)
        for member in pool.members.values():
            slot = _Slot(plan, pool.name, member)
            self._slots[(pool.name, member.address)] = slot
            if self._started:
                self._schedule(slot, self._clock.now())

    def unwatch(self, pool: Pool) -> None:
        """Stop checking ``pool``'s members; a check in flight is dropped when it ends."""
        for address in pool.members:
            slot = self._slots.pop((pool.name, address), None)
            if slot is not None and slot.handle is not None:
                slot.handle.cancel()

    def start(self) -> None:
        """Schedule the first check of every watched member, due now."""
        self._started = True
        now = self._clock.now()
        for slot in self._slots.values():
            if slot.handle is None and not slot.running:
                self._schedule(slot, now)

    def check_class(self, member: Member) -> str:
        """The priority class the member's checks run in (priority inheritance)."""
        return self.high_class if member.high_holders else self.low_class

    def reclass(self, pool: Pool, member: Member) -> None:
        """Re-file a pending check after the member's inherited priority changed."""
        slot = self._slots.get((pool.name, member.address))
        if slot is not None and slot.handle is not None:
            self._schedule(slot, slot.due)

    def check_soon(self, pool: Pool, member: Member) -> bool:
        """Bring a member's pending check forward to now; whether it was pending later."""
        slot = self._slots.get((pool.name, member.address))
        now = self._clock.now()
        if slot is None or slot.handle is None or slot.due <= now:
            return False
        self._schedule(slot, now)
        return True

    def statistics(self) -> CheckStatistics:
        """Checks run by result, timeouts, and checks in flight now."""
        return CheckStatistics(
            in_flight=len(self._tasks), by_result=dict(self.by_result), timeouts_total=self.timeouts
        )

    async def wait_idle(self) -> None:
        """Wait until no check is in flight."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        """Withdraw every pending check and cancel the ones in flight."""
        self._started = False
        for slot in self._slots.values():
            if slot.handle is not None:
                slot.handle.cancel()
                slot.handle = None
        for task in list(self._tasks):
            task.cancel()
        await self.wait_idle()

    def _schedule(self, slot: _Slot, when: float) -> None:
        if slot.handle is not None:
            slot.handle.cancel()
        slot.due = when
        cls = self.check_class(slot.member)
        slot.handle = self._scheduler.call_at(when, lambda: self._due(slot), cls, "health")

    def _due(self, slot: _Slot) -> None:
        slot.handle = None
        if self._slots.get((slot.pool, slot.member.address)) is not slot:
            return
        slot.running = True
        task = asyncio.get_running_loop().create_task(self._check(slot))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            # the probe never raises (run_check); this is a failure action's callee
            _log.error("resources: handling a health-check result raised", exc_info=exc)

    async def _check(self, slot: _Slot) -> None:
        plan, member = slot.plan, slot.member
        started = self._clock.now()
        try:
            result, detail = await run_check(plan.check, member.host, member.port, plan.timeout)
        finally:
            slot.running = False
        if self._slots.get((slot.pool, member.address)) is not slot:
            return
        if detail.startswith("timed out"):
            self.timeouts += 1
        try:
            self.by_result[result] += 1
            duration = self._clock.now() - started
            self._report(slot.pool, member.address, result, detail, duration)
        finally:
            if self._started:
                self._schedule(slot, max(self._clock.now(), started + plan.interval))
