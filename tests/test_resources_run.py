"""Issue 7's signature behaviour end to end: a Run on three real backends, one killed while
users hold it. Its holders roll back to their last milestone, re-lease a healthy member and
finish; the run succeeds and every user reaches every milestone."""

from __future__ import annotations

import asyncio

import pytest
from run_testkit import wait_until

from progressd.dsl import load_plan_text
from progressd.runs import Run
from progressd.runs.backends import running_backends

pytestmark = pytest.mark.integration

USERS = 30


def _document(addresses: list[str], on_failure: str = "rollback") -> str:
    members = ", ".join(f'"{a}"' for a in addresses)
    return f"""
version: 2
name: kill-one
resources:
  ip-port-pool:
    backends:
      members: [{members}]
      health-check: {{kind: http, path: /health, interval: 100ms, timeout: 100ms,
                     failures-before-critical: 1, on-failure: {on_failure}}}
load:
  scenarios:
    - name: shoppers
      users: {USERS}
      iterations: 4
      resource_lease: {{pool: backends, per: user}}
      steps:
        - {{name: home, http: {{method: GET, url: "http://{{{{ lease.address }}}}/"}}}}
        - milestone: browsed
        - think: 40ms
        - {{name: again, http: {{method: GET, url: "http://{{{{ lease.address }}}}/"}}}}
        - milestone: done
"""


async def test_killed_backend_costs_only_the_work_since_the_last_milestone() -> None:
    async with running_backends((0, 0, 0)) as backends:
        run = Run(load_plan_text(_document([b.address for b in backends]), cache=None))
        run.start()
        victim = backends[1]
        await wait_until(lambda: victim.counts["/"] >= USERS // 3)
        leases = run._leases
        assert leases is not None
        holders = {
            row for row, lease in leases.manager.leases.by_row.items()
            if lease.member.port == victim.port
        }  # fmt: skip
        assert holders
        await victim.stop()
        async with asyncio.timeout(20):
            summary = await run.wait()
        stats = leases.manager.statistics()
        totals = run.workbook.totals()
        per_user = run.plan.scenarios[0].work_per_user
    assert summary.state == "succeeded"
    assert summary.users == USERS
    assert summary.milestones == {"browsed": USERS, "done": USERS}
    assert summary.progress == 1.0
    assert stats.rollbacks_triggered_total >= 1
    assert holders <= set(range(USERS))
    assert summary.rollbacks == stats.rows_rolled_back_total >= len(holders)
    victim_state = {p.name: p.member_states for p in stats.pools}["backends"]
    assert victim_state["critical"] == 1
    assert stats.leases.active == 0  # every lease was released at the end
    # all the work got done, and a rollback undid at most the two work steps (think, again)
    # that separate two milestones: nothing before a user's last milestone was lost
    assert per_user is not None and totals.done_work == USERS * per_user
    assert totals.rollbacks >= len(holders)
    assert totals.rework <= 2 * totals.rollbacks


async def test_killed_backend_with_abort_fails_the_run() -> None:
    async with running_backends((0, 0, 0)) as backends:
        text = _document([b.address for b in backends], on_failure="abort")
        run = Run(load_plan_text(text, cache=None))
        run.start()
        victim = backends[0]
        await wait_until(lambda: victim.counts["/"] >= 3)
        await victim.stop()
        async with asyncio.timeout(20):
            summary = await run.wait()
    assert summary.state == "failed"
    assert run.reason is not None and f"{victim.address} critical" in run.reason
