"""Poller and runner throughput and wake latency, next to their baselines measured in the same run.

Prints ONE JSON object (flat keys). Every throughput figure is a median over ``--rounds``
interleaved rounds (bare loop, progressd, legacy, ...) on fresh uvloop loops. Rates are per
CPU second of this process (``time.process_time``): the single-thread throughput, which stays
meaningful when other processes share the cores; the same rates per wall-clock second are in
the ``*_wall`` keys. Ratios use the CPU-second rates.

- ``bare_loop_callbacks_per_s``: 100,000 chains of uvloop ``call_soon`` callbacks, each
  re-scheduling itself: the most this loop can dispatch (the issue's limit).
- ``noop_steps_per_s_{10000,100000}``: progressd end to end — a scenario of one ``think: 0s``
  step for N users, run by the ``Runner`` on ``Poller.run()``: every step fires a pollable,
  writes done work and the iteration into the columnar ``Workbook``, and subscribes the next
  timer pollable. ``ratio_vs_bare_loop`` and ``ratio_vs_legacy`` are the 100,000-user figure
  over the two baselines.
- ``noop_steps_per_s_100000_null_store``: the same run with the workbook's ``add``/``set`` made
  no-ops — the runner and poller without the store's per-write cost (a diagnostic ceiling).
- ``poller_noop_steps_per_s_{10000,100000}``: the poller alone (each handle's callback
  subscribes the next one-shot handle; no runner, no workbook) — the scheduling share.
- ``legacy_steps_per_s_{10000,100000}``: the legacy polling model doing the same work: users
  are ``LegacyWorkbook`` dicts, a loop polls every user each tick for ``due <= now`` and runs
  the due ones (done work, iteration, next due), and ``scan_forever(0.05)`` finds changes by
  comparing every user with its last copy; it yields to the loop once per tick.
  ``legacy_tasks_steps_per_s_100000``: the other first-version shape, a task per user
  (``await asyncio.sleep(0)`` as think 0) writing the same dicts, with the same scan;
  ``ratio_vs_legacy_tasks`` compares against it.
- ``cpu_share`` / ``runner_cpu_share``: the share of a core the process used during the latency
  window (~10,000 wakes/s). ``legacy_wake_latency_p50_ms`` / ``legacy_wake_latency_p99_ms`` /
  ``legacy_cpu_share``: the legacy polling model under the same load (100,000 users, due times
  spread the same way, a tick checks every user; latency is check time minus due time, exact).
  ``cpu_ratio_vs_legacy_at_10000_wakes``: legacy CPU share over the poller's.
- ``thinking_steps_per_s_100000`` / ``legacy_thinking_steps_per_s_100000``: 100,000 users
  thinking 0.5-1.5 s between no-op steps (~100,000 steps/s of demand), steps per CPU second:
  where the polling model pays for checking users that are not due
  (``thinking_ratio_vs_legacy``).
- ``wake_latency_p50_ms`` / ``wake_latency_p99_ms``: 100,000 timer waiters on ``Poller.run()``
  (monotonic clock), first due spread over 10 s, each re-arming 9-11 s (uniform) after it
  wakes: ~10,000 wakes/s, like 100,000 users with ~10 s think times. Due instant to run, from
  the poller's histogram (bucket upper bounds: never below the true value) over a 3 s window
  after a 2 s settle. ``wake_latency_max_ms`` is exact. ``runner_wake_latency_*``: the same
  load as 100,000 Runner users (ramp 10 s, think 9-11 s), each wake also writing the workbook.
- ``*_gc_default``: the same measure with ``Poller(gc_policy="default")``, i.e. CPython's
  automatic collector left on; every other progressd figure runs with the poller's default
  ``gc_policy="idle"`` (collection moved to idle moments, see progressd/poller/gcpolicy.py).
- ``loadavg_1m``: the machine's 1-minute load average when the run ended (other processes
  competing for the two cores inflate latency and deflate every rate alike).
- ``locust_tasks_per_s``: Locust no-op tasks (``constant(0)`` wait) at 1,000 users, in a
  subprocess, per CPU second, when a Python with Locust is available (this one, or
  ``--locust-python``); ``noop_steps_per_s_1000`` and ``ratio_vs_locust`` put progressd beside
  it. ``locust_available`` says whether it ran.

Usage: python perf/poller.py [--rounds 3] [--seconds 1.0] [--locust-python PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import uvloop

from progressd.clock import MonotonicClock
from progressd.dsl import Plan, load_plan_text
from progressd.legacy import LegacyWorkbook
from progressd.poller import Poller, ProgressPollable
from progressd.runner import Runner
from progressd.workbook import Field, Workbook

SIZES = (10_000, 100_000)
WARMUP = 0.3


Rates = tuple[float, float]
"""(per wall-clock second, per CPU second of this process)."""


class Window:
    """A measurement window: counts per wall second and per CPU second of this process. On a
    shared machine the CPU-second rate is the single-thread throughput; the wall rate also
    counts the time other processes held the core."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def rates(self, count: int) -> Rates:
        done = count - self.count
        wall = time.perf_counter() - self.wall
        cpu = time.process_time() - self.cpu
        return done / wall, done / cpu if cpu > 0 else 0.0


