"""A real Prometheus scrapes a real daemon while a run is live: the run's progress arrives with
its labels and the API's value, and the live exposition passes ``promtool check metrics``."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from harness import running_daemon
from prometheus_testkit import PROMETHEUS, PROMETHEUS_MISSING, running_prometheus
from test_metrics import PROMTOOL, promtool_check

from progressd.client import ControlClient
from progressd.runs.backends import running_backends
from progressd.runs.messages import SubmitReply, SubmitRequest
from progressd.summary import RunSummary

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(PROMETHEUS is None, reason=PROMETHEUS_MISSING),
]

SCENARIO = """\
version: 2
name: scraped
load:
  scenarios:
    - name: shop
      users: 6
      iterations: 1
      steps:
        - {{name: home, http: {{method: GET, url: "http://{address}/"}}}}
        - milestone: browsed
        - think: 60s
        - {{name: again, http: {{method: GET, url: "http://{address}/"}}}}
"""


async def fetch_metrics(address: str) -> bytes:
    async with aiohttp.ClientSession() as session, session.get(f"http://{address}/metrics") as r:
        assert r.status == 200
        return await r.read()


async def test_prometheus_scrapes_a_live_runs_progress_ratio(tmp_path: Path) -> None:
    async with running_backends() as (backend,), running_daemon(tmp_path) as daemon:
        status = await daemon.status()
        assert status.metrics is not None
        text = SCENARIO.format(address=backend.address)
        async with ControlClient(daemon.socket_path, timeout=5.0) as client:
            reply = await client.request(
                "POST", "/v1/runs", reply=SubmitReply, body=SubmitRequest(text=text)
            )
            await backend.wait_requests("/", 6)
        exposition = await fetch_metrics(status.metrics)
        assert PROMTOOL is not None  # the prometheus package ships it
        code, lint = await promtool_check(exposition)
        assert code == 0, lint.decode()
        async with running_prometheus(tmp_path, [status.metrics]) as prom:
            query = f'progressd_run_progress_ratio{{run="{reply.run}"}}'
            (sample,) = await prom.wait_for(query, within=20)
            async with ControlClient(daemon.socket_path, timeout=5.0) as client:
                summary = await client.get(f"/v1/runs/{reply.run}", RunSummary)
            assert sample["metric"]["scenario"] == "shop"
            assert sample["metric"]["job"] == "progressd"
            # every user parked in its 60 s think after 1 of 3 work steps: the value holds still
            assert summary.progress == pytest.approx(1 / 3)
            assert float(sample["value"][1]) == pytest.approx(summary.progress)
            (users,) = await prom.wait_for(
                f'progressd_run_users{{run="{reply.run}",state="active"}}'
            )
            assert users["value"][1] == "6"
