"""Prometheus metrics, served by aiohttp on the daemon's own loop.

Design note. progressd keeps one dedicated ``CollectorRegistry`` (never the global one, so tests
and embedded runs do not collide) holding the process collector, ``progressd_build_info`` and
``progressd_loop_lag_seconds``. Components do not push metrics: each offers ``statistics()``
returning a frozen record, and a ``StatisticsCollector`` turns the numeric fields of that record
into metric families when Prometheus scrapes. A later component plugs in with
``telemetry.register(StatisticsCollector(...))`` or any object with ``collect()``.

``/metrics`` is an aiohttp route on a TCP site on the same event loop; prometheus_client's
``start_http_server`` is never used, because it starts a thread.
"""

from __future__ import annotations

import asyncio
import platform
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import msgspec
from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from progressd import __version__
from progressd.clock import Clock
from progressd.logs import get_logger

__all__ = ["LoopLagProbe", "MetricSpec", "StatisticsCollector", "Telemetry"]

log = get_logger("progressd.telemetry")

LAG_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Collector(Protocol):
    """What prometheus_client calls at scrape time."""

    def collect(self) -> Iterable[Metric]: ...


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One numeric field of a statistics record exposed as one metric."""

    field: str
    name: str
    help: str
    kind: Literal["gauge", "counter"] = "gauge"


class StatisticsCollector:
    """Reads ``source()`` (a msgspec Struct) at scrape time and exposes the chosen fields.

    Counters are named without ``_total``; prometheus_client adds the suffix.
    """

    def __init__(self, source: Callable[[], msgspec.Struct], specs: Sequence[MetricSpec]) -> None:
        self._source = source
        self._specs = tuple(specs)

    def collect(self) -> Iterable[Metric]:
        record = self._source()
        for spec in self._specs:
            value = float(getattr(record, spec.field))
            family: Metric
            if spec.kind == "counter":
                family = CounterMetricFamily(spec.name, spec.help, value=value)
            else:
                family = GaugeMetricFamily(spec.name, spec.help, value=value)
            yield family


@dataclass(slots=True)
class LoopLagProbe:
    """Measures how late the event loop wakes a timer: the time every other task waited too.

    ``sample(expected)`` records one observation; ``run()`` is the background task that sleeps
    ``interval`` seconds at a time and samples after each sleep.
    """

    clock: Clock
    histogram: Histogram | None = None
    interval: float = 0.1
    last: float = 0.0
    max_seen: float = 0.0
    samples: int = field(default=0)

    def sample(self, expected: float) -> float:
        lag = max(0.0, self.clock.now() - expected)
        self.last = lag
        self.max_seen = max(self.max_seen, lag)
        self.samples += 1
        if self.histogram is not None:
            self.histogram.observe(lag)
        return lag

    async def run(self) -> None:
        while True:
            expected = self.clock.now() + self.interval
            await asyncio.sleep(self.interval)
            self.sample(expected)


class Telemetry:
    """The daemon's metrics registry and its ``/metrics`` endpoint."""

    def __init__(self, *, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        build = Gauge(
            "progressd_build_info",
            "progressd version and Python runtime; always 1.",
            ["version", "python", "implementation"],
            registry=self.registry,
        )
        build.labels(__version__, platform.python_version(), platform.python_implementation()).set(
            1
        )
        self.loop_lag = Histogram(
            "progressd_loop_lag_seconds",
            "How late the event loop ran a timer: time every task waited beyond its due time.",
            buckets=LAG_BUCKETS,
            registry=self.registry,
        )
        self._runner: web.AppRunner | None = None
        self.address: tuple[str, int] | None = None

    def register(self, collector: Collector) -> None:
        """Add a collector read at every scrape (e.g. a ``StatisticsCollector``)."""
        self.registry.register(collector)

    def unregister(self, collector: Collector) -> None:
        self.registry.unregister(collector)

    def render(self) -> bytes:
        """The registry in the Prometheus text exposition format."""
        data: bytes = generate_latest(self.registry)
        return data

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Serve ``/metrics`` on ``host:port`` (port 0 picks a free one); returns the bound address.

        Raises:
            OSError: the address cannot be bound.
        """
        app = web.Application()
        app.router.add_get("/metrics", self._handle_metrics)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port, reuse_address=True)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        self.address = _bound_address(runner, host)
        return self.address

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle_metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def _bound_address(runner: web.AppRunner, host: str) -> tuple[str, int]:
    for server in runner.addresses:
        address: Any = server
        if isinstance(address, tuple) and len(address) >= 2:
            return host, int(address[1])
    raise AssertionError("a started TCP site has an address")  # aiohttp guarantees it
