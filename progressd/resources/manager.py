"""The resource manager: pools, their health checks, and what a failing member does to progress.

Seams (Protocols in ``seams.py``; the manager imports nothing else from progressd's core):

- ``Scheduler.call_at(when, callback, priority_class) -> Cancellable``: the poller implements it
  (one ``progress_pollable`` per call); ``scheduling.LoopScheduler`` is the plain-loop default,
  ``scheduling.FakeScheduler`` the test double. Each member has at most ONE pending entry (its
  next check) and at most one check in flight (one task holding one awaitable); checks are never
  one task per member per interval. The lease table adds one entry for the earliest expiry.
- ``ProgressBinding``: the runner's side of the two-way binding. ``lease_changed(row, id|None)``
  keeps the row's lease column current; ``rollback_users(rows, reason)`` rolls rows back to their
  last stable point; ``abort(reason)`` fails the run; ``holder_progress(row)`` lets a lease show
  its holder's progress and milestone (``lease_records``).
- ``EventSink.emit(event)``: check results, member transitions, failure actions and expiries.

The runner calls the progress hooks: ``acquire`` when a user needs its lease (``None`` means it
waits: show it as ``waiting-for-resource`` until ``lease_changed`` grants one), ``renew`` on
progress, ``on_milestone`` on every milestone reached (releases on ``release-on: milestone:X``),
``on_finished`` when the user ends. Row keys must be unique among the runs sharing a manager.

Failure actions, when a member's health becomes ``critical`` (after hysteresis):
``rollback`` rolls every holder back, revokes its lease and re-leases a healthy member (or queues
it); ``release`` does the same without rollback; ``ignore`` only records; ``abort`` fails the
run. A member that recovers (``successes-before-passing`` results) takes leases again and the
queue is served at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from progressd.clock import Clock
from progressd.errors import ResourceError
from progressd.resources.checks import HealthCheck, build_check, run_check
from progressd.resources.leases import Lease, LeaseRequest, LeaseTable
from progressd.resources.members import CHECK_RESULTS, CheckResult, Member
from progressd.resources.pool import Pool
from progressd.resources.records import (
    CheckCompleted,
    CheckStatistics,
    FailureAction,
    LeaseRecord,
    MemberRecord,
    MemberTransition,
    OnFailure,
    PoolStatistics,
    ReleaseReason,
    ResourceStatistics,
)
from progressd.resources.seams import (
    Cancellable,
    EventSink,
    NullSink,
    ProgressBinding,
    Scheduler,
)
from progressd.resources.spec import HealthCheckConfig, PoolConfig


@dataclass(slots=True)
class _Plan:
    check: HealthCheck | None
    interval: float
    timeout: float
    on_failure: OnFailure


@dataclass(slots=True)
class _Slot:
    """A member's check schedule: one pending call or one check in flight, never both."""

    pool: str
    address: str
    due: float = 0.0
    handle: Cancellable | None = None
    running: bool = False


