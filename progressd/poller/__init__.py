"""The progress poller: one-shot ``ProgressPollable`` handles in a priority poll loop that
emulates ``wasi:io/poll`` on one asyncio event loop. See docs/poller.md."""

from __future__ import annotations

from progressd.poller.core import AGAIN, ErrorHandler, IterationHook, Poller
from progressd.poller.poll import poll, ready_indices
from progressd.poller.pollable import PollableKind, ProgressPollable, ReadyCallback
from progressd.poller.priorities import DEFAULT_PRIORITIES, PriorityClasses, split_budget
from progressd.poller.stats import PollerStatistics, WakeLatencyHistogram

__all__ = [
    "AGAIN",
    "DEFAULT_PRIORITIES",
    "ErrorHandler",
    "IterationHook",
    "PollableKind",
    "Poller",
    "PollerStatistics",
    "PriorityClasses",
    "ProgressPollable",
    "ReadyCallback",
    "WakeLatencyHistogram",
    "poll",
    "ready_indices",
    "split_budget",
]
