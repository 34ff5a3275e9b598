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


def leasing_scenario(members: str) -> str:
    """Two users, each leasing a member of the ``backends`` pool (``members`` is a YAML flow
    list body), GET its address, then wait up to 30 s on the ``leave`` external key."""
    return f"""\
version: 2
name: leasing
resources:
  ip-port-pool:
    backends:
      members: [{members}]
load:
  scenarios:
    - name: l
      users: 2
      iterations: 1
      resource_lease: {{pool: backends, per: user}}
      steps:
        - {{name: home, http: {{method: GET, url: "http://{{{{ lease.address }}}}/"}}}}
        - milestone: browsed
        - external: {{key: leave, timeout: 30s}}
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
