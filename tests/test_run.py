"""A Run end to end on the test's loop: leases onto real backends, milestones, thresholds,
abort-on-fail, cancel, pause/resume, --users, duration-bound and side-by-side scenarios."""

from __future__ import annotations

import asyncio
import sys

import pytest
from run_testkit import run_text, scenario, wait_until

from progressd.dsl import load_plan_text
from progressd.errors import StateError
from progressd.reports import Report
from progressd.runs import Run
from progressd.runs.backends import running_backends
from progressd.summary import decode_summary, encode_summary


def _shop(addresses: list[str], *, users: int = 6, iterations: int = 2) -> str:
    members = ", ".join(f'"{a}"' for a in addresses)
    return f"""
version: 2
name: shop
resources:
  ip-port-pool:
    backends:
      members: [{members}]
      health-check: {{kind: tcp, interval: 1s, timeout: 300ms}}
load:
  scenarios:
    - name: buyers
      users: {users}
      iterations: {iterations}
      resource_lease: {{pool: backends, per: user, release-on: "milestone:paid"}}
      steps:
        - name: home
          http: {{method: GET, url: "http://{{{{ lease.address }}}}/"}}
          expect: {{status: 200}}
        - name: login
          http: {{method: POST, url: "http://{{{{ lease.address }}}}/login"}}
          extract: {{token: json.token}}
        - milestone: logged-in
        - think: 1ms
        - name: buy
          when: "{{{{ vars.token }}}}"
          http:
            method: POST
            url: "http://{{{{ lease.address }}}}/buy"
            headers: {{Authorization: "Bearer {{{{ vars.token }}}}"}}
          expect: {{status: [200, 201]}}
        - milestone: paid
      thresholds:
        http_req_duration: "p95 < 2s"
        "http_req_duration{{step:buy}}": "max < 2s"
        errors: "rate < 0.01"
        checks: "rate > 0.99"
"""


async def test_run_leases_members_and_reports_the_summary() -> None:
    async with running_backends((0, 0, 0)) as backends:
        run, summary = await run_text(_shop([b.address for b in backends]))
    assert summary.state == "succeeded" and summary.passed
    assert summary.users == 6
    assert summary.requests == 6 * 2 * 3
    assert summary.progress == 1.0
    assert summary.milestones == {"logged-in": 6, "paid": 6}
    assert set(summary.thresholds.values()) == {True}
    assert "http_req_duration{step:buy}: max < 2s" in summary.thresholds
    # each iteration re-leases after "paid": requests spread over every member
    assert all(sum(b.counts.values()) > 0 for b in backends)
    assert sum(b.counts["/buy"] for b in backends) == 12
    assert decode_summary(encode_summary(summary)) == summary
    assert run.status == "succeeded"
    assert run._leases is not None and not run._leases.manager.leases.by_id


async def test_run_breached_threshold_fails_the_run() -> None:
    async with running_backends() as (backend,):
        steps = f'        - http: {{method: GET, url: "http://{backend.address}/slow?ms=30"}}\n'
        text = scenario(
            steps,
            users=2,
            scenario_extra='      thresholds: {http_req_duration: "p95 < 5ms"}',
        )
        run, summary = await run_text(text)
    assert summary.state == "failed"
    assert summary.thresholds == {"http_req_duration: p95 < 5ms": False}
    assert not summary.passed
    assert run.reason == "threshold failed: http_req_duration: p95 < 5ms"


async def test_run_abort_on_fail_threshold_stops_the_run_early() -> None:
    async with running_backends() as (backend,):
        steps = (
            f'        - http: {{method: GET, url: "http://{backend.address}/status/500"}}\n'
            "        - think: 20ms\n"
        )
        extra = '      thresholds: {errors: {threshold: "rate < 0.5", abort-on-fail: true}}'
        run, summary = await run_text(
            scenario(steps, users=2, bounds="iterations: 1000", scenario_extra=extra)
        )
    assert summary.state == "failed"
    assert summary.requests < 2000
    assert run.reason is not None and "abort-on-fail" in run.reason


