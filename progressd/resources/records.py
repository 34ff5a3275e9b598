"""Frozen records the resource manager hands out: events, lease views and statistics.

Events are a tagged union (``type`` field) so the event bus and the control socket can encode
them with one ``msgspec`` encoder; statistics are what telemetry reads instead of reaching into
the manager's internals.
"""

from __future__ import annotations

from typing import Literal

import msgspec

OnFailure = Literal["rollback", "release", "ignore", "abort"]
RollbackCode = Literal["health-check-failed"]
ROLLBACK_CODE: RollbackCode = "health-check-failed"
"""The reason code ``rollback_users`` receives (one of the workbook's rollback reasons); the
readable cause (pool, member, check detail) travels in the ``FailureAction`` event."""
ReleaseReason = Literal[
    "released", "milestone", "end", "expired", "member-failed", "pool-removed", "shutdown"
]


class _Record(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class CheckCompleted(_Record, tag="check-completed", frozen=True):
    """One health check finished with ``result`` (before hysteresis)."""

    pool: str
    member: str
    result: str
    detail: str
    duration_s: float
    at: float


class MemberTransition(_Record, tag="member-transition", frozen=True):
    """A member's reported state changed (after hysteresis, or by draining)."""

    pool: str
    member: str
    old: str
    new: str
    cause: str
    at: float


class FailureAction(_Record, tag="failure-action", frozen=True):
    """A member went critical and its pool's ``on-failure`` action ran on its holders."""

    pool: str
    member: str
    action: OnFailure
    rows: int
    leases: int
    reason: str
    at: float


class LeasesExpired(_Record, tag="leases-expired", frozen=True):
    """Leases whose holders made no progress for their ``ttl`` were taken back."""

    pool: str
    rows: tuple[int, ...]
    at: float


class CapacityForecast(_Record, tag="capacity-forecast", frozen=True):
    """Predicted demand exceeds the room on healthy members; ``prepared`` lists the critical
    members whose checks were brought forward."""

    pool: str
    horizon_s: float
    predicted: float
    capacity: int
    prepared: tuple[str, ...]
    at: float


ResourceEvent = CheckCompleted | MemberTransition | FailureAction | LeasesExpired | CapacityForecast


class LeaseRecord(_Record, frozen=True):
    """One lease as the control socket shows it, with its holder's progress (two-way binding).

    For a ``per: scenario`` lease, ``progress`` is the mean over its rows and ``milestone`` is
    the milestone they all share (``None`` when they differ).
    """

    id: int
    pool: str
    member: str
    per: Literal["user", "scenario"]
    scenario: str
    priority: int
    rows: tuple[int, ...]
    granted_at: float
    expires_at: float | None
    progress: float
    milestone: str | None


class MemberRecord(_Record, frozen=True):
    """One member as the control socket shows it."""

    address: str
    state: str
    holders: int
    capacity: int | None
    inherited_class: str
    last_result: str | None
    last_detail: str


class PoolRecord(_Record, frozen=True):
    """One pool as the control socket shows it (``GET /v1/pools``)."""

    name: str
    run: str | None
    check: str | None
    interval_s: float | None
    on_failure: OnFailure
    leases_active: int
    waiters: int
    members: tuple[MemberRecord, ...]


class DemandRecord(_Record, frozen=True):
    """A pool's predicted lease use ``horizon_s`` ahead (``None`` fields: not learnt yet or
    unlimited)."""

    pool: str
    horizon_s: float
    active: int
    waiters: int
    predicted: float | None
    healthy_capacity: int | None
    rate_per_s: float | None
    hold_s: float | None


class PoolStatistics(_Record, frozen=True):
    """Per-pool figures: members by state, leases held, users waiting."""

    name: str
    run: str | None
    members: int
    member_states: dict[str, int]
    leases_active: int
    waiters: int


class LeaseStatistics(_Record, frozen=True):
    """Lease counters since start."""

    active: int
    waiters: int
    grants_total: int
    releases_total: int
    expiries_total: int


class CheckStatistics(_Record, frozen=True):
    """Health-check counters since start."""

    in_flight: int
    by_result: dict[str, int]
    timeouts_total: int


class ResourceStatistics(_Record, frozen=True):
    """Everything telemetry reads from the resource manager in one frozen record."""

    pools: tuple[PoolStatistics, ...]
    leases: LeaseStatistics
    checks: CheckStatistics
    transitions_total: int
    rollbacks_triggered_total: int
    rows_rolled_back_total: int
    aborts_total: int
