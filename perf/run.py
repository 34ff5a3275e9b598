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

``--loopback`` replaces the network with a transport that answers every write with an
nginx-like response on the next loop turn (``call_soon``): no socket, no kernel, no target, so
the CPU per request is the Python and event-loop cost alone — steady even on a busy machine,
the figure to compare code changes with. ``--profile`` (with ``--loopback``) adds a
function-level cProfile of the 1,000-user Run: ``profile_top`` (the functions with the most own
time: calls and profiled µs per request) and ``profile_by_module`` (share of own time).

Usage: python perf/run.py [--seconds 2.5] [--rounds 2] [--no-nginx] [--loopback [--profile]]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import importlib.util
import json
import os
import pstats
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

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


# -- loopback: no network ---------------------------------------------------------------------

RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sat, 28 Nov 2026 13:00:00 GMT\r\n"
    b"Content-Type: text/html\r\nContent-Length: 42\r\n"
    b"Last-Modified: Sat, 28 Nov 2026 12:00:00 GMT\r\nConnection: keep-alive\r\n"
    b'ETag: "6761f3a0-2a"\r\nAccept-Ranges: bytes\r\n\r\n'
    b"hello from the progressd benchmark target\n"
)


class LoopbackTransport:
    """Answers every write with ``RESPONSE`` on the next loop turn."""

    __slots__ = ("_call_soon", "_protocol")

    def __init__(self, protocol: asyncio.Protocol) -> None:
        self._protocol = protocol
        self._call_soon = asyncio.get_running_loop().call_soon

    def write(self, data: bytes) -> None:
        self._call_soon(self._protocol.data_received, RESPONSE)

    def close(self) -> None:
        self._call_soon(self._protocol.connection_lost, None)

    abort = close

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


@contextlib.contextmanager
def loopback_pools() -> Iterator[None]:
    """``HttpPool`` connects over ``LoopbackTransport`` inside the block (a benchmark-only
    patch of its private connect step: everything after the connect is the real client)."""
    from progressd.http.connection import HttpConnection
    from progressd.http.pool import HttpPool

    original = HttpPool._connect

    def connect(pool: Any, ex: Any) -> None:
        conn = HttpConnection(pool, pool._body_limit)
        conn.connection_made(LoopbackTransport(conn))  # type: ignore[arg-type]
        pool._connects += 1
        pool._start(conn, ex)

    HttpPool._connect = connect  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        HttpPool._connect = original  # type: ignore[method-assign]


def loopback_floor(
    ph: ModuleType, users: int
) -> Callable[[Any], Awaitable[Callable[[], Awaitable[None]]]]:
    async def start(count: Any) -> Callable[[], Awaitable[None]]:
        for _ in range(users):
            conn = ph.FloorConnection(b"GET / HTTP/1.1\r\n\r\n", count)
            conn.connection_made(LoopbackTransport(conn))

        async def stop() -> None:
            await asyncio.sleep(0)

        return stop

    return start


def profile_figures(prof: cProfile.Profile, requests: float) -> dict[str, object]:
    """The functions with the most own time, and own time by module, per request."""
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    root = str(_HERE.parent) + "/"
    rows: list[tuple[float, str, int]] = []
    by_module: dict[str, float] = {}
    total = 0.0
    for (file, line, name), (_, calls, own, _, _) in stats.items():
        where = file.replace(root, "") if file.startswith(root) else Path(file).name
        module = where if where.startswith(("progressd", "~")) else "other (stdlib, loop)"
        by_module[module] = by_module.get(module, 0.0) + own
        total += own
        rows.append((own, f"{where}:{line}({name})", calls))
    rows.sort(reverse=True)
    return {
        "profile_top": [
            {"function": fn, "calls_per_request": round(calls / requests, 2),
             "profiled_us_per_request": round(own / requests * 1e6, 2)}
            for own, fn, calls in rows[:30]
        ],
        "profile_by_module": {
            m: round(t / total, 3) for m, t in sorted(by_module.items(), key=lambda kv: -kv[1])
            if t / total >= 0.005
        },
    }  # fmt: skip


async def loopback_phases(
    ph: ModuleType, seconds: float, rounds: int, profile: bool
) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for _ in range(rounds):
        for key, phase in (
            ("floor", ph.measure(loopback_floor(ph, 1000), seconds)),
            ("client", ph.measure(ph.client_users(1, 1000), seconds)),
            ("run", ph.measure_run(1, 1000, seconds)),
            ("run_templated", ph.measure_run(1, 1000, seconds, templated=True)),
        ):
            result = await phase
            if (
                key not in figures
                or result["cpu_s_per_request"] < figures[key]["cpu_s_per_request"]
            ):
                figures[key] = result
    if profile:
        prof = cProfile.Profile()
        prof.enable()
        result = await ph.measure_run(1, 1000, seconds, warmup=0.0)
        prof.disable()
        figures["profile"] = profile_figures(prof, result["req_per_s"] * seconds)
    return figures


def loopback_report(ph: ModuleType, args: argparse.Namespace) -> dict[str, Any]:
    with loopback_pools():
        f = uvloop.run(loopback_phases(ph, args.seconds, args.rounds, args.profile))
    us = {k: round(v["cpu_s_per_request"] * 1e6, 2) for k, v in f.items() if k != "profile"}
    return {
        "benchmark": "run",
        "transport": "loopback (call_soon, no socket)",
        "loop": "uvloop",
        "users": 1000,
        "seconds_per_phase": args.seconds,
        "rounds": args.rounds,
        "floor_cpu_us_per_request": us["floor"],
        "client_cpu_us_per_request": us["client"],
        "run_cpu_us_per_request": us["run"],
        "run_templated_cpu_us_per_request": us["run_templated"],
        "run_errors": f["run"]["errors"] + f["run_templated"]["errors"],
        "run_minus_client_us": round(us["run"] - us["client"], 2),
        **f.get("profile", {}),
    }


# -- the network ------------------------------------------------------------------------------


async def phases(
    ph: ModuleType, port: int, seconds: float, rounds: int
) -> dict[str, dict[str, float]]:
    figures: dict[str, dict[str, float]] = await ph.best_rounds(
        port, seconds, rounds, templated=False
    )
    return figures


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.5, help="measured window per phase")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of every phase")
    parser.add_argument("--no-nginx", action="store_true", help="use the fallback server")
    parser.add_argument("--loopback", action="store_true", help="no network: Python cost only")
    parser.add_argument("--profile", action="store_true", help="with --loopback: cProfile")
    args = parser.parse_args()
    ph = _perf_http()
    if (pin := ph._pin(ph.CLIENT_CPU)) is not None:
        pin()
    if args.loopback:
        print(json.dumps(loopback_report(ph, args)))
        return 0
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
