"""The external step: users wait for reports sent with a key, through the run's mailbox."""

from __future__ import annotations

import asyncio

from run_testkit import scenario, wait_until

from progressd.dsl import load_plan_text
from progressd.reports import Report
from progressd.runs import Run
from progressd.workbook import Field

STEPS = """\
        - name: build
          external: {key: "build-{{ user.id }}", timeout: 5s}
        - milestone: built
"""


def _run(text: str) -> Run:
    return Run(load_plan_text(text, file="t.yaml", cache=None))


async def test_external_step_completes_each_user_with_its_report_and_payload() -> None:
    run = _run(scenario(STEPS, users=3))
    run.start()
    await wait_until(lambda: run.external.waiting == 3)
    count = run.deliver_reports(
        Report(key=f"build-{row}", user=row, payload={"artifact": row}) for row in range(3)
    )
    assert count.matched == 3
    async with asyncio.timeout(5):
        summary = await run.wait()
    assert summary.state == "succeeded"
    assert summary.milestones == {"built": 3}
    assert [run.workbook.get_cold(row, Field.PAYLOAD) for row in range(3)] == [
        {"artifact": 0},
        {"artifact": 1},
        {"artifact": 2},
    ]


async def test_external_step_progress_report_keeps_the_user_waiting() -> None:
    run = _run(scenario(STEPS, users=1))
    run.start()
    await wait_until(lambda: run.external.waiting == 1)
    run.deliver_reports([Report(key="build-0", user=0, done=3, total=10)])
    await asyncio.sleep(0)
    assert run.external.waiting == 1
    run.deliver_reports([Report(key="build-0", user=0, done=10, total=10)])
    async with asyncio.timeout(5):
        summary = await run.wait()
    assert summary.milestones == {"built": 1}


async def test_external_step_report_sent_before_the_user_waits_is_kept() -> None:
    steps = '        - external: {key: "deploy", timeout: 5s}\n'
    run = _run(scenario(steps, users=2))
    run.deliver_reports([Report(key="deploy", user=0), Report(key="deploy", user=1)])
    run.start()
    async with asyncio.timeout(5):
        summary = await run.wait()
    assert summary.state == "succeeded"
    assert summary.errors == 0


async def test_external_step_timeout_fails_the_step_by_class() -> None:
    steps = '        - external: {key: "never", timeout: 50ms}\n'
    run = _run(scenario(steps, users=2))
    run.start()
    async with asyncio.timeout(5):
        summary = await run.wait()
    assert summary.errors == 2
    assert run.figures.metrics["s"].errors_by_class == {"external-timeout": 2}
    assert run.external.waiting == 0
