"""Run history: ``GET /v1/runs?state=&since=&limit=`` and ``progressctl history``.

The history is served from the store, merged with the live runs: the store holds every run ever
submitted (including the ones a restart resumed or marked ``interrupted``); for a run the daemon
holds live, its live state and summary win over the stored ones (which lag by at most a flush
interval). Newest first. ``since`` keeps runs not finished before that instant: epoch seconds,
an ISO 8601 time, or a duration meaning "that long ago" (``1h``, ``30m``).
"""

from __future__ import annotations

import contextlib
import time
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import msgspec

from progressd.errors import StoreError
from progressd.summary import RunSummary
from progressd.units import parse_duration

if TYPE_CHECKING:  # progressctl imports this module: keep the store and the run core out
    from progressd.runs.manager import RunEntry, RunManager
    from progressd.store import RunRecord, Store

__all__ = ["HistoryRecord", "RunHistory", "parse_since", "query_history"]

Limit = Annotated[int, msgspec.Meta(ge=1, le=10_000)]
HISTORY_STATES = frozenset({"running", "paused", "succeeded", "failed", "cancelled", "interrupted"})


class HistoryRecord(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One run of the history. ``live``: the daemon holds it now (its figures are current);
    ``summary``: the live or final summary, ``None`` for a run interrupted before it had one.
    Times are epoch seconds."""

    run: str
    name: str
    state: str
    live: bool
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    summary: RunSummary | None = None


class RunHistory(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``GET /v1/runs`` with ``state``, ``since`` or ``limit``: runs newest first."""

    runs: list[HistoryRecord]


def parse_since(raw: str, *, now: float | None = None) -> float:
    """Epoch seconds from ``raw``: a number, an ISO 8601 time or a duration ago.

    Raises:
        ValueError: ``raw`` is none of those, with a hint.
    """
    text = raw.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        pass
    try:
        ago = parse_duration(text)
    except ValueError:
        raise ValueError(
            f"since: expected epoch seconds, an ISO 8601 time or a duration like 1h, got {raw!r}"
        ) from None
    return (time.time() if now is None else now) - ago


def query_history(
    store: Store,
    manager: RunManager,
    *,
    state: str | None = None,
    since: float | None = None,
    limit: int = 100,
) -> RunHistory:
    """The stored runs merged with the live ones (see the module note).

    Raises:
        ValueError: an unknown ``state``.
        StoreError: the store could not be read.
    """
    if state is not None and state not in HISTORY_STATES:
        raise ValueError(f"state: expected one of {sorted(HISTORY_STATES)}, got {state!r}")
    with contextlib.suppress(StoreError):  # read what is committed; the flush task retries
        store.flush()
    # a live run's state may differ from the stored one (paused), so filter after merging
    stored = store.list_runs(since=since, limit=-1 if state else limit)
    live = {entry.id: entry for entry in manager}
    records = [_merge(record, live.get(record.id)) for record in stored]
    if state is not None:
        records = [r for r in records if r.state == state]
    return RunHistory(runs=records[:limit])


def _merge(record: RunRecord, entry: RunEntry | None) -> HistoryRecord:
    if entry is not None:
        summary = entry.summary()
        return HistoryRecord(
            run=record.id,
            name=record.name,
            state=summary.state,
            live=not entry.finished,
            created_at=record.created_at,
            started_at=record.started_at,
            finished_at=record.finished_at,
            summary=summary,
        )
    stored: RunSummary | None = None
    if record.summary is not None:
        stored = msgspec.convert(record.summary, RunSummary)
    return HistoryRecord(
        run=record.id,
        name=record.name,
        state=record.status,
        live=False,
        created_at=record.created_at,
        started_at=record.started_at,
        finished_at=record.finished_at,
        summary=stored,
    )
