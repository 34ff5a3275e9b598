"""Memory per virtual user: the columnar workbook against the legacy dict-per-user model.

Prints ONE JSON object. Every case runs in a fresh subprocess (so earlier cases leave no
arena behind): import everything, warm up, read RSS, build N users with the DESIGN.md field set,
collect garbage, read RSS again. A second subprocess per case measures the same build under
tracemalloc as a cross-check, and the model's own ``memory_bytes()`` is reported beside both.

Field set per user: step, iteration, done work, status, lease, next-due time set on every row;
every row reaches a milestone (so it has a stable point) and moves past it; 10% of rows hold
extracted vars and a last error text. Then the steady state a daemon would be in: the workbook's
changes collected by the event bus, the legacy model's periodic scan done. The ``aged`` cases
(``aged_*``, ``legacy_aged_*``) go on to a long run's counters (``age()``): versions, iterations
and done work past CPython's small-int cache, so any model keeping them as Python ints (the
workbook's list columns do) pays one int object per value.

Locust idle users (``User`` with one no-op task and a long wait) are measured when an interpreter
with ``locust`` is available: this one, or the one in ``PROGRESSD_LOCUST_PYTHON``. Locust is not
a dependency of progressd.

    .venv/bin/python perf/memory.py [--counts 1000,10000,100000]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import os
import platform
import subprocess
import sys
import time
from typing import Any

COUNTS = (1000, 10_000, 100_000)
CASES = ("workbook", "workbook-compacted", "workbook-aged", "legacy", "legacy-aged")
AGED_COMMITS = 260  # past CPython's cached small ints (-5..256): every counter is its own object
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def trim_heap() -> None:
    """Return free heap pages to the OS (glibc), so RSS growth measured from here is not
    hidden by reuse of memory freed during imports and warm-up."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


# -- child side ------------------------------------------------------------------------------


def populate(model: Any, users: int, collect: Any = None) -> None:
    """Drive any ProgressModel to the benchmark's field set; ``collect()`` runs every 1024
    rows, as the event bus would collect changes while users progress."""
    from progressd.workbook import Field, Status

    model.add_rows(users)
    for row in range(users):
        if collect is not None and row % 1024 == 0:
            collect()
        model.set(row, Field.STATUS, Status.ACTIVE if row % 4 else Status.THINKING)
        model.set(row, Field.STEP, 3 + row % 5)
        model.set(row, Field.ITERATION, row % 3)
        model.add(row, Field.DONE, 1 + row % 40)
        model.set(row, Field.LEASE, row % 3)
        model.set(row, Field.DUE, 1000.0 + row * 0.001)
        if row % 10 == 0:
            model.set_cold(row, Field.VARS, {"token": f"tok-{row:028x}", "user_id": row})
            model.record_error(row, f"HTTP 503 from 127.0.0.1:{18081 + row % 3} (attempt 1)")
        model.reach_milestone(row, 0)
        model.add(row, Field.DONE, 1)
        model.add(row, Field.STEP, 1)


def age(model: Any, users: int, collect: Any = None) -> None:
    """A long run's counters: every row past AGED_COMMITS commits (its version), hundreds of
    iterations and thousands of units of done work — values too large for CPython's cache of
    small ints, so a model keeping them as Python ints pays for one object per value."""
    from progressd.workbook import Field

    for row in range(users):
        if collect is not None and row % 1024 == 0:
            collect()
        model.set(row, Field.ITERATION, 300 + row % 700)
        for _ in range(AGED_COMMITS):
            model.add(row, Field.DONE, 7)


def build(case: str, users: int) -> Any:
    from progressd.legacy import LegacyWorkbook
    from progressd.workbook import Workbook

    milestones = ("logged-in", "browsed", "paid")
    if case.startswith("legacy"):
        legacy = LegacyWorkbook(milestones)
        populate(legacy, users)
        if case == "legacy-aged":
            age(legacy, users)
        legacy.scan()
        return legacy
    workbook = Workbook(milestones)
    populate(workbook, users, workbook.take_changes)
    if case == "workbook-aged":
        age(workbook, users, workbook.take_changes)
    workbook.take_changes()
    if case == "workbook-compacted":
        workbook.compact_stable()
        workbook.compact_stable()
    return workbook


def measure_progressd(case: str, users: int, trace: bool) -> dict[str, Any]:
    import tracemalloc

    import progressd.legacy
    import progressd.workbook  # noqa: F401  (imported before the baseline)

    build(case, 50)  # warm-up: lazily created objects exist before the baseline
    trim_heap()
    if trace:
        tracemalloc.start()
    before = rss_bytes()
    started = time.perf_counter()
    model = build(case, users)
    seconds = time.perf_counter() - started
    gc.collect()
    after = rss_bytes()
    result: dict[str, Any] = {"rss_growth": after - before, "build_seconds": seconds}
    if trace:
        result["traced"] = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
    else:
        result["self_reported"] = model.memory_bytes()
        if not case.startswith("legacy"):
            stats = model.statistics()
            result["stable_compression_ratio"] = stats.stable_compression_ratio
            model.snapshot()
            stats = model.statistics()
            result["snapshot_bytes"] = stats.snapshot_bytes
            result["snapshot_ratio"] = stats.snapshot_raw_bytes / stats.snapshot_bytes
    return result


