"""The resource manager: pools, their health checks, and what a failing member does to progress.

Seams (Protocols in ``seams.py`` and ``spec.py``; the manager imports no other progressd core):

- ``Scheduler.call_at(when, callback, priority_class, kind) -> Cancellable``: the poller
  implements it through ``scheduling.PollerScheduler`` (one ``ProgressPollable`` timer of kind
  ``health`` or ``lease-expiry`` per call); ``LoopScheduler`` is the plain-loop default and
  ``FakeScheduler`` the test double. Each member has at most ONE pending entry (its next check)
  or one check in flight (one task holding one awaitable, see ``health.py``); the lease table
  adds one entry for the earliest expiry. Never a task per member per interval.
- ``ProgressBinding``: the runner's side of the two-way binding. ``lease_changed(row, id|None)``
  keeps the row's lease column current; ``rollback_users(rows, "health-check-failed")`` rolls
  rows back to their last stable point (the readable cause is in the ``FailureAction`` event);
  ``abort(rows, reason)`` fails the run(s) of ``rows``; ``holder_progress(row)`` lets a lease
  show its holder's progress and milestone (``lease_records``). Pools shared by several runs
  go through a ``RunRouter``.
- ``EventSink.emit(event)``: check results, member transitions, failure actions and expiries.
- ``PoolConfig`` / ``LeaseConfig``: what to build; the DSL's ``PoolPlan`` and ``LeasePlan``
  satisfy them as they are.

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

from collections.abc import Callable

from progressd.clock import Clock
from progressd.errors import ResourceError
from progressd.resources.checks import HealthCheck, build_check
from progressd.resources.health import HealthMonitor
from progressd.resources.leases import Lease, LeaseRequest, LeaseTable
from progressd.resources.members import CheckResult, Member
from progressd.resources.pool import Pool
from progressd.resources.records import (
    ROLLBACK_CODE,
    CapacityForecast,
    CheckCompleted,
    DemandRecord,
    FailureAction,
    LeaseRecord,
    MemberRecord,
    MemberTransition,
    OnFailure,
    PoolRecord,
    PoolStatistics,
    ReleaseReason,
    ResourceStatistics,
)
from progressd.resources.seams import (
    EventSink,
    NullSink,
    ProgressBinding,
    Scheduler,
)
from progressd.resources.spec import HealthCheckConfig, PoolConfig


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
        self._clock, self._binding = clock, binding
        self._check_factory = check_factory
        self._events: EventSink = events if events is not None else NullSink()
        self.pools: dict[str, Pool] = {}
        self._configs: dict[str, PoolConfig] = {}
        self.health = HealthMonitor(
            clock, scheduler, self.record_result, high_class=high_class, low_class=low_class
        )
        self.leases = LeaseTable(
            self.pools,
            clock,
            scheduler,
            binding,
            self._events,
            high_priority=high_priority,
            expiry_class=expiry_class,
            on_inheritance=self.health.reclass,
        )
        self._transitions = self._rollbacks = self._rolled_rows = 0
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
            probe = None if check is None else self._check_factory(check)
        except ValueError as exc:
            raise ResourceError(f"resources.ip-port-pool.{name}: {exc}") from exc
        self.pools[name] = pool
        self._configs[name] = config
        if check is not None and probe is not None:
            self.health.watch(pool, probe, check.interval_s, check.timeout_s)
        return pool

    def remove_pool(self, name: str) -> list[int]:
        """Remove a pool, revoking its leases and waits; the rows that lost theirs.

        Raises:
            ResourceError: for an unknown pool.
        """
        pool = self._pool(name)
        rows = self.leases.drop_pool(pool)
        self.health.unwatch(pool)
        del self.pools[name], self._configs[name]
        return rows

    def start(self) -> None:
        """Schedule the first check of every member (due now); later pools start on add."""
        self.health.start()

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
        self,
        pool_name: str,
        address: str,
        result: CheckResult,
        detail: str = "",
        duration_s: float = 0.0,
    ) -> None:
        """Feed one check result for a member (checks call this; so may external reports).

        Raises:
            ResourceError: for an unknown pool or member.
        """
        pool, member = self._member(pool_name, address)
        now = self._clock.now()
        completed = CheckCompleted(
            pool=pool_name, member=address, result=result, detail=detail, duration_s=duration_s,
            at=now,
        )  # fmt: skip
        self._events.emit(completed)
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
        check = self._configs[pool.name].health_check
        action: OnFailure = "rollback" if check is None else check.on_failure
        leases = self.leases.leases_on(pool.name, member)
        rows = [row for lease in leases for row in lease.rows]
        reason = f"{pool.name}/{member.address} critical ({cause})"
        if action == "rollback" and rows:
            self._binding.rollback_users(rows, ROLLBACK_CODE)
            self._rollbacks += 1
            self._rolled_rows += len(rows)
        if action in ("rollback", "release"):
            self.leases.reassign(leases, "member-failed")
        elif action == "abort":
            self._aborts += 1
            self._binding.abort(rows, reason)
        self._events.emit(FailureAction(
            pool=pool.name, member=member.address, action=action, rows=len(rows),
            leases=len(leases), reason=reason, at=self._clock.now(),
        ))  # fmt: skip

    # -- resource-use prediction (demand.py) ---------------------------------------------------

    def forecast(self, pool_name: str, horizon_s: float) -> DemandRecord:
        """The pool's predicted lease use ``horizon_s`` from now.

        Raises:
            ResourceError: for an unknown pool.
        """
        pool = self._pool(pool_name)
        demand = self.leases.forecast(pool_name)
        active = pool.count_holders()
        return DemandRecord(
            pool=pool_name,
            horizon_s=horizon_s,
            active=active,
            waiters=self.leases.waiters(pool_name),
            predicted=demand.predict(active, horizon_s),
            healthy_capacity=_healthy_capacity(pool),
            rate_per_s=demand.rate_per_s,
            hold_s=demand.hold_s,
        )

    def prepare(self, horizon_s: float) -> list[CapacityForecast]:
        """Prepare resources ahead of predicted progress: for every pool whose predicted use
        ``horizon_s`` ahead exceeds the room on its healthy members, bring the checks of its
        critical members forward so recovered ones rejoin before the demand arrives. The daemon
        calls it periodically; returns (and emits) one ``CapacityForecast`` per such pool."""
        out: list[CapacityForecast] = []
        for pool in self.pools.values():
            record = self.forecast(pool.name, horizon_s)
            capacity, predicted = record.healthy_capacity, record.predicted
            if capacity is None or predicted is None or predicted <= capacity:
                continue
            prepared = tuple(
                member.address
                for member in pool.members.values()
                if member.health == "critical" and self.health.check_soon(pool, member)
            )
            event = CapacityForecast(
                pool=pool.name, horizon_s=horizon_s, predicted=predicted, capacity=capacity,
                prepared=prepared, at=self._clock.now(),
            )  # fmt: skip
            self._events.emit(event)
            out.append(event)
        return out

    async def wait_checks_idle(self) -> None:
        """Wait until no health check is in flight (tests and shutdown)."""
        await self.health.wait_idle()

    async def close(self, *, release: bool = True) -> None:
        """Stop checks and expiries; with ``release``, revoke every lease (daemon shutdown)."""
        await self.health.close()
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

    def pool_records(self) -> list[PoolRecord]:
        """Every pool with its check, failure action, load and members (``GET /v1/pools``)."""
        return [self._pool_record(pool) for pool in self.pools.values()]

    def _pool_record(self, pool: Pool) -> PoolRecord:
        check = self._configs[pool.name].health_check
        return PoolRecord(
            name=pool.name,
            run=pool.run,
            check=None if check is None else check.kind,
            interval_s=None if check is None else check.interval_s,
            on_failure="rollback" if check is None else check.on_failure,
            leases_active=pool.count_holders(),
            waiters=self.leases.waiters(pool.name),
            members=tuple(self._member_record(m) for m in pool.members.values()),
        )

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
            checks=self.health.statistics(),
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
            inherited_class=self.health.check_class(member),
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


def _healthy_capacity(pool: Pool) -> int | None:
    """Leases the pool's healthy members can hold at once (``None``: unlimited)."""
    total = 0
    for member in pool.members.values():
        if member.rank is None:
            continue
        if member.capacity is None:
            return None
        total += member.capacity
    return total
