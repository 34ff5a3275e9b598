"""The live view: bars and plain lines drawn from a RunProgress record, and follow() off a
terminal."""

from __future__ import annotations

import asyncio
import io

from rich.console import Console

from progressd.runs.live import follow, plain_line, render_progress
from progressd.runs.progress import RunProgress, ScenarioProgress
from progressd.summary import RunSummary


def _progress(state: str = "running", eta: float | None = 12.0) -> RunProgress:
    part = ScenarioProgress(
        name="browse", users=1000, active=120, finished=380, progress=0.4567, iterations=1200,
        requests=5400, errors=3, req_per_s=880.4, eta_s=eta,
        milestones={"logged-in": 500, "paid": 380},
    )  # fmt: skip
    return RunProgress(
        run="r1", name="checkout", state=state, elapsed_s=6.2, users=1000, active=120,  # type: ignore[arg-type]
        finished=380, progress=0.4567, requests=5400, errors=3, rollbacks=2, req_per_s=880.4,
        eta_s=eta, scenarios=(part,),
    )  # fmt: skip


def test_render_progress_shows_bar_figures_and_milestones() -> None:
    console = Console(record=True, width=160, file=io.StringIO())
    console.print(render_progress(_progress()))
    text = console.export_text()
    assert "run r1 (checkout) running" in text
    assert "45.7%" in text
    assert "users 120 active 380/1,000 done" in text
    assert "880 req/s" in text and "3 err" in text and "eta 12s" in text
    assert "logged-in 500/1,000" in text and "paid 380/1,000" in text


def test_plain_line_is_one_line_with_every_figure() -> None:
    line = plain_line(_progress(eta=None))
    assert "\n" not in line
    assert line.startswith("[    6.2s] run r1 running | 45.7% | users 120 active 380/1000 done")
    assert "requests 5400 (880/s) | errors 3 | eta - | milestones logged-in=500,paid=380" in line


async def test_follow_off_a_terminal_prints_a_final_line_when_the_run_closed() -> None:
    out = io.StringIO()
    closed: asyncio.Future[RunSummary] = asyncio.get_running_loop().create_future()
    closed.set_result(RunSummary(run="r1", state="succeeded", duration_s=1, users=1, progress=1,
                                 requests=0, errors=0, rollbacks=0))  # fmt: skip
    await follow(lambda: _progress("succeeded", 0.0), closed, Console(file=out, width=300))
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and "run r1 succeeded" in lines[0]
