"""Pools from the daemon config against a real daemon: ``[pools.backends]`` of real local
backends, health-checked by the daemon, listed by ``progressctl pools``, leased by a submitted
scenario that does not declare the pool (which ``progressd check`` still rejects)."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from harness import run_ctl, run_progressd, running_daemon

from progressd.runs.backends import running_backends

pytestmark = pytest.mark.integration

SCENARIO = """\
version: 2
name: shared
load:
  scenarios:
    - name: s
      users: 4
      iterations: 2
      resource_lease: {pool: backends, per: user, release-on: "milestone:used"}
      steps:
        - {name: home, http: {method: GET, url: "http://{{ lease.address }}/"}}
        - milestone: used
"""


def _config(addresses: list[str]) -> str:
    members = ", ".join(f'"{a}"' for a in addresses)
    return (
        f"\n[pools.backends]\nmembers = [{members}]\nmax-leases-per-member = 1\n"
        'health-check = {kind = "http", path = "/health", interval = "100ms", timeout = "50ms"}\n'
    )


async def test_shared_pools_daemon_serves_a_config_pool_to_a_submitted_run(
    tmp_path: Path,
) -> None:
    scenario = tmp_path / "shared.yaml"
    scenario.write_text(SCENARIO)
    checked = await run_progressd("check", str(scenario))
    assert checked.code != 0 and 'unknown pool "backends"' in checked.err + checked.out
    async with running_backends((0, 0)) as backends:
        addresses = [b.address for b in backends]
        async with running_daemon(tmp_path, config_extra=_config(addresses)) as daemon:
            socket = ("--socket", daemon.socket_path)
            pools = await run_ctl(*socket, "pools")
            submitted = await run_ctl(*socket, "submit", str(scenario), "--watch", within=30)
            shown = await run_ctl(*socket, "--json", "runs")
            leases = await run_ctl(*socket, "--json", "leases")
        counts = [b.counts["/"] for b in backends]
        health = [b.counts["/health"] for b in backends]
    assert pools.code == 0, pools.err
    rows = [line.split() for line in pools.out.splitlines()[1:]]
    assert sorted((row[0], row[1], row[2]) for row in rows) == sorted(
        ("backends", "(shared)", a) for a in addresses
    )
    assert submitted.code == 0, submitted.err
    runs = msgspec.json.decode(shown.out)["runs"]
    assert [r["state"] for r in runs] == ["succeeded"]
    assert msgspec.json.decode(leases.out)["leases"] == []
    assert sum(counts) == 4 * 2 and all(counts)  # both members served, one user at a time each
    assert all(health)  # the daemon health-checked its pool
