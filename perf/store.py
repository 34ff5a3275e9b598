"""Store cost: the loop stall of batched history commits for a 100,000-user run, vs one
transaction per event.

Prints ONE JSON object. A run of ``--users`` users is simulated on a running uvloop, one
store-flush window (1 s of the run, ``[state] flush-interval``) after another, without waiting
for wall time. In each window the users produce, per second: milestone reaches (10 % of users),
errors (1 %), lease changes (1 %) and rollbacks (0.2 %), delivered as 20 event-bus batches
(50 ms each); the subscriber counts each batch (``collections.Counter`` over (kind, scenario,
milestone, reason)) and appends the counts (``record_event_counts``). Every 5 windows each of
3 scenarios records a progress sample; every 10 windows the run records a stable snapshot of a
real 100,000-row ``Workbook`` (the bytes ``Workbook.snapshot()`` returns, made before the
timed part: encoding is the runner's cost and is reported apart as ``snapshot_encode_ms``). At
the end of each window ``flush()`` commits the buffer in ONE transaction; every 30 windows a
child process checkpoints the WAL, as the daemon does once a minute
(``progressd/store/checkpoint.py``).

- ``store_stall_p99_ms``: p99 of the time each flush held the loop (perf_counter around it;
  ``store_stall_cpu_p99_ms`` the same in thread CPU time, which leaves out time the OS gave
  to other processes: compare the two when ``load_average_1m`` exceeds ``cpus``;
  ``flushes_preempted`` counts flushes during which the OS switched to another process
  (involuntary context switches, getrusage) and ``store_stall_unpreempted_p99_ms`` is the wall
  p99 of the others);
  ``loop_lag_p99_ms``: a 1 ms timer probe's lateness over the whole run (appends, flushes,
  the loop's share of the checkpoint child).
- ``append_batch_stall_p99_ms``: the loop time of appending one bus batch to the buffer;
  ``append_cpu_ns_per_event`` its CPU cost per event, and ``append_one_by_one_cpu_ns_per_event``
  the same for calling ``record_event`` once per event instead of counting first.
- ``inline_checkpoint_ms_max``: what a checkpoint costs when run in the loop's process (the
  fsyncs), measured after the run: why the daemon checkpoints in a child.
- Baseline in the same run (``naive_*``): the same event stream written with one transaction
  per event (``record_event`` + ``flush``), over ``--naive-windows`` windows; its stall is
  measured per bus batch, when a per-event writer would commit.

Usage: python perf/store.py [--users 100000] [--windows 300] [--naive-windows 3] [--dir DIR]
       [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import resource
import shutil
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import uvloop

# Replace (not prepend to) perf/ on the path: perf/http.py would shadow the stdlib's http.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from progressd.histogram import LatencyHistogram  # noqa: E402
from progressd.store import Store  # noqa: E402
from progressd.store.checkpoint import CheckpointResult, checkpoint_in_subprocess  # noqa: E402
from progressd.workbook import Workbook  # noqa: E402

SCENARIOS = ("browse", "buy", "admin")
MILESTONES = ("home", "logged-in", "carted", "paid")
REASONS = ("health-check", "timeout", "manual")
ERRORS = ("http-5xx", "timeout", "connect")
MEMBERS = tuple(f"127.0.0.1:{18081 + i}" for i in range(8))
BUS_BATCHES = 20
RATES = {"milestone": 0.10, "error": 0.01, "lease": 0.01, "rollback": 0.002}

Event = tuple[str, str, str, str]  # kind, scenario, milestone, reason


def window_events(users: int, rng: random.Random) -> list[Event]:
    """One second of a run's events, in arrival order."""
    events: list[Event] = []
    for kind, rate in RATES.items():
        for _ in range(int(users * rate)):
            scenario = rng.choice(SCENARIOS)
            if kind == "milestone":
                events.append((kind, scenario, rng.choice(MILESTONES), ""))
            elif kind == "rollback":
                events.append((kind, scenario, rng.choice(MILESTONES), rng.choice(REASONS)))
            elif kind == "error":
                events.append((kind, scenario, "", rng.choice(ERRORS)))
            else:
                events.append((kind, scenario, "", rng.choice(MEMBERS)))
    rng.shuffle(events)
    return events


