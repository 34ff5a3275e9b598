"""The event bus's records: its config, its events and batches, its statistics.

``progress.batching`` parses into ``BatchingConfig`` (``Priority`` names the threshold); the bus
turns workbook changes into ``ProgressEvent``s, delivers them in ``Batch``es and reports
``BusStatistics``. Apart from ``events.py`` because these are plain data and constants that
never refer to the bus: its module keeps only collecting and delivering. ``progressd.events``
re-exports every name here; import them from there.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum
from typing import Final, Literal

import msgspec

from progressd.errors import ConfigError
from progressd.units import parse_duration
from progressd.workbook import RollbackReason

__all__ = [
    "DEFAULT_PRIORITIES",
    "TOPICS",
    "Batch",
    "BatchingConfig",
    "BusStatistics",
    "FlushReason",
    "Priority",
    "ProgressEvent",
    "Topic",
]

Topic = Literal["field", "milestone", "rollback", "error", "lease"]
TOPICS: Final[frozenset[str]] = frozenset({"field", "milestone", "rollback", "error", "lease"})
FlushReason = Literal["size", "interval", "priority", "explicit"]


class Priority(IntEnum):
    """Event priority; ``progress.batching.priority-threshold`` names one of these."""

    LOW = 0
    NORMAL = 1
    HIGH = 2
    CRITICAL = 3

    @classmethod
    def parse(cls, name: str) -> Priority:
        """``"high"`` -> ``Priority.HIGH``.

        Raises:
            ConfigError: for an unknown name.
        """
        try:
            return cls[name.upper()]
        except KeyError:
            choices = ", ".join(p.name.lower() for p in cls)
            raise ConfigError(
                f"expected one of {choices}, got {name!r}",
                key="progress.batching.priority-threshold",
            ) from None


DEFAULT_PRIORITIES: Final[Mapping[str, Priority]] = {
    "field": Priority.LOW,
    "lease": Priority.NORMAL,
    "error": Priority.HIGH,
    "milestone": Priority.HIGH,
    "rollback": Priority.CRITICAL,
}


class BatchingConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``progress.batching``. ``flush_interval`` in seconds."""

    max_batch_size: int = 512
    flush_interval: float = 0.05
    priority_threshold: Priority = Priority.HIGH

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ConfigError(
                f"expected a positive integer, got {self.max_batch_size}",
                key="progress.batching.max-batch-size",
            )
        if self.flush_interval < 0:
            raise ConfigError(
                f"expected a duration >= 0, got {self.flush_interval}",
                key="progress.batching.flush-interval",
            )

    @classmethod
    def from_dsl(cls, block: Mapping[str, object]) -> BatchingConfig:
        """Build from the DSL block ``{max-batch-size: 512, flush-interval: 50ms,
        priority-threshold: high}``; missing keys take the defaults.

        Raises:
            ConfigError: for an unknown key or a bad value, naming the key.
        """
        unknown = set(block) - {"max-batch-size", "flush-interval", "priority-threshold"}
        if unknown:
            raise ConfigError(f"unknown key(s) {sorted(unknown)}", key="progress.batching")
        size = block.get("max-batch-size", 512)
        if not isinstance(size, int) or isinstance(size, bool):
            raise ConfigError(
                f"expected an integer, got {size!r}", key="progress.batching.max-batch-size"
            )
        return cls(
            max_batch_size=size,
            flush_interval=_interval(block.get("flush-interval", 0.05)),
            priority_threshold=Priority.parse(str(block.get("priority-threshold", "high"))),
        )


def _interval(value: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    try:
        return parse_duration(str(value))
    except ValueError as exc:
        raise ConfigError(str(exc), key="progress.batching.flush-interval") from None


class ProgressEvent(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One progress event. ``fields`` is the dirty mask (``Field`` bits) for field, error and
    lease events; ``milestone``/``reason``/``undone`` describe milestone and rollback events;
    ``version`` is the row version the event reflects; ``at`` the collection time."""

    seq: int
    topic: Topic
    row: int
    version: int
    priority: Priority
    at: float
    fields: int = 0
    milestone: int = -1
    reason: RollbackReason | None = None
    undone: int = 0


class Batch(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Events delivered together. ``seq`` numbers batches from 0 with no gaps."""

    seq: int
    reason: FlushReason
    at: float
    events: tuple[ProgressEvent, ...]


class BusStatistics(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``EventBus.statistics()``. ``stalls`` counts flush attempts refused by back-pressure,
    ``stall_seconds`` the time spent refused; ``queued_batches`` sums queue subscribers'
    backlog."""

    events_collected: int
    events_delivered: int
    batches: int
    flushes: Mapping[str, int]
    pending: int
    max_pending: int
    stalls: int
    stall_seconds: float
    queued_batches: int
    max_queue_depth: int
    subscriber_errors: int
