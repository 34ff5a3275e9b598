"""The wait queue: users waiting for a member of an exhausted pool.

Design note: one heap per pool ordered by scenario priority (higher first) then arrival. The
rows of one ``per: scenario`` request share a single waiter (one lease will serve them all).
Withdrawing is O(1): the row leaves its waiter, and a waiter left without rows is marked
cancelled and dropped when it reaches the top of the heap.

Invariants: ``_waiting[row] is w`` iff ``row in w.rows``; a cancelled waiter has no rows;
``_per_pool[p]`` counts the rows waiting for pool ``p``.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from progressd.resources.leases import LeaseRequest


@dataclass(slots=True, eq=False)
class Waiter:
    """One queued request and the rows it will serve."""

    request: LeaseRequest
    rows: list[int] = field(default_factory=list)
    cancelled: bool = False


class WaitQueue:
    """Per-pool priority queues of waiting rows."""

    __slots__ = ("_per_pool", "_queues", "_scenario", "_seq", "_waiting")

    def __init__(self) -> None:
        self._queues: dict[str, list[tuple[int, int, Waiter]]] = {}
        self._waiting: dict[int, Waiter] = {}
        self._scenario: dict[tuple[str, str], Waiter] = {}
        self._per_pool: dict[str, int] = {}
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._waiting)

    def __contains__(self, row: object) -> bool:
        return row in self._waiting

    def busy(self, pool: str) -> bool:
        """Whether ``pool`` has a queue (a new request must then queue behind it)."""
        return bool(self._queues.get(pool))

    def count(self, pool: str) -> int:
        """Rows waiting for ``pool``."""
        return self._per_pool.get(pool, 0)

    def add(self, request: LeaseRequest, row: int) -> None:
        """Queue ``row``; rows of one scenario request share its waiter."""
        pool = request.pool
        key = (pool, request.scenario)
        waiter = self._scenario.get(key) if request.per == "scenario" else None
        if waiter is None:
            waiter = Waiter(request)
            entry = (-request.priority, next(self._seq), waiter)
            heapq.heappush(self._queues.setdefault(pool, []), entry)
            if request.per == "scenario":
                self._scenario[key] = waiter
        waiter.rows.append(row)
        self._waiting[row] = waiter
        self._per_pool[pool] = self._per_pool.get(pool, 0) + 1

    def first(self, pool: str) -> Waiter | None:
        """The waiter to serve next, without taking it (cancelled ones are dropped)."""
        queue = self._queues.get(pool)
        while queue:
            waiter = queue[0][2]
            if not waiter.cancelled:
                return waiter
            heapq.heappop(queue)
        return None

    def take(self, pool: str) -> Waiter:
        """Remove and return the waiter ``first`` returned.

        Raises:
            IndexError: when the pool has no queue.
        """
        waiter = heapq.heappop(self._queues[pool])[2]
        for row in waiter.rows:
            del self._waiting[row]
        self._per_pool[pool] -= len(waiter.rows)
        self._forget(waiter)
        return waiter

    def cancel(self, row: int) -> bool:
        """Withdraw ``row``; whether it was waiting."""
        waiter = self._waiting.pop(row, None)
        if waiter is None:
            return False
        waiter.rows.remove(row)
        self._per_pool[waiter.request.pool] -= 1
        if not waiter.rows:
            waiter.cancelled = True
            self._forget(waiter)
        return True

    def drop(self, pool: str) -> list[int]:
        """Withdraw every row waiting for ``pool`` (it is being removed); those rows."""
        rows: list[int] = []
        for _, _, waiter in self._queues.pop(pool, []):
            for row in list(waiter.rows):
                self.cancel(row)
                rows.append(row)
        return rows

    def _forget(self, waiter: Waiter) -> None:
        key = (waiter.request.pool, waiter.request.scenario)
        if self._scenario.get(key) is waiter:
            del self._scenario[key]
