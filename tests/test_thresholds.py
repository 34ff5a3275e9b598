from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from progressd.clock import FakeClock
from progressd.thresholds import (
    ThresholdMonitor,
    TrendStat,
    parse_threshold,
    parse_thresholds,
)


@dataclass
class FakeMetrics:
    """A MetricSource over plain samples: percentiles by nearest rank, like a histogram would."""

    samples: dict[str, list[float]] = field(default_factory=dict)
    counts: dict[str, float] = field(default_factory=dict)
    ratios: dict[str, float] = field(default_factory=dict)
    elapsed: float = 10.0

    def percentile(self, metric: str, q: float) -> float | None:
        values = sorted(self.samples.get(metric, []))
        if not values:
            return None
        rank = max(0, min(len(values) - 1, round(q / 100.0 * len(values)) - 1))
        return values[rank]

    def trend(self, metric: str, stat: TrendStat) -> float | None:
        values = self.samples.get(metric, [])
        if not values:
            return None
        return {"avg": sum(values) / len(values), "min": min(values), "max": max(values)}[stat]

    def count(self, metric: str) -> float:
        return self.counts.get(metric, 0.0)

    def ratio(self, metric: str) -> float | None:
        return self.ratios.get(metric)

    def elapsed_s(self) -> float:
        return self.elapsed


def _latencies() -> FakeMetrics:
    # 100 requests: 1 ms .. 100 ms, so p95 = 95 ms, med = 50 ms, avg = 50.5 ms.
    return FakeMetrics(
        samples={"http_req_duration": [i / 1000.0 for i in range(1, 101)]},
        counts={"http_reqs": 250.0},
        ratios={"errors": 0.004, "checks": 0.995},
    )


@pytest.mark.parametrize(
    ("metric", "expr", "passed"),
    [
        ("http_req_duration", "p95 < 500ms", True),
        ("http_req_duration", "p(95)<500", True),
        ("http_req_duration", "p(95) < 90", False),
        ("http_req_duration", "p(99.9) <= 100ms", True),
        ("http_req_duration", "p99.9 < 0.1s", False),
        ("http_req_duration", "med == 50", True),
        ("http_req_duration", "avg < 50ms", False),
        ("http_req_duration", "avg>50", True),
        ("http_req_duration", "min >= 1ms", True),
        ("http_req_duration", "max != 100", False),
        ("errors", "rate < 0.01", True),
        ("errors", "rate < 0.1%", False),
        ("checks", "rate > 0.99", True),
        ("checks", "rate===0.995", True),
        ("http_reqs", "count > 100", True),
        ("http_reqs", "count > 250", False),
        ("http_reqs", "rate >= 25/s", True),
        ("http_reqs", "rate > 25", False),
    ],
)
def test_threshold_table_of_expressions(metric: str, expr: str, passed: bool) -> None:
    result = parse_threshold(metric, expr).evaluate(_latencies())
    assert result.passed is passed
    assert result.observed is not None
    assert result.label == f"{metric}: {expr}"


def test_threshold_trend_values_are_seconds_and_bare_numbers_milliseconds() -> None:
    assert parse_threshold("http_req_duration", "p(95)<500").value == pytest.approx(0.5)
    assert parse_threshold("http_req_duration", "p95 < 1.5s").value == pytest.approx(1.5)
    threshold = parse_threshold("http_req_duration", "p(99.9) < 2s")
    assert threshold.aggregation == "p"
    assert threshold.quantile == 99.9


def test_threshold_without_data_passes_with_no_observation() -> None:
    result = parse_threshold("http_req_duration", "p95 < 1ms").evaluate(FakeMetrics())
    assert result.passed
    assert result.observed is None


