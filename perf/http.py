"""HTTP load throughput: ``progressd run`` end to end and its client, against the bare floor,
aiohttp and Locust.

Prints ONE JSON object. Method: one target server on 127.0.0.1 in its own process (nginx from
the distribution when ``/usr/sbin/nginx`` exists, serving a small static file with one worker;
else a raw uvloop protocol server answering a fixed response), pinned to CPU 1 when there are
two or more CPUs; the clients run in this process (pinned to CPU 0, uvloop), one after another,
each for ``--seconds`` after a warm-up, all doing keep-alive GETs with think time 0:

- floor: a minimal ``asyncio.Protocol`` + ``httptools`` loop, one connection per user, the
  next request written from the parser's ``on_message_complete``;
- run (progressd end to end, the figures the issue's bar is about): a ``Run`` of a
  duration-bound scenario, N users, one ``GET`` step with ``expect: {status: 200}`` and think
  time 0, so every request goes through the poller, the runner, the workbook, the event bus and
  the http step executor (expectation, histograms, counters), at 100 and 1,000 users; also at
  1,000 users with a templated URL (``http://{{ vars.host }}/...``, as a lease's address is);
  ``req_per_s_1000`` is the 1,000-user figure;
- client: ``progressd.http.HttpPool`` alone, driven by N callback "users" (each ``on_done``
  sends the user's next request, with a 10 s timeout and its latency recorded into a
  ``LatencyHistogram``), at 100 and 1,000 users: the ``client_*`` keys;
- aiohttp: ``ClientSession`` with N tasks, one per user, at 100 and 1,000 users;
- Locust ``FastHttpUser`` (1,000 users, ``constant(0)``), when ``locust`` is importable, in a
  subprocess pinned to the same CPU, measured after all users have spawned.

CPU time per request is ``time.process_time()`` of the client process over the measured window.

Floor, client and run alternate for ``--rounds`` rounds and the best round of each is reported:
on a shared machine other work only ever slows a round down. ``loadavg_1m_at_start`` shows how
shared the machine was.

Usage: python perf/http.py [--seconds 2.5] [--rounds 2] [--no-nginx]
"""

from __future__ import annotations

import importlib.util
import os
import sys
import sysconfig

if __name__ == "http":
    # This file is named like the standard library's ``http`` package, and Python puts a
    # script's directory first on the import path: a sibling script (``python perf/x.py``) that
    # imports aiohttp, urllib.request or http.client finds this file instead. Put the real
    # package in its place; the import system returns what ``sys.modules`` holds.
    _http_dir = os.path.join(sysconfig.get_paths()["stdlib"], "http")
    _spec = importlib.util.spec_from_file_location(
        "http", os.path.join(_http_dir, "__init__.py"), submodule_search_locations=[_http_dir]
    )
    assert _spec is not None and _spec.loader is not None
    sys.modules["http"] = _real_http = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_real_http)

import argparse
import asyncio
import contextlib
import json
import platform
import socket
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import cast

import httptools
import uvloop

from progressd.histogram import LatencyHistogram
from progressd.http import HttpPool, HttpResult, Origin

NGINX = "/usr/sbin/nginx"
PATH = "/index.html"
BODY = b"hello from the progressd benchmark target\n"
WARMUP_S = 0.7
CLIENT_CPU = 0
SERVER_CPU = 1


# -- target servers ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pin(cpu: int) -> Callable[[], None] | None:
    if (os.cpu_count() or 1) < 2:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def _wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"target server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(f"target server did not listen on 127.0.0.1:{port} within 10 s")


def _nginx_conf(root: Path, port: int) -> Path:
    (root / "www").mkdir()
    (root / "www" / "index.html").write_bytes(BODY)
    temp = "".join(
        f"{kind}_temp_path {root}/{kind};\n" for kind in ("client_body", "proxy", "fastcgi")
    )
    conf = root / "nginx.conf"
    conf.write_text(
        f"daemon off;\nmaster_process off;\nworker_processes 1;\npid {root}/nginx.pid;\n"
        f"error_log {root}/error.log warn;\nevents {{ worker_connections 8192; }}\n"
        f"http {{\n access_log off;\n keepalive_requests 100000000;\n keepalive_timeout 120s;\n"
        f" open_file_cache max=16;\n {temp} uwsgi_temp_path {root}/uwsgi;\n"
        f" scgi_temp_path {root}/scgi;\n"
        f" server {{ listen 127.0.0.1:{port} backlog=4096; root {root}/www; }}\n}}\n"
    )
    return conf


