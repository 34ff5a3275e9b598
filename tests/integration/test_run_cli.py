"""``progressd run`` as a real subprocess against real backends served by the test's loop:
exit codes, the ``--json`` summary (validated by the shared msgspec Struct), the plain status
lines and summary table off a terminal, usage errors, and Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from harness import run_progressd

from progressd.runs.backends import running_backends
from progressd.summary import decode_summary


def _write(tmp_path: Path, address: str, *, threshold: str = "p95 < 2s", users: int = 4) -> str:
    path = tmp_path / "shop.yaml"
    path.write_text(f"""
version: 2
name: cli
load:
  scenarios:
    - name: shoppers
      users: {users}
      iterations: 2
      steps:
        - {{name: home, http: {{method: GET, url: "http://{address}/slow?ms=5"}}}}
        - name: login
          http: {{method: POST, url: "http://{address}/login"}}
          extract: {{token: json.token}}
        - milestone: logged-in
      thresholds:
        http_req_duration: "{threshold}"
""")
    return str(path)


async def test_run_cli_json_summary_and_exit_0(tmp_path: Path) -> None:
    async with running_backends() as (backend,):
        result = await run_progressd("run", _write(tmp_path, backend.address), "--json")
    assert result.code == 0, result.err
    summary = decode_summary(result.out.strip())
    assert result.out.count("\n") == 1
    assert summary.state == "succeeded"
    assert (summary.users, summary.requests, summary.errors) == (4, 16, 0)
    assert summary.milestones == {"logged-in": 4}
    assert summary.thresholds == {"http_req_duration: p95 < 2s": True}
    assert summary.scenarios["shoppers"].requests == 16
    assert backend.counts["/login"] == 8


async def test_run_cli_users_override_and_plain_output_off_a_terminal(tmp_path: Path) -> None:
    async with running_backends() as (backend,):
        result = await run_progressd("run", _write(tmp_path, backend.address), "--users", "2")
    assert result.code == 0, result.err
    assert "succeeded | 100.0% | users 0 active 2/2 done" in result.out
    assert "milestones logged-in=2" in result.out
    assert "thresholds" in result.out and "http_req_duration: p95 < 2s" in result.out
    assert backend.counts["/login"] == 4


async def test_run_cli_failed_threshold_exits_1(tmp_path: Path) -> None:
    async with running_backends() as (backend,):
        path = _write(tmp_path, backend.address, threshold="max < 1ms")
        result = await run_progressd("run", path, "--json")
    assert result.code == 1
    summary = decode_summary(result.out)
    assert summary.state == "failed"
    assert summary.thresholds == {"http_req_duration: max < 1ms": False}


async def test_run_cli_dsl_error_exits_2_with_position(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("version: 2\nname: x\nload:\n  scenarios:\n    - name: s\n      users: many\n")
    result = await run_progressd("run", str(path))
    assert result.code == 2
    assert f"{path}:6:" in result.err
    assert result.out == ""


async def test_run_cli_missing_file_and_bad_usage_exit_2(tmp_path: Path) -> None:
    missing = await run_progressd("run", str(tmp_path / "nope.yaml"))
    assert missing.code == 2 and "cannot read the file" in missing.err
    usage = await run_progressd("run", "x.yaml", "--users", "lots")
    assert usage.code == 2 and "--users" in usage.err


async def test_run_cli_sigint_cancels_and_still_prints_the_summary(tmp_path: Path) -> None:
    async with running_backends() as (backend,):
        path = tmp_path / "long.yaml"
        path.write_text(f"""
version: 2
name: long
load:
  scenarios:
    - name: s
      users: 2
      iterations: 100000
      steps:
        - http: {{method: GET, url: "http://{backend.address}/"}}
        - think: 10ms
""")
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "progressd", "run", str(path), "--json",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=os.environ.copy(),
        )  # fmt: skip
        async with asyncio.timeout(20):
            await backend.wait_requests("/", 10)
            process.send_signal(signal.SIGINT)
            out, err = await process.communicate()
    assert process.returncode == 130, err.decode()
    summary = decode_summary(out)
    assert summary.state == "cancelled"
    assert 10 <= summary.requests < 200_000
