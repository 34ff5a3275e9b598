"""Leases: who holds which member, for how long, and who waits for one.

Design note: a lease binds one member to a holder, a user row (``per: user``) or a scenario
(``per: scenario``: its rows share the lease, which is freed when its last row lets go). The
table keeps four maps (by id, by row, by member, by scenario) so every hook the runner calls
(``renew`` on progress, ``on_milestone``, ``on_finished``) is O(1); it never scans users.

Expiry after ``ttl`` without progress uses ONE scheduler entry for the whole table, armed at
the earliest deadline in a heap. ``renew`` only moves ``expires_at`` forward; when a stale heap
entry comes due it is pushed back at the lease's real deadline, so renewing costs O(1) and each
lease has at most one heap entry.

When a pool has no member with room, requests wait in the ``WaitQueue`` (``waiters.py``:
scenario priority, then arrival); a new request never overtakes a waiter. Waiters are served
whenever room appears: a release, an expiry, a member returning to service.

Priority inheritance: a holder whose priority is at least ``high_priority`` raises its member's
``high_holders``; the table calls ``on_inheritance`` when that count leaves or reaches zero so
the manager can move the member's health checks to the ``health`` class and back.

Re-entrancy: the table finishes every change to its own state before it calls the binding,
so a binding callback may call back in (``acquire``, ``release``); leases freed by such a call
are skipped by ``revoke``/``reassign``. A freed member serves its waiters before the releasing
row is told, so a row that re-asks at once queues behind them.

Invariants: ``by_row[r] is lease`` iff ``r in lease.rows``; a lease is in ``by_id`` iff it has
rows; a row is never both in ``by_row`` and the wait queue; ``member.holders`` equals the leases
in ``_by_member`` for that member.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from progressd.clock import Clock
from progressd.errors import ResourceError
from progressd.resources.demand import DemandForecast
from progressd.resources.members import Member
from progressd.resources.pool import Pool
from progressd.resources.records import LeasesExpired, LeaseStatistics, ReleaseReason
from progressd.resources.seams import Cancellable, EventSink, ProgressBinding, Scheduler
from progressd.resources.spec import LeaseConfig, Per
from progressd.resources.waiters import WaitQueue


@dataclass(slots=True, frozen=True)
class LeaseRequest:
    """What a row asks for; shared by all rows of a scenario, so it costs nothing per user."""

    pool: str
    per: Per = "user"
    scenario: str = ""
    priority: int = 0
    ttl: float | None = None
    release_on: str | None = None

    @classmethod
    def from_config(cls, config: LeaseConfig, *, scenario: str, priority: int = 0) -> LeaseRequest:
        """The request a scenario's ``resource_lease`` makes (``config``: e.g. a DSL LeasePlan)."""
        return cls(
            config.pool, config.per, scenario, priority, config.ttl_s, config.release_milestone
        )


@dataclass(slots=True, eq=False)
class Lease:
    """One granted lease. ``expires_at`` is ``inf`` when the request has no ttl."""

    id: int
    request: LeaseRequest
    member: Member
    rows: list[int]
    granted_at: float
    expires_at: float
    high: bool


