"""The runs' Prometheus collector: every metric of a live run, bounded labels, promtool-clean."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from run_testkit import scenario, wait_until

from progressd.config import Config, StateConfig
from progressd.dsl import load_plan_text
from progressd.metrics import RunsCollector
from progressd.runs.backends import running_backends
from progressd.runs.manager import RunManager
from progressd.runs.persistence import RunPersistence
from progressd.store import Store

PROMTOOL = shutil.which("promtool")
EXPECTED = {
    "progressd_run_progress_ratio",
    "progressd_run_users",
    "progressd_milestone_reached_users",
    "progressd_rollbacks",
    "progressd_errors",
    "progressd_http_request_duration_seconds",
    "progressd_workbook_memory_bytes",
    "progressd_events",
    "progressd_event_batches",
    "progressd_poll_iterations",
    "progressd_poll_iteration_duration_seconds",
    "progressd_poll_wake_latency_seconds",
    "progressd_poll_queue_depth",
    "progressd_leases_active",
    "progressd_pool_member_state",
    "progressd_health_checks",
    "progressd_run_eta_seconds",
}


def leased(address: str, other: str) -> str:
    steps = f"""\
        - {{name: home, http: {{method: GET, url: "http://{address}/"}}}}
        - {{name: bad, http: {{method: GET, url: "http://{address}/status/500"}}, expect: {{status: 200}}}}
        - milestone: browsed
        - think: 30s
"""  # noqa: E501
    pools = f"""
resources:
  ip-port-pool:
    backends:
      members: ["{address}", "{other}"]
      health-check: {{kind: tcp, interval: 100ms, timeout: 50ms, on-failure: rollback}}
"""
    lease = "      resource_lease: {pool: backends, per: user}"
    return scenario(steps, users=4, extra=pools, scenario_extra=lease, name="shop")


async def promtool_check(exposition: bytes) -> tuple[int, bytes]:
    """``promtool check metrics`` on ``exposition``: its exit code and output."""
    assert PROMTOOL is not None
    child = await asyncio.create_subprocess_exec(
        PROMTOOL, "check", "metrics",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(child.communicate(exposition), 10)
    return child.returncode or 0, out


def scrape(
    registry: CollectorRegistry,
) -> tuple[bytes, dict[str, list[tuple[dict[str, str], float]]]]:
    text = generate_latest(registry)
    families = {
        family.name: [(s.labels, s.value) for s in family.samples]
        for family in text_string_to_metric_families(text.decode())
    }
    return text, families


async def test_runs_collector_exposes_every_metric_of_a_live_run(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "progressd.db")
    manager = RunManager()
    persistence = RunPersistence(manager, store, Config(state=StateConfig(directory=str(tmp_path))))
    registry = CollectorRegistry()
    registry.register(RunsCollector(manager, lambda: persistence))
    async with running_backends((0, 0)) as (backend, other):
        text = leased(backend.address, other.address)
        run = manager.submit(load_plan_text(text, file="t.yaml", cache=None), source=text)
        await wait_until(lambda: run.progress().scenarios[0].milestones.get("browsed", 0) == 4)
        run.bus.flush(run.clock.now(), force=True)
        raw, families = scrape(registry)
        run.cancel("test over")
        await run.wait()
    assert EXPECTED - families.keys() == set()
    ((labels, ratio),) = families["progressd_run_progress_ratio"]
    assert labels == {"run": run.id, "scenario": "shop"} and 0 < ratio < 1
    users = {s[0]["state"]: s[1] for s in families["progressd_run_users"]}
    assert users == {"pending": 0.0, "active": 4.0, "waiting-for-resource": 0.0, "finished": 0.0}
    errors = families["progressd_errors"]
    assert [(s[0]["class"], s[1]) for s in errors] == [("status", 4.0)]
    http = dict((s[0].get("le"), s[1]) for s in families["progressd_http_request_duration_seconds"])
    assert http["+Inf"] == 8.0
    milestones = families["progressd_milestone_reached_users"]
    assert [(s[0]["milestone"], s[1]) for s in milestones] == [("browsed", 4.0)]
    states = families["progressd_pool_member_state"]
    assert {s[0]["member"] for s in states} == {backend.address, other.address}
    for member in (backend.address, other.address):
        current = [s[0]["state"] for s in states if s[0]["member"] == member and s[1] == 1]
        assert len(current) == 1 and len([s for s in states if s[0]["member"] == member]) == 4
    wake = {s[0].get("le"): s[1] for s in families["progressd_poll_wake_latency_seconds"]}
    assert wake["+Inf"] >= wake["0.25"] > 0
    for name, samples in families.items():
        for labels, _ in samples:
            assert "user" not in labels and "row" not in labels, name
    if PROMTOOL is not None:
        code, lint = await promtool_check(raw)
        assert code == 0, lint.decode()
    _, after = scrape(registry)
    assert not after["progressd_run_progress_ratio"]  # a finished run's series vanish


def test_runs_collector_without_runs_exposes_nothing(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    registry.register(RunsCollector(RunManager(), lambda: None))
    _, families = scrape(registry)
    assert all(not samples for samples in families.values())


async def test_runs_collector_exports_the_deadline_of_runs_that_have_one() -> None:
    manager = RunManager()
    registry = CollectorRegistry()
    registry.register(RunsCollector(manager, lambda: None))
    steps = "        - external: {key: go, timeout: 30s}\n"
    before = time.time()
    timed = scenario(steps, extra="progress: {deadline: 1h30m}", name="timed")
    late = manager.submit(load_plan_text(timed, cache=None), source=timed)
    plain = scenario(steps, name="plain")
    free = manager.submit(load_plan_text(plain, cache=None), source=plain)
    after = time.time()
    resumed = manager.submit(
        load_plan_text(timed, cache=None), run_id="resumed", started_wall=1000.0, source=timed
    )
    _, families = scrape(registry)
    for run in (late, free, resumed):
        run.cancel("test over")
        await run.wait()
    series = dict(
        (labels["run"], value)
        for labels, value in families["progressd_run_deadline_timestamp_seconds"]
    )
    assert series.keys() == {late.id, "resumed"}  # the run without a deadline has none
    assert late.started_wall is not None and before <= late.started_wall <= after
    assert series[late.id] == late.started_wall + 5400.0
    assert series["resumed"] == 1000.0 + 5400.0  # counted from the first start
    live = {labels["run"] for labels, _ in families["progressd_run_progress_ratio"]}
    assert live == {late.id, free.id, "resumed"}  # all three were scraped while live
    _, after_end = scrape(registry)
    assert not after_end["progressd_run_deadline_timestamp_seconds"]