def plan_for(users: int, think: str) -> Plan:
    return load_plan_text(
        f"version: 2\nname: perf\nload:\n  scenarios:\n    - name: s\n      users: {users}\n"
        f"      duration: 1h\n      steps:\n        - think: {think}\n",
        file="perf.yaml",
    )


def run_on_uvloop(make: Callable[[], Awaitable[Rates]]) -> Rates:
    loop = uvloop.new_event_loop()
    try:
        return loop.run_until_complete(make())
    finally:
        loop.close()


async def bare_loop(chains: int, seconds: float) -> Rates:
    loop = asyncio.get_running_loop()
    count = 0
    stop = False

    def callback() -> None:
        nonlocal count
        count += 1
        if not stop:
            loop.call_soon(callback)

    for _ in range(chains):
        loop.call_soon(callback)
    await asyncio.sleep(WARMUP)
    window = Window(count)
    await asyncio.sleep(seconds)
    rate = window.rates(count)
    stop = True
    await asyncio.sleep(0.01)
    return rate


class NullWriteWorkbook(Workbook):
    """A ``Workbook`` whose per-step writes (``add``/``set``/``advance``) do nothing: measures
    the runner and poller without the store's write cost — the ceiling a cheaper write path
    could approach. Reported separately (``*_null_store``), never as the progressd figure."""

    def add(self, row: int, field: Field, delta: int | float) -> None:
        return None

    def set(self, row: int, field: Field, value: int | float) -> None:
        return None

    def advance(self, row: int, step: int, done: int = 0, iterations: int = 0) -> None:
        return None


async def progressd_noop(
    users: int, seconds: float, *, null_store: bool = False, gc_policy: str = "idle"
) -> Rates:
    plan = plan_for(users, "0s")
    poller = Poller(MonotonicClock(), plan.progress.poller.priorities,
                    budget=plan.progress.poller.budget,
                    gc_policy="default" if gc_policy == "default" else "idle")  # fmt: skip
    runner = Runner(plan, poller, NullWriteWorkbook(()) if null_store else None)
    main = asyncio.ensure_future(poller.run())
    runner.start()
    poller.notify()
    await settled(runner, users)
    window = Window(runner.statistics().steps_run)
    await asyncio.sleep(seconds)
    rate = window.rates(runner.statistics().steps_run)
    runner.cancel()
    poller.stop()
    await main
    return rate


async def settled(runner: Runner, users: int) -> None:
    """Wait until every user has finished a step (starting 100,000 users takes a while), then
    the warm-up."""
    started = asyncio.Event()

    def check(now: float) -> None:
        if runner.statistics().steps_run >= users:
            started.set()

    remove = runner.poller.add_iteration_hook(check)
    await started.wait()
    remove()
    await asyncio.sleep(WARMUP)


