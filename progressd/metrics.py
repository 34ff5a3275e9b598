"""The runs' Prometheus metrics, read from live figures and ``statistics()`` at scrape time.

Design note. Nothing on a hot path calls a metric: ``RunsCollector.collect()`` walks the live
runs when Prometheus scrapes and reads what they already keep — the workbook's incremental
totals (through ``Run.progress()``), the scenario metrics' bounded latency histograms, and the
``statistics()`` records of the event bus, poller and resource manager — in
O(runs x (scenarios + milestones + pools + members + histogram buckets)), never per user.

Labels: ``run`` and ``scenario`` (the scenario's name in ``load.scenarios``), ``pool`` and
``member`` for resources, and small enumerations (``state``, ``reason``, ``class``,
``result``); the deadline (``progress.deadline``, one per run) has ``run`` only, and the
``ProgressdEtaPastDeadline`` alert joins it to each scenario's ETA ``on (run)``. Never a user.
Series exist while their run is live (running or paused); when a run ends its series vanish at
the next scrape, so the number of series stays bounded by the live runs. A finished run's
figures are in ``GET /v1/runs/{run}`` and the history. Counters of a run resumed after a
restart start again from zero (Prometheus treats it as a counter reset).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
)

from progressd.resources.members import MEMBER_STATES

if TYPE_CHECKING:
    from progressd.runs.manager import RunManager
    from progressd.runs.persistence import RunPersistence
    from progressd.runs.run import Run

__all__ = ["HTTP_BUCKETS", "WAKE_BUCKETS", "RunsCollector"]

WAKE_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_RS = ["run", "scenario"]


class _Families:
    """The metric families of one scrape, filled run by run."""

    def __init__(self) -> None:
        g, c = GaugeMetricFamily, CounterMetricFamily
        self.progress = g(
            "progressd_run_progress_ratio", "Done share of a scenario, 0..1.", labels=_RS
        )
        self.eta = g(
            "progressd_run_eta_seconds", "Forecast seconds until the scenario ends.", labels=_RS
        )
        self.deadline = g(
            "progressd_run_deadline_timestamp_seconds",
            "Unix time of the run's progress.deadline (its start + deadline); runs with one.",
            labels=["run"],
        )
        self.users = g(
            "progressd_run_users",
            "Users by state (pending, active, waiting-for-resource, finished).",
            labels=[*_RS, "state"],
        )
        self.milestones = g(
            "progressd_milestone_reached_users",
            "Users that reached a milestone.",
            labels=[*_RS, "milestone"],
        )
        self.rollbacks = c(
            "progressd_rollbacks",
            "Users rolled back to their stable point.",
            labels=[*_RS, "reason"],
        )
        self.errors = c(
            "progressd_errors", "Failed I/O steps by error class.", labels=[*_RS, "class"]
        )
        self.http = HistogramMetricFamily(
            "progressd_http_request_duration_seconds", "HTTP step response latency.", labels=_RS
        )
        self.memory = g(
            "progressd_workbook_memory_bytes", "Bytes held by the run's workbook.", labels=["run"]
        )
        self.events = c(
            "progressd_events", "Progress events delivered by the run's bus.", labels=["run"]
        )
        self.batches = c(
            "progressd_event_batches", "Event batches delivered by the run's bus.", labels=["run"]
        )
        self.iterations = c("progressd_poll_iterations", "Poll iterations run.", labels=["run"])
        self.iteration_s = SummaryMetricFamily(
            "progressd_poll_iteration_duration_seconds",
            "Wall time of poll iterations.",
            labels=["run"],
        )
        self.wake = HistogramMetricFamily(
            "progressd_poll_wake_latency_seconds",
            "Due-to-run latency of fired handles (sum estimated from bucket upper bounds).",
            labels=["run"],
        )
        self.queue = g(
            "progressd_poll_queue_depth",
            "Ready handles waiting, by priority class.",
            labels=["run", "class"],
        )
        self.leases = g("progressd_leases_active", "Leases held, by pool.", labels=["run", "pool"])
        self.members = g(
            "progressd_pool_member_state",
            "1 for a member's current state.",
            labels=["run", "pool", "member", "state"],
        )
        self.checks = c(
            "progressd_health_checks", "Health checks by result.", labels=["run", "result"]
        )
        self.snapshot_s = g(
            "progressd_run_snapshot_duration_seconds",
            "How long the last stable snapshot held the loop.",
            labels=["run"],
        )
        self.snapshots = c(
            "progressd_run_snapshots", "Stable snapshots recorded for the store.", labels=["run"]
        )

    def all(self) -> Iterator[Metric]:
        yield from (
            self.progress, self.eta, self.deadline, self.users, self.milestones, self.rollbacks,
            self.errors, self.http, self.memory, self.events, self.batches, self.iterations,
            self.iteration_s, self.wake, self.queue, self.leases, self.members, self.checks,
            self.snapshot_s, self.snapshots,
        )  # fmt: skip


class RunsCollector:
    """Collects the metrics of ``manager``'s live runs (module note)."""

    def __init__(
        self, manager: RunManager, persistence: Callable[[], RunPersistence | None]
    ) -> None:
        self._manager = manager
        self._persistence = persistence

    def collect(self) -> Iterable[Metric]:
        families = _Families()
        persistence = self._persistence()
        for entry in self._manager:
            run = entry.run
            if run is None or run.finished:
                continue
            _scenarios(families, run)
            _core(families, run)
            _resources(families, run)
            recorder = None if persistence is None else persistence.recorders.get(run.id)
            if recorder is not None:
                for (scenario, reason), n in recorder.rollbacks.items():
                    families.rollbacks.add_metric([run.id, scenario, reason], n)
                families.snapshot_s.add_metric([run.id], recorder.snapshot_seconds)
                families.snapshots.add_metric([run.id], recorder.snapshots)
        return families.all()


