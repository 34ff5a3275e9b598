"""Per-scenario step metrics: what the step executors count, what thresholds and summaries read.

Every executor owns no metric call on its hot path: it bumps a few integer attributes of the
``ScenarioMetrics`` its step belongs to and records a latency into a bounded histogram (O(1),
fixed memory). Telemetry, thresholds and the run summary read these at their own pace.

Error classes (``errors_by_class`` keys): the HTTP client's failure reasons
(``connect-refused``, ``connect-timeout``, ``connect-error``, ``tls``, ``timeout``,
``closed-early``, ``malformed-response``, ``cancelled``), then ``status`` (a status outside
``expect.status``, or >= 400 without one), ``expectation`` (slower than ``expect.latency``),
``extract`` (a value to extract was missing), ``request`` (the request could not be built: a
template read a missing field, a bad URL), ``no-lease`` (no lease came within the step's
timeout), ``exec-exit-code``, ``exec-timeout``, ``exec-start``,
``external-timeout``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from progressd.histogram import LatencyHistogram
from progressd.http.errors import HTTP_ERROR_REASONS

__all__ = ["ERROR_CLASSES", "ScenarioMetrics", "StepMetrics"]

ERROR_CLASSES: tuple[str, ...] = (
    *HTTP_ERROR_REASONS,
    "status",
    "expectation",
    "extract",
    "request",
    "no-lease",
    "exec-exit-code",
    "exec-timeout",
    "exec-start",
    "external-timeout",
)


@dataclass(slots=True)
class ScenarioMetrics:
    """The counters of one scenario's I/O steps (http, exec, external).

    ``steps`` / ``steps_failed``: I/O steps that ended, and those that ended in error (the
    ``errors`` rate). ``checks`` / ``checks_passed``: ``expect`` clauses evaluated (the ``checks``
    rate). ``requests`` / ``http_failed``: HTTP requests that ended, and those that failed at
    the transport or by status (the ``http_req_failed`` rate). ``step_latency`` holds each
    step's latencies (one record per request: the scenario-wide HTTP histogram is merged from
    the http steps' when read, ``http_latency()``); ``exec`` the duration of every exec step.
    """

    name: str
    exec: LatencyHistogram = field(default_factory=LatencyHistogram)
    iteration: LatencyHistogram = field(default_factory=LatencyHistogram)
    """Iteration durations (fed by the run from the event bus, not by executors)."""
    step_latency: dict[str, LatencyHistogram] = field(default_factory=dict)
    """Step name -> its own latency histogram (``http_req_duration{step:login}``)."""
    http_steps: set[str] = field(default_factory=set)
    """Names of the http steps (whose histograms make ``http_latency()``)."""
    requests: int = 0
    http_failed: int = 0
    steps: int = 0
    steps_failed: int = 0
    checks: int = 0
    checks_passed: int = 0
    errors_by_class: dict[str, int] = field(default_factory=dict)

    def step(self, name: str) -> StepMetrics:
        """The metrics handle of the step called ``name`` (its histogram created once)."""
        histogram = self.step_latency.get(name)
        if histogram is None:
            histogram = self.step_latency[name] = LatencyHistogram()
        return StepMetrics(self, name, histogram)

    def http_latency(self) -> LatencyHistogram:
        """Every HTTP response latency of the scenario: a fresh merge of its http steps'
        histograms (O(buckets x steps); read at threshold and summary time, not per request)."""
        merged = LatencyHistogram()
        for name in self.http_steps:
            merged.merge(self.step_latency[name])
        return merged

    def count_error(self, error_class: str) -> None:
        """Count one error of ``error_class``."""
        by_class = self.errors_by_class
        by_class[error_class] = by_class.get(error_class, 0) + 1

    @property
    def errors(self) -> int:
        """Failed I/O steps."""
        return self.steps_failed


@dataclass(slots=True)
class StepMetrics:
    """One step's view of its scenario's metrics, resolved once when the step is prepared."""

    scenario: ScenarioMetrics
    name: str
    latency: LatencyHistogram

    def end(self, error_class: str | None) -> None:
        """The step ended, in error when ``error_class`` is given."""
        scenario = self.scenario
        scenario.steps += 1
        if error_class is not None:
            scenario.steps_failed += 1
            scenario.count_error(error_class)

    def check(self, passed: bool) -> None:
        """One ``expect`` clause was evaluated."""
        scenario = self.scenario
        scenario.checks += 1
        if passed:
            scenario.checks_passed += 1