async def poller_noop(users: int, seconds: float) -> Rates:
    poller = Poller(MonotonicClock())
    rank = poller.default_rank
    count = 0

    def step(handle: ProgressPollable) -> None:
        nonlocal count
        count += 1
        poller.subscribe_timer(poller.now, step, handle.owner, rank)

    for row in range(users):
        poller.subscribe_timer(poller.now, step, row, rank)
    main = asyncio.ensure_future(poller.run())
    await asyncio.sleep(WARMUP)
    window = Window(count)
    await asyncio.sleep(seconds)
    rate = window.rates(count)
    poller.stop()
    await main
    return rate


async def legacy_noop(users: int, seconds: float) -> Rates:
    workbook = LegacyWorkbook((), rows=users)
    scanner = asyncio.ensure_future(workbook.scan_forever(0.05))
    steps = 0
    running = True

    async def tick_loop() -> None:
        nonlocal steps
        while running:
            now = time.monotonic()
            for row, user in enumerate(workbook.users):
                if user["due"] <= now:
                    workbook.add(row, Field.DONE, 1)
                    workbook.add(row, Field.ITERATION, 1)
                    workbook.set(row, Field.DUE, now)
                    steps += 1
            await asyncio.sleep(0)

    ticker = asyncio.ensure_future(tick_loop())
    await asyncio.sleep(WARMUP)
    window = Window(steps)
    await asyncio.sleep(seconds)
    rate = window.rates(steps)
    running = False
    await ticker
    scanner.cancel()
    await asyncio.gather(scanner, return_exceptions=True)
    return rate


async def legacy_tasks_noop(users: int, seconds: float) -> Rates:
    """The first-version design: a task per user, progress in ``LegacyWorkbook`` dicts, changes
    found by ``scan_forever(0.05)``; think 0 is ``await asyncio.sleep(0)``."""
    workbook = LegacyWorkbook((), rows=users)
    scanner = asyncio.ensure_future(workbook.scan_forever(0.05))
    steps = 0
    running = True

    async def user(row: int) -> None:
        nonlocal steps
        while running:
            workbook.add(row, Field.DONE, 1)
            workbook.add(row, Field.ITERATION, 1)
            steps += 1
            await asyncio.sleep(0)

    tasks = [asyncio.ensure_future(user(row)) for row in range(users)]
    await asyncio.sleep(WARMUP)
    window = Window(steps)
    await asyncio.sleep(seconds)
    rate = window.rates(steps)
    running = False
    await asyncio.gather(*tasks)
    scanner.cancel()
    await asyncio.gather(scanner, return_exceptions=True)
    return rate


async def progressd_thinking(users: int, seconds: float, gc_policy: str = "idle") -> Rates:
    """Users thinking 0.5-1.5 s between no-op steps: the runner wakes only the due ones."""
    plan = plan_for(users, "{min: 100ms, max: 300ms}")
    poller = Poller(MonotonicClock(), plan.progress.poller.priorities,
                    budget=plan.progress.poller.budget,
                    gc_policy="default" if gc_policy == "default" else "idle")  # fmt: skip
    runner = Runner(plan, poller, seed=1)
    main = asyncio.ensure_future(poller.run())
    runner.start()
    poller.notify()
    await settled(runner, users)  # every user has finished its first think
    window = Window(runner.statistics().steps_run)
    await asyncio.sleep(seconds)
    rate = window.rates(runner.statistics().steps_run)
    runner.cancel()
    poller.stop()
    await main
    return rate