async def test_run_cancel_ends_the_run_cancelled() -> None:
    run = Run(load_plan_text(scenario("        - think: 30s\n", users=3), cache=None))
    run.start()
    await asyncio.sleep(0)
    run.cancel("enough")
    async with asyncio.timeout(5):
        summary = await run.wait()
    assert summary.state == "cancelled"
    assert run.reason == "enough"
    assert run.runner.active == 0


async def test_run_pause_holds_users_and_resume_finishes() -> None:
    async with running_backends() as (backend,):
        steps = f'        - http: {{method: GET, url: "http://{backend.address}/"}}\n'
        run = Run(load_plan_text(scenario(steps, users=2, bounds="iterations: 40"), cache=None))
        run.start()
        await backend.wait_requests("/", 4)
        run.pause()
        await wait_until(lambda: not run.poller.running)
        held = backend.counts["/"]
        for _ in range(200):
            await asyncio.sleep(0)
        assert backend.counts["/"] <= held + 2  # at most the requests already in flight
        assert run.progress().state == "paused"
        run.resume()
        async with asyncio.timeout(10):
            summary = await run.wait()
    assert summary.state == "succeeded"
    assert backend.counts["/"] == 80


async def test_run_users_override_scales_users_and_work() -> None:
    run, summary = await run_text(scenario("        - think: 1ms\n", users=50), users=4)
    assert summary.users == 4
    assert run.plan.scenarios[0].work_total == 4
    assert summary.progress == 1.0


async def test_run_completions_run_in_batches_of_the_io_budget() -> None:
    async with running_backends((0,)) as (backend,):
        get = f'        - {{http: {{method: GET, url: "http://{backend.address}/"}}}}\n'
        text = scenario(
            get, users=40, bounds="iterations: 3", extra="progress: {poller: {io-budget: 8}}"
        )
        run = Run(load_plan_text(text, file="t.yaml", cache=None))
        ran: list[int] = []
        run.poller.add_iteration_hook(lambda now: ran.append(run.poller.statistics().handles_run))
        run.start()
        async with asyncio.timeout(20):
            summary = await run.wait()
    assert summary.state == "succeeded" and summary.requests == 120
    assert (run.poller.io_budget, run.poller.budget) == (8, 1024)
    # a hook sees the handles of the iterations before its own
    per_iteration = [b - a for a, b in zip([0, *ran], ran, strict=False) if b > a]
    assert per_iteration[0] == 40  # the users' starts: timers only, the whole budget
    assert max(per_iteration[1:]) <= 8  # completions queued: at most io-budget an iteration
    assert run.poller.statistics().handles_run == 40 + 120


async def test_run_duration_scenario_is_time_bound() -> None:
    steps = "        - think: 20ms\n"
    run, summary = await run_text(scenario(steps, users=3, bounds="duration: 200ms"))
    assert summary.state == "succeeded"
    assert 0.2 <= summary.duration_s < 2.0
    assert summary.progress == 1.0
    iterations = run.scenario_figures()[0].iterations
    assert 3 * 5 <= iterations <= 3 * 12


async def test_run_scenarios_side_by_side_keep_their_own_figures() -> None:
    async with running_backends() as (backend,):
        text = f"""
version: 2
name: two
load:
  scenarios:
    - name: readers
      users: 3
      iterations: 2
      steps:
        - http: {{method: GET, url: "http://{backend.address}/"}}
        - milestone: read
    - name: failers
      users: 2
      iterations: 1
      steps:
        - http: {{method: GET, url: "http://{backend.address}/status/500"}}
        - milestone: read
      thresholds: {{errors: "rate < 0.1"}}
"""
        run, summary = await run_text(text)
    assert set(summary.scenarios) == {"readers", "failers"}
    readers, failers = summary.scenarios["readers"], summary.scenarios["failers"]
    assert (readers.users, readers.requests, readers.errors) == (3, 6, 0)
    assert (failers.users, failers.requests, failers.errors) == (2, 2, 2)
    assert readers.milestones == {"read": 3} and failers.milestones == {"read": 2}
    assert summary.milestones == {"readers/read": 3, "failers/read": 2}
    assert summary.thresholds == {"failers/errors: rate < 0.1": False}
    assert summary.state == "failed"
    figures = run.scenario_figures()
    assert [f.finished for f in figures] == [3, 2]
    assert [f.iterations for f in figures] == [6, 2]
    assert [f.done for f in figures] == [6, 2]  # one work step per iteration
    assert readers.progress == 1.0 and failers.progress == 1.0