class LeaseTable:
    """Grants, renews, expires and releases leases; queues requests when a pool is exhausted.

    ``pools`` is the manager's live mapping; the table never adds or removes pools.
    """

    def __init__(
        self,
        pools: Mapping[str, Pool],
        clock: Clock,
        scheduler: Scheduler,
        binding: ProgressBinding,
        events: EventSink,
        *,
        high_priority: int = 1,
        expiry_class: str = "step",
        on_inheritance: Callable[[Pool, Member], None] | None = None,
    ) -> None:
        self._pools, self._clock, self._scheduler = pools, clock, scheduler
        self._binding, self._events = binding, events
        self.high_priority, self._expiry_class = high_priority, expiry_class
        self._on_inheritance = on_inheritance
        self._ids = itertools.count(1)
        self.by_id: dict[int, Lease] = {}
        self.by_row: dict[int, Lease] = {}
        self._by_member: dict[Member, dict[int, Lease]] = {}
        self._by_scenario: dict[tuple[str, str], Lease] = {}
        self._queue = WaitQueue()
        self._expiry: list[tuple[float, int]] = []
        self._armed: Cancellable | None = None
        self._armed_at = math.inf
        self.grants = self.releases = self.expiries = 0
        self.demand: dict[str, DemandForecast] = {}

    # -- the runner's hooks -------------------------------------------------------------------

    def acquire(self, row: int, request: LeaseRequest) -> Lease | None:
        """Lease a member for ``row`` now, or queue it and return ``None`` (it is told later
        through ``ProgressBinding.lease_changed``). Idempotent while the row holds or waits.

        Raises:
            ResourceError: for an unknown pool, or a row that holds a lease on another pool.
        """
        return self._acquire(row, request, fresh=True)

    def _acquire(self, row: int, request: LeaseRequest, *, fresh: bool) -> Lease | None:
        held = self.by_row.get(row)
        if held is not None:
            if held.request.pool != request.pool:
                raise ResourceError(f"row {row} already holds a lease on pool {held.request.pool}")
            return held
        if row in self._queue:
            return None
        pool = self._pool(request.pool)
        if request.per == "scenario":
            shared = self._by_scenario.get((pool.name, request.scenario))
            if shared is not None:
                self._attach(shared, row)
                return shared
        if fresh:
            self.forecast(pool.name).on_request(self._clock.now())
        if not self._queue.busy(pool.name):
            member = pool.select()
            if member is not None:
                return self._grant(pool, member, request, [row])
        self._queue.add(request, row)
        self.serve(pool)
        return self.by_row.get(row)

    def renew(self, row: int) -> None:
        """The row made progress: push its lease's expiry ``ttl`` into the future."""
        lease = self.by_row.get(row)
        if lease is not None and lease.request.ttl is not None:
            lease.expires_at = self._clock.now() + lease.request.ttl

    def release(self, row: int, reason: ReleaseReason = "released") -> bool:
        """Let go of the row's lease, or withdraw it from the queue; whether it had either."""
        if self._queue.cancel(row):
            return True
        lease = self.by_row.pop(row, None)
        if lease is None:
            return False
        lease.rows.remove(row)
        if not lease.rows:
            self._free(lease, reason)
            self.serve(self._pools[lease.request.pool])  # waiters before the row re-asks
        self._binding.lease_changed(row, None)
        return True

    def on_milestone(self, row: int, milestone: str) -> bool:
        """Progress hook: the row reached ``milestone``; renews, and releases on ``release-on``.

        Returns whether the lease was released.
        """
        lease = self.by_row.get(row)
        if lease is None:
            return False
        self.renew(row)
        if lease.request.release_on == milestone:
            return self.release(row, "milestone")
        return False

    def on_finished(self, row: int) -> bool:
        """Progress hook: the row finished; its lease (or wait) ends. Whether it had one."""
        return self.release(row, "end")

    # -- the manager's side -------------------------------------------------------------------

    def leases_on(self, pool: str, member: Member) -> list[Lease]:
        """The leases currently held on ``member``."""
        return list(self._by_member.get(member, {}).values())

    def waiting(self, row: int) -> bool:
        """Whether the row waits for a resource (``waiting-for-resource``)."""
        return row in self._queue

    def waiters(self, pool: str) -> int:
        """How many rows wait for a member of ``pool``."""
        return self._queue.count(pool)

    def revoke(
        self, leases: Iterable[Lease], reason: ReleaseReason, *, notify: bool = True
    ) -> list[tuple[int, Lease]]:
        """Take ``leases`` back from all their rows; the ``(row, lease)`` pairs revoked.

        Waiters are NOT served: the caller re-acquires for the revoked rows first if it wants
        them ahead of fresh arrivals, then calls ``serve``. With ``notify=False`` the binding
        is not told; the caller must tell it the row's next lease (or ``None``).
        """
        revoked: list[tuple[int, Lease]] = []
        for lease in leases:
            if self.by_id.get(lease.id) is not lease:
                continue  # already gone (a binding callback released it)
            rows, lease.rows = lease.rows, []
            for row in rows:
                del self.by_row[row]
                revoked.append((row, lease))
            self._free(lease, reason)
        if notify:
            for row, _ in revoked:
                self._binding.lease_changed(row, None)
        return revoked

    def reassign(self, leases: Iterable[Lease], reason: ReleaseReason) -> int:
        """Take ``leases`` off their member and re-lease their rows elsewhere (or queue them),
        highest priority first; the number of rows moved. The members left must no longer be
        selectable. When a member is free and nobody waits, a lease moves in place (a new id,
        the same rows), so a mass move allocates nothing per row and tells the binding once."""
        moved = 0
        for lease in sorted(leases, key=lambda lease: -lease.request.priority):
            if self.by_id.get(lease.id) is not lease:
                continue  # already gone (a binding callback released it)
            pool = self._pools[lease.request.pool]
            member = None if self._queue.busy(pool.name) else pool.select()
            if member is not None and member is not lease.member:
                moved += len(lease.rows)
                self._free(lease, reason)
                self._bind(pool, member, lease, self._clock.now())
                continue
            for row, old in self.revoke((lease,), reason, notify=False):
                if self._acquire(row, old.request, fresh=False) is None:
                    self._binding.lease_changed(row, None)
                moved += 1
        return moved

    def serve(self, pool: Pool) -> None:
        """Grant queued requests of ``pool`` in priority-then-arrival order while room lasts."""
        while self._queue.first(pool.name) is not None:
            member = pool.select()
            if member is None:
                return
            waiter = self._queue.take(pool.name)
            self._grant(pool, member, waiter.request, list(waiter.rows))

    def drop_pool(self, pool: Pool) -> list[int]:
        """Revoke every lease and wait on ``pool`` (it is being removed); the rows affected."""
        rows = [row for row, _ in self.revoke(self._leases_of(pool.name), "pool-removed")]
        for row in self._queue.drop(pool.name):
            self._binding.lease_changed(row, None)
            rows.append(row)
        return rows

    def forecast(self, pool: str) -> DemandForecast:
        """The pool's demand forecast (created on first use)."""
        demand = self.demand.get(pool)
        if demand is None:
            demand = self.demand[pool] = DemandForecast()
        return demand

    def close(self) -> None:
        """Withdraw the pending expiry call (shutdown)."""
        if self._armed is not None:
            self._armed.cancel()
        self._armed, self._armed_at = None, math.inf

    def statistics(self) -> LeaseStatistics:
        return LeaseStatistics(
            active=len(self.by_id),
            waiters=len(self._queue),
            grants_total=self.grants,
            releases_total=self.releases,
            expiries_total=self.expiries,
        )

    # -- internals ----------------------------------------------------------------------------

    def _pool(self, name: str) -> Pool:
        pool = self._pools.get(name)
        if pool is None:
            known = ", ".join(sorted(self._pools)) or "none"
            raise ResourceError(f"unknown pool {name!r} (known pools: {known})")
        return pool

    def _grant(self, pool: Pool, member: Member, request: LeaseRequest, rows: list[int]) -> Lease:
        high = request.priority >= self.high_priority
        lease = Lease(0, request, member, rows, 0.0, math.inf, high)
        self._bind(pool, member, lease, self._clock.now())
        return lease

    def _bind(self, pool: Pool, member: Member, lease: Lease, now: float) -> None:
        """File ``lease`` (new, or just freed to move) under a fresh id on ``member``."""
        request = lease.request
        lease.id, lease.member, lease.granted_at = next(self._ids), member, now
        member.holders += 1
        pool.reindex(member)
        self.by_id[lease.id] = lease
        held = self._by_member.get(member)
        if held is None:
            self._by_member[member] = {lease.id: lease}
        else:
            held[lease.id] = lease
        if request.per == "scenario":
            self._by_scenario[(pool.name, request.scenario)] = lease
        for row in lease.rows:
            self.by_row[row] = lease
        if lease.high:
            self._inherit(pool, member, +1)
        if request.ttl is not None:
            lease.expires_at = now + request.ttl
            heapq.heappush(self._expiry, (lease.expires_at, lease.id))
            self._arm()
        self.grants += 1
        for row in list(lease.rows):
            self._binding.lease_changed(row, lease.id)

    def _attach(self, lease: Lease, row: int) -> None:
        lease.rows.append(row)
        self.by_row[row] = lease
        self._binding.lease_changed(row, lease.id)

    def _free(self, lease: Lease, reason: ReleaseReason) -> None:
        pool = self._pools[lease.request.pool]
        member = lease.member
        del self.by_id[lease.id]
        del self._by_member[member][lease.id]
        if lease.request.per == "scenario":
            key = (pool.name, lease.request.scenario)
            if self._by_scenario.get(key) is lease:
                del self._by_scenario[key]
        member.holders -= 1
        pool.reindex(member)
        if lease.high:
            self._inherit(pool, member, -1)
        if reason == "expired":
            self.expiries += 1
        else:
            self.releases += 1
        if reason in ("released", "milestone", "end", "expired"):
            self.forecast(pool.name).on_release(self._clock.now() - lease.granted_at)

    def _inherit(self, pool: Pool, member: Member, delta: int) -> None:
        before = member.high_holders
        member.high_holders += delta
        if (before == 0) != (member.high_holders == 0) and self._on_inheritance is not None:
            self._on_inheritance(pool, member)

    def _leases_of(self, pool: str) -> list[Lease]:
        return [lease for lease in self.by_id.values() if lease.request.pool == pool]

    def _arm(self) -> None:
        if not self._expiry or self._expiry[0][0] >= self._armed_at:
            return
        if self._armed is not None:
            self._armed.cancel()
        self._armed_at = self._expiry[0][0]
        self._armed = self._scheduler.call_at(
            self._armed_at, self._expire_due, self._expiry_class, "lease-expiry"
        )

    def _expire_due(self) -> None:
        self._armed, self._armed_at = None, math.inf
        now = self._clock.now()
        expired: dict[str, list[Lease]] = {}
        while self._expiry and self._expiry[0][0] <= now:
            _, lease_id = heapq.heappop(self._expiry)
            lease = self.by_id.get(lease_id)
            if lease is None:
                continue
            if lease.expires_at > now:
                heapq.heappush(self._expiry, (lease.expires_at, lease_id))
            else:
                expired.setdefault(lease.request.pool, []).append(lease)
        for pool, leases in expired.items():
            rows = tuple(row for row, _ in self.revoke(leases, "expired", notify=False))
            self.serve(self._pools[pool])
            for row in rows:
                self._binding.lease_changed(row, None)
            self._events.emit(LeasesExpired(pool=pool, rows=rows, at=now))
        self._arm()
