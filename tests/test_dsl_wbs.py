from __future__ import annotations

import pytest

from progressd.dsl import load_plan_text
from progressd.dsl.build import DEFAULT_PRIORITIES
from progressd.dsl.pools import expand_member
from progressd.dsl.positions import SpecError
from progressd.errors import DslError

HEAD = "version: 2\nname: t\n"


def _scenario_doc(extra: str = "", steps: str = "        - think: 1s\n", top: str = "") -> str:
    return HEAD + top + "load:\n  scenarios:\n    - name: s\n" + extra + "      steps:\n" + steps


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:18081", ["127.0.0.1:18081"]),
        ("127.0.0.1:18081-18083", ["127.0.0.1:18081", "127.0.0.1:18082", "127.0.0.1:18083"]),
        ("localhost:80", ["localhost:80"]),
        ("[::1]:8080-8081", ["[::1]:8080", "[::1]:8081"]),
        ("db-1.internal:5432", ["db-1.internal:5432"]),
    ],
)
def test_expand_member_accepts_addresses_and_ranges(text: str, expected: list[str]) -> None:
    assert expand_member(text, ()) == expected


@pytest.mark.parametrize("text", ["127.0.0.1", ":80", "host:0", "host:1-70000", "a b:1", "h:5-4"])
def test_expand_member_rejects(text: str) -> None:
    with pytest.raises(SpecError):
        expand_member(text, ())


@pytest.mark.parametrize(
    ("key", "rule", "parsed"),
    [
        ("http_req_duration", "p95 < 500ms", ("p", 95.0, "<", 0.5)),
        ("http_req_duration", "p(99.9)<=1s", ("p", 99.9, "<=", 1.0)),
        ("http_req_duration", "avg < 200ms", ("avg", None, "<", 0.2)),
        ("iteration_duration", "max >= 1m", ("max", None, ">=", 60.0)),
        ("errors", "rate < 0.01", ("rate", None, "<", 0.01)),
        ("checks", "rate > 0.99", ("rate", None, ">", 0.99)),
        ("iterations", "count > 100", ("count", None, ">", 100.0)),
        ("http_reqs", "rate >= 50", ("rate", None, ">=", 50.0)),
    ],
)
def test_thresholds_parse_to_structured_rules(
    key: str, rule: str, parsed: tuple[str, float | None, str, float]
) -> None:
    plan = load_plan_text(_scenario_doc(f'      thresholds: {{{key}: "{rule}"}}\n'), cache=None)
    threshold = plan.scenarios[0].thresholds[0]
    assert (threshold.metric, threshold.source) == (key, rule)
    got = (threshold.aggregate, threshold.percentile, threshold.op, threshold.value)
    assert got[:3] == parsed[:3]
    assert threshold.value == pytest.approx(parsed[3])


def test_threshold_step_filter_and_abort_on_fail() -> None:
    doc = _scenario_doc(
        "      thresholds:\n        step_duration{step:wait}:\n"
        '          - "p90 < 2s"\n          - {threshold: "max < 5s", abort-on-fail: true}\n',
        steps="        - {name: wait, think: 1s}\n",
    )
    first, second = load_plan_text(doc, cache=None).scenarios[0].thresholds
    assert (first.step, first.percentile, first.abort_on_fail) == ("wait", 90.0, False)
    assert (second.aggregate, second.value, second.abort_on_fail) == ("max", 5.0, True)


def test_progress_defaults_and_overrides() -> None:
    plan = load_plan_text(
        _scenario_doc(
            top="progress:\n  poller: {priorities: {telemetry: 0}}\n"
            "  sampling: {mode: sampled, rate: 0.25}\n"
        ),
        cache=None,
    )
    assert plan.progress.poller.priorities == {**DEFAULT_PRIORITIES, "telemetry": 0}
    assert (plan.progress.poller.budget, plan.progress.poller.io_budget) == (1024, 256)
    assert (plan.progress.sampling.mode, plan.progress.sampling.rate) == ("sampled", 0.25)
    assert plan.progress.batching.flush_interval_s == 0.05


def test_io_budget_defaults_within_the_budget_and_may_be_set() -> None:
    for poller, expected in (("{budget: 100}", 100), ("{budget: 100, io-budget: 10}", 10)):
        doc = _scenario_doc(top=f"progress:\n  poller: {poller}\n")
        assert load_plan_text(doc, cache=None).progress.poller.io_budget == expected


def test_default_sampling_values() -> None:
    for mode, rate, window in (
        ("sampled", 0.1, None),
        ("aggregated", None, 1.0),
        ("full", None, None),
    ):
        plan = load_plan_text(_scenario_doc(top=f"progress: {{sampling: {mode}}}\n"), cache=None)
        assert (plan.progress.sampling.rate, plan.progress.sampling.window_s) == (rate, window)


def test_progress_deadline_parses_as_seconds() -> None:
    plan = load_plan_text(_scenario_doc(top="progress: {deadline: 1h30m}\n"), cache=None)
    assert plan.progress.deadline_s == 5400.0
    assert load_plan_text(_scenario_doc(), cache=None).progress.deadline_s is None
    message = r"3:22: progress\.deadline: a deadline is longer than 0s, got 0"
    with pytest.raises(DslError, match=message):
        load_plan_text(_scenario_doc(top="progress: {deadline: 0}\n"), cache=None)


def test_steps_get_default_names_and_indexes() -> None:
    plan = load_plan_text(
        _scenario_doc(
            steps="        - think: 1s\n        - milestone: m\n"
            '        - exec: {argv: ["true"]}\n        - external: {key: k}\n'
        ),
        cache=None,
    )
    steps = plan.scenarios[0].steps
    assert [(s.index, s.name, s.kind) for s in steps] == [
        (0, "think-0", "think"),
        (1, "m", "milestone"),
        (2, "exec-2", "exec"),
        (3, "external-3", "external"),
    ]
    assert steps[1].milestone_weight == 1.0
    assert plan.scenarios[0].work_steps == 3
    assert plan.scenarios[0].iterations == 1


def test_vars_read_must_be_declared_or_extracted() -> None:
    steps = (
        '        - http: {url: "http://h:1/"}\n          extract: {tok: json.t}\n'
        '        - when: "{{ vars.tok and vars.base }}"\n          think: 1s\n'
    )
    load_plan_text(_scenario_doc(steps=steps, top="vars: {base: 1}\n"), cache=None)
    with pytest.raises(DslError, match=r'"vars\.base" is never set'):
        load_plan_text(_scenario_doc(steps=steps), cache=None)


def test_non_finite_duration_is_rejected() -> None:
    with pytest.raises(DslError, match="a duration is finite"):
        load_plan_text(_scenario_doc("      ramp: .inf\n"), cache=None)
