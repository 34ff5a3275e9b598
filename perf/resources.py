"""Resource manager cost: lease grant+release throughput and a mass rollback, vs a legacy model.

Prints ONE JSON object. Both models write through to a real progress store, so the figures
include what the two-way binding costs: the new model is ``ResourceManager`` bound to a
columnar ``Workbook`` (lease id in ``Field.LEASE``, ``Workbook.rollback``); the legacy model
is the plain design a first version would have had, defined here (``LegacyLeases``): members
in a list of dicts, each user's lease in its ``LegacyWorkbook`` dict plus a reference to the
member dict, a grant picks the least-loaded passing member by scanning the member list, and a
failing member finds its holders by scanning every user.

Every figure is measured twice: with the store (the unprefixed keys: what a run pays) and
without it (``core_*``: the resource side alone; the new model's binding writes a plain list,
the legacy model keeps only its user dicts).

- Lease ops: 10,000 users on a 100-member pool; each round grants a lease to every user, then
  releases every lease. One op is one grant plus its release. Best of ``--rounds``, the
  models alternating round by round. Times are CPU seconds of this process
  (``time.process_time``): the code is single-threaded and does no I/O, and CPU time does not
  count the time a shared machine gives to other processes.
- Mass rollback: the 10,000 users all hold member 0 (the others were draining while they
  leased, then return to service); member 0 goes critical; every holder rolls back to its
  last stable point in the store, loses its lease and re-leases one of the 99 healthy members.
  Time is best of ``--rounds`` fresh set-ups (no tracing); the peak extra memory is a
  separate, traced run (tracemalloc peak above the set-up's footprint).

Usage: python perf/resources.py [--users 10000] [--members 100] [--rounds 9]
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from progressd.clock import FakeClock
from progressd.legacy import LegacyWorkbook
from progressd.resources import (
    FakeScheduler,
    LeaseRequest,
    PoolSpec,
    ResourceManager,
)
from progressd.workbook import Workbook
from progressd.workbook.fields import Field

MILESTONES = ("logged-in", "paid")
_cpu = time.process_time  # CPU seconds of this process: steady on a shared machine
REQUEST = LeaseRequest(pool="backends", scenario="browse")


class WorkbookBinding:
    """The runner's side of the binding, reduced to its store writes."""

    __slots__ = ("book",)

    def __init__(self, book: Workbook) -> None:
        self.book = book

    def lease_changed(self, row: int, lease_id: int | None) -> None:
        self.book.set(row, Field.LEASE, -1 if lease_id is None else lease_id)

    def rollback_users(self, rows: Sequence[int], reason: str) -> None:
        self.book.rollback(rows, "health-check-failed")

    def abort(self, rows: Sequence[int], reason: str) -> None:
        raise AssertionError(reason)

    def holder_progress(self, row: int) -> tuple[float, str | None]:
        return float(self.book.get(row, Field.DONE)), None


class CoreBinding:
    """No store: the lease id goes into a plain list, rollback is only counted."""

    __slots__ = ("leases", "rolled")

    def __init__(self, users: int) -> None:
        self.leases = [-1] * users
        self.rolled = 0

    def lease_changed(self, row: int, lease_id: int | None) -> None:
        self.leases[row] = -1 if lease_id is None else lease_id

    def rollback_users(self, rows: Sequence[int], reason: str) -> None:
        self.rolled += len(rows)

    def abort(self, rows: Sequence[int], reason: str) -> None:
        raise AssertionError(reason)

    def holder_progress(self, row: int) -> tuple[float, str | None]:
        return 0.0, None


class LegacyLeases:
    """The legacy lease model (see the module docstring): list scans, dict per user.

    With ``book=None`` (the core figures) users are bare dicts and nothing is stored.
    """

    def __init__(self, book: LegacyWorkbook | None, users: int, members: int) -> None:
        self.book = book
        self.users: list[dict[str, Any]] = (
            book.users if book is not None else [{"lease": None} for _ in range(users)]
        )
        self.members: list[dict[str, Any]] = [
            {"address": f"10.0.0.1:{18000 + i}", "index": i, "state": "passing", "load": 0}
            for i in range(members)
        ]

    def grant(self, row: int) -> None:
        best: dict[str, Any] | None = None
        for member in self.members:
            if member["state"] == "passing" and (best is None or member["load"] < best["load"]):
                best = member
        if best is None:
            raise RuntimeError("pool exhausted")
        best["load"] += 1
        self.users[row]["lease_member"] = best
        if self.book is not None:
            self.book.set(row, Field.LEASE, best["index"])

    def release(self, row: int) -> None:
        user = self.users[row]
        user["lease_member"]["load"] -= 1
        user["lease_member"] = None
        if self.book is not None:
            self.book.set(row, Field.LEASE, -1)

    def fail(self, index: int) -> None:
        failed = self.members[index]
        failed["state"] = "critical"
        rows = [r for r, u in enumerate(self.users) if u.get("lease_member") is failed]
        if self.book is not None:
            self.book.rollback(rows, "health-check-failed")
        for row in rows:
            self.release(row)
            self.grant(row)


