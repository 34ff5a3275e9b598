"""Leases bound to progress in a real Run: a ``ttl`` lease is renewed while its holder
progresses and expires only after ``ttl`` without progress (a stuck user frees its member)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from progressd.dsl import load_plan_text
from progressd.reports import Report
from progressd.runs import Run
from progressd.runs.backends import running_backends
from progressd.workbook import Field, Status


def _document(address: str, users: int, steps: str, ttl: str = "150ms") -> str:
    return f"""
version: 2
name: ttl
resources:
  ip-port-pool:
    backends:
      members: ["{address}"]
      max-leases-per-member: 1
load:
  scenarios:
    - name: holders
      users: {users}
      iterations: 1
      resource_lease: {{pool: backends, per: user, ttl: {ttl}}}
      steps:
{steps}
"""


async def _wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Poll ``condition`` on the run's real clock (leases expire in real time)."""
    for _ in range(int(seconds / 0.005)):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never held")


async def test_run_leases_progressing_user_keeps_its_ttl_lease() -> None:
    steps = '        - {name: first, http: {method: GET, url: "http://{{ lease.address }}/"}}\n'
    steps += "        - think: 40ms\n" * 10  # 400 ms of progress, well past the 150 ms ttl
    steps += '        - {name: last, http: {method: GET, url: "http://{{ lease.address }}/"}}\n'
    async with running_backends((0,)) as (backend,):
        run = Run(load_plan_text(_document(backend.address, 1, steps), cache=None))
        run.start()
        manager = run.resources
        assert manager is not None
        first = manager.leases.by_row[0].id
        await _wait_for(lambda: backend.counts["/"] >= 1)
        await asyncio.sleep(0)
        assert manager.leases.by_row[0].id == first
        async with asyncio.timeout(10):
            summary = await run.wait()
        stats = manager.statistics().leases
    assert summary.state == "succeeded"
    assert backend.counts["/"] == 2  # the last step still held the same lease
    assert stats.expiries_total == 0


async def test_run_leases_stuck_user_loses_its_lease_after_ttl() -> None:
    steps = '        - {name: use, http: {method: GET, url: "http://{{ lease.address }}/"}}\n'
    steps += '        - external: {key: "late-{{ user.id }}", timeout: 1h}\n'
    steps += '        - {name: after, http: {method: GET, url: "http://{{ lease.address }}/"}}\n'
    async with running_backends((0,)) as (backend,):
        run = Run(load_plan_text(_document(backend.address, 2, steps), cache=None))
        run.start()
        manager = run.resources
        assert manager is not None
        assert manager.leases.waiting(1)  # capacity 1: the second user queues
        await _wait_for(lambda: backend.counts["/"] >= 1)
        # user 0 is stuck on its external step: after ttl its lease expires, the member is
        # freed and the queued user 1 is granted it and sends its request
        await _wait_for(lambda: backend.counts["/"] >= 2)
        assert 0 not in manager.leases.by_row
        assert manager.statistics().leases.expiries_total >= 1
        await _wait_for(lambda: manager.statistics().leases.expiries_total >= 2)
        member = manager.pools["backends"].members[backend.address]
        assert member.holders == 0
        # user 0 moves again: it asks for a lease again, gets the free member and finishes
        run.deliver_reports([Report(key="late-0")])
        await _wait_for(lambda: int(run.workbook.get(0, Field.STATUS)) == Status.DONE)
        assert backend.counts["/"] == 3
        run.cancel()
        async with asyncio.timeout(10):
            await run.wait()


async def test_run_leases_queued_users_show_waiting_for_resource() -> None:
    steps = '        - {name: use, http: {method: GET, url: "http://{{ lease.address }}/"}}\n'
    steps += '        - external: {key: "go-{{ user.id }}", timeout: 1h}\n'
    text = _document("127.0.0.1:1", 3, steps).replace("ttl: 150ms", "release-on: end")
    async with running_backends((0,)) as (backend,):
        text = text.replace("127.0.0.1:1", backend.address)
        run = Run(load_plan_text(text, cache=None))
        run.start()
        wb = run.workbook

        def status(row: int) -> Status:
            return Status(int(wb.get(row, Field.STATUS)))

        # the backend counts a request before the client has read its response: wait for the
        # user to reach its external step, not for the request
        await _wait_for(lambda: status(0) == Status.WAITING)
        assert backend.counts["/"] == 1
        run.bus.flush(run.clock.now(), force=True)
        statuses = [status(row) for row in range(3)]
        assert statuses == [Status.WAITING, *[Status.WAITING_FOR_RESOURCE] * 2]
        progress = run.progress()
        assert progress.waiting_for_resource == 2
        assert progress.scenarios[0].waiting_for_resource == 2
        assert progress.active == 3
        # user 0 ends: its lease goes to user 1, which turns active and sends its request
        run.deliver_reports([Report(key="go-0")])
        await _wait_for(lambda: status(1) == Status.WAITING)  # on its external step
        assert backend.counts["/"] == 2
        assert status(2) == Status.WAITING_FOR_RESOURCE
        assert run.progress().waiting_for_resource == 1
        run.deliver_reports([Report(key="go-1")])
        await _wait_for(lambda: backend.counts["/"] >= 3)
        run.deliver_reports([Report(key="go-2")])
        async with asyncio.timeout(10):
            summary = await run.wait()
    assert summary.state == "succeeded"
    assert run.progress().waiting_for_resource == 0
