"""A real Prometheus server for integration tests (Debian package ``prometheus``).

``async with running_prometheus(tmp_path, ["127.0.0.1:9464"]) as prom:`` starts
``prometheus`` on a free 127.0.0.1 port, scraping the targets every second with the rules in
``config/prometheus/alerts.yml`` loaded; ``await prom.wait_for(expr)`` polls the HTTP API until
the PromQL expression returns samples. Tests skip with ``PROMETHEUS_MISSING`` when the binary
is absent.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

__all__ = ["PROMETHEUS", "PROMETHEUS_MISSING", "PrometheusServer", "running_prometheus"]

PROMETHEUS = shutil.which("prometheus")
PROMETHEUS_MISSING = "prometheus not installed (apt-get install prometheus; .ci/run installs it)"
ALERTS = Path(__file__).resolve().parent.parent / "config" / "prometheus" / "alerts.yml"


@dataclass(slots=True)
class PrometheusServer:
    url: str
    log: Path

    async def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector ``expr`` evaluates to now (``[{metric: {...}, value: [t, v]}]``)."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.url}/api/v1/query", params={"query": expr}) as response,
        ):
            body = await response.json()
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    async def wait_for(self, expr: str, *, within: float = 30.0) -> list[dict[str, Any]]:
        """Poll until ``expr`` returns samples (Prometheus scrapes on its own clock)."""
        async with asyncio.timeout(within):
            while True:
                try:
                    found = await self.query(expr)
                except aiohttp.ClientError:
                    found = []  # still starting
                if found:
                    return found
                await asyncio.sleep(0.2)

    async def rule_groups(self) -> list[str]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.url}/api/v1/rules") as response,
        ):
            body = await response.json()
        return [group["name"] for group in body["data"]["groups"]]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@asynccontextmanager
async def running_prometheus(
    tmp_path: Path, targets: Sequence[str]
) -> AsyncIterator[PrometheusServer]:
    """A Prometheus scraping ``targets`` every second, stopped (SIGTERM) at the end."""
    assert PROMETHEUS is not None, PROMETHEUS_MISSING
    home = tmp_path / "prometheus"
    home.mkdir()
    shutil.copy(ALERTS, home / "alerts.yml")
    listed = ", ".join(f'"{t}"' for t in targets)
    (home / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "rule_files: [alerts.yml]\n"
        f"scrape_configs:\n  - job_name: progressd\n    static_configs: [{{targets: [{listed}]}}]\n"
    )
    port = _free_port()
    log = home / "prometheus.log"
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            PROMETHEUS,
            f"--config.file={home / 'prometheus.yml'}",
            f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
        )
    try:
        yield PrometheusServer(url=f"http://127.0.0.1:{port}", log=log)
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                async with asyncio.timeout(10):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