@contextlib.contextmanager
def target_server(use_nginx: bool) -> Iterator[tuple[str, int]]:
    """Start the target in its own process; yield (description, port); stop it."""
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="progressd-perf-http-") as tmp:
        if use_nginx and os.path.exists(NGINX):
            argv = [NGINX, "-p", tmp, "-c", str(_nginx_conf(Path(tmp), port))]
            version = subprocess.run([NGINX, "-v"], capture_output=True, text=True, check=True)
            name = version.stderr.strip().split(": ", 1)[-1] + " (1 worker)"
        else:
            argv = [sys.executable, __file__, "--serve", str(port)]
            name = "raw uvloop protocol server (nginx not found)"
        proc = subprocess.Popen(argv, preexec_fn=_pin(SERVER_CPU))  # noqa: PLW1509
        try:
            _wait_listening(port, proc)
            yield name, port
        finally:
            proc.terminate()
            proc.wait(10)


class _FixedResponder(asyncio.Protocol):
    RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n%s" % (
        len(BODY),
        BODY,
    )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.pending = b""

    def data_received(self, data: bytes) -> None:
        data = self.pending + data
        count = data.count(b"\r\n\r\n")
        self.pending = data[data.rfind(b"\r\n\r\n") + 4 :] if count else data
        if count:
            self.transport.write(self.RESPONSE * count)


async def _serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_FixedResponder, "127.0.0.1", port, backlog=4096)
    await server.serve_forever()


# -- the measured window -------------------------------------------------------------------------


class Count:
    __slots__ = ("errors", "n", "running")

    def __init__(self) -> None:
        self.n = 0
        self.errors = 0
        self.running = True


async def measure(
    start: Callable[[Count], Awaitable[Callable[[], Awaitable[None]]]], seconds: float
) -> dict[str, float]:
    """Start the users, warm up, count completions over ``seconds``, stop."""
    count = Count()
    stop = await start(count)
    await asyncio.sleep(WARMUP_S)
    n0, c0, t0 = count.n, time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    n1, c1, t1 = count.n, time.process_time(), time.perf_counter()
    errors = count.errors  # before stopping: closing the pool cancels what is in flight
    count.running = False
    await stop()
    done = n1 - n0
    return {
        "req_per_s": round(done / (t1 - t0), 1),
        "cpu_s_per_request": (c1 - c0) / done if done else float("nan"),
        "errors": errors,
    }


class FloorConnection(asyncio.Protocol):
    """The least a keep-alive client can do: write, parse, write again."""

    def __init__(self, request: bytes, count: Count) -> None:
        self.request = request
        self.count = count
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        count = self.count
        count.n += 1
        if count.running and self.transport is not None:
            self.transport.write(self.request)


def floor_users(
    port: int, users: int
) -> Callable[[Count], Awaitable[Callable[[], Awaitable[None]]]]:
    request = f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()

    async def start(count: Count) -> Callable[[], Awaitable[None]]:
        loop = asyncio.get_running_loop()
        pairs = [
            await loop.create_connection(lambda: FloorConnection(request, count), "127.0.0.1", port)
            for _ in range(users)
        ]

        async def stop() -> None:
            for transport, _ in pairs:
                transport.close()
            await asyncio.sleep(0.05)

        return stop

    return start


def client_users(
    port: int, users: int
) -> Callable[[Count], Awaitable[Callable[[], Awaitable[None]]]]:
    async def start(count: Count) -> Callable[[], Awaitable[None]]:
        pool = HttpPool(Origin("127.0.0.1", port), max_connections=users)
        latencies = LatencyHistogram()

        def user(result: HttpResult) -> None:
            count.n += 1
            if result.error is not None or result.status != 200:
                count.errors += 1
            latencies.record(result.latency_s)
            if count.running:
                pool.request("GET", PATH, timeout=10.0, on_done=user)

        for _ in range(users):
            pool.request("GET", PATH, timeout=10.0, on_done=user)

        async def stop() -> None:
            await pool.wait_closed()

        return stop

    return start


def aiohttp_users(
    port: int, users: int
) -> Callable[[Count], Awaitable[Callable[[], Awaitable[None]]]]:
    import aiohttp

    async def start(count: Count) -> Callable[[], Awaitable[None]]:
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=users))
        url = f"http://127.0.0.1:{port}{PATH}"

        async def user() -> None:
            while count.running:
                async with session.get(url) as response:
                    await response.read()
                    if response.status != 200:
                        count.errors += 1
                count.n += 1

        tasks = [asyncio.create_task(user()) for _ in range(users)]

        async def stop() -> None:
            await asyncio.gather(*tasks, return_exceptions=True)
            await session.close()

        return stop

    return start


