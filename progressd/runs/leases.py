"""Leases for a run's users: the simple, correct path from ``resource_lease`` to
``{{ lease.address }}`` through the ``ResourceManager``.

Every user of a scenario with ``resource_lease`` asks for its lease before the run starts (the
manager grants a member or queues the user). The lease's member shows up in the user's context
as ``lease.address`` / ``host`` / ``port`` / ``pool``. On ``release-on: milestone:X`` the lease
is released when the user reaches X and, if the user has iterations left, asked for again at
once (so each iteration may land on another healthy member). A ``ttl`` lease is renewed when
its holder progresses: the bus's field events that move a row's step, iteration, done work or
milestone call ``manager.renew(row)`` (O(1) per dirty row per flush, nothing on the runner's hot
path; renewal lags progress by at most the bus's flush interval, so a ``ttl`` should exceed it).
A user stuck on one step (an external report that never comes) stops renewing and loses its
lease ``ttl`` later; if it moves again, it asks for a lease again. Leases still held are
released when the user ends (seen through the same field events), or revoked when the run
closes. A failing member's holders are rolled back by
the manager through the ``ProgressBinding`` (the runner), counted here per scenario.

A scenario whose ``resource_lease.pool`` the plan does not declare leases from the daemon's
shared pools (``runs/shared.py``): this object attaches to their ``RunRouter`` and uses
``base + row`` as row keys there (``_side(row)`` says which manager serves a row); at close it
releases its rows on the shared manager and detaches.

A user whose request is queued (every member full or critical) still starts; its first http
or exec step reading ``lease.*`` waits for the grant (``steps/leases.py``) within the step's
timeout, and shows as ``waiting-for-resource`` (workbook status ``WAITING_FOR_RESOURCE``,
counted in the progress record and ``progressd_run_users``) until the grant. Not yet: an
external step's key reading ``lease.*`` fails instead of waiting.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from progressd.dsl import Plan
from progressd.events import Batch, EventBus
from progressd.resources import LeaseRequest, PollerScheduler, ResourceManager
from progressd.runner import Runner
from progressd.runs.shared import SharedPools
from progressd.workbook import FINAL_STATUSES, Field, Status

__all__ = ["RunLeases"]

_STATUS_BIT = Field.STATUS.mask
# a user progresses when its step pointer, iteration, done work or milestone moves
_PROGRESS_BITS = Field.STEP.mask | Field.ITERATION.mask | Field.DONE.mask | Field.MILESTONE.mask
_ENDED = frozenset(int(s) for s in FINAL_STATUSES)


class RunLeases:
    """The resource manager of one run and its wiring to the runner (a ``ProgressBinding``
    that counts rollbacks per scenario on the way)."""

    def __init__(
        self,
        plan: Plan,
        runner: Runner,
        first_rows: Sequence[int],
        run_id: str,
        shared: SharedPools | None = None,
    ) -> None:
        self._runner = runner
        self._first_rows = list(first_rows)
        self._qualified = len(plan.scenarios) > 1
        self._requests = [
            None
            if sc.lease is None
            else LeaseRequest.from_config(sc.lease, scenario=sc.name, priority=sc.priority)
            for sc in plan.scenarios
        ]
        self._renews = any(r is not None and r.ttl is not None for r in self._requests)
        self.rollbacks = [0] * len(plan.scenarios)
        self.on_granted: Callable[[int], object] | None = None
        """Called with a row that was just granted a lease (parked steps start then)."""
        self._context: dict[str, Mapping[str, Any]] = {}
        self.manager = ResourceManager(runner.poller.clock, PollerScheduler(runner.poller), self)
        for pool in plan.pools:
            self.manager.add_pool(pool, run=run_id)
        own = {pool.name for pool in plan.pools}
        self._on_shared = [r is not None and r.pool not in own for r in self._requests]
        self._shared = shared if any(self._on_shared) else None
        self._base = 0 if self._shared is None else self._shared.attach(self, run_id)
        runner.add_milestone_hook(self._on_milestone)

    def _side(self, row: int) -> tuple[ResourceManager, int]:
        """The manager serving ``row``'s scenario and the row's key there."""
        if self._shared is None or not self._on_shared[self._scenario_of(row)]:
            return self.manager, row
        return self._shared.manager, self._base + row

    # -- the run's side -------------------------------------------------------------------

    def start(self) -> None:
        """Start health checks and ask for every leased user's lease."""
        self.manager.start()
        for index, request in enumerate(self._requests):
            if request is None:
                continue
            first = self._first_rows[index]
            users = self._runner.plan.scenarios[index].users
            manager, base = self._side(first)
            base -= first
            for row in range(first, first + users):
                manager.acquire(base + row, request)

    def lease_info(self, row: int, lease_id: int) -> Mapping[str, Any] | None:
        """The ``lease`` context root of ``row`` (``Runner(lease_info=...)``)."""
        manager, key = self._side(row)
        if manager is self.manager:
            lease = manager.leases.by_id.get(lease_id)
        else:  # lease ids of the shared manager are its own: find the lease by row key
            lease = manager.leases.by_row.get(key)
        if lease is None:
            return None
        member = lease.member
        context = self._context.get(member.address)
        if context is None:
            context = self._context[member.address] = {
                "address": member.address,
                "host": member.host,
                "port": member.port,
                "pool": lease.request.pool,
            }
        return context

    def watch_finishes(self, bus: EventBus) -> None:
        """Renew a user's ``ttl`` lease when it progresses, and release its lease when it ends
        (``release-on: end``, and any lease still held by a user that stopped): the bus's field
        events say which rows moved or changed status."""
        bus.subscribe(["field"], self._on_batch)

    def _on_batch(self, batch: Batch) -> None:
        workbook = self._runner.workbook
        renews = self._renews
        for event in batch.events:
            fields = event.fields
            if fields & _STATUS_BIT and workbook.get(event.row, Field.STATUS) in _ENDED:
                manager, key = self._side(event.row)
                manager.on_finished(key)
            elif renews and fields & _PROGRESS_BITS:
                self._renew(event.row)

    def _renew(self, row: int) -> None:
        """The row progressed: renew its lease, or ask again for one that expired."""
        manager, key = self._side(row)
        leases = manager.leases
        if key in leases.by_row:
            leases.renew(key)
            return
        request = self._requests[self._scenario_of(row)]
        if request is not None and request.ttl is not None and not leases.waiting(key):
            manager.acquire(key, request)

    async def close(self) -> None:
        """Stop health checks and revoke every lease still held (shared pools: release this
        run's rows and detach from the router)."""
        await self.manager.close(release=True)
        shared = self._shared
        if shared is None:
            return
        for index, on_shared in enumerate(self._on_shared):
            if on_shared:
                first = self._first_rows[index]
                for row in range(first, first + self._runner.plan.scenarios[index].users):
                    shared.manager.release(self._base + row, "shutdown")
        shared.detach(self._base)

    # -- ProgressBinding --------------------------------------------------------------------

    def lease_changed(self, row: int, lease_id: int | None) -> None:
        self._runner.lease_changed(row, lease_id)
        if lease_id is not None and self.on_granted is not None:
            self.on_granted(row)

    def rollback_users(self, rows: Sequence[int], reason: str) -> None:
        # a user that has not started yet has no progress to lose: rolling it back would
        # start it at once, ahead of its ramp slot; its lease moves all the same
        workbook = self._runner.workbook
        started = [r for r in rows if int(workbook.get(r, Field.STATUS)) != Status.PENDING]
        for row in started:
            self.rollbacks[self._scenario_of(row)] += 1
        if started:
            self._runner.rollback_users(started, reason)

    def abort(self, rows: Sequence[int], reason: str) -> None:
        self._runner.abort(reason)

    def holder_progress(self, row: int) -> tuple[float, str | None]:
        return self._runner.holder_progress(row)

    # -- internals ----------------------------------------------------------------------------

    def _scenario_of(self, row: int) -> int:
        return bisect.bisect_right(self._first_rows, row) - 1

    def _on_milestone(self, row: int, name: str) -> None:
        milestone = name.partition("/")[2] if self._qualified else name
        manager, key = self._side(row)
        if not manager.on_milestone(key, milestone):
            return
        request = self._requests[self._scenario_of(row)]
        status = int(self._runner.workbook.get(row, Field.STATUS))
        if request is not None and status not in FINAL_STATUSES:
            manager.acquire(key, request)
