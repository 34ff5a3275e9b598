"""k6-style thresholds: ``http_req_duration: "p95 < 500ms"`` parsed to a structured rule.

A threshold key is a metric, optionally narrowed to one step: ``http_req_duration{step:login}``.
Its value is a rule string, a list of them, or ``{threshold: "...", abort-on-fail: true}``.
A rule is ``<aggregate> <op> <value>``:

- duration metrics (``http_req_duration``, ``step_duration``, ``iteration_duration``,
  ``exec_duration``): ``avg``, ``min``, ``max``, ``med``, ``p95`` / ``p(99.9)``; the value is
  a duration with a unit (``500ms``), stored in seconds;
- rate metrics (``errors``, ``checks``, ``http_req_failed``): ``rate`` against 0..1;
- counters (``iterations``, ``http_reqs``): ``count`` (total) or ``rate`` (per second).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Literal, cast

from progressd.dsl.diagnostics import suggest
from progressd.dsl.positions import Path, SpecError
from progressd.dsl.schema import ThresholdRule, ThresholdValue
from progressd.dsl.wbs import ThresholdPlan
from progressd.units import parse_duration

MetricKind = Literal["trend", "rate", "counter"]
METRICS: dict[str, MetricKind] = {
    "http_req_duration": "trend",
    "step_duration": "trend",
    "iteration_duration": "trend",
    "exec_duration": "trend",
    "errors": "rate",
    "checks": "rate",
    "http_req_failed": "rate",
    "iterations": "counter",
    "http_reqs": "counter",
}
AGGREGATES: dict[MetricKind, tuple[str, ...]] = {
    "trend": ("avg", "min", "max", "med", "p95", "p(99.9)"),
    "rate": ("rate",),
    "counter": ("count", "rate"),
}
_KEY = re.compile(r"(?P<metric>[a-z_]+)(?:\{step:(?P<step>[^}]+)\})?")
_RULE = re.compile(
    r"\s*(?P<agg>avg|min|max|med|rate|count|p\((?P<pp>\d+(?:\.\d+)?)\)|p(?P<p>\d+(?:\.\d+)?))"
    r"\s*(?P<op><=|>=|==|!=|<|>)\s*(?P<value>\S+)\s*"
)
Op = Literal["<", "<=", ">", ">=", "==", "!="]


def build_thresholds(
    thresholds: dict[str, ThresholdValue], steps: Collection[str], path: Path
) -> tuple[ThresholdPlan, ...]:
    """Every rule of a scenario's ``thresholds``, in document order.

    Raises:
        SpecError: on an unknown metric or step, or a malformed rule.
    """
    plans: list[ThresholdPlan] = []
    for key, value in thresholds.items():
        metric, step = _parse_key(key, steps, (*path, key))
        rules = value if isinstance(value, list) else [value]
        for index, rule in enumerate(rules):
            where = (*path, key, index) if isinstance(value, list) else (*path, key)
            plans.append(_parse_rule(metric, step, rule, where))
    return tuple(plans)


def _parse_key(key: str, steps: Collection[str], path: Path) -> tuple[str, str | None]:
    match = _KEY.fullmatch(key)
    if match is None or match.group("metric") not in METRICS:
        name = match.group("metric") if match else key
        raise SpecError(path, f'unknown metric "{name}"' + suggest(name, METRICS), at_key=True)
    step = match.group("step")
    if step is not None and step not in steps:
        raise SpecError(path, f'unknown step "{step}"' + suggest(step, steps), at_key=True)
    return match.group("metric"), step


def _parse_rule(
    metric: str, step: str | None, rule: str | ThresholdRule, path: Path
) -> ThresholdPlan:
    abort = False
    if isinstance(rule, ThresholdRule):
        abort, rule, path = rule.abort_on_fail, rule.threshold, (*path, "threshold")
    kind = METRICS[metric]
    match = _RULE.fullmatch(rule)
    if match is None:
        example = {"trend": "p95 < 500ms", "rate": "rate < 0.01", "counter": "count > 100"}
        raise SpecError(path, f'expected a rule like "{example[kind]}", got "{rule}"')
    aggregate, percentile = _aggregate(match, kind, metric, path)
    value = _value(match.group("value"), kind, path)
    return ThresholdPlan(
        source=rule,
        metric=metric,
        aggregate=aggregate,
        op=cast(Op, match.group("op")),
        value=value,
        percentile=percentile,
        step=step,
        abort_on_fail=abort,
    )


def _aggregate(
    match: re.Match[str], kind: MetricKind, metric: str, path: Path
) -> tuple[str, float | None]:
    pct_text = match.group("p") or match.group("pp")
    aggregate = "p" if pct_text else match.group("agg")
    allowed = ("avg", "min", "max", "med", "p") if kind == "trend" else AGGREGATES[kind]
    if aggregate not in allowed:
        shown = ", ".join(AGGREGATES[kind])
        raise SpecError(path, f'"{match.group("agg")}" does not apply to {metric}; use {shown}')
    percentile = float(pct_text) if pct_text else None
    if percentile is not None and not 0 < percentile <= 100:
        raise SpecError(path, f"percentile {pct_text} is outside 0-100")
    return aggregate, percentile


def _value(text: str, kind: MetricKind, path: Path) -> float:
    if kind == "trend":
        if _is_number(text):
            raise SpecError(path, f'"{text}" needs a unit: write "{text}ms" or "{text}s"')
        try:
            return parse_duration(text)
        except ValueError as exc:
            raise SpecError(path, str(exc)) from None
    if not _is_number(text):
        raise SpecError(path, f'expected a number, got "{text}"')
    value = float(text)
    if kind == "rate" and not 0 <= value <= 1:
        raise SpecError(path, f"a rate is between 0 and 1, got {text}")
    return value


def _is_number(text: str) -> bool:
    return re.fullmatch(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", text) is not None


__all__ = ["METRICS", "build_thresholds"]
