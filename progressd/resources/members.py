"""A pool member and its health state machine.

Design note: a member's *health* moves between ``passing``, ``warning`` and ``critical`` only
through hysteresis, as Consul's ``success_before_passing`` / ``failures_before_critical`` do:
a ``critical`` result counts toward ``failures_before_critical`` and resets the success run;
a ``passing`` or ``warning`` result counts toward ``successes_before_passing`` and resets the
failure run. Only a full run changes the health, so a flapping backend whose runs are shorter
than the thresholds never changes state (and never triggers a rollback storm).

Departure from Consul, on purpose: Consul starts a check ``critical`` and makes even a healthy
backend wait ``success_before_passing`` intervals. A member here starts ``passing`` (a load test
should not stall at start) and its FIRST result is taken as it is, so a backend that is down
when the run starts is ``critical`` after one check, not ``failures-before-critical`` checks;
hysteresis applies from the second result on.

``draining`` is an operator state laid over the health: a draining member takes no new leases
and reports ``draining``, but its checks keep running and its health keeps moving underneath,
so a draining member that fails still triggers its pool's on-failure action for its holders.

Invariants: ``successes >= 0``, ``failures >= 0``, at most one of them is non-zero; ``holders``
equals the number of leases granted on this member and not yet released; ``high_holders <=
holders`` counts the leases whose holder is high priority (priority inheritance).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

HealthState = Literal["passing", "warning", "critical"]
MemberState = Literal["passing", "warning", "critical", "draining"]
CheckResult = Literal["passing", "warning", "critical"]

MEMBER_STATES: tuple[MemberState, ...] = ("passing", "warning", "critical", "draining")
CHECK_RESULTS: tuple[CheckResult, ...] = ("passing", "warning", "critical")

# Selection rank: lower is healthier. Members not in this map take no new leases.
_RANK: dict[MemberState, int] = {"passing": 0, "warning": 1}


@dataclass(slots=True, frozen=True)
class Transition:
    """A change of a member's reported state, with the result that caused it."""

    old: MemberState
    new: MemberState
    cause: str


@dataclass(slots=True)
class Hysteresis:
    """Consecutive-result counting for one member (Consul semantics, see module note).

    Raises:
        ValueError: when a threshold is below 1.
    """

    successes_before_passing: int = 1
    failures_before_critical: int = 1
    successes: int = 0
    failures: int = 0

    def __post_init__(self) -> None:
        if self.successes_before_passing < 1 or self.failures_before_critical < 1:
            raise ValueError(
                "successes-before-passing and failures-before-critical must be at least 1, got "
                f"{self.successes_before_passing} and {self.failures_before_critical}"
            )

    def seed(self, result: CheckResult) -> HealthState:
        """Start the counts from a first result, which is taken as the health."""
        self.successes, self.failures = (0, 1) if result == "critical" else (1, 0)
        return result

    def feed(self, current: HealthState, result: CheckResult) -> HealthState:
        """The health after one more ``result``, given the ``current`` health."""
        if result == "critical":
            self.successes = 0
            self.failures += 1
            return "critical" if self.failures >= self.failures_before_critical else current
        self.failures = 0
        self.successes += 1
        return result if self.successes >= self.successes_before_passing else current


@dataclass(slots=True, eq=False)
class Member:
    """One ``host:port`` in a pool: its health, its load and its capacity.

    ``capacity`` is how many leases may hold the member at once (``None``: unlimited).
    Members compare and hash by identity. ``index_rank``/``index_load`` are the pool's
    bookkeeping: where its selection index files the member (rank -1: not filed).
    """

    address: str
    host: str
    port: int
    capacity: int | None = None
    health: HealthState = "passing"
    draining: bool = False
    holders: int = 0
    high_holders: int = 0
    hysteresis: Hysteresis = field(default_factory=Hysteresis)
    last_result: CheckResult | None = None
    last_detail: str = ""
    index_rank: int = -1
    index_load: int = 0

    @property
    def state(self) -> MemberState:
        """The reported state: ``draining`` while drained, else the health."""
        return "draining" if self.draining else self.health

    @property
    def rank(self) -> int | None:
        """Selection rank (0 passing, 1 warning), or ``None`` when it takes no new lease."""
        return _RANK.get(self.state)

    @property
    def has_room(self) -> bool:
        """Whether one more lease fits under the capacity."""
        return self.capacity is None or self.holders < self.capacity

    def record(self, result: CheckResult, detail: str = "") -> Transition | None:
        """Feed one check result through the hysteresis (the first result is taken as it is,
        see the module note); the health transition it caused.

        Health transitions are reported even while the member is draining.
        """
        first = self.last_result is None
        self.last_result = result
        self.last_detail = detail
        old = self.health
        if first:
            self.health = self.hysteresis.seed(result)
        else:
            self.health = self.hysteresis.feed(old, result)
        if self.health == old:
            return None
        cause = f"{result}: {detail}" if detail else result
        return Transition(old=old, new=self.health, cause=cause)

    def set_draining(self, draining: bool) -> Transition | None:
        """Drain (take no new leases) or return to service; the transition, if any."""
        old = self.state
        self.draining = draining
        new = self.state
        if new == old:
            return None
        return Transition(old=old, new=new, cause="drained" if draining else "undrained")