async def legacy_thinking(users: int, seconds: float) -> Rates:
    """The legacy polling model with the same think times: every tick checks every user."""
    workbook = LegacyWorkbook((), rows=users)
    scanner = asyncio.ensure_future(workbook.scan_forever(0.05))
    uniform = random.Random(1).uniform
    start = time.monotonic()
    for row in range(users):
        workbook.set(row, Field.DUE, start + uniform(0.1, 0.3))
    steps = 0
    running = True

    async def tick_loop() -> None:
        nonlocal steps
        while running:
            now = time.monotonic()
            for row, user in enumerate(workbook.users):
                if user["due"] <= now:
                    workbook.add(row, Field.DONE, 1)
                    workbook.add(row, Field.ITERATION, 1)
                    workbook.set(row, Field.DUE, now + uniform(0.1, 0.3))
                    steps += 1
            await asyncio.sleep(0)

    ticker = asyncio.ensure_future(tick_loop())
    await asyncio.sleep(1.6)
    window = Window(steps)
    await asyncio.sleep(seconds)
    rate = window.rates(steps)
    running = False
    await ticker
    scanner.cancel()
    await asyncio.gather(scanner, return_exceptions=True)
    return rate


async def wake_latency(users: int, window: float, gc_policy: str = "idle") -> dict[str, float]:
    """100,000 timer waiters on the poller, first due spread over 10 s, each re-arming 9-11 s
    after it wakes: ~10,000 wakes/s, like 100,000 users with ~10 s think times."""
    poller = Poller(MonotonicClock(), gc_policy="default" if gc_policy == "default" else "idle")
    rank = poller.default_rank
    uniform = random.Random(1).uniform

    def wake(handle: ProgressPollable) -> None:
        poller.subscribe_timer(poller.now + uniform(9.0, 11.0), wake, handle.owner, rank)

    now = poller.clock.now()
    for row in range(users):
        poller.subscribe_timer(now + uniform(0.0, 10.0), wake, row, rank)
    return await _latency_window(poller, window, "", _suffix(gc_policy))


async def runner_wake_latency(
    users: int, window: float, gc_policy: str = "idle"
) -> dict[str, float]:
    """The same through the Runner: 100,000 users ramped over 10 s, thinking 9-11 s; every wake
    also writes the workbook."""
    plan = load_plan_text(
        f"version: 2\nname: perf\nload:\n  scenarios:\n    - name: s\n      users: {users}\n"
        "      ramp: 10s\n      duration: 1h\n      steps:\n        - think: {min: 9s, max: 11s}\n",
        file="perf.yaml",
    )
    poller = Poller(MonotonicClock(), plan.progress.poller.priorities,
                    budget=plan.progress.poller.budget,
                    gc_policy="default" if gc_policy == "default" else "idle")  # fmt: skip
    runner = Runner(plan, poller, seed=1)
    runner.start()
    result = await _latency_window(poller, window, "runner_", _suffix(gc_policy))
    runner.cancel()
    return result


def _suffix(gc_policy: str) -> str:
    return "_gc_default" if gc_policy == "default" else ""


async def _latency_window(
    poller: Poller, window: float, prefix: str, suffix: str = "", settle: float = 2.2
) -> dict[str, float]:
    main = asyncio.ensure_future(poller.run())
    await asyncio.sleep(settle)
    poller.reset_statistics()
    cpu = time.process_time()
    await asyncio.sleep(window)
    cpu = time.process_time() - cpu
    stats = poller.statistics()
    poller.stop()
    await main
    figures = {
        "cpu_share": cpu / window,
        "wake_latency_p50_ms": stats.wake_latency_p50_seconds * 1000,
        "wake_latency_p99_ms": stats.wake_latency_p99_seconds * 1000,
        "wake_latency_max_ms": stats.wake_latency_max_seconds * 1000,
        "wake_latency_wakes_per_s": stats.handles_run / window,
        "wake_iteration_ms_mean": stats.iteration_seconds_mean * 1000,
        "gc_pause_max_ms": stats.gc_pause_max_seconds * 1000,
    }
    return {f"{prefix}{key}{suffix}": value for key, value in figures.items()}


