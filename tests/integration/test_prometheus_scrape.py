"""A real Prometheus server scrapes a real daemon: the exposition parses, the store's metrics
arrive, and the shipped alert rules load."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import running_daemon
from prometheus_testkit import PROMETHEUS, PROMETHEUS_MISSING, running_prometheus

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(PROMETHEUS is None, reason=PROMETHEUS_MISSING),
]


async def test_prometheus_scrapes_the_daemon_and_loads_the_alerts(tmp_path: Path) -> None:
    async with running_daemon(tmp_path) as daemon:
        status = await daemon.status()
        assert status.metrics is not None
        async with running_prometheus(tmp_path, [status.metrics]) as prom:
            (up,) = await prom.wait_for('up{job="progressd"} == 1')
            assert up["metric"]["instance"] == status.metrics
            (build,) = await prom.wait_for("progressd_build_info")
            assert build["metric"]["version"] == status.version
            buckets = await prom.wait_for("progressd_store_commit_duration_seconds_bucket")
            assert {b["metric"]["le"] for b in buckets} >= {"0.005", "+Inf"}
            (buffered,) = await prom.wait_for("progressd_store_buffered_rows")
            assert buffered["value"][1] == "0"
            groups = await prom.rule_groups()
            assert sorted(groups) == ["progressd-daemon", "progressd-resources", "progressd-runs"]
