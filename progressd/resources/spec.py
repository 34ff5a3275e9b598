"""What the resource manager is told to build: pools, health checks, lease requests.

The manager takes any object with these fields (the ``*Config`` Protocols), so the DSL's
compiled ``PoolPlan`` / ``HealthCheckPlan`` / ``LeasePlan`` (``progressd.dsl.wbs``) and the
daemon config's shared pools plug in directly without this package importing either. The
Structs here are the same shapes for callers without a DSL document (tests, benchmarks, the
daemon config); they validate themselves on construction.
"""

from __future__ import annotations

from typing import Literal, Protocol

import msgspec

from progressd.resources.pool import parse_members
from progressd.resources.records import OnFailure

Per = Literal["user", "scenario"]
CheckKind = Literal["tcp", "http", "exec"]


class HealthCheckConfig(Protocol):
    """A ``health-check`` block, durations in seconds."""

    @property
    def kind(self) -> str: ...
    @property
    def interval_s(self) -> float: ...
    @property
    def timeout_s(self) -> float: ...
    @property
    def successes_before_passing(self) -> int: ...
    @property
    def failures_before_critical(self) -> int: ...
    @property
    def on_failure(self) -> OnFailure: ...
    @property
    def path(self) -> str: ...
    @property
    def expect_status(self) -> int: ...
    @property
    def argv(self) -> tuple[str, ...]: ...


class PoolConfig(Protocol):
    """An ``ip-port-pool`` entry; ``max_leases_per_member`` is the per-member capacity."""

    @property
    def name(self) -> str: ...
    @property
    def members(self) -> tuple[str, ...]: ...
    @property
    def health_check(self) -> HealthCheckConfig | None: ...
    @property
    def max_leases_per_member(self) -> int | None: ...


class LeaseConfig(Protocol):
    """A scenario's ``resource_lease``; ``release_milestone`` is set for ``milestone:NAME``."""

    @property
    def pool(self) -> str: ...
    @property
    def per(self) -> Per: ...
    @property
    def ttl_s(self) -> float | None: ...
    @property
    def release_milestone(self) -> str | None: ...


class _Spec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class HealthCheckSpec(_Spec, frozen=True):
    """A concrete ``HealthCheckConfig``.

    Raises:
        ValueError: on a non-positive interval or timeout, a timeout longer than the interval,
            a threshold below 1, an http path without a leading ``/``, or an exec check
            without ``argv``.
    """

    kind: CheckKind = "tcp"
    interval_s: float = 10.0
    timeout_s: float = 1.0
    successes_before_passing: int = 1
    failures_before_critical: int = 1
    on_failure: OnFailure = "rollback"
    path: str = "/"
    expect_status: int = 200
    argv: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.interval_s <= 0 or not 0 < self.timeout_s <= self.interval_s:
            raise ValueError(
                f"need 0 < timeout <= interval, got timeout {self.timeout_s}s "
                f"and interval {self.interval_s}s"
            )
        if self.successes_before_passing < 1 or self.failures_before_critical < 1:
            raise ValueError("successes-before-passing and failures-before-critical must be >= 1")
        if self.kind == "http" and not self.path.startswith("/"):
            raise ValueError(f'an http check path starts with "/", got {self.path!r}')
        if self.kind == "exec" and not self.argv:
            raise ValueError('an exec check needs argv, e.g. ["./probe", "{host}", "{port}"]')


class PoolSpec(_Spec, frozen=True):
    """A concrete ``PoolConfig``; ``members`` may hold ranges (``host:first-last``).

    Raises:
        ValueError: on malformed or duplicate members, or a capacity below 1.
    """

    name: str
    members: tuple[str, ...]
    health_check: HealthCheckSpec | None = None
    max_leases_per_member: int | None = None

    def __post_init__(self) -> None:
        parse_members(self.members)
        if self.max_leases_per_member is not None and self.max_leases_per_member < 1:
            raise ValueError(
                f"max-leases-per-member must be at least 1 (or unset), got "
                f"{self.max_leases_per_member}"
            )


class LeaseSpec(_Spec, frozen=True):
    """A concrete ``LeaseConfig``.

    Raises:
        ValueError: on a non-positive ``ttl_s``.
    """

    pool: str
    per: Per = "user"
    ttl_s: float | None = None
    release_milestone: str | None = None

    def __post_init__(self) -> None:
        if self.ttl_s is not None and self.ttl_s <= 0:
            raise ValueError(f"ttl must be greater than zero (or unset), got {self.ttl_s}s")
