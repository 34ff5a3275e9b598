"""The DSL's compiled plans plug into the resource manager as they are (the config seam)."""

from __future__ import annotations

from progressd.clock import FakeClock
from progressd.dsl import load_plan_text
from progressd.resources import (
    FakeScheduler,
    LeaseRequest,
    RecordingBinding,
    ResourceManager,
)

DOCUMENT = """
version: 2
name: checkout
resources:
  ip-port-pool:
    backends:
      members: ["127.0.0.1:18081-18083"]
      max-leases-per-member: 1
      health-check: {kind: http, path: /healthz, interval: 1s, timeout: 300ms,
                     successes-before-passing: 2, failures-before-critical: 3,
                     on-failure: release}
load:
  scenarios:
    - name: browse-and-buy
      users: 4
      iterations: 1
      priority: 5
      resource_lease: {pool: backends, per: user, ttl: 30s, release-on: "milestone:paid"}
      steps:
        - {name: home, http: {method: GET, url: "http://{{ lease.address }}/"}}
        - milestone: paid
"""


def test_dsl_plans_drive_pools_and_leases() -> None:
    plan = load_plan_text(DOCUMENT, cache=None)
    clock = FakeClock()
    binding = RecordingBinding()
    manager = ResourceManager(clock, FakeScheduler(clock), binding)
    for pool_plan in plan.pools:
        manager.add_pool(pool_plan, run="run-1")
    scenario = plan.scenario("browse-and-buy")
    assert scenario.lease is not None
    request = LeaseRequest.from_config(
        scenario.lease, scenario=scenario.name, priority=scenario.priority
    )
    assert (request.ttl, request.release_on, request.priority) == (30.0, "paid", 5)
    leases = [manager.acquire(row, request) for row in range(scenario.users)]
    assert [lease.member.address for lease in leases if lease] == [
        "127.0.0.1:18081",
        "127.0.0.1:18082",
        "127.0.0.1:18083",
    ]
    assert manager.leases.waiting(3)  # max-leases-per-member: 1
    assert manager.member_records("backends")[0].inherited_class == "health"  # priority 5
    manager.on_milestone(0, "paid")
    assert binding.leases.keys() == {1, 2, 3}
    (pool,) = manager.pool_records()
    assert (pool.run, pool.check, pool.on_failure) == ("run-1", "http", "release")
    manager.record_result("backends", "127.0.0.1:18082", "passing")  # first check
    for _ in range(2):
        manager.record_result("backends", "127.0.0.1:18082", "critical")
    assert 1 in binding.leases  # failures-before-critical: 3
    manager.record_result("backends", "127.0.0.1:18082", "critical")
    assert 1 not in binding.leases and manager.leases.waiting(1)  # released, nothing free
    assert binding.rollbacks == []
