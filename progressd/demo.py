"""``python -m progressd.demo`` (``make run``): a real scenario end to end, then the daemon.

1. Starts three small shop backends on 127.0.0.1:18081-18083 (free ports instead when those
   are taken, with the scenario's members rewritten to match), runs
   ``config/examples/http_scenario.yaml`` with live progress and ETA (exactly what
   ``progressd run`` shows), prints the summary, stops the backends.
2. Starts ``progressd serve`` in a throwaway directory, waits for its ``READY=1``, runs
   ``progressctl status``, scrapes ``/metrics``, stops the daemon with SIGTERM.

Every step is bounded and everything is cleaned up, whatever happens.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import uvloop
from rich.console import Console

from progressd.dsl import Plan, load_plan_text
from progressd.errors import ProgressdError
from progressd.launcher import DaemonProcess, launch_daemon
from progressd.runs.backends import Backend
from progressd.runs.command import run_plan
from progressd.summary import render_summary

SCENARIO = Path(__file__).resolve().parent.parent / "config" / "examples" / "http_scenario.yaml"
PORTS = (18081, 18082, 18083)
_MEMBERS = 'members: ["127.0.0.1:18081-18083"]'
_SHOWN_METRICS = ("progressd_build_info", "progressd_loop_lag_seconds_count", "progressd_runs ")


async def _start_backends() -> tuple[list[Backend], bool]:
    """Backends on the example's ports, or on free ports when one of those is taken."""
    for ports in (PORTS, (0, 0, 0)):
        backends = [Backend("127.0.0.1", port) for port in ports]
        try:
            for backend in backends:
                await backend.start()
        except OSError:
            for backend in backends:
                await backend.stop()
            continue
        return backends, ports != PORTS
    raise ProgressdError("could not start the demo backends on 127.0.0.1")


def _scenario(backends: list[Backend], moved: bool) -> Plan:
    text = SCENARIO.read_text(encoding="utf-8")
    if moved:
        members = ", ".join(f'"{b.address}"' for b in backends)
        text = text.replace(_MEMBERS, f"members: [{members}]")
    return load_plan_text(text, file=str(SCENARIO))


async def _run_scenario(console: Console) -> int:
    backends, moved = await _start_backends()
    try:
        where = ", ".join(b.address for b in backends)
        console.print(f"[bold]backends[/] serving on {where}" + (" (free ports)" if moved else ""))
        shown = (
            SCENARIO.relative_to(Path.cwd()) if SCENARIO.is_relative_to(Path.cwd()) else SCENARIO
        )
        console.print(f"$ progressd run {shown}")
        outcome = await run_plan(_scenario(backends, moved), console=console)
    finally:
        for backend in backends:
            await backend.stop()
    if isinstance(outcome, ProgressdError):
        raise outcome
    summary, _ = outcome
    console.print(render_summary(summary))
    served = sum(sum(b.counts.values()) for b in backends)
    console.print(f"backends answered {served:,} requests; stopped.\n")
    return 0 if summary.passed else 1


async def _progressctl(daemon: DaemonProcess, *args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "progressd.ctl", "--socket", daemon.socket_path, *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), 10.0)
    if process.returncode != 0:
        raise ProgressdError(f"progressctl {' '.join(args)} failed: {output.decode().strip()}")
    return output.decode()


async def _scrape(address: str) -> str:
    timeout = aiohttp.ClientTimeout(total=5.0)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(f"http://{address}/metrics") as response,
    ):
        response.raise_for_status()
        return await response.text()


async def _daemon(workdir: Path) -> int:
    began = time.monotonic()
    print(f"$ progressd serve --config {workdir}/progressd.toml")
    async with launch_daemon(workdir) as daemon:
        print(f"  ready in {time.monotonic() - began:.2f}s (pid {daemon.pid}, READY=1 received)\n")
        print(f"$ progressctl --socket {daemon.socket_path} status")
        print(await _progressctl(daemon, "status"))
        status = await daemon.status()
        print(f"$ curl -s http://{status.metrics}/metrics | grep ...")
        text = await _scrape(str(status.metrics))
        for line in text.splitlines():
            if line.startswith(_SHOWN_METRICS):
                print(f"  {line}")
        print(f"\n$ kill -TERM {daemon.pid}")
        code = await daemon.stop()
        await daemon.wait_notification("STOPPING", within=5.0)
        gone = not Path(daemon.socket_path).exists()  # noqa: ASYNC240 - one stat, after exit
        print(f"  exited with {code}; socket removed: {gone}")
    return 0 if code == 0 else 1


async def _demo(workdir: Path) -> int:
    ran = await _run_scenario(Console(highlight=False))
    served = await _daemon(workdir)
    return ran or served


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="progressd-demo-"))
    try:
        return uvloop.run(_demo(workdir))
    except (ProgressdError, OSError, aiohttp.ClientError, TimeoutError) as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
