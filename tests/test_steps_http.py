"""The http step against real shop backends on 127.0.0.1: what is sent, what is extracted,
``when:`` guards, expectations, and failures counted by class."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from run_testkit import run_text, scenario

from progressd.dsl import StepPlan, load_plan_text
from progressd.errors import StateError
from progressd.http import HttpClient
from progressd.http.client import parse_address
from progressd.runner import StepOutcome
from progressd.runs.backends import running_backends
from progressd.steps import HttpStepExecutor, extract_path
from progressd.steps.metrics import ScenarioMetrics
from progressd.workbook import Field


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_http_step_sends_one_request_per_user_and_iteration() -> None:
    async with running_backends() as (backend,):
        steps = f'        - http: {{method: GET, url: "http://{backend.address}/"}}\n'
        run, summary = await run_text(scenario(steps, users=5, bounds="iterations: 2"))
    assert backend.counts["/"] == 10
    assert summary.requests == 10
    assert summary.errors == 0
    assert summary.state == "succeeded"
    metrics = run.figures.metrics["s"]
    assert metrics.http_latency().count == 10
    assert metrics.step_latency["http-0"].count == 10


async def test_http_step_extracts_json_and_later_steps_use_it() -> None:
    async with running_backends() as (backend,):
        base = f"http://{backend.address}"
        steps = f"""\
        - name: login
          http: {{method: POST, url: "{base}/login", json: {{user: "user-{{{{ user.id }}}}"}}}}
          extract: {{token: json.token, who: json.user, code: status}}
        - name: buy
          http:
            method: POST
            url: "{base}/buy?items=2"
            headers: {{Authorization: "Bearer {{{{ vars.token }}}}"}}
          expect: {{status: 200}}
"""
        run, summary = await run_text(scenario(steps, users=3))
    assert backend.counts["/buy"] == 3
    assert summary.errors == 0
    assert summary.thresholds == {}
    for row in range(3):
        variables = run.workbook.get_cold(row, Field.VARS)
        assert isinstance(variables, dict)
        assert variables["who"] == f"user-{row}"
        assert variables["code"] == 200
        assert str(variables["token"]).startswith("tok-")


async def test_http_step_when_guard_skips_the_step_without_the_variable() -> None:
    async with running_backends() as (backend,):
        base = f"http://{backend.address}"
        steps = f"""\
        - name: login
          http: {{method: POST, url: "{base}/login"}}
          extract: {{token: json.missing}}
        - name: buy
          when: "{{{{ vars.token }}}}"
          http: {{method: POST, url: "{base}/buy"}}
