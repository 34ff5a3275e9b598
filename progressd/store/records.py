"""The records the store hands back: runs, aggregated events, progress samples, snapshots, and
its own ``statistics()``. All frozen msgspec Structs, so the history API can encode them as-is.

Timestamps are wall-clock seconds since the epoch (``time.time()``), because history outlives
the process and its monotonic clock.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import msgspec

from progressd.histogram import HistogramSummary

EventKind = Literal["milestone", "rollback", "error", "lease", "state"]
EVENT_KINDS: Final[frozenset[str]] = frozenset({"milestone", "rollback", "error", "lease", "state"})

# The le bounds of progressd_store_commit_duration_seconds.
COMMIT_BUCKETS: Final = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
)


class RunRecord(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One run as stored. ``source`` (the scenario text) is left out of listings (``None``);
    ``summary`` is the final summary as decoded JSON, ``None`` until the run ends."""

    id: str
    name: str
    status: str
    source_hash: str
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    summary: Any = None
    source: str | None = None


class EventRecord(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``count`` events of one kind that happened between ``first_at`` and ``at``.

    Events without ``detail`` are aggregated per flush by (run, kind, scenario, milestone,
    reason); an event with ``detail`` is kept as its own record.
    """

    id: int
    run: str
    kind: EventKind
    scenario: str
    milestone: str
    reason: str
    count: int
    first_at: float
    at: float
    detail: Any = None


class SampleRecord(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A progress sample of one scenario of one run: the history forecasts learn from."""

    run: str
    scenario: str
    at: float
    done: int
    total: int
    rate: float
    users_active: int
    users_done: int


class SnapshotRecord(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A run's compressed stable snapshot (``Workbook.snapshot()`` bytes) and its version."""

    run: str
    at: float
    version: int
    data: bytes


class StoreStatistics(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``Store.statistics()``: what telemetry and the benchmark read.

    ``commits`` flushes that committed; ``failed_commits`` flushes rolled back (their rows stay
    buffered); ``rows_written`` rows inserted or updated by flushes; ``buffered_rows`` rows
    waiting for the next flush (``max_buffered_rows`` the most ever waiting); ``appends``
    calls to the ``record_*`` methods; ``commit_seconds`` how long each flush held the loop;
    ``commit_buckets`` cumulative counts per ``COMMIT_BUCKETS`` bound;
    ``inline_checkpoint_seconds`` the in-process (fallback) WAL checkpoints.
    """

    path: str
    schema_version: int
    commits: int
    failed_commits: int
    rows_written: int
    snapshot_bytes_written: int
    buffered_rows: int
    max_buffered_rows: int
    appends: int
    pruned_rows: int
    commit_seconds: HistogramSummary
    commit_buckets: tuple[int, ...]
    inline_checkpoint_seconds: HistogramSummary
