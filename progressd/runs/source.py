"""What a scenario's thresholds read: a ``MetricSource`` over its ``ScenarioMetrics``.

Metric names are the DSL's (``dsl/thresholds.py``), optionally narrowed to one step:
``http_req_duration{step:login}``. A metric without samples yet passes with ``observed=None``,
as in k6. ``iteration_duration`` comes from ``iterations.py`` (timed from bus events).
"""

from __future__ import annotations

from collections.abc import Callable

from progressd.dsl import ThresholdPlan
from progressd.dsl.thresholds import METRICS
from progressd.histogram import LatencyHistogram
from progressd.steps import ScenarioMetrics
from progressd.thresholds import Threshold, TrendStat

__all__ = ["ScenarioSource", "threshold_of"]


def threshold_of(plan: ThresholdPlan) -> Threshold:
    """The evaluator of a threshold the DSL already parsed (no second parse, same units)."""
    metric = plan.metric if plan.step is None else f"{plan.metric}{{step:{plan.step}}}"
    return Threshold(
        metric=metric,
        kind=METRICS[plan.metric],
        expression=plan.source,
        aggregation=plan.aggregate,  # type: ignore[arg-type]  # the DSL checked the name
        quantile=plan.percentile,
        op=plan.op,
        value=plan.value,
        abort_on_fail=plan.abort_on_fail,
    )


class ScenarioSource:
    """``MetricSource`` of one scenario. ``counters()`` gives the figures the source cannot
    count itself: ``(iterations, rollbacks)``; ``elapsed()`` the run's elapsed seconds."""

    __slots__ = ("_counters", "_elapsed", "metrics")

    def __init__(
        self,
        metrics: ScenarioMetrics,
        *,
        elapsed: Callable[[], float],
        counters: Callable[[], tuple[int, int]],
    ) -> None:
        self.metrics = metrics
        self._elapsed = elapsed
        self._counters = counters

    def _histogram(self, metric: str) -> LatencyHistogram | None:
        name, _, rest = metric.partition("{step:")
        m = self.metrics
        if rest:
            histogram = m.step_latency.get(rest.rstrip("}"))
        elif name == "http_req_duration":
            histogram = m.http_latency()
        elif name == "exec_duration":
            histogram = m.exec
        elif name == "iteration_duration":
            histogram = m.iteration
        elif name == "step_duration":
            histogram = LatencyHistogram()
            for each in m.step_latency.values():
                histogram.merge(each)
        else:
            histogram = None
        return None if histogram is None or histogram.count == 0 else histogram

    def percentile(self, metric: str, q: float) -> float | None:
        histogram = self._histogram(metric)
        return None if histogram is None else histogram.percentile(q)

    def trend(self, metric: str, stat: TrendStat) -> float | None:
        histogram = self._histogram(metric)
        if histogram is None:
            return None
        return {"avg": histogram.mean, "min": histogram.min, "max": histogram.max}[stat]

    def count(self, metric: str) -> float:
        if metric == "http_reqs":
            return float(self.metrics.requests)
        iterations, rollbacks = self._counters()
        return float(iterations if metric == "iterations" else rollbacks)

    def ratio(self, metric: str) -> float | None:
        m = self.metrics
        part, whole = {
            "errors": (m.steps_failed, m.steps),
            "checks": (m.checks_passed, m.checks),
            "http_req_failed": (m.http_failed, m.requests),
        }.get(metric, (0, 0))
        return part / whole if whole else None

    def elapsed_s(self) -> float:
        return self._elapsed()