def _scenarios(f: _Families, run: Run) -> None:
    for part in run.progress().scenarios:
        labels = [run.id, part.name]
        f.progress.add_metric(labels, part.progress)
        if part.eta_s is not None:
            f.eta.add_metric(labels, part.eta_s)
        pending = max(0, part.users - part.active - part.finished)
        waiting = part.waiting_for_resource
        for state, n in (
            ("pending", pending),
            ("active", part.active - waiting),
            ("waiting-for-resource", waiting),
            ("finished", part.finished),
        ):
            f.users.add_metric([*labels, state], n)
        for milestone, n in part.milestones.items():
            f.milestones.add_metric([*labels, milestone], n)
        metrics = run.figures.metrics[part.name]
        for error_class, n in metrics.errors_by_class.items():
            f.errors.add_metric([*labels, error_class], n)
        if metrics.http_steps:
            latency = metrics.http_latency()
            buckets = [(f"{b:g}", latency.count_le(b)) for b in HTTP_BUCKETS]
            buckets.append(("+Inf", latency.count))
            f.http.add_metric(labels, buckets, latency.sum)


def _core(f: _Families, run: Run) -> None:
    labels = [run.id]
    deadline = run.deadline_timestamp()
    if deadline is not None:
        f.deadline.add_metric(labels, deadline)
    f.memory.add_metric(labels, run.workbook.memory_bytes())
    bus = run.bus.statistics()
    f.events.add_metric(labels, bus.events_delivered)
    f.batches.add_metric(labels, bus.batches)
    poll = run.poller.statistics()
    f.iterations.add_metric(labels, poll.iterations)
    f.iteration_s.add_metric(labels, poll.iterations, poll.iteration_seconds_total)
    f.wake.add_metric(labels, *_wake_buckets(poll.wake_latency_buckets))
    for name, depth in poll.queue_depth.items():
        f.queue.add_metric([run.id, name], depth)


def _resources(f: _Families, run: Run) -> None:
    manager = run.resources
    if manager is None:
        return
    for pool in manager.pool_records():
        f.leases.add_metric([run.id, pool.name], pool.leases_active)
        for member in pool.members:
            for state in MEMBER_STATES:
                value = 1 if member.state == state else 0
                f.members.add_metric([run.id, pool.name, member.address, state], value)
    for result, n in manager.statistics().checks.by_result.items():
        f.checks.add_metric([run.id, result], n)


def _wake_buckets(
    buckets: tuple[tuple[float, int], ...],
) -> tuple[list[tuple[str, float]], float]:
    """Prometheus ``le`` buckets from the poller's fine buckets (upper bounds within 12.5 %),
    and a sum estimated from those upper bounds (the poller keeps no exact sum)."""
    total = sum(n for _, n in buckets)
    estimate = sum(bound * n for bound, n in buckets)
    out: list[tuple[str, float]] = []
    for le in WAKE_BUCKETS:
        out.append((f"{le:g}", sum(n for bound, n in buckets if bound <= le)))
    out.append(("+Inf", total))
    return out, estimate
