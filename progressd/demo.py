"""``python -m progressd.demo`` (``make run``): the daemon serving, ``progressctl`` answering.

Starts ``progressd serve`` in a throwaway directory, waits for its ``READY=1``, runs
``progressctl status``, scrapes ``/metrics``, then stops the daemon with SIGTERM. Every step is
bounded by a timeout and everything is cleaned up, whatever happens.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from progressd.errors import ProgressdError
from progressd.launcher import DaemonProcess, launch_daemon

_SHOWN_METRICS = ("progressd_build_info", "progressd_loop_lag_seconds_count", "progressd_runs ")


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


def _is_gone(path: str) -> bool:
    return not os.path.exists(path)


async def _demo(workdir: Path) -> int:
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
        print(f"  exited with {code}; socket removed: {_is_gone(daemon.socket_path)}")
    return 0 if code == 0 else 1


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="progressd-demo-"))
    try:
        return asyncio.run(_demo(workdir))
    except (ProgressdError, OSError, aiohttp.ClientError, TimeoutError) as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
