"""The run summary: one shape for ``progressd run --json``, ``GET /v1/runs/{run}`` and the
terminal table.

``RunSummary`` is the whole run; ``scenarios`` maps each scenario's name to the same figures
(``ScenarioSummary``). ``milestones`` counts the users that reached a milestone at least once
(a rollback does not take it back); ``thresholds`` maps each threshold's label
(``"http_req_duration: p95 < 500ms"``) to whether it held. ``eta_s`` is ``None`` while the
forecast is held back, and 0 once the run is over.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from rich.table import Table
from rich.text import Text

RunState = Literal["succeeded", "failed", "cancelled", "running", "paused", "interrupted"]
FINAL_STATES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled", "interrupted"})

Count = Annotated[int, msgspec.Meta(ge=0)]
Ratio = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
Seconds = Annotated[float, msgspec.Meta(ge=0.0)]


class ScenarioSummary(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The figures of one scenario of a run."""

    duration_s: Seconds
    users: Count
    progress: Ratio
    requests: Count
    errors: Count
    rollbacks: Count
    milestones: dict[str, Count] = {}
    thresholds: dict[str, bool] = {}
    eta_s: Seconds | None = None


class RunSummary(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A run as the CLI and the API report it."""

    run: str
    name: str | None = None
    state: RunState
    duration_s: Seconds
    users: Count
    progress: Ratio
    requests: Count
    errors: Count
    rollbacks: Count
    milestones: dict[str, Count] = {}
    thresholds: dict[str, bool] = {}
    scenarios: dict[str, ScenarioSummary] = {}
    eta_s: Seconds | None = None

    @property
    def passed(self) -> bool:
        """True when the run succeeded and every threshold held."""
        return self.state == "succeeded" and all(self.thresholds.values())

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(RunSummary)


def encode_summary(summary: RunSummary) -> bytes:
    """The summary as compact JSON (the ``--json`` output, the API body)."""
    return _ENCODER.encode(summary)


def decode_summary(data: bytes | str) -> RunSummary:
    """Read a summary produced by ``encode_summary`` (``progressctl show`` reads the API this way).

    Raises:
        ValueError: naming the faulty field (``$.scenarios[...].users``).
    """
    try:
        return _DECODER.decode(data)
    except msgspec.DecodeError as exc:
        raise ValueError(f"invalid run summary: {exc}") from None


def render_summary(summary: RunSummary) -> Table:
    """A rich table for the terminal: scenarios and totals, then milestones and thresholds."""
    layout = Table.grid(padding=(1, 0))
    layout.add_row(_figures_table(summary))
    if summary.milestones:
        layout.add_row(_milestones_table(summary))
    if summary.thresholds:
        layout.add_row(_thresholds_table(summary.thresholds))
    return layout


def _figures_table(summary: RunSummary) -> Table:
    title = f"run {summary.run}" + (f" ({summary.name})" if summary.name else "")
    table = Table(title=title, caption=_state_caption(summary), title_justify="left")
    table.add_column("scenario")
    for column in ("users", "progress", "requests", "errors", "rollbacks", "duration", "eta"):
        table.add_column(column, justify="right")
    for name, scenario in summary.scenarios.items():
        table.add_row(name, *_figures(scenario))
    if len(summary.scenarios) != 1:
        table.add_section()
        table.add_row(Text("total", style="bold"), *_figures(summary))
    return table


def _figures(part: ScenarioSummary | RunSummary) -> tuple[str, ...]:
    return (
        f"{part.users:,}",
        f"{part.progress:.1%}",
        f"{part.requests:,}",
        f"{part.errors:,}",
        f"{part.rollbacks:,}",
        _seconds(part.duration_s),
        "-" if part.eta_s is None else _seconds(part.eta_s),
    )


def _milestones_table(summary: RunSummary) -> Table:
    table = Table(title="milestones", title_justify="left")
    table.add_column("milestone")
    table.add_column("users reached", justify="right")
    table.add_column("of users", justify="right")
    for name, reached in summary.milestones.items():
        share = f"{reached / summary.users:.1%}" if summary.users else "-"
        table.add_row(name, f"{reached:,}", share)
    return table


def _thresholds_table(thresholds: dict[str, bool]) -> Table:
    table = Table(title="thresholds", title_justify="left")
    table.add_column("")
    table.add_column("threshold")
    for label, passed in thresholds.items():
        mark = Text("✓", style="green") if passed else Text("✗", style="bold red")
        table.add_row(mark, label)
    return table


def _state_caption(summary: RunSummary) -> Text:
    style = {"succeeded": "green", "running": "cyan", "paused": "yellow"}.get(
        summary.state, "bold red"
    )
    failed = [label for label, ok in summary.thresholds.items() if not ok]
    text = Text(summary.state, style=style)
    if failed:
        text.append(f"; {len(failed)} threshold(s) failed", style="bold red")
    return text


def _seconds(value: float) -> str:
    if value < 60:
        return f"{value:.1f}s"
    minutes, seconds = divmod(round(value), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"