def split(events: list[Event], parts: int) -> list[list[Event]]:
    size = -(-len(events) // parts)
    return [events[i : i + size] for i in range(0, len(events), size)]


@dataclass(slots=True)
class LagProbe:
    """A 1 ms timer on the loop; how late it wakes is what every other task waited."""

    interval: float = 0.001
    hist: LatencyHistogram = field(default_factory=LatencyHistogram)
    running: bool = True

    async def run(self) -> None:
        while self.running:
            due = time.perf_counter() + self.interval
            await asyncio.sleep(self.interval)
            self.hist.record(max(0.0, time.perf_counter() - due))


@dataclass(slots=True)
class RunModel:
    """A 100k-row workbook whose users move through milestones between snapshots."""

    users: int
    book: Workbook = field(init=False)
    encode: LatencyHistogram = field(default_factory=LatencyHistogram)
    size: int = 0

    def __post_init__(self) -> None:
        self.book = Workbook(MILESTONES, rows=self.users)

    def snapshots(self, count: int, rng: random.Random) -> list[bytes]:
        return [self.snapshot(rng) for _ in range(count)]

    def snapshot(self, rng: random.Random) -> bytes:
        for _ in range(self.users // 10):
            row = rng.randrange(self.users)
            current = self.book.stable_milestone(row)
            if current < len(MILESTONES) - 1:
                self.book.reach_milestone(row, current + 1)
        self.book.take_changes()
        began = time.perf_counter()
        data = self.book.snapshot()
        self.encode.record(time.perf_counter() - began)
        self.size = len(data)
        return data


def append(store: Store, run: str, batch: list[Event]) -> None:
    store.record_event_counts(run, Counter(batch))


def append_one_by_one(store: Store, run: str, batch: list[Event]) -> None:
    record = store.record_event
    for kind, scenario, milestone, reason in batch:
        record(run, kind, scenario=scenario, milestone=milestone, reason=reason)


def timed(
    action: Callable[[], object], hist: LatencyHistogram, cpu: LatencyHistogram | None = None
) -> float:
    began, began_cpu = time.perf_counter(), time.thread_time()
    action()
    spent = time.perf_counter() - began
    hist.record(spent)
    if cpu is not None:
        cpu.record(time.thread_time() - began_cpu)
    return spent


def preemptions() -> int:
    """Involuntary context switches of this thread so far (the OS gave the CPU to another)."""
    return resource.getrusage(resource.RUSAGE_THREAD).ru_nivcsw


def timed_flush(
    store: Store, wall: LatencyHistogram, cpu: LatencyHistogram, unpreempted: LatencyHistogram
) -> bool:
    """Flush once; record its wall and CPU time, and its wall time again when the OS did not
    preempt it. Returns whether it was preempted."""
    switches = preemptions()
    spent = timed(store.flush, wall, cpu)
    preempted = preemptions() != switches
    if not preempted:
        unpreempted.record(spent)
    return preempted


async def batched(
    store: Store, args: argparse.Namespace, snapshots: list[bytes]
) -> dict[str, float]:
    rng = random.Random(7)
    stall, stall_cpu, unpreempted = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    preempted = 0
    append_stall, append_cpu = LatencyHistogram(), LatencyHistogram()
    events = 0
    checkpoints: list[asyncio.Task[CheckpointResult]] = []
    for window in range(args.windows):
        for batch in split(window_events(args.users, rng), BUS_BATCHES):
            timed(lambda b=batch: append(store, "run-1", b), append_stall, append_cpu)  # type: ignore[misc]
            events += len(batch)
            await asyncio.sleep(0)
        if window % 5 == 0:
            for scenario in SCENARIOS:
                store.record_sample(
                    "run-1",
                    scenario,
                    done=window,
                    total=args.windows,
                    rate=1.0,
                    users_active=args.users // 3,
                    users_done=0,
                )
        if window % 10 == 0:
            store.record_snapshot("run-1", snapshots[window // 10], version=window)
        preempted += timed_flush(store, stall, stall_cpu, unpreempted)
        if window % 30 == 29 and all(t.done() for t in checkpoints):
            checkpoints.append(asyncio.create_task(checkpoint_in_subprocess(store.path)))
        await asyncio.sleep(0.002)
    done = await asyncio.gather(*checkpoints)
    commit_seconds = store.statistics().commit_seconds
    return {
        "store_stall_p50_ms": stall.percentile(50) * 1e3,
        "store_stall_p99_ms": stall.percentile(99) * 1e3,
        "store_stall_max_ms": stall.max * 1e3,
        "store_stall_cpu_p99_ms": stall_cpu.percentile(99) * 1e3,
        "flushes_preempted": preempted,
        "store_stall_unpreempted_p99_ms": unpreempted.percentile(99) * 1e3,
        "commits": commit_seconds.count,
        "commits_per_s": commit_seconds.count / commit_seconds.sum,
        "events": events,
        "events_per_s": events / commit_seconds.sum,
        "append_batch_stall_p99_ms": append_stall.percentile(99) * 1e3,
        "append_ns_per_event": append_stall.sum / events * 1e9,
        "append_cpu_ns_per_event": append_cpu.sum / events * 1e9,
        "checkpoints_in_child": len(done),
        "checkpoint_child_ms_max": max((c.seconds for c in done), default=0.0) * 1e3,
        "wal_bytes_max": store.wal_bytes,
    }


def one_by_one_cost(store: Store, users: int) -> float:
    """CPU nanoseconds per event of ``record_event`` called once per event, over one window."""
    events = window_events(users, random.Random(11))
    began = time.thread_time()
    append_one_by_one(store, "run-1", events)
    spent = time.thread_time() - began
    store.flush()
    return spent / len(events) * 1e9


def inline_checkpoints(store: Store, rounds: int, rng: random.Random) -> float:
    """The worst in-process checkpoint over ``rounds`` windows' worth of writes each."""
    worst = 0.0
    for _ in range(rounds):
        for _ in range(5):
            append(store, "run-1", window_events(10_000, rng))
            store.flush()
        worst = max(worst, store.checkpoint().seconds)
    return worst


async def naive(store: Store, args: argparse.Namespace) -> dict[str, float]:
    rng = random.Random(7)
    stall, commits = LatencyHistogram(), LatencyHistogram()
    events = 0

    def per_event(batch: list[Event]) -> None:
        for kind, scenario, milestone, reason in batch:
            store.record_event("run-1", kind, scenario=scenario, milestone=milestone, reason=reason)
            timed(store.flush, commits)

    for _ in range(args.naive_windows):
        for batch in split(window_events(args.users, rng), BUS_BATCHES):
            timed(lambda b=batch: per_event(b), stall)  # type: ignore[misc]
            events += len(batch)
            await asyncio.sleep(0)
    return {
        "naive_stall_p99_ms": stall.percentile(99) * 1e3,
        "naive_commits": commits.count,
        "naive_commits_per_s": commits.count / commits.sum,
        "naive_events_per_s": events / commits.sum,
    }


def open_store(directory: Path, name: str) -> Store:
    store = Store.open(directory / name)
    store.add_run("run-1", name="checkout", source="name: checkout\n", status="running")
    store.flush()
    return store


async def main(args: argparse.Namespace) -> dict[str, object]:
    directory = Path(tempfile.mkdtemp(prefix="progressd-perf-store-", dir=args.dir))
    probe = LagProbe()
    model = RunModel(args.users)
    snapshots = model.snapshots(args.windows // 10 + 1, random.Random(3))
    store = open_store(directory, "batched.db")
    probe_task = asyncio.get_running_loop().create_task(probe.run())
    figures = await batched(store, args, snapshots)
    probe.running = False
    await probe_task
    lag = probe.hist.percentile(99) * 1e3
    figures["inline_checkpoint_ms_max"] = inline_checkpoints(store, 5, random.Random(5)) * 1e3
    figures["append_one_by_one_cpu_ns_per_event"] = one_by_one_cost(store, args.users)
    store.close()
    naive_store = open_store(directory, "naive.db")
    figures |= await naive(naive_store, args)
    naive_store.close()
    if not args.keep:
        shutil.rmtree(directory)
    return {
        "benchmark": "store",
        "users": args.users,
        "windows": args.windows,
        **{k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()},
        "loop_lag_p99_ms": round(lag, 4),
        "snapshot_bytes": model.size,
        "snapshot_encode_ms": round(model.encode.mean * 1e3, 3),
        "stall_p99_ratio": round(figures["naive_stall_p99_ms"] / figures["store_stall_p99_ms"], 1),
        "events_per_s_ratio": round(figures["events_per_s"] / figures["naive_events_per_s"], 1),
        "commits_per_s_ratio": round(figures["commits_per_s"] / figures["naive_commits_per_s"], 3),
        "bar_stall_p99_ms": 5.0,
        "meets_bar": figures["store_stall_p99_ms"] < 5.0,
        "meets_bar_cpu": figures["store_stall_cpu_p99_ms"] < 5.0,
        "db_dir": str(directory.parent),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--windows", type=int, default=300)
    parser.add_argument("--naive-windows", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where the databases go (default: $TMPDIR)")
    parser.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    arguments = parser.parse_args()
    print(json.dumps(uvloop.run(main(arguments))))