def measure_locust(users: int) -> dict[str, Any]:
    import gevent  # type: ignore[import-untyped, import-not-found, unused-ignore]
    from locust import User, constant, task
    from locust.env import Environment

    class Idle(User):
        wait_time = constant(3600)

        @task
        def nothing(self) -> None:
            pass

    env = Environment(user_classes=[Idle])
    runner = env.create_local_runner()
    trim_heap()
    before = rss_bytes()
    started = time.perf_counter()
    runner.start(users, spawn_rate=users * 100)
    while runner.user_count < users:
        gevent.sleep(0.05)
    seconds = time.perf_counter() - started
    gevent.sleep(0.2)
    gc.collect()
    after = rss_bytes()
    spawned = runner.user_count
    runner.quit()
    return {"rss_growth": after - before, "build_seconds": seconds, "users": spawned}


# -- parent side -----------------------------------------------------------------------------


def run_child(python: str, case: str, users: int, trace: bool = False) -> dict[str, Any]:
    # -P: keep perf/ off sys.path (perf/http.py would shadow the stdlib's http)
    cmd = [python, "-P", __file__, "--child", case, "--users", str(users)]
    if trace:
        cmd.append("--trace")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=900)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def locust_python() -> str | None:
    for python in (os.environ.get("PROGRESSD_LOCUST_PYTHON"), sys.executable):
        if not python:
            continue
        probe = subprocess.run([python, "-c", "import locust"], capture_output=True, check=False)
        if probe.returncode == 0:
            return python
    return None


def machine() -> dict[str, Any]:
    try:
        import uvloop

        uvloop_version = str(getattr(uvloop, "__version__", "unknown"))
    except ImportError:
        uvloop_version = "absent"
    return {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "uvloop": uvloop_version,
        "machine": platform.machine(),
        "kernel": platform.release(),
    }


def measure_all(counts: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = dict(machine())
    locust = locust_python()
    out["locust_measured"] = locust is not None
    for n in counts:
        for case in CASES:
            prefix = {
                "workbook": "",
                "workbook-compacted": "compacted_",
                "workbook-aged": "aged_",
                "legacy": "legacy_",
                "legacy-aged": "legacy_aged_",
            }[case]
            rss = run_child(sys.executable, case, n)
            traced = run_child(sys.executable, case, n, trace=True)
            out[f"{prefix}bytes_per_user_{n}"] = round(rss["rss_growth"] / n, 1)
            out[f"{prefix}tracemalloc_bytes_per_user_{n}"] = round(traced["traced"] / n, 1)
            out[f"{prefix}self_reported_bytes_per_user_{n}"] = round(rss["self_reported"] / n, 1)
            out[f"{prefix}build_seconds_{n}"] = round(rss["build_seconds"], 3)
            if case == "workbook":
                out[f"snapshot_bytes_per_user_{n}"] = round(rss["snapshot_bytes"] / n, 2)
                out[f"snapshot_compression_ratio_{n}"] = round(rss["snapshot_ratio"], 2)
            if case == "workbook-compacted":
                out[f"stable_compression_ratio_{n}"] = round(rss["stable_compression_ratio"], 2)
        if locust is not None:
            lr = run_child(locust, "locust", n)
            out[f"locust_bytes_per_user_{n}"] = round(lr["rss_growth"] / n, 1)
            out[f"locust_users_spawned_{n}"] = lr["users"]
        add_ratios(out, n)
    return out


def add_ratios(out: dict[str, Any], n: int) -> None:
    ours = max(out[f"bytes_per_user_{n}"], 1.0)
    out[f"ratio_vs_legacy_{n}"] = round(out[f"legacy_bytes_per_user_{n}"] / ours, 2)
    out[f"tracemalloc_ratio_vs_legacy_{n}"] = round(
        out[f"legacy_tracemalloc_bytes_per_user_{n}"] / out[f"tracemalloc_bytes_per_user_{n}"], 2
    )
    out[f"reduction_vs_legacy_{n}_percent"] = round(
        100 * (1 - out[f"bytes_per_user_{n}"] / out[f"legacy_bytes_per_user_{n}"]), 1
    )
    out[f"aged_ratio_vs_legacy_{n}"] = round(
        out[f"legacy_aged_bytes_per_user_{n}"] / max(out[f"aged_bytes_per_user_{n}"], 1.0), 2
    )
    if f"locust_bytes_per_user_{n}" in out:
        out[f"ratio_vs_locust_{n}"] = round(out[f"locust_bytes_per_user_{n}"] / ours, 1)
    if n == 100_000:
        out["bar_met_100000"] = (
            out["bytes_per_user_100000"] <= 400 and out["ratio_vs_legacy_100000"] >= 5
        )
        out["aged_bar_met_100000"] = (
            out["aged_bytes_per_user_100000"] <= 400 and out["aged_ratio_vs_legacy_100000"] >= 5
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default=",".join(map(str, COUNTS)))
    parser.add_argument("--child", choices=(*CASES, "locust"), help=argparse.SUPPRESS)
    parser.add_argument("--users", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == "locust":
        print(json.dumps(measure_locust(args.users)))
    elif args.child:
        print(json.dumps(measure_progressd(args.child, args.users, args.trace)))
    else:
        counts = [int(c) for c in args.counts.split(",")]
        print(json.dumps(measure_all(counts), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
