"""Shared harness for tests that need a real daemon or real command-line tools.

``async with running_daemon(tmp_path) as daemon:`` starts ``progressd serve`` as a subprocess
(see ``progressd.launcher``), waits for its ``READY=1`` and stops it at the end.
``run_ctl``/``run_progressd`` run the console commands as real subprocesses.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from progressd.launcher import DaemonProcess, launch_daemon

__all__ = ["DaemonProcess", "Result", "run_ctl", "run_progressd", "running_daemon"]


@dataclass(frozen=True, slots=True)
class Result:
    code: int
    out: str
    err: str


@asynccontextmanager
async def running_daemon(tmp_path: Path, **options: Any) -> AsyncIterator[DaemonProcess]:
    """A daemon in ``tmp_path``; ``options`` go to ``progressd.launcher.launch_daemon``."""
    async with launch_daemon(tmp_path, **options) as daemon:
        yield daemon


async def _run(args: list[str], env: Mapping[str, str] | None, within: float) -> Result:
    process = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), within)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())


async def run_ctl(*args: str, env: Mapping[str, str] | None = None, within: float = 20) -> Result:
    """``progressctl ARGS`` as a subprocess."""
    return await _run([sys.executable, "-m", "progressd.ctl", *args], env, within)


async def run_progressd(
    *args: str, env: Mapping[str, str] | None = None, within: float = 20
) -> Result:
    """``progressd ARGS`` as a subprocess."""
    return await _run([sys.executable, "-m", "progressd", *args], env, within)