async def test_run_exec_step_runs_the_program_and_judges_its_exit_code() -> None:
    code = 'import sys; print(\\"progress: 1/1\\"); sys.exit({{ user.id }})'
    argv = f'["{sys.executable}", "-c", "{code}"]'
    steps = f"        - exec: {{argv: {argv}, timeout: 10s}}\n"
    run, summary = await run_text(scenario(steps, users=2))
    metrics = run.figures.metrics["s"]
    assert metrics.steps == 2
    assert metrics.errors_by_class == {"exec-exit-code": 1}
    assert metrics.exec.count == 2
    assert summary.errors == 1


async def test_run_start_twice_and_wait_before_start_are_refused() -> None:
    run = Run(load_plan_text(scenario("        - think: 1ms\n", users=1), cache=None))
    with pytest.raises(StateError, match="was not started"):
        await run.wait()
    run.start()
    with pytest.raises(StateError, match="starts once"):
        run.start()
    async with asyncio.timeout(5):
        await run.wait()


async def test_run_progress_reports_milestones_and_eta_shape() -> None:
    run = Run(
        load_plan_text(scenario("        - think: 1ms\n        - milestone: m\n"), cache=None)
    )
    before = run.progress()
    assert before.progress == 0.0 and before.eta_s is None
    run.start()
    async with asyncio.timeout(5):
        await run.wait()
    after = run.progress()
    assert after.state == "succeeded"
    assert after.progress == 1.0 and after.eta_s == 0.0
    assert after.scenarios[0].milestones == {"m": 2}


async def test_run_failed_member_rolls_its_holders_back_onto_a_healthy_one() -> None:
    async with running_backends((0, 0)) as (good, bad):
        text = f"""
version: 2
name: failover
resources:
  ip-port-pool:
    backends:
      members: ["{good.address}", "{bad.address}"]
      health-check: {{kind: tcp, interval: 50ms, timeout: 40ms, failures-before-critical: 1}}
load:
  scenarios:
    - name: s
      users: 6
      iterations: 1
      resource_lease: {{pool: backends, per: user, release-on: "milestone:done"}}
      steps:
        - {{name: first, http: {{method: GET, url: "http://{{{{ lease.address }}}}/"}}}}
        - milestone: started
        - think: 1s
        - {{name: second, http: {{method: GET, url: "http://{{{{ lease.address }}}}/health"}}}}
        - milestone: done
"""
        run = Run(load_plan_text(text, cache=None))
        run.start()
        async with asyncio.timeout(5):
            await wait_until(lambda: good.counts["/"] + bad.counts["/"] == 6)
            holders = bad.counts["/"]
            await bad.stop()
            summary = await run.wait()
    assert holders > 0
    assert summary.state == "succeeded"
    assert summary.rollbacks == holders
    assert summary.errors == 0
    assert good.counts["/health"] == 6 and bad.counts["/health"] == 0
    assert summary.milestones == {"started": 6, "done": 6}


async def test_run_graceful_stop_ends_a_duration_scenario_with_users_still_waiting() -> None:
    steps = '        - external: {key: "never-sent"}\n'
    extra = "      graceful-stop: 100ms"
    run, summary = await run_text(
        scenario(steps, users=3, bounds="duration: 100ms", scenario_extra=extra)
    )
    assert summary.state == "succeeded"
    assert 0.2 <= summary.duration_s < 1.5
    assert run.runner.active == 0


def _one_member(address: str, *, release: str, steps: str, users: int = 3) -> str:
    return f"""
version: 2
name: queue
resources:
  ip-port-pool:
    backends: {{members: ["{address}"], max-leases-per-member: 1}}
load:
  scenarios:
    - name: s
      users: {users}
      iterations: 1
      resource_lease: {{pool: backends, per: user, release-on: "{release}"}}
      steps:
{steps}"""


