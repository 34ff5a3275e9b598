"""``progressd run SCENARIO [--users N] [--json]``: one run on an embedded uvloop, no daemon.

Output: live bars on a terminal (a plain status line every few seconds otherwise), then the
summary table. With ``--json`` stdout carries exactly one JSON object, the ``RunSummary``;
progress then goes to stderr. SIGINT / SIGTERM cancel the run; its summary is still printed.

Exit codes: 0 the run succeeded and every threshold held; 1 a threshold failed or the run
failed or was cancelled (130 when interrupted with Ctrl-C); 2 the scenario could not be loaded
or cannot run (``DslError``, ``StateError``, ``ResourceError`` while assembling the run).
"""

from __future__ import annotations

import asyncio
import signal
from typing import TextIO

import uvloop
from rich.console import Console

from progressd.dsl import Plan, load_plan
from progressd.errors import ProgressdError
from progressd.runs.live import follow
from progressd.runs.run import Run
from progressd.summary import RunSummary, encode_summary, render_summary

__all__ = ["run_command", "run_plan"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def run_command(
    path: str,
    *,
    users: int | None = None,
    json_output: bool = False,
    out: TextIO,
    err: TextIO,
    interval_s: float | None = None,
) -> int:
    """Load ``path``, run it, report; the process exit code (see the module note)."""
    try:
        plan = load_plan(path)
    except ProgressdError as exc:
        print(f"progressd: {exc}", file=err)
        return EXIT_USAGE
    progress_console = Console(file=err if json_output else out, highlight=False)
    outcome = uvloop.run(
        run_plan(plan, users=users, console=progress_console, interval_s=interval_s)
    )
    if isinstance(outcome, ProgressdError):
        print(f"progressd: {outcome}", file=err)
        return EXIT_USAGE
    summary, interrupted = outcome
    if json_output:
        out.write(encode_summary(summary).decode() + "\n")
        out.flush()
    else:
        Console(file=out, highlight=False).print(render_summary(summary))
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if summary.passed else EXIT_FAILED


async def run_plan(
    plan: Plan,
    *,
    users: int | None = None,
    console: Console,
    interval_s: float | None = None,
) -> tuple[RunSummary, bool] | ProgressdError:
    """Run ``plan`` on the current loop, showing progress on ``console``; the summary and
    whether SIGINT interrupted it, or the error that kept the run from being assembled."""
    try:
        run = Run(plan, users=users)
    except ProgressdError as exc:
        return exc
    loop = asyncio.get_running_loop()
    interrupted: list[int] = []

    def on_signal(signum: int) -> None:
        interrupted.append(signum)
        run.cancel(f"interrupted by {signal.Signals(signum).name}")

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        run.start()
        waiter = asyncio.ensure_future(run.wait())
        await follow(run.progress, waiter, console, interval_s=interval_s)
        summary = await waiter
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    return summary, signal.SIGINT in interrupted