RUN_SCENARIO = """
version: 2
name: perf
vars: {{host: "127.0.0.1:{port}"}}
load:
  scenarios:
    - name: s
      users: {users}
      duration: 1h
      steps:
        - name: get
          http: {{method: GET, url: "{url}", timeout: 10s}}
          expect: {{status: 200}}
"""


async def measure_run(
    port: int, users: int, seconds: float, *, templated: bool = False, warmup: float = WARMUP_S
) -> dict[str, float]:
    """A real ``Run`` (progressd end to end), cancelled after the measured window."""
    from progressd.dsl import load_plan_text
    from progressd.runs import Run

    url = ("http://{{{{ vars.host }}}}" if templated else "http://127.0.0.1:{port}") + PATH
    text = RUN_SCENARIO.format(users=users, port=port, url=url.format(port=port))
    run = Run(load_plan_text(text, file="perf.yaml", cache=None))
    metrics = run.figures.metrics["s"]
    run.start()
    await asyncio.sleep(warmup)
    n0, c0, t0 = metrics.requests, time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    n1, c1, t1 = metrics.requests, time.process_time(), time.perf_counter()
    errors = metrics.steps_failed
    run.cancel("benchmark window over")
    await run.wait()
    done = n1 - n0
    return {
        "req_per_s": round(done / (t1 - t0), 1),
        "cpu_s_per_request": (c1 - c0) / done if done else float("nan"),
        "errors": errors,
    }


# -- Locust, in its own process (gevent patches the world) -------------------------------------

LOCUST_SCRIPT = r"""
import json, os, sys, time
if len(os.sched_getaffinity(0)) > 1 or (os.cpu_count() or 1) > 1:
    os.sched_setaffinity(0, {%(cpu)d})
import gevent
from locust import FastHttpUser, constant, task
from locust.env import Environment

class User(FastHttpUser):
    host = "http://127.0.0.1:%(port)d"
    wait_time = constant(0)

    @task
    def get(self):
        self.client.get("%(path)s")

env = Environment(user_classes=[User])
runner = env.create_local_runner()
runner.start(%(users)d, spawn_rate=%(users)d)
while runner.user_count < %(users)d:
    gevent.sleep(0.05)
gevent.sleep(%(warmup)f)
env.stats.reset_all()
c0, t0 = time.process_time(), time.perf_counter()
gevent.sleep(%(seconds)f)
n, errors = env.stats.total.num_requests, env.stats.total.num_failures
c1, t1 = time.process_time(), time.perf_counter()
runner.quit()
print(json.dumps({"req_per_s": n / (t1 - t0), "cpu_s_per_request": (c1 - c0) / max(n, 1),
                  "errors": errors}))
"""


def locust_run(port: int, users: int, seconds: float) -> dict[str, float] | None:
    if importlib.util.find_spec("locust") is None:
        return None
    script = LOCUST_SCRIPT % {
        "cpu": CLIENT_CPU, "port": port, "path": PATH, "users": users,
        "warmup": WARMUP_S, "seconds": seconds,
    }  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# -- main ----------------------------------------------------------------------------------------


async def best_rounds(
    port: int, seconds: float, rounds: int, *, templated: bool = True
) -> dict[str, dict[str, float]]:
    """Floor, client and run (and the templated run) alternate for ``rounds`` rounds; the best
    round of each is kept: other work on the machine only ever slows a round down."""
    figures: dict[str, dict[str, float]] = {}

    def keep(key: str, result: dict[str, float]) -> None:
        if key not in figures or result["req_per_s"] > figures[key]["req_per_s"]:
            figures[key] = result

    for _ in range(rounds):
        for users in (100, 1000):
            keep(f"floor_{users}", await measure(floor_users(port, users), seconds))
            keep(f"client_{users}", await measure(client_users(port, users), seconds))
            keep(f"run_{users}", await measure_run(port, users, seconds))
        if templated:
            keep("run_templated_1000", await measure_run(port, 1000, seconds, templated=True))
    return figures