async def legacy_wake_latency(users: int, window: float) -> dict[str, float]:
    """The legacy polling model under the same load as ``wake_latency``: every tick checks
    every user's due time; latency is the check's instant minus the due instant."""
    workbook = LegacyWorkbook((), rows=users)
    scanner = asyncio.ensure_future(workbook.scan_forever(0.05))
    uniform = random.Random(1).uniform
    start = time.monotonic()
    for row in range(users):
        workbook.set(row, Field.DUE, start + uniform(0.0, 10.0))
    latencies: list[float] = []
    measuring = False
    running = True

    async def tick_loop() -> None:
        while running:
            now = time.monotonic()
            for row, user in enumerate(workbook.users):
                due = user["due"]
                if due <= now:
                    if measuring:
                        latencies.append(time.monotonic() - due)
                    workbook.add(row, Field.DONE, 1)
                    workbook.set(row, Field.DUE, now + uniform(9.0, 11.0))
            await asyncio.sleep(0)

    ticker = asyncio.ensure_future(tick_loop())
    await asyncio.sleep(2.2)
    measuring = True
    cpu = time.process_time()
    await asyncio.sleep(window)
    cpu = time.process_time() - cpu
    measuring = False
    running = False
    await ticker
    scanner.cancel()
    await asyncio.gather(scanner, return_exceptions=True)
    latencies.sort()
    pick = latencies[int(0.99 * (len(latencies) - 1))] if latencies else 0.0
    return {
        "legacy_cpu_share": cpu / window,
        "legacy_wake_latency_p50_ms": latencies[len(latencies) // 2] * 1000 if latencies else 0.0,
        "legacy_wake_latency_p99_ms": pick * 1000,
        "legacy_wake_latency_wakes_per_s": len(latencies) / window,
    }


LOCUST_SCRIPT = """
import json, sys, time
from gevent import monkey
monkey.patch_all()
import gevent
from locust import User, constant, task
from locust.env import Environment
users, warmup, seconds = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
count = 0
class Noop(User):
    wait_time = constant(0)
    @task
    def noop(self):
        global count
        count += 1
env = Environment(user_classes=[Noop])
runner = env.create_local_runner()
runner.start(users, spawn_rate=users)
gevent.sleep(warmup)
before, wall, cpu = count, time.perf_counter(), time.process_time()
gevent.sleep(seconds)
done = count - before
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
runner.quit()
print(json.dumps({"wall": done / wall, "cpu": done / cpu if cpu > 0 else 0.0}))
"""


def locust_python(explicit: str | None) -> str | None:
    """The interpreter to run Locust with: ``--locust-python``, else this one if it has Locust
    (Locust runs in its own process: gevent's monkey-patching must not touch this loop)."""
    if explicit:
        return explicit
    return sys.executable if importlib.util.find_spec("locust") else None


def locust_figures(python: str | None, rounds: int, seconds: float) -> dict[str, Any]:
    """Locust no-op tasks per second at 1,000 users (``wait_time = constant(0)``), next to
    progressd at 1,000 users, when a Python with Locust is available."""
    if python is None:
        return {"locust_available": False}
    cpu: list[float] = []
    wall: list[float] = []
    ours: list[float] = []
    for _ in range(rounds):
        done = subprocess.run(
            [python, "-c", LOCUST_SCRIPT, "1000", str(WARMUP + 0.7), str(seconds)],
            capture_output=True, text=True, check=True, timeout=120,
        )  # fmt: skip
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        cpu.append(figures["cpu"])
        wall.append(figures["wall"])
        ours.append(run_on_uvloop(lambda: progressd_noop(1000, seconds))[1])
    locust = statistics.median(cpu)
    return {
        "locust_available": True,
        "locust_tasks_per_s": round(locust),
        "locust_tasks_per_s_wall": round(statistics.median(wall)),
        "noop_steps_per_s_1000": round(statistics.median(ours)),
        "ratio_vs_locust": round(statistics.median(ours) / locust, 3),
    }


def measure(rounds: int, seconds: float) -> dict[str, Any]:
    samples: dict[str, list[float]] = {}

    def sample(key: str, make: Callable[[], Awaitable[Rates]]) -> None:
        wall, cpu = run_on_uvloop(make)
        samples.setdefault(key, []).append(cpu)
        samples.setdefault(f"{key}_wall", []).append(wall)

    for _ in range(rounds):
        sample("bare_loop_callbacks_per_s", lambda: bare_loop(100_000, seconds))
        for users in SIZES:
            sample(f"noop_steps_per_s_{users}", lambda u=users: progressd_noop(u, seconds))
            sample(f"poller_noop_steps_per_s_{users}", lambda u=users: poller_noop(u, seconds))
            sample(f"legacy_steps_per_s_{users}", lambda u=users: legacy_noop(u, seconds))
        sample("legacy_tasks_steps_per_s_100000", lambda: legacy_tasks_noop(100_000, seconds))
        sample("thinking_steps_per_s_100000", lambda: progressd_thinking(100_000, seconds))
        sample(
            "thinking_steps_per_s_100000_gc_default",
            lambda: progressd_thinking(100_000, seconds, "default"),
        )
        sample(
            "noop_steps_per_s_100000_gc_default",
            lambda: progressd_noop(100_000, seconds, gc_policy="default"),
        )
        sample("legacy_thinking_steps_per_s_100000", lambda: legacy_thinking(100_000, seconds))
        sample(
            "noop_steps_per_s_100000_null_store",
            lambda: progressd_noop(100_000, seconds, null_store=True),
        )
    result: dict[str, Any] = {k: round(statistics.median(v)) for k, v in samples.items()}
    bare = result["bare_loop_callbacks_per_s"]
    ours = result["noop_steps_per_s_100000"]
    result["ratio_vs_bare_loop"] = round(ours / bare, 3)
    result["ratio_vs_legacy"] = round(ours / result["legacy_steps_per_s_100000"], 3)
    result["ratio_vs_bare_loop_10000"] = round(result["noop_steps_per_s_10000"] / bare, 3)
    result["ratio_vs_legacy_10000"] = round(
        result["noop_steps_per_s_10000"] / result["legacy_steps_per_s_10000"], 3
    )
    result["ratio_vs_legacy_tasks"] = round(ours / result["legacy_tasks_steps_per_s_100000"], 3)
    result["thinking_ratio_vs_legacy"] = round(
        result["thinking_steps_per_s_100000"] / result["legacy_thinking_steps_per_s_100000"], 3
    )
    result["null_store_ratio_vs_bare_loop"] = round(
        result["noop_steps_per_s_100000_null_store"] / bare, 3
    )
    result["poller_ratio_vs_bare_loop"] = round(result["poller_noop_steps_per_s_100000"] / bare, 3)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--window", type=float, default=3.0, help="latency window, seconds")
    parser.add_argument(
        "--locust-python", help="a Python with Locust installed (default: this one, if it has it)"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    result: dict[str, Any] = {"python": sys.version.split()[0], "uvloop": uvloop.__version__}
    result.update(measure(args.rounds, args.seconds))
    for bench in (wake_latency, runner_wake_latency):
        for policy in ("idle", "default"):
            latency = uvloop.run(bench(100_000, args.window, policy))
            result.update({k: round(v, 3) for k, v in latency.items()})
    legacy = uvloop.run(legacy_wake_latency(100_000, args.window))
    result.update({k: round(v, 3) for k, v in legacy.items()})
    result["cpu_ratio_vs_legacy_at_10000_wakes"] = round(
        result["legacy_cpu_share"] / result["cpu_share"], 2
    )
    result.update(locust_figures(locust_python(args.locust_python), args.rounds, args.seconds))
    result["bench_seconds"] = round(time.perf_counter() - started, 1)
    result["loadavg_1m"] = os.getloadavg()[0]
    result["cpus"] = os.cpu_count()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
