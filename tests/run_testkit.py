"""Shared helpers for the run and step tests: scenario documents and running them to the end
against real backends on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from progressd.dsl import load_plan_text
from progressd.runs import Run
from progressd.summary import RunSummary


def scenario(
    steps: str,
    *,
    users: int = 2,
    bounds: str = "iterations: 1",
    extra: str = "",
    scenario_extra: str = "",
    name: str = "s",
) -> str:
    """A one-scenario document; ``steps`` is YAML indented by 8 spaces."""
    return f"""
version: 2
name: t
{extra}
load:
  scenarios:
    - name: {name}
      users: {users}
      {bounds}
{scenario_extra}
      steps:
{steps}
"""


async def run_text(text: str, **options: object) -> tuple[Run, RunSummary]:
    """Run the document ``text`` to its end (bounded at 20 s); the run and its summary."""
    run = Run(load_plan_text(text, file="t.yaml", cache=None), **options)  # type: ignore[arg-type]
    run.start()
    async with asyncio.timeout(20):
        summary = await run.wait()
    return run, summary


async def wait_until(condition: Callable[[], bool], *, turns: int = 100_000) -> None:
    """Yield to the loop (no sleep) until ``condition()`` holds."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")
