"""An ``ip-port-pool``: its members, and the choice of the healthiest, least-loaded one.

Design note: selection must not scan the members on every grant (10,000 users on a 100-member
pool would pay 100 comparisons per lease). Each selection rank (passing, warning) keeps a
``LoadIndex``: buckets of members keyed by their current lease count, plus a lower bound on the
smallest non-empty bucket. A grant or release moves one member between adjacent buckets, so
both are O(1) amortised; within a bucket members are taken in insertion order, which spreads
equal-load grants round-robin. A member that is full, critical or draining is in no index.

Invariants: a member is in at most one index (``member.index_rank``, -1 for none), in the
bucket ``member.index_load``, which equals its ``holders`` after every ``reindex``; it is in an
index exactly when ``member.rank is not None and member.has_room``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from progressd.resources.members import MEMBER_STATES, Hysteresis, Member

_MEMBER = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9_.-]+)):(?P<ports>.+)$")
_PORTS = re.compile(r"^(?P<first>\d{1,5})(?:-(?P<last>\d{1,5}))?$")
_HEALTH_RANK = {"passing": 0, "warning": 1, "critical": -1}
MEMBER_HINT = 'expected "host:port", "host:first-last" or "[v6]:port" like "127.0.0.1:18081-18090"'


def parse_members(spec: str | Iterable[str]) -> list[tuple[str, int]]:
    """``(host, port)`` pairs from a member string, a port range or a list of them.

    Raises:
        ValueError: on a malformed member, a port outside 1..65535, a reversed range, or a
            duplicate member.
    """
    items = [spec] if isinstance(spec, str) else list(spec)
    out: list[tuple[str, int]] = []
    seen: set[tuple[str, int]] = set()
    for item in items:
        for pair in _expand(item):
            if pair in seen:
                raise ValueError(f"member {format_address(*pair)} is listed twice")
            seen.add(pair)
            out.append(pair)
    if not out:
        raise ValueError(f"a pool needs at least one member; {MEMBER_HINT}")
    return out


def _expand(item: object) -> Iterator[tuple[str, int]]:
    match = _MEMBER.match(item.strip()) if isinstance(item, str) else None
    ports = _PORTS.match(match.group("ports")) if match else None
    if match is None or ports is None:
        raise ValueError(f"{MEMBER_HINT}, got {item!r}")
    host = match.group("v6") or match.group("host")
    first = int(ports.group("first"))
    last = int(ports.group("last") or first)
    if not 1 <= first <= last <= 65535:
        raise ValueError(f"ports must be 1..65535 and first <= last, got {item!r}")
    for port in range(first, last + 1):
        yield host, port


def format_address(host: str, port: int) -> str:
    """``host:port``, bracketing IPv6 hosts."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(slots=True)
class LoadIndex:
    """Members bucketed by lease count, for O(1) least-loaded selection (see module note)."""

    buckets: dict[int, dict[Member, None]] = field(default_factory=dict)
    size: int = 0
    low: int = 0

    def add(self, member: Member) -> None:
        self._file(member)
        self.size += 1

    def remove(self, member: Member) -> None:
        self._unfile(member)
        self.size -= 1

    def move(self, member: Member) -> None:
        """Re-file a member already in this index after its load changed."""
        self._unfile(member)
        self._file(member)

    def _file(self, member: Member) -> None:
        load = member.holders
        bucket = self.buckets.get(load)
        if bucket is None:
            self.buckets[load] = {member: None}
        else:
            bucket[member] = None
        member.index_load = load
        if load < self.low:  # noqa: PLR1730 - a branch beats min() on this hot path
            self.low = load

    def _unfile(self, member: Member) -> None:
        load = member.index_load
        bucket = self.buckets[load]
        del bucket[member]
        if not bucket:
            del self.buckets[load]

    def least(self) -> Member | None:
        if not self.size:
            return None
        while self.low not in self.buckets:
            self.low += 1
        return next(iter(self.buckets[self.low]))


class Pool:
    """A named set of members with per-member capacity and load-aware selection.

    Raises:
        ValueError: from the constructor, on bad members or a capacity below 1.
    """

    __slots__ = ("_indexes", "capacity", "members", "name", "run")

    def __init__(
        self,
        name: str,
        members: str | Iterable[str],
        *,
        capacity: int | None = None,
        successes_before_passing: int = 1,
        failures_before_critical: int = 1,
        run: str | None = None,
    ) -> None:
        if capacity is not None and capacity < 1:
            raise ValueError(
                f"capacity must be at least 1 (or unset for unlimited), got {capacity}"
            )
        self.name = name
        self.run = run
        self.capacity = capacity
        self.members: dict[str, Member] = {}
        self._indexes = (LoadIndex(), LoadIndex())
        for host, port in parse_members(members):
            hysteresis = Hysteresis(successes_before_passing, failures_before_critical)
            member = Member(format_address(host, port), host, port, capacity, hysteresis=hysteresis)
            self.members[member.address] = member
            self.reindex(member)

    def member(self, address: str) -> Member:
        """The member at ``address``.

        Raises:
            KeyError: when the pool has no such member.
        """
        return self.members[address]

    def select(self) -> Member | None:
        """The healthiest member with room, least loaded first; ``None`` when exhausted."""
        return self._indexes[0].least() or self._indexes[1].least()

    def reindex(self, member: Member) -> None:
        """Re-file ``member`` after its load, health or draining changed."""
        new = -1 if member.draining else _HEALTH_RANK[member.health]
        if new >= 0 and member.capacity is not None and member.holders >= member.capacity:
            new = -1
        old = member.index_rank
        if old == new:
            if new >= 0 and member.index_load != member.holders:
                self._indexes[new].move(member)
            return
        if old >= 0:
            self._indexes[old].remove(member)
        if new >= 0:
            self._indexes[new].add(member)
        member.index_rank = new

    def count_states(self) -> dict[str, int]:
        """How many members are in each state (every state present, zeros included)."""
        counts: dict[str, int] = dict.fromkeys(MEMBER_STATES, 0)
        for member in self.members.values():
            counts[member.state] += 1
        return counts

    def count_holders(self) -> int:
        """Leases currently held on this pool's members."""
        return sum(member.holders for member in self.members.values())
