from __future__ import annotations

import io
import re
import textwrap
from pathlib import Path

import pytest

from progressd.cli import main
from progressd.dsl import HttpSpec, ThinkSpec, check_files, load_plan, load_plan_text

EXAMPLES = sorted((Path(__file__).parent.parent / "config" / "examples").glob("*.yaml"))
HTTP = str(Path(__file__).parent.parent / "config" / "examples" / "http_scenario.yaml")
WORKFLOW = str(Path(__file__).parent.parent / "config" / "examples" / "workflow.yaml")


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_passes_check(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr()
    assert out.err == ""
    assert out.out.startswith(f"{path}: ok: version 2, ")


def test_examples_include_http_and_workflow() -> None:
    assert {p.name for p in EXAMPLES} >= {"http_scenario.yaml", "workflow.yaml"}


def test_http_example_plan_matches_the_document() -> None:
    plan = load_plan(HTTP)
    assert plan.pool("backends").members == (
        "127.0.0.1:18081",
        "127.0.0.1:18082",
        "127.0.0.1:18083",
    )
    check = plan.pool("backends").health_check
    assert check is not None
    assert (check.kind, check.interval_s, check.timeout_s, check.on_failure) == (
        "tcp",
        1.0,
        0.3,
        "rollback",
    )
    scenario = plan.scenario("browse-and-buy")
    assert (scenario.users, scenario.ramp_s, scenario.iterations) == (1000, 10.0, 3)
    assert scenario.milestones == ("logged-in", "paid")
    weights = [s.milestone_weight for s in scenario.steps if s.is_milestone]
    assert weights == pytest.approx([1 / 3, 2 / 3])
    assert scenario.work_steps == 4
    assert scenario.work_per_user == 12
    assert scenario.work_total == 12_000
    assert scenario.lease is not None
    assert (scenario.lease.release_on, scenario.lease.release_milestone) == ("milestone", "paid")
    think = scenario.steps[3].spec
    assert isinstance(think, ThinkSpec)
    assert (think.min_s, think.max_s) == pytest.approx((0.05, 0.15))
    buy = scenario.step("buy")
    assert isinstance(buy.spec, HttpSpec)
    assert buy.when is not None
    assert buy.when.fields == ("vars.token",)
    assert buy.spec.url.fields == ("lease.address", "vars.basket")
    assert buy.spec.expect_status == (200, 201)
    assert [t.metric for t in scenario.thresholds] == ["http_req_duration", "errors", "checks"]
    assert scenario.thresholds[2].abort_on_fail is True


def test_workflow_example_has_exec_and_external_steps() -> None:
    plan = load_plan(WORKFLOW)
    kinds = [step.kind for step in plan.scenarios[0].steps]
    assert kinds == ["exec", "milestone", "exec", "milestone", "external", "milestone"]
    assert plan.progress.sampling.mode == "aggregated"
    assert plan.progress.sampling.window_s == 5.0
    assert plan.timeline is not None
    assert plan.registers is not None
    assert len(plan.registers.stakeholders) == 2


def test_check_files_reports_every_file_and_fails_on_any_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 2\nname: x\nload:\n  scenarios:\n    - name: s\n      users: -1\n")
    out, err = io.StringIO(), io.StringIO()
    assert check_files([HTTP, str(bad)], out=out, err=err) == 1
    assert out.getvalue().count("ok: version 2") == 1
    assert err.getvalue().startswith(f"{bad}:6:14: load.scenarios[0].users: expected an integer")


def test_check_summary_counts(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert check_files([HTTP], out=out, err=err) == 0
    assert out.getvalue() == (
        f"{HTTP}: ok: version 2, 1 scenario, 1000 users, 6 steps, 2 milestones\n"
    )


def _doc_blocks() -> list[str]:
    text = (Path(__file__).parent.parent / "docs" / "dsl.md").read_text()
    return re.findall(r"```yaml\n(.*?)```", text, re.DOTALL)


def test_docs_full_examples_load() -> None:
    full = [b for b in _doc_blocks() if b.startswith(("version: 2", "name: legacy"))]
    assert len(full) == 2
    for block in full:
        load_plan_text(block, cache=None)


@pytest.mark.parametrize("start", ["steps:", "thresholds:", "resource_lease:", "timeline:"])
def test_docs_fragment_examples_load(start: str) -> None:
    (block,) = [b for b in _doc_blocks() if b.startswith(start)]
    body = textwrap.indent(block, "      ")
    steps = (
        "" if start == "steps:" else "      steps: [{name: login, think: 1s}, {milestone: paid}]\n"
    )
    if start == "timeline:":
        doc = f"version: 2\nname: d\n{block}load:\n  scenarios:\n    - name: s\n{steps}"
    else:
        doc = (
            "version: 2\nname: d\nresources: {ip-port-pool: {backends: {members: [h:1]}}}\n"
            f"load:\n  scenarios:\n    - name: s\n{steps}{body}"
        )
    load_plan_text(doc, cache=None)