class ResourceManager:
    """Owns the pools, runs their health checks, and binds member health to users' progress.

    ``high_priority``: a holder with at least this scenario priority makes its member's checks
    run in ``high_class`` (priority inheritance); other members' checks run in ``low_class``.
    ``check_factory`` builds a pool's probe from its health-check config.
    """

    def __init__(
        self,
        clock: Clock,
        scheduler: Scheduler,
        binding: ProgressBinding,
        events: EventSink | None = None,
        *,
        high_priority: int = 1,
        high_class: str = "health",
        low_class: str = "step",
        expiry_class: str = "step",
        check_factory: Callable[[HealthCheckConfig], HealthCheck] = build_check,
    ) -> None:
        self._clock, self._scheduler, self._binding = clock, scheduler, binding
        self._check_factory = check_factory
        self._events: EventSink = events if events is not None else NullSink()
        self._high_class, self._low_class = high_class, low_class
        self.pools: dict[str, Pool] = {}
        self._plans: dict[str, _Plan] = {}
        self._slots: dict[tuple[str, str], _Slot] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._started = False
        self.leases = LeaseTable(
            self.pools,
            clock,
            scheduler,
            binding,
            self._events,
            high_priority=high_priority,
            expiry_class=expiry_class,
            on_inheritance=self._reclass,
        )
        self._by_result: dict[str, int] = dict.fromkeys(CHECK_RESULTS, 0)
        self._timeouts = self._transitions = self._rollbacks = self._rolled_rows = 0
        self._aborts = 0

    # -- pools ----------------------------------------------------------------------------------

    def add_pool(self, config: PoolConfig, *, run: str | None = None) -> Pool:
        """Declare a pool from its config (e.g. a DSL ``PoolPlan``); ``run`` set: scoped to
        that run, ``None``: shared by all runs.

        Raises:
            ResourceError: when a pool of that name exists or the config is invalid.
        """
        name, check = config.name, config.health_check
        if name in self.pools:
            raise ResourceError(f"pool {name!r} is already declared; pool names must be unique")
        try:
            pool = Pool(
                name,
                config.members,
                capacity=config.max_leases_per_member,
                successes_before_passing=check.successes_before_passing if check else 1,
                failures_before_critical=check.failures_before_critical if check else 1,
                run=run,
            )
            plan = _Plan(None, 0.0, 0.0, "rollback")
            if check is not None:
                plan = _Plan(
                    self._check_factory(check), check.interval_s, check.timeout_s, check.on_failure
                )
        except ValueError as exc:
            raise ResourceError(f"resources.ip-port-pool.{name}: {exc}") from exc
        self.pools[name], self._plans[name] = pool, plan
        if check is not None:
            for member in pool.members.values():
                self._slots[(name, member.address)] = _Slot(name, member.address)
                if self._started:
                    self._schedule(pool, member, self._clock.now())
        return pool

    def remove_pool(self, name: str) -> list[int]:
        """Remove a pool, revoking its leases and waits; the rows that lost theirs.

        Raises:
            ResourceError: for an unknown pool.
        """
        pool = self._pool(name)
        rows = self.leases.drop_pool(pool)
        for address in pool.members:
            slot = self._slots.pop((name, address), None)
            if slot is not None and slot.handle is not None:
                slot.handle.cancel()
        del self.pools[name], self._plans[name]
        return rows

    def start(self) -> None:
        """Schedule the first check of every member (due now); later pools start on add."""
        self._started = True
        now = self._clock.now()
        for (pool_name, address), slot in self._slots.items():
            if slot.handle is None and not slot.running:
                pool = self.pools[pool_name]
                self._schedule(pool, pool.members[address], now)

    # -- the runner's progress hooks (see the module note) --------------------------------------

    def acquire(self, row: int, request: LeaseRequest) -> Lease | None:
        """Lease a member for ``row`` or queue it; see ``LeaseTable.acquire``.

        Raises:
            ResourceError: for an unknown pool or a row holding a lease on another pool.
        """
        return self.leases.acquire(row, request)

    def renew(self, row: int) -> None:
        self.leases.renew(row)

    def release(self, row: int, reason: ReleaseReason = "released") -> bool:
        return self.leases.release(row, reason)

    def on_milestone(self, row: int, milestone: str) -> bool:
        return self.leases.on_milestone(row, milestone)

    def on_finished(self, row: int) -> bool:
        return self.leases.on_finished(row)

    # -- health ---------------------------------------------------------------------------------

    def record_result(
        self, pool_name: str, address: str, result: CheckResult, detail: str = ""
    ) -> None:
        """Feed one check result for a member (checks call this; so may external reports).

        Raises:
            ResourceError: for an unknown pool or member.
        """
        pool, member = self._member(pool_name, address)
        self._by_result[result] += 1
        now = self._clock.now()
        self._events.emit(CheckCompleted(
            pool=pool_name, member=address, result=result, detail=detail, duration_s=0.0, at=now
        ))  # fmt: skip
        was = member.health
        transition = member.record(result, detail)
        if transition is None:
            return
        pool.reindex(member)
        self._transitions += 1
        self._events.emit(MemberTransition(
            pool=pool_name, member=address, old=was, new=member.health, cause=transition.cause,
            at=now,
        ))  # fmt: skip
        if member.health == "critical":
            self._fail(pool, member, transition.cause)
        else:
            self.leases.serve(pool)

    def drain(self, pool_name: str, address: str, draining: bool = True) -> MemberRecord:
        """Stop (or with ``draining=False`` resume) granting new leases on a member.

        Current holders keep their leases until they release them.

        Raises:
            ResourceError: for an unknown pool or member.
        """
        pool, member = self._member(pool_name, address)
        transition = member.set_draining(draining)
        pool.reindex(member)
        if transition is not None:
            self._transitions += 1
            self._events.emit(MemberTransition(
                pool=pool_name, member=address, old=transition.old, new=transition.new,
                cause=transition.cause, at=self._clock.now(),
            ))  # fmt: skip
            self.leases.serve(pool)
        return self._member_record(member)

    def _fail(self, pool: Pool, member: Member, cause: str) -> None:
        action = self._plans[pool.name].on_failure
        leases = self.leases.leases_on(pool.name, member)
        rows = [row for lease in leases for row in lease.rows]
        reason = f"{pool.name}/{member.address} critical ({cause})"
        if action == "rollback" and rows:
            self._binding.rollback_users(rows, reason)
            self._rollbacks += 1
            self._rolled_rows += len(rows)
        if action in ("rollback", "release"):
            self.leases.reassign(leases, "member-failed")
        elif action == "abort":
            self._aborts += 1
            self._binding.abort(reason)
        self._events.emit(FailureAction(
            pool=pool.name, member=member.address, action=action, rows=len(rows),
            leases=len(leases), reason=reason, at=self._clock.now(),
        ))  # fmt: skip

    # -- check scheduling -----------------------------------------------------------------------

    def _schedule(self, pool: Pool, member: Member, when: float) -> None:
        slot = self._slots[(pool.name, member.address)]
        if slot.handle is not None:
            slot.handle.cancel()
        slot.due = when
        cls = self._high_class if member.high_holders else self._low_class
        slot.handle = self._scheduler.call_at(when, lambda: self._due(slot), cls, "health")

    def _reclass(self, pool: Pool, member: Member) -> None:
        """Priority inheritance: re-file a pending check in its member's new class."""
        slot = self._slots.get((pool.name, member.address))
        if slot is not None and slot.handle is not None:
            self._schedule(pool, member, slot.due)

    def _due(self, slot: _Slot) -> None:
        slot.handle = None
        if self._slots.get((slot.pool, slot.address)) is not slot:
            return
        slot.running = True
        task = asyncio.get_running_loop().create_task(self._check(slot))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _check(self, slot: _Slot) -> None:
        plan = self._plans[slot.pool]
        pool = self.pools[slot.pool]
        member = pool.members[slot.address]
        assert plan.check is not None  # Invariant: only pools with a check have slots.
        started = self._clock.now()
        try:
            result, detail = await run_check(plan.check, member.host, member.port, plan.timeout)
        finally:
            slot.running = False
        if self._slots.get((slot.pool, slot.address)) is not slot:
            return  # the pool was removed while the check ran
        if detail.startswith("timed out"):
            self._timeouts += 1
        self.record_result(slot.pool, slot.address, result, detail)
        self._schedule(pool, member, max(self._clock.now(), started + plan.interval))

    async def wait_checks_idle(self) -> None:
        """Wait until no health check is in flight (tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self, *, release: bool = True) -> None:
        """Stop checks and expiries; with ``release``, revoke every lease (daemon shutdown)."""
        self._started = False
        for slot in self._slots.values():
            if slot.handle is not None:
                slot.handle.cancel()
                slot.handle = None
        for task in list(self._tasks):
            task.cancel()
        await self.wait_checks_idle()
        self.leases.close()
        if release:
            self.leases.revoke(list(self.leases.by_id.values()), "shutdown")

    # -- views ----------------------------------------------------------------------------------

    def lease_records(self, *, run: str | None = None) -> list[LeaseRecord]:
        """Every lease (of run-scoped pools of ``run`` and shared pools, when given), each with
        its holder's progress and milestone."""
        return [
            self._lease_record(lease)
            for lease in self.leases.by_id.values()
            if run is None or self.pools[lease.request.pool].run in (None, run)
        ]

    def member_records(self, pool_name: str) -> list[MemberRecord]:
        """The members of a pool with their state, load and inherited check class.

        Raises:
            ResourceError: for an unknown pool.
        """
        return [self._member_record(m) for m in self._pool(pool_name).members.values()]

    def statistics(self) -> ResourceStatistics:
        """A frozen snapshot of pools, leases, checks and failure-action counters."""
        lease_stats = self.leases.statistics()
        return ResourceStatistics(
            pools=tuple(self._pool_statistics(pool) for pool in self.pools.values()),
            leases=lease_stats,
            checks=CheckStatistics(
                in_flight=len(self._tasks),
                by_result=dict(self._by_result),
                timeouts_total=self._timeouts,
            ),
            transitions_total=self._transitions,
            rollbacks_triggered_total=self._rollbacks,
            rows_rolled_back_total=self._rolled_rows,
            aborts_total=self._aborts,
        )

    def _pool_statistics(self, pool: Pool) -> PoolStatistics:
        return PoolStatistics(
            name=pool.name,
            run=pool.run,
            members=len(pool.members),
            member_states=dict(pool.count_states()),
            leases_active=pool.count_holders(),
            waiters=self.leases.waiters(pool.name),
        )

    def _lease_record(self, lease: Lease) -> LeaseRecord:
        rows = tuple(sorted(lease.rows))
        views = [self._binding.holder_progress(row) for row in rows]
        milestones = {milestone for _, milestone in views}
        return LeaseRecord(
            id=lease.id,
            pool=lease.request.pool,
            member=lease.member.address,
            per=lease.request.per,
            scenario=lease.request.scenario,
            priority=lease.request.priority,
            rows=rows,
            granted_at=lease.granted_at,
            expires_at=None if lease.request.ttl is None else lease.expires_at,
            progress=sum(ratio for ratio, _ in views) / len(views) if views else 0.0,
            milestone=milestones.pop() if len(milestones) == 1 else None,
        )

    def _member_record(self, member: Member) -> MemberRecord:
        return MemberRecord(
            address=member.address,
            state=member.state,
            holders=member.holders,
            capacity=member.capacity,
            inherited_class=self._high_class if member.high_holders else self._low_class,
            last_result=member.last_result,
            last_detail=member.last_detail,
        )

    def _pool(self, name: str) -> Pool:
        pool = self.pools.get(name)
        if pool is None:
            known = ", ".join(sorted(self.pools)) or "none"
            raise ResourceError(f"unknown pool {name!r} (known pools: {known})")
        return pool

    def _member(self, pool_name: str, address: str) -> tuple[Pool, Member]:
        pool = self._pool(pool_name)
        member = pool.members.get(address)
        if member is None:
            raise ResourceError(
                f"pool {pool_name!r} has no member {address!r} (members: {', '.join(pool.members)})"
            )
        return pool, member
