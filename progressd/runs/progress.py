"""Live progress of a run: the records the live display and ``watch`` show, and the per-scenario
tracker that turns counters into rates and an ETA.

``ScenarioTracker.sample(done, work, requests)`` is called on the run's progress tick (a
PROGRESS_CHECK pollable every ``tick_s``), never per request: it feeds the ETA forecast
(``forecast.py``: bias-corrected EMA, held back until it has enough samples, rework-aware) and
an EMA of requests per second.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from progressd.clock import Clock
from progressd.forecast import DurationForecast, ForecastStatistics, RateForecast
from progressd.summary import RunState

__all__ = ["RunProgress", "ScenarioProgress", "ScenarioTracker"]

_RATE_ALPHA = 0.3


class ScenarioProgress(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One scenario at one instant. ``active`` users have started and not ended; ``finished``
    ended (done, failed or cancelled). ``waiting_for_resource`` counts the ``active`` users
    whose step waits for a lease. ``eta_s`` is ``None`` while the forecast is held back."""

    name: str
    users: int
    active: int
    finished: int
    progress: float
    iterations: int
    requests: int
    errors: int
    req_per_s: float
    eta_s: float | None
    milestones: dict[str, int] = {}
    waiting_for_resource: int = 0


class RunProgress(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A run at one instant: the figures of the live bars and ``progressctl watch``."""

    run: str
    name: str
    state: RunState
    elapsed_s: float
    users: int
    active: int
    finished: int
    progress: float
    requests: int
    errors: int
    rollbacks: int
    req_per_s: float
    eta_s: float | None
    scenarios: tuple[ScenarioProgress, ...]
    waiting_for_resource: int = 0
    """Of the ``active`` users, those whose step waits for a lease."""


@dataclass(slots=True)
class ScenarioTracker:
    """Rates and ETA of one scenario, sampled on the progress tick."""

    clock: Clock
    duration_s: float | None
    forecast: RateForecast | DurationForecast | None = None
    req_per_s: float = 0.0
    _raw_rate: float = 0.0
    _rate_calls: int = 0
    _last_requests: int = 0
    _last_t: float = 0.0

    def begin(self, now: float) -> None:
        """The run started at ``now``."""
        self._last_t = now
        if self.duration_s is not None and self.duration_s > 0:
            self.forecast = DurationForecast(self.clock, duration_s=self.duration_s, started_at=now)
        else:
            self.forecast = RateForecast(self.clock)

    def sample(self, *, done: int, work: int, total: int | None, requests: int) -> None:
        """Record the figures now: ``done`` work, cumulative ``work`` including rework,
        ``total`` work (``None`` for duration-bound), ``requests`` so far."""
        if isinstance(self.forecast, RateForecast) and total is not None:
            self.forecast.update(work=work, done=done, total=total)
        now = self.clock.now()
        dt = now - self._last_t
        if dt <= 0:
            return
        instant = (requests - self._last_requests) / dt
        self._rate_calls += 1
        self._raw_rate = _RATE_ALPHA * instant + (1 - _RATE_ALPHA) * self._raw_rate
        self.req_per_s = self._raw_rate / (1 - (1 - _RATE_ALPHA) ** self._rate_calls)
        self._last_requests, self._last_t = requests, now

    def statistics(self, *, finished: bool) -> ForecastStatistics | None:
        """The forecast's record, ``None`` before ``begin``."""
        if self.forecast is None:
            return None
        stats = self.forecast.statistics()
        if finished:
            return msgspec.structs.replace(stats, progress=1.0, eta_s=0.0)
        return stats
