"""Pools from the daemon config, shared by every run: two runs lease from one pool of real
backends through the ``RunRouter``; the DSL accepts an undeclared pool only when the daemon
passes its shared pool names."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from progressd.config import parse_config
from progressd.dsl import load_plan_text
from progressd.errors import DslError
from progressd.reports import Report
from progressd.runs.backends import running_backends
from progressd.runs.manager import RunManager
from progressd.runs.shared import SharedPools
from progressd.workbook import Field, Status

SCENARIO = """
version: 2
name: shared
load:
  scenarios:
    - name: s
      users: 1
      iterations: 1
      resource_lease: {pool: backends, per: user}
      steps:
        - {name: home, http: {method: GET, url: "http://{{ lease.address }}/"}}
        - milestone: browsed
        - external: {key: leave, timeout: 30s}
"""


def _pools(address: str) -> SharedPools:
    text = f'[pools.backends]\nmembers = ["{address}"]\nmax-leases-per-member = 1\n'
    plans = parse_config(text, source="p.toml").pool_plans()
    return SharedPools(plans, asyncio.get_running_loop())


async def _wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.005)):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never held")


def test_shared_pools_undeclared_pool_is_rejected_without_the_daemon() -> None:
    with pytest.raises(DslError, match=r'unknown pool "backends"; .* \[pools\.NAME\] in the'):
        load_plan_text(SCENARIO, cache=None)
    with pytest.raises(DslError, match=r'unknown pool "backends".*expected one of: other'):
        load_plan_text(SCENARIO, cache=None, shared_pools={"other"})
    plan = load_plan_text(SCENARIO, cache=None, shared_pools={"backends"})
    lease = plan.scenarios[0].lease
    assert plan.pools == () and lease is not None and lease.pool == "backends"


async def test_shared_pools_two_runs_lease_one_member_in_turn() -> None:
    async with running_backends((0,)) as (backend,):
        shared = _pools(backend.address)
        shared.start()
        manager = RunManager()
        manager.shared_pools = shared
        plan = load_plan_text(SCENARIO, cache=None, shared_pools=manager.shared_pool_names)
        first = manager.submit(plan)
        second = manager.submit(plan)
        await _wait_for(lambda: backend.counts["/"] >= 1)
        await _wait_for(
            lambda: int(second.workbook.get(0, Field.STATUS)) == Status.WAITING_FOR_RESOURCE
        )
        (pool,) = manager.pools()
        assert (pool.name, pool.run, pool.leases_active, pool.waiters) == ("backends", None, 1, 1)
        (lease,) = manager.leases()
        assert (lease.run, lease.rows, lease.member) == (first.id, (0,), backend.address)
        assert manager.leases(second.id) == []
        first.deliver_reports([Report(key="leave")])
        await _wait_for(lambda: backend.counts["/"] >= 2)  # the member went to the other run
        (lease,) = manager.leases()
        assert (lease.run, lease.rows) == (second.id, (0,))
        second.deliver_reports([Report(key="leave")])
        async with asyncio.timeout(10):
            summaries = [await first.wait(), await second.wait()]
        stats = shared.manager.statistics().leases
        await shared.close()
    assert [s.state for s in summaries] == ["succeeded", "succeeded"]
    assert [s.milestones for s in summaries] == [{"browsed": 1}, {"browsed": 1}]
    assert (stats.grants_total, stats.active, stats.waiters) == (2, 0, 0)


async def test_shared_pools_a_declared_pool_hides_the_shared_one() -> None:
    async with running_backends((0, 0)) as (mine, theirs):
        shared = _pools(theirs.address)
        manager = RunManager()
        manager.shared_pools = shared
        text = SCENARIO.replace(
            "load:",
            f'resources:\n  ip-port-pool:\n    backends: {{members: ["{mine.address}"]}}\nload:',
        )
        run = manager.submit(load_plan_text(text, cache=None, shared_pools={"backends"}))
        await _wait_for(lambda: mine.counts["/"] >= 1)
        run.deliver_reports([Report(key="leave")])
        async with asyncio.timeout(10):
            summary = await run.wait()
        await shared.close()
    assert summary.state == "succeeded"
    assert theirs.counts["/"] == 0
    assert shared.manager.statistics().leases.grants_total == 0