def _new_model(users: int, members: int, store: bool) -> tuple[ResourceManager, Workbook | None]:
    book = Workbook(MILESTONES, rows=users) if store else None
    binding = WorkbookBinding(book) if book is not None else CoreBinding(users)
    clock = FakeClock()
    manager = ResourceManager(clock, FakeScheduler(clock), binding)
    manager.add_pool(PoolSpec(name="backends", members=(f"10.0.0.1:18000-{18000 + members - 1}",)))
    return manager, book


def _legacy_model(users: int, members: int, store: bool) -> LegacyLeases:
    book = LegacyWorkbook(MILESTONES, rows=users) if store else None
    return LegacyLeases(book, users, members)


def _progress(book: Workbook | LegacyWorkbook, users: int) -> None:
    for row in range(users):
        book.add(row, Field.DONE, 5)
        book.reach_milestone(row, 0)
        book.add(row, Field.DONE, 3)


def _time_lease_ops(users: int, members: int, rounds: int, store: bool) -> tuple[float, float]:
    manager, book = _new_model(users, members, store)
    legacy = _legacy_model(users, members, store)
    new_best = old_best = float("inf")
    for _ in range(rounds):
        started = _cpu()
        for row in range(users):
            manager.acquire(row, REQUEST)
        for row in range(users):
            manager.release(row)
        new_best = min(new_best, _cpu() - started)
        if book is not None:
            book.take_changes()  # the event bus's work, not timed
        started = _cpu()
        for row in range(users):
            legacy.grant(row)
        for row in range(users):
            legacy.release(row)
        old_best = min(old_best, _cpu() - started)
    return users / new_best, users / old_best


def _prepare_new(users: int, members: int, store: bool) -> Callable[[], None]:
    manager, book = _new_model(users, members, store)
    pool = manager.pools["backends"]
    first, *others = pool.members
    for address in others:
        manager.drain("backends", address)
    for row in range(users):
        manager.acquire(row, REQUEST)
    for address in others:
        manager.drain("backends", address, draining=False)
    if book is not None:
        _progress(book, users)
        book.take_changes()

    def rollback() -> None:
        manager.record_result("backends", first, "critical", "connection refused")
        stats = manager.statistics()
        assert stats.rows_rolled_back_total == users, stats
        assert pool.members[first].holders == 0
        assert stats.leases.active == users

    return rollback


def _prepare_legacy(users: int, members: int, store: bool) -> Callable[[], None]:
    legacy = _legacy_model(users, members, store)
    for member in legacy.members[1:]:
        member["state"] = "draining"
    for row in range(users):
        legacy.grant(row)
    for member in legacy.members[1:]:
        member["state"] = "passing"
    if legacy.book is not None:
        _progress(legacy.book, users)

    def rollback() -> None:
        legacy.fail(0)
        assert legacy.members[0]["load"] == 0

    return rollback


def _time_rollbacks(
    new: Callable[[], Callable[[], None]], old: Callable[[], Callable[[], None]], rounds: int
) -> tuple[float, float]:
    """Best of ``rounds`` for each model, the two alternating round by round."""
    best = [float("inf"), float("inf")]
    for _ in range(rounds):
        for index, prepare in enumerate((new, old)):
            run = prepare()
            gc.collect()
            started = _cpu()
            run()
            best[index] = min(best[index], _cpu() - started)
    return best[0], best[1]


def _peak_rollback(prepare: Callable[[], Callable[[], None]]) -> int:
    gc.collect()
    tracemalloc.start()
    run = prepare()
    gc.collect()
    tracemalloc.reset_peak()
    base, _ = tracemalloc.get_traced_memory()
    run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak - base


def _measure(users: int, members: int, rounds: int, store: bool) -> dict[str, float]:
    ops, legacy_ops = _time_lease_ops(users, members, rounds, store)
    new_prepare = lambda: _prepare_new(users, members, store)  # noqa: E731
    old_prepare = lambda: _prepare_legacy(users, members, store)  # noqa: E731
    rollback_s, legacy_rollback_s = _time_rollbacks(new_prepare, old_prepare, rounds)
    peak = _peak_rollback(new_prepare)
    legacy_peak = _peak_rollback(old_prepare)
    return {
        "lease_ops_per_s": round(ops),
        "legacy_lease_ops_per_s": round(legacy_ops),
        "lease_ops_ratio": round(ops / legacy_ops, 2),
        "mass_rollback_s": round(rollback_s, 4),
        "legacy_mass_rollback_s": round(legacy_rollback_s, 4),
        "mass_rollback_speedup": round(legacy_rollback_s / rollback_s, 2),
        "mass_rollback_peak_bytes": peak,
        "legacy_mass_rollback_peak_bytes": legacy_peak,
        "mass_rollback_peak_ratio": round(peak / legacy_peak, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    with_store = _measure(args.users, args.members, args.rounds, store=True)
    core = _measure(args.users, args.members, args.rounds, store=False)
    print(json.dumps({
        "benchmark": "resources",
        "python": platform.python_version(),
        "users": args.users,
        "members": args.members,
        "rounds": args.rounds,
        **with_store,
        **{f"core_{key}": value for key, value in core.items()},
        "legacy_model": "perf/resources.py LegacyLeases on progressd.legacy.LegacyWorkbook",
    }))  # fmt: skip


if __name__ == "__main__":
    main()
