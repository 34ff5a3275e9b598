"""Showing a run while it goes: rich live bars on a terminal, a plain line every few seconds
elsewhere.

``render_progress(RunProgress)`` is a pure function of the live record, so the one-shot
``progressd run`` and ``progressctl watch`` (fed by the daemon's event stream) draw the same
bars. ``follow(run, console)`` redraws until the run has closed. rich's ``Live`` is used with
``auto_refresh=False``: its auto refresh would start a thread, and progressd runs on one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from progressd.runs.progress import RunProgress, ScenarioProgress
from progressd.summary import RunSummary

__all__ = ["follow", "plain_line", "render_progress"]

TTY_INTERVAL_S = 0.25
PLAIN_INTERVAL_S = 5.0


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "eta -"
    if seconds < 60:
        return f"eta {seconds:.0f}s"
    minutes, secs = divmod(round(seconds), 60)
    return f"eta {minutes}m{secs:02d}s"


def _scenario_row(part: ScenarioProgress) -> tuple[RenderableType, ...]:
    errors = Text(f"{part.errors:,} err", style="bold red" if part.errors else "dim")
    return (
        Text(part.name, style="bold"),
        ProgressBar(total=1.0, completed=part.progress, width=30),
        f"{part.progress:6.1%}",
        f"users {part.active:,} active {part.finished:,}/{part.users:,} done",
        f"{part.req_per_s:,.0f} req/s",
        errors,
        _eta(part.eta_s),
    )


def _milestones(part: ScenarioProgress) -> Text | None:
    if not part.milestones:
        return None
    text = Text("  milestones: ", style="dim")
    for index, (name, reached) in enumerate(part.milestones.items()):
        if index:
            text.append(" · ", style="dim")
        text.append(f"{name} ", style="cyan")
        text.append(f"{reached:,}/{part.users:,}")
    return text


def render_progress(progress: RunProgress) -> RenderableType:
    """One bar per scenario (ratio, users active/done, req/s, errors, ETA) and its milestones,
    under a header line for the run."""
    header = Text.assemble(
        (f"run {progress.run} ", "bold"),
        (f"({progress.name}) ", "dim"),
        (progress.state, "cyan"),
        f"  {progress.elapsed_s:.1f}s  {progress.requests:,} requests",
        f"  {progress.rollbacks:,} rollbacks  {_eta(progress.eta_s)}",
    )
    table = Table.grid(padding=(0, 1))
    for _ in range(7):
        table.add_column()
    parts: list[RenderableType] = [header, table]
    for part in progress.scenarios:
        table.add_row(*_scenario_row(part))
        milestones = _milestones(part)
        if milestones is not None:
            table.add_row(milestones)
    return Group(*parts)


def plain_line(progress: RunProgress) -> str:
    """The status line printed when the output is not a terminal."""
    parts = [
        f"[{progress.elapsed_s:7.1f}s] run {progress.run} {progress.state}",
        f"{progress.progress:.1%}",
        f"users {progress.active} active {progress.finished}/{progress.users} done",
        f"requests {progress.requests} ({progress.req_per_s:.0f}/s)",
        f"errors {progress.errors}",
        _eta(progress.eta_s),
    ]
    milestones = [
        f"{name}={reached}"
        for part in progress.scenarios
        for name, reached in part.milestones.items()
    ]
    if milestones:
        parts.append("milestones " + ",".join(milestones))
    return " | ".join(parts)


async def follow(
    progress: Callable[[], RunProgress],
    closed: asyncio.Future[RunSummary],
    console: Console,
    *,
    interval_s: float | None = None,
) -> None:
    """Show ``progress()`` on ``console`` until ``closed`` is done: live bars on a terminal,
    else one plain line every ``interval_s`` (default 5 s) and one at the end."""
    if console.is_terminal:
        await _follow_live(progress, closed, console, interval_s or TTY_INTERVAL_S)
    else:
        await _follow_plain(progress, closed, console, interval_s or PLAIN_INTERVAL_S)


async def _follow_live(
    progress: Callable[[], RunProgress],
    closed: asyncio.Future[RunSummary],
    console: Console,
    interval_s: float,
) -> None:
    with Live(console=console, auto_refresh=False, transient=False) as live:
        while True:
            live.update(render_progress(progress()), refresh=True)
            if closed.done():
                return
            await asyncio.wait([closed], timeout=interval_s)


async def _follow_plain(
    progress: Callable[[], RunProgress],
    closed: asyncio.Future[RunSummary],
    console: Console,
    interval_s: float,
) -> None:
    while True:
        if not closed.done():
            await asyncio.wait([closed], timeout=interval_s)
        console.print(plain_line(progress()), highlight=False, soft_wrap=True)
        if closed.done():
            return