async def test_run_users_queued_for_a_lease_wait_for_it_then_send() -> None:
    async with running_backends() as (backend,):
        steps = (
            '        - {name: get, http: {method: GET, url: "http://{{ lease.address }}/"}}\n'
            "        - milestone: done\n"
        )
        run, summary = await run_text(_one_member(backend.address, release="milestone:done",
                                                  steps=steps))  # fmt: skip
    assert summary.state == "succeeded" and summary.errors == 0
    assert backend.counts["/"] == 3
    assert run.lease_waits is not None and run.lease_waits.granted_count == 2


async def test_run_step_fails_no_lease_when_none_comes_within_its_timeout() -> None:
    async with running_backends() as (backend,):
        steps = (
            '        - {name: get, http: {method: GET, url: "http://{{ lease.address }}/", '
            "timeout: 100ms}}\n"
            "        - think: 1s\n"
        )
        run, summary = await run_text(_one_member(backend.address, release="end", steps=steps,
                                                  users=2))  # fmt: skip
    assert backend.counts["/"] == 1
    assert run.figures.metrics["s"].errors_by_class == {"no-lease": 1}
    assert summary.errors == 1


async def test_run_lease_released_at_end_goes_to_the_next_queued_user() -> None:
    async with running_backends() as (backend,):
        steps = (
            '        - {name: get, http: {method: GET, url: "http://{{ lease.address }}/", '
            "timeout: 5s}}\n"
        )
        _, summary = await run_text(_one_member(backend.address, release="end", steps=steps))
    assert summary.state == "succeeded" and summary.errors == 0
    assert backend.counts["/"] == 3
    assert summary.duration_s < 2.0


async def test_run_exec_step_reading_the_lease_waits_for_it() -> None:
    async with running_backends() as (backend,):
        code = 'import sys; sys.exit(0 if sys.argv[1] == \\"{{ lease.address }}\\" else 3)'
        steps = (
            f'        - exec: {{argv: ["{sys.executable}", "-c", "{code}", '
            '"{{ lease.address }}"], timeout: 10s}\n'
        )
        run, summary = await run_text(_one_member(backend.address, release="end", steps=steps))
    assert summary.errors == 0
    assert run.figures.metrics["s"].steps == 3
    assert run.lease_waits is not None and run.lease_waits.granted_count == 2


async def test_run_external_step_keyed_by_the_lease_waits_for_it() -> None:
    async with running_backends() as (backend,):
        steps = '        - external: {key: "ready-{{ lease.address }}", timeout: 10s}\n'
        run = Run(load_plan_text(_one_member(backend.address, release="end", steps=steps)))
        run.start()
        key = f"ready-{backend.address}"
        async with asyncio.timeout(20):
            for row in range(3):  # one lease at a time: each user in turn gets it, then its key
                await wait_until(lambda: run.external.waiting == 1)
                assert run.lease_waits is not None and run.lease_waits.waiting == 2 - row
                assert run.deliver_reports([Report(key=key, user=row)]).matched == 1
            summary = await run.wait()
    assert summary.state == "succeeded" and summary.errors == 0
    assert run.figures.metrics["s"].steps == 3
    assert run.lease_waits.granted_count == 2


async def test_run_iteration_duration_is_timed_for_its_threshold() -> None:
    extra = '      thresholds: {iteration_duration: ["p95 < 40ms", "min > 45ms"]}'
    run, summary = await run_text(
        scenario("        - think: 50ms\n", users=2, bounds="iterations: 3", scenario_extra=extra)
    )
    histogram = run.figures.metrics["s"].iteration
    assert histogram.count == 6
    assert histogram.min >= 0.045 and histogram.max < 0.5
    assert summary.thresholds == {
        "iteration_duration: p95 < 40ms": False,
        "iteration_duration: min > 45ms": True,
    }


async def test_run_iteration_duration_of_http_iterations_includes_the_first() -> None:
    async with running_backends() as (backend,):
        steps = (
            f'        - http: {{method: GET, url: "http://{backend.address}/slow?ms=30"}}\n'
            "        - think: 30ms\n"
        )
        extra = '      thresholds: {iteration_duration: "min > 55ms"}'
        run, summary = await run_text(
            scenario(steps, users=2, bounds="iterations: 2", scenario_extra=extra)
        )
    assert run.figures.metrics["s"].iteration.count == 4
    assert summary.thresholds == {"iteration_duration: min > 55ms": True}
