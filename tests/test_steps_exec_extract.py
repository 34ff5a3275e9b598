"""``extract`` on exec steps: stdout read as JSON into the user's variables, through real runs
of real subprocesses (``sh -c``)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from run_testkit import run_text, scenario

from progressd.dsl import ExecSpec, load_plan
from progressd.reports import Report
from progressd.runs import Run
from progressd.steps.exec import EXTRACT_STDOUT_MAX
from progressd.workbook import Field

pytestmark = pytest.mark.integration

WORKFLOW = Path(__file__).parent.parent / "config" / "examples" / "workflow.yaml"


def _steps(script: str, extract: str = "{rows: json.rows}") -> str:
    """An exec step running ``script`` with ``extract``, then one guarded by ``vars.rows``."""
    return (
        f"        - name: count\n"
        f"          exec: {{argv: [sh, -c, {json.dumps(script)}], timeout: 10s}}\n"
        f"          extract: {extract}\n"
        f"        - name: use\n"
        f'          when: "{{{{ vars.rows > 0 }}}}"\n'
        f"          exec: {{argv: [sh, -c, 'exit 0'], timeout: 10s}}\n"
    )


async def test_exec_extract_sets_the_variable_and_the_guarded_step_runs() -> None:
    script = 'echo \'{"rows": {{ user.id }}, "name": "shard"}\''
    run, summary = await run_text(scenario(_steps(script), users=3))
    assert summary.errors == 0, run.figures.metrics["s"].errors_by_class
    assert [run.workbook.get_cold(row, Field.VARS) for row in range(3)] == [
        {"rows": 0},
        {"rows": 1},
        {"rows": 2},
    ]
    metrics = run.figures.metrics["s"]
    assert metrics.step_latency["use"].count == 2  # user 0 extracted 0 rows: skipped


async def test_exec_extract_reads_nested_paths_stdout_and_exit_code() -> None:
    script = "printf '%s\\n' '{\"a\": {\"rows\": [4, 5]}}'"
    extract = "{rows: 'json.a.rows[1]', raw: stdout, code: exit_code}"
    run, summary = await run_text(scenario(_steps(script, extract), users=1))
    assert summary.errors == 0, run.workbook.get_cold(0, Field.ERROR_TEXT)
    assert run.workbook.get_cold(0, Field.VARS) == {
        "rows": 5,
        "raw": '{"a": {"rows": [4, 5]}}',
        "code": 0,
    }


async def test_exec_extract_with_progress_lines_mixed_in() -> None:
    script = "echo 'progress: 1/2'; echo '{\"rows\":'; echo 'progress: 2/2'; echo ' 7}'"
    run, summary = await run_text(scenario(_steps(script), users=2))
    assert summary.errors == 0, run.workbook.get_cold(0, Field.ERROR_TEXT)
    assert run.workbook.get_cold(0, Field.VARS) == {"rows": 7}
    assert run.figures.metrics["s"].step_latency["use"].count == 2


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("echo 'rows: 3'", "count: extract rows: stdout is not JSON (JSON is malformed"),
        ("echo", "count: extract rows: stdout is not JSON (Input data was truncated)"),
        ("echo '{\"count\": 3}'", "count: extract rows: json.rows is not in stdout"),
    ],
)
async def test_exec_extract_fails_the_step_by_class_naming_the_path(
    script: str, message: str
) -> None:
    run, summary = await run_text(scenario(_steps(script), users=2))
    metrics = run.figures.metrics["s"]
    assert metrics.errors_by_class == {"extract": 2}
    assert summary.errors == 2
    error = run.workbook.get_cold(0, Field.ERROR_TEXT)
    assert isinstance(error, str)
    assert error.startswith(message)
    assert "json.rows" in error
    assert run.workbook.get_cold(0, Field.VARS) is None
    assert "use" not in metrics.step_latency or metrics.step_latency["use"].count == 0


async def test_exec_extract_fails_when_stdout_exceeds_its_limit() -> None:
    script = f"head -c {EXTRACT_STDOUT_MAX + 1} /dev/zero | tr '\\\\0' x"
    run, summary = await run_text(scenario(_steps(script), users=1))
    assert summary.errors == 1
    assert run.figures.metrics["s"].errors_by_class == {"extract": 1}
    error = run.workbook.get_cold(0, Field.ERROR_TEXT)
    assert error == "count: extract rows: stdout is longer than 1 MiB, the most extract reads"


async def test_exec_extract_of_the_workflow_example_runs_its_transform_step() -> None:
    plan = load_plan(str(WORKFLOW))
    extract = plan.scenarios[0].steps[0].spec
    assert isinstance(extract, ExecSpec)
    assert extract.extract == (("rows", "json.rows"),)
    run = Run(plan, users=2)
    run.deliver_reports(Report(key=f"approve-orders-{row}", user=row) for row in range(2))
    run.start()
    async with asyncio.timeout(20):
        summary = await run.wait()
    assert summary.state == "succeeded"
    assert summary.milestones == {"extracted": 2, "transformed": 2, "published": 2}
    assert run.workbook.get_cold(0, Field.VARS) == {"rows": 100}
    assert run.figures.metrics["shards"].step_latency["transform"].count == 2