@pytest.mark.parametrize(
    ("metric", "expr", "message"),
    [
        ("http_req_durations", "p95 < 1s", 'unknown metric.*did you mean "http_req_duration"'),
        ("latency", "p95 < 1s", 'unknown metric "latency"; known: http_req_duration'),
        ("http_req_duration{step:a}", "p95 < 1s", "tagged sub-metrics are not supported"),
        ("http_req_duration", "", "empty threshold"),
        ("http_req_duration", "p96 <> 1s", r"expected an operator .* got \"<> 1s\""),
        ("http_req_duration", "p(101) < 1s", "a percentile is between 0 and 100"),
        ("http_req_duration", "p(x) < 1s", r"expected a percentile like p\(95\)"),
        ("http_req_duration", "rate < 0.1", '"rate" does not apply to trend metric'),
        ("http_req_duration", "p95 < fast", 'expected a duration like "500ms".*got "fast"'),
        ("http_req_duration", "p95 <", "missing value after the operator"),
        ("http_req_duration", "fastest < 1", "trend metrics take avg, min, max, med or p"),
        ("errors", "p95 < 0.1", "percentiles apply to trend metrics"),
        ("errors", "count < 3", '"count" does not apply to rate metric; use rate'),
        ("errors", "rate < 5", "a rate is between 0 and 1"),
        ("errors", "rate < lots", 'expected a fraction like 0.01 or a percentage like "1%"'),
        ("http_reqs", "count > -1", "a count cannot be negative"),
        ("http_reqs", "count > nan", "expected a number like 100"),
    ],
)
def test_threshold_bad_expression_messages(metric: str, expr: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_threshold(metric, expr)


def test_parse_thresholds_accepts_strings_lists_and_abort_objects() -> None:
    thresholds = parse_thresholds(
        {
            "http_req_duration": ["p95 < 500ms", {"threshold": "max < 2s", "abort-on-fail": True}],
            "errors": "rate < 0.01",
        }
    )
    assert [t.label for t in thresholds] == [
        "http_req_duration: p95 < 500ms",
        "http_req_duration: max < 2s",
        "errors: rate < 0.01",
    ]
    assert [t.abort_on_fail for t in thresholds] == [False, True, False]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"errors": ["rate < 0.01", "rate <"]}, r"thresholds\.errors\[1\]: errors: \"rate <\""),
        ({"errors": {"threshold": "rate < 0.1", "abort": True}}, r"unknown key\(s\) \['abort'\]"),
        ({"errors": {"threshold": "rate < 0.1", "abort-on-fail": "yes"}}, "true or false"),
        ({"errors": 0.01}, "expected an expression string or a mapping"),
        (
            {"errors": {"threshold": "rate < 0.1", "delay-abort-eval": "soon"}},
            r'thresholds\.errors: errors: "rate < 0.1": delay-abort-eval: expected a duration',
        ),
    ],
)
def test_parse_thresholds_names_the_faulty_entry(spec: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_thresholds(spec)


def test_threshold_monitor_aborts_only_after_delay_and_only_abort_on_fail() -> None:
    clock = FakeClock()
    thresholds = parse_thresholds(
        {
            "http_req_duration": "p95 < 1ms",
            "errors": {"threshold": "rate < 0.01", "abort-on-fail": True, "delay-abort-eval": "5s"},
        }
    )
    monitor = ThresholdMonitor(thresholds, clock)
    metrics = _latencies()
    metrics.ratios["errors"] = 0.5
    assert monitor.check_abort(metrics) is None  # within delay-abort-eval
    clock.advance(5.0)
    breach = monitor.check_abort(metrics)
    assert breach is not None
    assert breach.label == "errors: rate < 0.01"
    assert breach.observed == 0.5
    metrics.ratios["errors"] = 0.0
    assert monitor.check_abort(metrics) is None  # p95 fails, but it is not abort-on-fail
    assert monitor.passed(metrics) == {
        "http_req_duration: p95 < 1ms": False,
        "errors: rate < 0.01": True,
    }


def test_threshold_expression_must_be_a_string() -> None:
    with pytest.raises(ValueError, match="errors: expected an expression string"):
        parse_threshold("errors", 0.01)  # type: ignore[arg-type]
