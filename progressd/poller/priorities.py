"""Priority classes (``progress.poller.priorities``) and the per-iteration budget split.

Classes are named (``health``, ``milestone``, ``step``, ``telemetry``) and carry an integer
priority; lower runs first. Names that share a priority share a ready queue. The poller works
with dense *ranks* (0, 1, 2, ... in priority order) so a queue lookup is a list index.

Starvation guarantee: every iteration, each class that has ready handles is granted a floor
of ``floor`` handles (at least 1) before the rest of the budget goes to classes in strict
priority order. A handle at position ``p`` of its class's FIFO therefore runs within
``p // floor + 1`` iterations, however many higher-priority handles keep becoming ready.
"""

from __future__ import annotations

from collections.abc import Mapping

from progressd.errors import ConfigError

__all__ = [
    "DEFAULT_IO_BUDGET",
    "DEFAULT_PRIORITIES",
    "PriorityClasses",
    "split_budget",
    "validate_io_budget",
    "validate_limits",
]

DEFAULT_PRIORITIES: Mapping[str, int] = {"health": 0, "milestone": 1, "step": 2, "telemetry": 3}

_KEY = "progress.poller.priorities"


class PriorityClasses:
    """Maps class names to dense ranks.

    Raises:
        ConfigError: when the mapping is empty, a name is blank or a priority is not an
            integer >= 0.
    """

    __slots__ = ("_names_by_rank", "_rank_by_name")

    def __init__(self, priorities: Mapping[str, int]) -> None:
        _validate(priorities)
        levels = sorted(set(priorities.values()))
        dense = {level: rank for rank, level in enumerate(levels)}
        self._rank_by_name = {name: dense[level] for name, level in priorities.items()}
        self._names_by_rank: tuple[tuple[str, ...], ...] = tuple(
            tuple(sorted(n for n, lv in priorities.items() if lv == level)) for level in levels
        )

    @property
    def count(self) -> int:
        """How many distinct ranks (ready queues) there are."""
        return len(self._names_by_rank)

    def rank_of(self, name: str) -> int:
        """The dense rank of class ``name``.

        Raises:
            ConfigError: when ``name`` is not a configured class.
        """
        try:
            return self._rank_by_name[name]
        except KeyError:
            known = ", ".join(sorted(self._rank_by_name))
            raise ConfigError(
                f"unknown priority class {name!r}; configured classes: {known}", key=_KEY
            ) from None

    def names_of(self, rank: int) -> tuple[str, ...]:
        """The class names that share ``rank``."""
        return self._names_by_rank[rank]

    def label(self, rank: int) -> str:
        """A display name for ``rank`` (names joined with ``+`` when several share it)."""
        return "+".join(self._names_by_rank[rank])

    def __contains__(self, name: object) -> bool:
        return name in self._rank_by_name


def _validate(priorities: Mapping[str, int]) -> None:
    if not priorities:
        raise ConfigError("expected at least one priority class, e.g. {step: 0}", key=_KEY)
    for name, level in priorities.items():
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"class names must be non-empty strings, got {name!r}", key=_KEY)
        if isinstance(level, bool) or not isinstance(level, int) or level < 0:
            raise ConfigError(
                f"{name}: expected an integer priority >= 0 (0 runs first), got {level!r}",
                key=_KEY,
            )


def split_budget(lengths: list[int], budget: int, floor: int) -> tuple[list[int], int]:
    """How many ready handles each rank may run this iteration.

    Each non-empty rank first gets ``min(length, floor)``; what is left of ``budget`` then
    goes to ranks in priority order. Returns the allotments and the number of *rescues*: ranks
    that run only thanks to their floor (strict priority would have given them less).
    """
    allot = [min(n, floor) for n in lengths]
    left = budget - sum(allot)
    rescues = 0
    strict_left = budget
    for rank, n in enumerate(lengths):
        strict = min(n, max(strict_left, 0))
        strict_left -= n
        if left > 0:
            extra = min(n - allot[rank], left)
            allot[rank] += extra
            left -= extra
        if allot[rank] > strict:
            rescues += 1
    return allot, rescues


def validate_limits(
    budget: int, floor: int | None, sentinel: float, ranks: int
) -> tuple[int, int, float]:
    """Check the poller's budget, floor and sentinel; default the floor to
    ``budget // (8 * ranks)`` (at least 1).

    Raises:
        ConfigError: naming the bad value.
    """
    key = "progress.poller"
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ConfigError(f"budget: expected an integer >= 1, got {budget!r}", key=key)
    if floor is None:
        floor = max(1, budget // (8 * ranks))
    if isinstance(floor, bool) or not isinstance(floor, int) or not 1 <= floor <= budget:
        raise ConfigError(f"floor: expected an integer in [1, budget], got {floor!r}", key=key)
    if not sentinel > 0:
        raise ConfigError(
            f"sentinel: expected a positive number of seconds, got {sentinel!r}", key=key
        )
    return budget, floor, float(sentinel)


DEFAULT_IO_BUDGET = 256
"""The default ``io_budget``: see ``Poller``."""


def validate_io_budget(io_budget: int | None, budget: int) -> int:
    """Check ``io_budget`` against ``budget``; default it to ``min(budget, 256)``.

    Raises:
        ConfigError: unless it is an integer in [1, budget].
    """
    if io_budget is None:
        return min(budget, DEFAULT_IO_BUDGET)
    if (
        isinstance(io_budget, bool)
        or not isinstance(io_budget, int)
        or not 1 <= io_budget <= budget
    ):
        raise ConfigError(
            f"io-budget: expected an integer in [1, budget={budget}], got {io_budget!r}",
            key="progress.poller",
        )
    return io_budget