async def run_clients(port: int, seconds: float, rounds: int) -> dict[str, dict[str, float]]:
    """``best_rounds``, then aiohttp once per user count."""
    figures = await best_rounds(port, seconds, rounds)
    for users in (100, 1000):
        figures[f"aiohttp_{users}"] = await measure(aiohttp_users(port, users), seconds)
    return figures


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def report(
    target: str, seconds: float, rounds: int, load: float, f: dict[str, dict[str, float]]
) -> dict[str, object]:
    run, client, floor, aio = f["run_1000"], f["client_1000"], f["floor_1000"], f["aiohttp_1000"]
    run100, client100, floor100 = f["run_100"], f["client_100"], f["floor_100"]
    templated = f["run_templated_1000"]
    out: dict[str, object] = {
        "benchmark": "http",
        "target": target,
        "loop": "uvloop",
        "seconds_per_phase": seconds,
        "rounds": rounds,
        "loadavg_1m_at_start": load,
        "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        # progressd end to end (a Run: poller, runner, workbook, events, http step executor)
        "req_per_s_1000": run["req_per_s"],
        "req_per_s_100": run100["req_per_s"],
        "cpu_s_per_request": run["cpu_s_per_request"],
        "cpu_s_per_request_100": run100["cpu_s_per_request"],
        "templated_req_per_s_1000": templated["req_per_s"],
        "templated_cpu_s_per_request": templated["cpu_s_per_request"],
        "errors": run["errors"] + run100["errors"] + templated["errors"],
        "floor_req_per_s": floor["req_per_s"],
        "floor_req_per_s_100": floor100["req_per_s"],
        "floor_cpu_s_per_request": floor["cpu_s_per_request"],
        "floor_cpu_s_per_request_100": floor100["cpu_s_per_request"],
        "ratio_vs_floor": _ratio(run["req_per_s"], floor["req_per_s"]),
        "ratio_vs_floor_100": _ratio(run100["req_per_s"], floor100["req_per_s"]),
        # what one saturated core would give: floor CPU per request / run CPU per request
        "cpu_ratio_vs_floor": _ratio(floor["cpu_s_per_request"], run["cpu_s_per_request"]),
        "cpu_ratio_vs_floor_100": _ratio(
            floor100["cpu_s_per_request"], run100["cpu_s_per_request"]
        ),
        "templated_cpu_ratio_vs_floor": _ratio(
            floor["cpu_s_per_request"], templated["cpu_s_per_request"]
        ),
        # the HTTP client alone, driven by callbacks (no runner)
        "client_req_per_s_1000": client["req_per_s"],
        "client_req_per_s_100": client100["req_per_s"],
        "client_cpu_s_per_request": client["cpu_s_per_request"],
        "client_cpu_s_per_request_100": client100["cpu_s_per_request"],
        "client_errors": client100["errors"] + client["errors"],
        "client_ratio_vs_floor": _ratio(client["req_per_s"], floor["req_per_s"]),
        "client_cpu_ratio_vs_floor": _ratio(
            floor["cpu_s_per_request"], client["cpu_s_per_request"]
        ),
        "aiohttp_req_per_s": aio["req_per_s"],
        "aiohttp_req_per_s_100": f["aiohttp_100"]["req_per_s"],
        "aiohttp_cpu_s_per_request": aio["cpu_s_per_request"],
        "ratio_vs_aiohttp": _ratio(run["req_per_s"], aio["req_per_s"]),
    }
    locust = f.get("locust_1000")
    if locust is not None:
        out["locust_req_per_s_1000"] = round(locust["req_per_s"], 1)
        out["locust_cpu_s_per_request"] = locust["cpu_s_per_request"]
        out["ratio_vs_locust"] = _ratio(run["req_per_s"], locust["req_per_s"])
        out["cpu_ratio_vs_locust"] = _ratio(locust["cpu_s_per_request"], run["cpu_s_per_request"])
        out["client_ratio_vs_locust"] = _ratio(client["req_per_s"], locust["req_per_s"])
    out["meets_floor_bar"] = run["req_per_s"] >= 0.5 * floor["req_per_s"]
    out["meets_floor_bar_by_cpu"] = run["cpu_s_per_request"] <= 2 * floor["cpu_s_per_request"]
    if locust is not None:
        out["meets_locust_bar"] = run["req_per_s"] >= 3 * locust["req_per_s"]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.5, help="measured window per phase")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of floor and client")
    parser.add_argument("--no-nginx", action="store_true", help="use the fallback server")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        uvloop.run(_serve(args.serve))
        return 0
    if (pin := _pin(CLIENT_CPU)) is not None:
        pin()
    load = round(os.getloadavg()[0], 2)
    with target_server(use_nginx=not args.no_nginx) as (target, port):
        figures = uvloop.run(run_clients(port, args.seconds, args.rounds))
        locust = locust_run(port, 1000, args.seconds)
        if locust is not None:
            figures["locust_1000"] = locust
    print(json.dumps(report(target, args.seconds, args.rounds, load, figures)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
