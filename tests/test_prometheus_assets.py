"""The Prometheus and Grafana assets: the alert rules load and fire as their tests say, the
example config is valid, the dashboard covers every documented metric, and the daemon's own
exposition passes ``promtool check metrics``."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from progressd.config import parse_config
from progressd.daemon import build_daemon

REPO = Path(__file__).resolve().parent.parent
PROMETHEUS = REPO / "config" / "prometheus"
DASHBOARD = REPO / "config" / "grafana" / "progressd.json"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not installed (apt-get install prometheus; .ci/run installs it)",
)

# The metrics issue 8 names, plus the daemon's loop lag and the store's commit counter.
DOCUMENTED = {
    "progressd_run_progress_ratio",
    "progressd_run_users",
    "progressd_milestone_reached_users",
    "progressd_rollbacks_total",
    "progressd_errors_total",
    "progressd_http_request_duration_seconds",
    "progressd_workbook_memory_bytes",
    "progressd_events_total",
    "progressd_event_batches_total",
    "progressd_poll_iterations_total",
    "progressd_poll_iteration_duration_seconds",
    "progressd_poll_wake_latency_seconds",
    "progressd_poll_queue_depth",
    "progressd_leases_active",
    "progressd_pool_member_state",
    "progressd_health_checks_total",
    "progressd_run_eta_seconds",
    "progressd_store_commit_duration_seconds",
}
EXTRA = {
    "progressd_loop_lag_seconds",
    "progressd_store_commits_total",
    "progressd_run_deadline_timestamp_seconds",
}
_METRIC = re.compile(r"\bprogressd_[a-z_]+")


def metric_names(text: str) -> set[str]:
    return {re.sub(r"_(bucket|count|sum)$", "", name) for name in _METRIC.findall(text)}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_dashboard_covers_every_documented_metric_and_no_other() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    used = metric_names("\n".join(exprs))
    assert used >= DOCUMENTED
    assert used <= DOCUMENTED | EXTRA
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"] == "progressd"


def test_alerts_use_only_documented_metrics() -> None:
    used = metric_names((PROMETHEUS / "alerts.yml").read_text())
    assert used <= DOCUMENTED | EXTRA
    assert {"progressd_run_progress_ratio", "progressd_pool_member_state"} <= used


@needs_promtool
def test_alert_rules_pass_promtool_check_rules() -> None:
    result = promtool("check", "rules", str(PROMETHEUS / "alerts.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@needs_promtool
def test_alert_rules_fire_as_their_unit_tests_expect() -> None:
    result = promtool("test", "rules", str(PROMETHEUS / "alerts_test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_example_scrape_config_passes_promtool_check_config() -> None:
    result = promtool("check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "127.0.0.1:9464" in (PROMETHEUS / "prometheus.yml").read_text()


@needs_promtool
async def test_daemon_metrics_pass_promtool_check_metrics(sock_dir: Path, tmp_path: Path) -> None:
    config = parse_config(
        f'[control]\nsocket = "{sock_dir}/d.sock"\n[metrics]\nlisten = "off"\n'
        f'[state]\ndirectory = "{tmp_path}/state"\n'
    )
    daemon = build_daemon(config)  # the default extensions, as `progressd serve` builds it
    await daemon.startup()
    try:
        text = daemon.telemetry.render()
    finally:
        await daemon.shutdown(5.0)
    assert b"progressd_store_commit_duration_seconds_bucket" in text
    check = await asyncio.create_subprocess_exec(
        str(PROMTOOL),
        "check",
        "metrics",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(60):
        out, _ = await check.communicate(text)
    assert check.returncode == 0, out.decode()
