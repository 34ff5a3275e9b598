"""k6-style thresholds: ``http_req_duration: "p(95) < 500ms"``, ``errors: "rate < 0.01"``.

Design note. A threshold is ``<aggregation> <operator> <value>`` on a named metric, parsed once
(at DSL load time) into a frozen ``Threshold`` and evaluated against a ``MetricSource``: a small
Protocol the runner implements over its histograms and counters. Metric kinds follow k6:

* trend (``http_req_duration``, ``iteration_duration``): ``avg``, ``min``, ``max``, ``med``,
  ``p(N)`` / ``pN``. Values are durations; a bare number means milliseconds, as in k6, and
  ``500ms`` or ``1.5s`` are accepted too. Sources report trend values in seconds.
* rate (``errors``, ``checks``, ``http_req_failed``): ``rate``, a fraction in [0, 1]; ``1%``
  is accepted.
* counter (``http_reqs``, ``iterations``, ``rollbacks``): ``count``, or ``rate`` meaning per
  second over the run's elapsed time.

A metric with no data yet passes (as in k6) and reports ``observed=None``. ``abort-on-fail``
thresholds are checked continuously with ``ThresholdMonitor.check_abort``; the run fails when
any threshold fails at the end.
"""

from __future__ import annotations

import difflib
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Literal, Protocol

import msgspec

from progressd.clock import Clock
from progressd.units import parse_duration

MetricKind = Literal["trend", "rate", "counter"]
Aggregation = Literal["avg", "min", "max", "med", "p", "rate", "count"]
TrendStat = Literal["avg", "min", "max"]

METRIC_KINDS: Mapping[str, MetricKind] = {
    "http_req_duration": "trend",
    "iteration_duration": "trend",
    "errors": "rate",
    "checks": "rate",
    "http_req_failed": "rate",
    "http_reqs": "counter",
    "iterations": "counter",
    "rollbacks": "counter",
}
_ALLOWED: Mapping[MetricKind, str] = {
    "trend": "avg, min, max, med or p(N)",
    "rate": "rate",
    "counter": "count or rate",
}
_BY_KIND: Mapping[MetricKind, Mapping[str, Aggregation]] = {
    "trend": {"avg": "avg", "min": "min", "max": "max", "med": "med"},
    "rate": {"rate": "rate"},
    "counter": {"count": "count", "rate": "rate"},
}
_OPERATORS: Mapping[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "===": operator.eq,
    "!=": operator.ne,
}
_SHAPE = (
    'expected "<aggregation> <operator> <value>" like "p(95) < 500ms", "avg<200", '
    '"rate < 0.01" or "count > 100"'
)
_AGGREGATION = re.compile(
    r"\s*(?:p\(\s*(?P<pq>[^)]*?)\s*\)|p(?P<pq2>\d+(?:\.\d+)?)|(?P<name>avg|min|max|med|count|rate))"
)
_OPERATOR = re.compile(r"\s*([<>=!]+)\s*")


class MetricSource(Protocol):
    """What a threshold reads. Trend values are in seconds; ``None`` means "no data yet"."""

    def percentile(self, metric: str, q: float) -> float | None: ...

    def trend(self, metric: str, stat: TrendStat) -> float | None: ...

    def count(self, metric: str) -> float: ...

    def ratio(self, metric: str) -> float | None: ...

    def elapsed_s(self) -> float: ...