"""
        run, summary = await run_text(scenario(steps, users=4))
    assert backend.counts["/login"] == 4
    assert backend.counts["/buy"] == 0
    assert run.runner.statistics().steps_skipped == 4
    assert run.figures.metrics["s"].errors_by_class == {"extract": 4}
    assert summary.errors == 4


async def test_http_step_unexpected_status_is_a_status_error_and_a_failed_check() -> None:
    async with running_backends() as (backend,):
        steps = (
            f'        - http: {{method: GET, url: "http://{backend.address}/status/503"}}\n'
            "          expect: {status: [200, 201]}\n"
        )
        run, summary = await run_text(scenario(steps, users=3))
    metrics = run.figures.metrics["s"]
    assert metrics.errors_by_class == {"status": 3}
    assert (metrics.checks, metrics.checks_passed) == (3, 0)
    assert metrics.http_failed == 3
    assert summary.errors == 3
    error = run.workbook.get_cold(0, Field.ERROR_TEXT)
    assert error == "http-0: status 503, expected 200, 201"


async def test_http_step_without_expect_fails_on_4xx_and_passes_3xx() -> None:
    async with running_backends() as (backend,):
        base = f"http://{backend.address}"
        steps = (
            f'        - http: {{method: GET, url: "{base}/status/404"}}\n'
            f'        - http: {{method: GET, url: "{base}/status/304"}}\n'
        )
        run, _ = await run_text(scenario(steps, users=2))
    metrics = run.figures.metrics["s"]
    assert metrics.errors_by_class == {"status": 2}
    assert metrics.steps == 4
    assert metrics.checks == 0


async def test_http_step_slower_than_expected_is_an_expectation_error() -> None:
    async with running_backends() as (backend,):
        steps = (
            f'        - http: {{method: GET, url: "http://{backend.address}/slow?ms=60"}}\n'
            "          expect: {status: 200, latency: 10ms}\n"
        )
        run, _ = await run_text(scenario(steps, users=2))
    metrics = run.figures.metrics["s"]
    assert metrics.errors_by_class == {"expectation": 2}
    assert (metrics.checks, metrics.checks_passed) == (4, 2)
    # the backend sleeps on uvloop's timers, which count whole milliseconds from the loop's
    # cached time: its 60 ms can end ~1 ms early (more after a long loop iteration) on the
    # monotonic clock the latency is taken from
    assert metrics.http_latency().min >= 0.055


async def test_http_step_timeout_is_counted_as_timeout() -> None:
    async with running_backends() as (backend,):
        steps = (
            f'        - http: {{method: GET, url: "http://{backend.address}/slow?ms=3000", '
            "timeout: 100ms}\n"
        )
        run, summary = await run_text(scenario(steps, users=2))
    assert run.figures.metrics["s"].errors_by_class == {"timeout": 2}
    assert summary.duration_s < 2.0


async def test_http_step_connection_refused_is_counted_by_class() -> None:
    steps = f'        - http: {{method: GET, url: "http://127.0.0.1:{_closed_port()}/"}}\n'
    run, summary = await run_text(scenario(steps, users=3))
    metrics = run.figures.metrics["s"]
    assert metrics.errors_by_class == {"connect-refused": 3}
    assert metrics.http_failed == 3
    assert metrics.http_latency().count == 0
    assert summary.errors == 3


async def test_http_step_missing_template_field_is_a_request_error() -> None:
    steps = '        - http: {method: GET, url: "http://{{ lease.address }}/"}\n'
    run, _ = await run_text(scenario(steps, users=2))
    assert run.figures.metrics["s"].errors_by_class == {"request": 2}
    error = run.workbook.get_cold(1, Field.ERROR_TEXT)
    assert isinstance(error, str) and "could not be sent" in error


def test_extract_path_reads_json_paths_status_and_body() -> None:
    assert extract_path("json.items[0].id") == ("json", ("items", 0, "id"))
    assert extract_path("json[2]") == ("json", (2,))
    assert extract_path("status") == ("status", ())
    with pytest.raises(StateError, match="response headers are not kept"):
        extract_path("header.X-Token")


async def test_http_step_templated_origin_and_query_only_target() -> None:
    async with running_backends() as (backend,):
        text = scenario(
            '        - http: {method: GET, url: "http://{{ vars.addr }}?page={{ user.id }}"}\n'
            '        - http: {method: GET, url: "ftp://{{ vars.addr }}/"}\n',
            users=3,
            extra=f'vars: {{addr: "{backend.address}"}}',
        )
        run, _ = await run_text(text)
    assert backend.counts["/"] == 3
    assert run.figures.metrics["s"].errors_by_class == {"request": 3}


class _Call:
    """A step call completed into a future (the executor's side of ``StepCall``)."""

    def __init__(self, step: StepPlan, context: dict[str, Any]) -> None:
        self.step = step
        self.context = context
        self.row = 0
        self.done: asyncio.Future[StepOutcome] = asyncio.get_running_loop().create_future()

    def complete(self, outcome: StepOutcome) -> bool:
        self.done.set_result(outcome)
        return True

    def fail(self, error: str, **fields: Any) -> bool:
        return self.complete(StepOutcome(ok=False, error=error, **fields))


async def _send(executor: HttpStepExecutor, step: StepPlan, addr: str) -> StepOutcome:
    call = _Call(step, {"vars": {"addr": addr}})
    executor.start(call)  # type: ignore[arg-type]
    async with asyncio.timeout(5):
        return await call.done


async def test_http_step_templated_url_reaches_each_rendered_member_and_a_reopened_pool() -> None:
    text = scenario(
        '        - http: {method: GET, url: "http://{{ vars.addr }}/"}\n', extra='vars: {addr: "x"}'
    )
    step = load_plan_text(text, file="t.yaml", cache=None).scenarios[0].steps[0]
    client = HttpClient()
    executor = HttpStepExecutor(client)
    executor.register(step, ScenarioMetrics(name="s"))
    async with running_backends((0, 0)) as (a, b):
        for addr in (a.address, b.address, a.address):
            assert (await _send(executor, step, addr)).ok
        client.discard(parse_address(a.address))  # the cached pool of a is closed now
        assert (await _send(executor, step, a.address)).ok
        bad = await _send(executor, step, "127.0.0.1:notaport")
        await client.wait_closed()
    assert (a.counts["/"], b.counts["/"]) == (3, 1)
    assert not bad.ok and "could not be sent" in (bad.error or "")
