"""End-to-end load throughput: ``progressd run`` (the Run: runner, poller, workbook, event bus,
http step executor) against the bare HTTP client and the bare floor, in the same process run.

Prints ONE JSON object. Method: the target server of ``perf/http.py`` (nginx when present, else
a raw uvloop server) in its own process, pinned to CPU 1 when there are two CPUs; this process
on CPU 0 with uvloop. Each phase runs for ``--seconds`` after a warm-up and counts completed
requests; CPU time is ``time.process_time()`` over the window. Phases, best of ``--rounds``:

- ``floor``: ``asyncio.Protocol`` + ``httptools``, one connection per user (perf/http.py);
- ``client``: ``HttpPool`` driven by callbacks (perf/http.py), no runner;
- ``run``: a ``Run`` of a duration-bound scenario, N users, one ``GET`` step, think 0 — every
  request goes through the runner's pollables, the workbook, the event bus and the step
  executor's templates, expectations and histograms — cancelled after the window
  (``measure_run`` of perf/http.py, which reports the same figures next to aiohttp and Locust).

Usage: python perf/run.py [--seconds 2.5] [--rounds 2] [--no-nginx]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType

import uvloop

_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]


def _perf_http() -> ModuleType:
    """perf/http.py under another module name (its own name shadows the stdlib's ``http``)."""
    spec = importlib.util.spec_from_file_location("perf_http", _HERE / "http.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["perf_http"] = module
    spec.loader.exec_module(module)
    return module


async def phases(
    ph: ModuleType, port: int, seconds: float, rounds: int
) -> dict[str, dict[str, float]]:
    figures: dict[str, dict[str, float]] = {}

    def keep(key: str, result: dict[str, float]) -> None:
        if key not in figures or result["req_per_s"] > figures[key]["req_per_s"]:
            figures[key] = result

    for _ in range(rounds):
        for users in (100, 1000):
            keep(f"floor_{users}", await ph.measure(ph.floor_users(port, users), seconds))
            keep(f"client_{users}", await ph.measure(ph.client_users(port, users), seconds))
            keep(f"run_{users}", await ph.measure_run(port, users, seconds))
    return figures


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.5, help="measured window per phase")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of every phase")
    parser.add_argument("--no-nginx", action="store_true", help="use the fallback server")
    args = parser.parse_args()
    ph = _perf_http()
    if (pin := ph._pin(ph.CLIENT_CPU)) is not None:
        pin()
    with ph.target_server(use_nginx=not args.no_nginx) as (target, port):
        f = uvloop.run(phases(ph, port, args.seconds, args.rounds))
    run, client, floor = f["run_1000"], f["client_1000"], f["floor_1000"]
    print(json.dumps({
        "benchmark": "run",
        "target": target,
        "loop": "uvloop",
        "seconds_per_phase": args.seconds,
        "rounds": args.rounds,
        "cpus": os.cpu_count(),
        "run_req_per_s_1000": run["req_per_s"],
        "run_req_per_s_100": f["run_100"]["req_per_s"],
        "run_cpu_s_per_request": run["cpu_s_per_request"],
        "run_cpu_s_per_request_100": f["run_100"]["cpu_s_per_request"],
        "run_errors": run["errors"] + f["run_100"]["errors"],
        "client_req_per_s_1000": client["req_per_s"],
        "client_cpu_s_per_request": client["cpu_s_per_request"],
        "floor_req_per_s": floor["req_per_s"],
        "floor_req_per_s_100": f["floor_100"]["req_per_s"],
        "floor_cpu_s_per_request": floor["cpu_s_per_request"],
        "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
        "ratio_run_vs_floor": _ratio(run["req_per_s"], floor["req_per_s"]),
        "ratio_run_vs_floor_100": _ratio(f["run_100"]["req_per_s"], f["floor_100"]["req_per_s"]),
        "ratio_run_vs_client": _ratio(run["req_per_s"], client["req_per_s"]),
        "ratio_cpu_floor_over_run": _ratio(floor["cpu_s_per_request"], run["cpu_s_per_request"]),
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