class Threshold(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One parsed threshold. ``label`` (``"metric: expression"``) names it in summaries."""

    metric: str
    kind: MetricKind
    expression: str
    aggregation: Aggregation
    quantile: float | None = None
    op: str
    value: float
    abort_on_fail: bool = False
    delay_abort_eval_s: float = 0.0

    @property
    def label(self) -> str:
        return f"{self.metric}: {self.expression}"

    def observe(self, source: MetricSource) -> float | None:
        """The aggregated figure this threshold compares, or ``None`` without data."""
        match self.aggregation:
            case "p":
                return source.percentile(self.metric, self.quantile or 0.0)
            case "med":
                return source.percentile(self.metric, 50.0)
            case "avg" | "min" | "max":
                return source.trend(self.metric, self.aggregation)
            case "count":
                return source.count(self.metric)
            case "rate" if self.kind == "counter":
                elapsed = source.elapsed_s()
                return source.count(self.metric) / elapsed if elapsed > 0 else None
            case _:
                return source.ratio(self.metric)

    def evaluate(self, source: MetricSource) -> ThresholdResult:
        observed = self.observe(source)
        passed = observed is None or _OPERATORS[self.op](observed, self.value)
        return ThresholdResult(label=self.label, passed=passed, observed=observed)


class ThresholdResult(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The outcome of one threshold; ``observed`` is ``None`` when the metric had no data."""

    label: str
    passed: bool
    observed: float | None


def parse_threshold(
    metric: str,
    expr: str,
    *,
    abort_on_fail: bool = False,
    delay_abort_eval: str | float = 0.0,
) -> Threshold:
    """Parse ``expr`` (``"p95 < 500ms"``) for ``metric`` (``"http_req_duration"``).

    Raises:
        ValueError: naming the metric and expression, saying what is wrong and what is
            expected (the DSL adds the file position).
    """
    kind = _metric_kind(metric)
    if not isinstance(expr, str):
        raise ValueError(
            f'{metric}: expected an expression string like "p(95) < 500ms", got {expr!r}'
        )
    text = expr.strip()
    where = f'{metric}: "{expr}"'
    if not text:
        raise ValueError(f"{where}: empty threshold; {_SHAPE}")
    aggregation, quantile, rest = _parse_aggregation(text, kind, where)
    op_match = _OPERATOR.match(rest)
    if op_match is None or op_match.group(1) not in _OPERATORS:
        raise ValueError(
            f"{where}: expected an operator (<, <=, >, >=, ==, !=) after the "
            f'aggregation, got "{rest.strip()}"; {_SHAPE}'
        )
    value = _parse_value(rest[op_match.end() :], kind, aggregation, where)
    delay = _parse_delay(delay_abort_eval, where)
    return Threshold(
        metric=metric,
        kind=kind,
        expression=text,
        aggregation=aggregation,
        quantile=quantile,
        op=op_match.group(1),
        value=value,
        abort_on_fail=abort_on_fail,
        delay_abort_eval_s=delay,
    )


def parse_thresholds(spec: Mapping[str, object]) -> tuple[Threshold, ...]:
    """Parse a DSL ``thresholds:`` mapping: metric -> expression, or a list of expressions
    and ``{threshold: EXPR, abort-on-fail: BOOL, delay-abort-eval: DURATION}`` objects.

    Raises:
        ValueError: prefixed with ``thresholds.<metric>[<index>]`` for the faulty entry.
    """
    parsed: list[Threshold] = []
    for metric, value in spec.items():
        entries = value if isinstance(value, list) else [value]
        for index, entry in enumerate(entries):
            place = f"thresholds.{metric}" + (f"[{index}]" if isinstance(value, list) else "")
            try:
                parsed.append(_parse_entry(metric, entry))
            except ValueError as exc:
                raise ValueError(f"{place}: {exc}") from None
    return tuple(parsed)


class ThresholdMonitor:
    """Evaluates a run's thresholds: continuously for ``abort-on-fail``, fully at the end."""

    __slots__ = ("_clock", "_started", "thresholds")

    def __init__(
        self, thresholds: Sequence[Threshold], clock: Clock, *, started_at: float | None = None
    ) -> None:
        self.thresholds = tuple(thresholds)
        self._clock = clock
        self._started = clock.now() if started_at is None else started_at

    def check_abort(self, source: MetricSource) -> ThresholdResult | None:
        """The first failing ``abort-on-fail`` threshold past its delay, else ``None``."""
        elapsed = self._clock.now() - self._started
        for threshold in self.thresholds:
            if not threshold.abort_on_fail or elapsed < threshold.delay_abort_eval_s:
                continue
            result = threshold.evaluate(source)
            if not result.passed:
                return result
        return None

    def evaluate(self, source: MetricSource) -> tuple[ThresholdResult, ...]:
        """Every threshold's result, in declaration order."""
        return tuple(threshold.evaluate(source) for threshold in self.thresholds)

    def passed(self, source: MetricSource) -> dict[str, bool]:
        """``label -> passed``: the ``thresholds`` field of a run summary."""
        return {result.label: result.passed for result in self.evaluate(source)}


def _metric_kind(metric: str) -> MetricKind:
    if isinstance(metric, str) and metric in METRIC_KINDS:
        return METRIC_KINDS[metric]
    if isinstance(metric, str) and "{" in metric:
        raise ValueError(
            f"{metric}: tagged sub-metrics are not supported; put the threshold on the scenario "
            "that should meet it"
        )
    close = difflib.get_close_matches(str(metric), list(METRIC_KINDS), n=1)
    hint = f'did you mean "{close[0]}"? ' if close else ""
    raise ValueError(f'unknown metric "{metric}"; {hint}known: {", ".join(METRIC_KINDS)}')


def _parse_aggregation(
    text: str, kind: MetricKind, where: str
) -> tuple[Aggregation, float | None, str]:
    match = _AGGREGATION.match(text)
    if match is None:
        raise ValueError(f"{where}: {kind} metrics take {_ALLOWED[kind]}; {_SHAPE}")
    rest = text[match.end() :]
    name = match.group("name")
    if name is None:
        quantile = _parse_quantile(match.group("pq") or match.group("pq2"), where)
        if kind != "trend":
            raise ValueError(
                f"{where}: percentiles apply to trend metrics; {kind} metrics take {_ALLOWED[kind]}"
            )
        return "p", quantile, rest
    aggregation = _BY_KIND[kind].get(name)
    if aggregation is None:
        raise ValueError(f'{where}: "{name}" does not apply to {kind} metric; use {_ALLOWED[kind]}')
    return aggregation, None, rest


def _parse_quantile(text: str, where: str) -> float:
    try:
        quantile = float(text)
    except ValueError:
        raise ValueError(
            f"{where}: expected a percentile like p(95) or p(99.9), got p({text})"
        ) from None
    if not 0.0 <= quantile <= 100.0:
        raise ValueError(f"{where}: a percentile is between 0 and 100, got p({text})")
    return quantile


def _parse_value(text: str, kind: MetricKind, aggregation: Aggregation, where: str) -> float:
    text = text.strip()
    if not text:
        raise ValueError(f"{where}: missing value after the operator; {_SHAPE}")
    if kind == "trend":
        return _parse_trend_value(text, where)
    if kind == "rate":
        return _parse_rate_value(text, where)
    number = _parse_number(text.removesuffix("/s").strip(), where, "a number like 100")
    if number < 0:
        raise ValueError(f"{where}: a {aggregation} cannot be negative, got {text}")
    return number


def _parse_trend_value(text: str, where: str) -> float:
    hint = 'a duration like "500ms" or "1.5s" (a bare number is milliseconds, as in k6)'
    try:
        return float(text) / 1000.0
    except ValueError:
        pass
    try:
        return parse_duration(text)
    except ValueError:
        raise ValueError(f'{where}: expected {hint}, got "{text}"') from None


def _parse_rate_value(text: str, where: str) -> float:
    hint = 'a fraction like 0.01 or a percentage like "1%"'
    scale = 1.0
    if text.endswith("%"):
        text, scale = text[:-1].strip(), 0.01
    value = _parse_number(text, where, hint) * scale
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{where}: a rate is between 0 and 1 (0% and 100%), got {text}")
    return value


def _parse_number(text: str, where: str, hint: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f'{where}: expected {hint}, got "{text}"') from None
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f'{where}: expected {hint}, got "{text}"')
    return value


