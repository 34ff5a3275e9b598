"""The runner's statistics record."""

from __future__ import annotations

import msgspec

__all__ = ["RunnerStatistics"]


class RunnerStatistics(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A snapshot of one run's counters (telemetry reads it; no per-user data)."""

    state: str
    users: int
    active: int
    """Users not yet finished, cancelled or failed."""
    steps_run: int
    """Work steps finished (think, http, exec, external; skipped ones included)."""
    steps_skipped: int
    """Steps whose ``when:`` guard was false and could not change (skipped)."""
    steps_failed: int
    iterations: int
    """Iterations completed, over all users."""
    in_flight: int
    """I/O steps started and not yet completed."""
    waiting_guards: int
    """Users waiting on a ``when:`` guard that may still become true."""
    guard_rechecks: int
    """Guard evaluations triggered by dirty fields (never by a scan)."""
    rollbacks: int
