from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from rich.console import Console

from progressd.summary import (
    RunSummary,
    ScenarioSummary,
    decode_summary,
    encode_summary,
    render_summary,
)


def _scenario(users: int, requests: int, errors: int) -> ScenarioSummary:
    return ScenarioSummary(
        duration_s=12.5,
        users=users,
        progress=1.0,
        requests=requests,
        errors=errors,
        rollbacks=1,
        milestones={"logged-in": users},
        thresholds={"errors: rate < 0.01": errors == 0},
        eta_s=0.0,
    )


def _summary(**changes: object) -> RunSummary:
    summary = RunSummary(
        run="r-42",
        name="checkout",
        state="succeeded",
        duration_s=75.25,
        users=30,
        progress=1.0,
        requests=3000,
        errors=3,
        rollbacks=2,
        milestones={"logged-in": 30, "paid": 27},
        thresholds={"http_req_duration: p95 < 500ms": True, "errors: rate < 0.01": True},
        scenarios={"browse": _scenario(20, 2000, 0), "buy": _scenario(10, 1000, 3)},
        eta_s=0.0,
    )
    return msgspec.structs.replace(summary, **changes)


def test_summary_round_trips_through_json() -> None:
    summary = _summary()
    assert decode_summary(encode_summary(summary)) == summary
    assert decode_summary(encode_summary(summary).decode()) == summary


def test_summary_json_has_the_documented_top_level_keys() -> None:
    data = json.loads(encode_summary(_summary(eta_s=None)))
    for key in (
        "run",
        "state",
        "duration_s",
        "users",
        "progress",
        "requests",
        "errors",
        "rollbacks",
        "milestones",
        "thresholds",
        "scenarios",
        "eta_s",
    ):
        assert key in data
    assert data["eta_s"] is None
    assert data["scenarios"]["buy"]["milestones"] == {"logged-in": 10}


def test_summary_minimal_object_decodes_with_defaults() -> None:
    summary = decode_summary(
        b'{"run": "r1", "state": "running", "duration_s": 1.5, "users": 3, "progress": 0.5,'
        b' "requests": 10, "errors": 0, "rollbacks": 0}'
    )
    assert summary.scenarios == {}
    assert summary.eta_s is None
    assert not summary.finished


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(extra=1), r"unknown field `extra`"),
        (lambda d: d["scenarios"]["buy"].update(reqs=1), "unknown field `reqs`"),
        (lambda d: d.update(state="done"), r"Invalid enum value 'done' - at `\$.state`"),
        (lambda d: d.update(progress=1.5), r"Expected `float` <= 1.0 - at `\$.progress`"),
        (
            lambda d: d["scenarios"]["buy"].update(users=-1),
            r">= 0 - at `\$.scenarios\[...\].users`",
        ),
        (lambda d: d.pop("run"), "missing required field `run`"),
    ],
)
def test_summary_rejects_unknown_and_invalid_fields(
    mutate: Callable[[dict[str, Any]], object], message: str
) -> None:
    data = json.loads(encode_summary(_summary()))
    mutate(data)
    with pytest.raises(ValueError, match=message):
        decode_summary(json.dumps(data).encode())


def test_summary_passed_needs_success_and_every_threshold() -> None:
    assert _summary().passed
    failed_threshold = {"errors: rate < 0.01": False}
    assert not _summary(thresholds=failed_threshold).passed
    assert not _summary(state="cancelled").passed
    assert _summary(state="interrupted").finished


def _render(summary: RunSummary) -> str:
    console = Console(file=io.StringIO(), width=120, color_system=None, legacy_windows=False)
    console.print(render_summary(summary))
    output = console.file
    assert isinstance(output, io.StringIO)
    return output.getvalue()


def test_render_summary_shows_scenarios_totals_milestones_and_thresholds() -> None:
    text = _render(_summary(thresholds={"errors: rate < 0.01": False}, duration_s=3725.0))
    assert "run r-42 (checkout)" in text
    for needle in ("browse", "buy", "total", "3,000", "1h02m05s", "12.5s", "100.0%"):
        assert needle in text
    assert "paid" in text
    assert "90.0%" in text  # 27 of 30 users reached "paid"
    assert "✗" in text
    assert "errors: rate < 0.01" in text
    assert "1 threshold(s) failed" in text


def test_render_summary_single_scenario_without_total_or_eta() -> None:
    text = _render(
        _summary(
            state="running",
            eta_s=None,
            milestones={},
            thresholds={},
            scenarios={"browse": _scenario(20, 2000, 0)},
        )
    )
    assert "total" not in text
    assert "milestones" not in text
    assert "running" in text