def _parse_delay(value: str | float, where: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ValueError(f"{where}: delay-abort-eval: {exc}") from None


def _parse_entry(metric: str, entry: object) -> Threshold:
    if isinstance(entry, str):
        return parse_threshold(metric, entry)
    if not isinstance(entry, Mapping):
        raise ValueError(f"expected an expression string or a mapping, got {entry!r}")
    unknown = set(entry) - {"threshold", "abort-on-fail", "delay-abort-eval"}
    if unknown:
        raise ValueError(
            f"unknown key(s) {sorted(map(str, unknown))}; expected threshold, "
            "abort-on-fail, delay-abort-eval"
        )
    expr, abort, delay = (
        entry.get("threshold"),
        entry.get("abort-on-fail", False),
        entry.get("delay-abort-eval", 0.0),
    )
    if not isinstance(expr, str):
        raise ValueError(f"threshold: expected an expression string, got {expr!r}")
    if not isinstance(abort, bool):
        raise ValueError(f"abort-on-fail: expected true or false, got {abort!r}")
    if not isinstance(delay, str | int | float) or isinstance(delay, bool):
        raise ValueError(f'delay-abort-eval: expected a duration like "10s", got {delay!r}')
    return parse_threshold(metric, expr, abort_on_fail=abort, delay_abort_eval=delay)
