"""Pools declared in the daemon config (``[pools.NAME]``), shared by every run.

Design note. One ``ResourceManager`` holds the shared pools for the daemon's life: created at
start, health-checked once for all runs (on the loop, ``LoopScheduler``: no run's poller owns
these checks), stopped at shutdown. Its binding is a ``RunRouter``: each run that leases from a
shared pool attaches its ``RunLeases`` and gets a key base, so the manager sees row keys unique
across runs (``base + row``) and every grant, rollback or abort reaches the run that owns the
row, with the run's own row numbers. A scenario's ``resource_lease.pool`` names a shared pool
when the document does not declare a pool of that name itself (the document's own pool wins).

Invariants: a run detaches when it closes, after releasing its rows; a late call for its keys
is dropped by the router.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import msgspec

from progressd.clock import LoopClock
from progressd.dsl import PoolPlan
from progressd.resources import (
    LeaseRecord,
    LoopScheduler,
    PoolRecord,
    ResourceManager,
    RunRouter,
)
from progressd.resources.seams import ProgressBinding

__all__ = ["SharedPools"]

_SHIFT = 32
_MASK = (1 << _SHIFT) - 1


class SharedPools:
    """The daemon's shared pools, their manager and the router to the runs using them.

    Raises:
        ResourceError: when a pool config is invalid (names are unique by construction).
    """

    def __init__(self, plans: Sequence[PoolPlan], loop: asyncio.AbstractEventLoop) -> None:
        self.router = RunRouter()
        self.manager = ResourceManager(LoopClock(loop), LoopScheduler(loop), self.router)
        for plan in plans:
            self.manager.add_pool(plan, run=None)
        self._runs: dict[int, str] = {}

    @property
    def names(self) -> frozenset[str]:
        """The shared pools' names (a scenario may lease from them)."""
        return frozenset(self.manager.pools)

    def start(self) -> None:
        """Start the health checks (once, for every run)."""
        self.manager.start()

    def attach(self, binding: ProgressBinding, run_id: str) -> int:
        """Route the shared manager's calls for a run to ``binding``; the run's key base."""
        base = self.router.attach(binding)
        self._runs[base >> _SHIFT] = run_id
        return base

    def detach(self, base: int) -> None:
        """The run has closed and released its rows: forget it."""
        self.router.detach(base)
        self._runs.pop(base >> _SHIFT, None)

    def pool_records(self) -> list[PoolRecord]:
        """Every shared pool (``run`` is ``None``) with its members, load and waiters."""
        return self.manager.pool_records()

    def lease_records(self) -> list[tuple[str, LeaseRecord]]:
        """Each shared lease with its run, rows in the run's own numbering."""
        out: list[tuple[str, LeaseRecord]] = []
        for record in self.manager.lease_records():
            by_run: dict[str, list[int]] = {}
            for key in record.rows:
                run = self._runs.get(key >> _SHIFT)
                if run is not None:
                    by_run.setdefault(run, []).append(key & _MASK)
            for run, rows in by_run.items():
                out.append((run, _with_rows(record, tuple(rows))))
        return out

    async def close(self) -> None:
        """Stop the checks and revoke what is still held (daemon shutdown)."""
        await self.manager.close(release=True)


def _with_rows(record: LeaseRecord, rows: tuple[int, ...]) -> LeaseRecord:
    return msgspec.structs.replace(record, rows=rows)
