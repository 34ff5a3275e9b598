"""The typed form of the DSL's ``resources`` and ``resource_lease`` blocks.

These Structs decode straight from the YAML mapping (kebab-case keys, unknown keys rejected)::

    msgspec.convert(doc["resources"]["ip-port-pool"]["backends"], PoolSpec)

Durations are written as people write them (``"1s"``, ``"300ms"``) and validated at decode
time, so a bad value fails with its path (``$.health-check.interval``). The ``*_s`` properties
give seconds.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from progressd.resources.pool import parse_members
from progressd.resources.records import OnFailure
from progressd.units import parse_duration

Per = Literal["user", "scenario"]
CheckKind = Literal["tcp", "http", "exec"]


class _Spec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, rename="kebab"):
    pass


class HealthCheckSpec(_Spec, frozen=True):
    """``health-check``: what to probe, how often, and what a failure does.

    Raises:
        ValueError: at decode time on a bad duration, a threshold below 1, a ``timeout`` not
            shorter than ``interval``, an ``http`` path without a leading ``/``, or an ``exec``
            check without a ``command``.
    """

    kind: CheckKind = "tcp"
    interval: str | float = "10s"
    timeout: str | float = "1s"
    successes_before_passing: int = 1
    failures_before_critical: int = 1
    on_failure: OnFailure = "rollback"
    path: str = "/"
    command: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        interval, timeout = parse_duration(self.interval), parse_duration(self.timeout)
        if interval <= 0 or timeout <= 0:
            raise ValueError("interval and timeout must be greater than zero")
        if timeout >= interval:
            raise ValueError(f"timeout ({self.timeout}) must be shorter than interval")
        if self.successes_before_passing < 1 or self.failures_before_critical < 1:
            raise ValueError("successes-before-passing and failures-before-critical must be >= 1")
        if self.kind == "http" and not self.path.startswith("/"):
            raise ValueError(f'an http check path starts with "/", got {self.path!r}')
        if self.kind == "exec" and not self.command:
            raise ValueError('an exec check needs a command, e.g. command: ["./probe", "{host}"]')

    @property
    def interval_s(self) -> float:
        return parse_duration(self.interval)

    @property
    def timeout_s(self) -> float:
        return parse_duration(self.timeout)


class PoolSpec(_Spec, frozen=True):
    """One ``ip-port-pool`` entry: members, per-member capacity, optional health check.

    Raises:
        ValueError: at decode time on a malformed member list or a capacity below 1.
    """

    members: str | tuple[str, ...]
    capacity: int | None = None
    health_check: HealthCheckSpec | None = None

    def __post_init__(self) -> None:
        parse_members(self.members)
        if self.capacity is not None and self.capacity < 1:
            raise ValueError(f"capacity must be at least 1 (or unset), got {self.capacity}")


class LeaseSpec(_Spec, frozen=True):
    """A scenario's ``resource_lease``: which pool, held per user or per scenario, for how long.

    ``release-on`` is ``end`` (the holder finished) or ``milestone:NAME``.

    Raises:
        ValueError: at decode time on a bad ``ttl`` or ``release-on``.
    """

    pool: str
    per: Per = "user"
    ttl: str | float | None = None
    release_on: str = "end"

    def __post_init__(self) -> None:
        if self.ttl is not None and parse_duration(self.ttl) <= 0:
            raise ValueError("ttl must be greater than zero (or unset for no expiry)")
        if self.release_on != "end" and not (
            self.release_on.startswith("milestone:") and self.release_on[len("milestone:") :]
        ):
            raise ValueError(f'release-on is "end" or "milestone:NAME", got {self.release_on!r}')

    @property
    def ttl_s(self) -> float | None:
        return None if self.ttl is None else parse_duration(self.ttl)

    @property
    def release_milestone(self) -> str | None:
        """The milestone that releases the lease, or ``None`` for ``end``."""
        return None if self.release_on == "end" else self.release_on[len("milestone:") :]
