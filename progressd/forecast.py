"""Progress rate and ETA.

Design note. Two kinds of forecast, one record shape:

* ``RateForecast`` learns a work rate from what happened and divides the remaining work by it.
  The rate is an exponential moving average (tqdm's idea, ``alpha`` 0.3 by default) of the
  per-interval rate d(work)/d(t), with the bias correction ``1 - (1 - alpha)^n`` so the first
  samples are not dragged towards zero. Observations closer together than ``min_interval_s``
  are folded into one sample, so a burst of progress events does not weigh more than a quiet
  second. The ETA is held back (``None``) until there are ``min_samples`` samples and
  ``min_elapsed_s`` seconds of history: an early guess is worse than no guess.

  Rollbacks: the rate is fed *work done including rework* (a counter that never goes down),
  while the remaining work comes from the workbook's ``done``/``total``. A rollback therefore
  grows the remaining work without making the team look slower than it is.

* ``DurationForecast`` covers duration-bound scenarios: their progress is elapsed time over the
  duration and their ETA is exact (the graceful stop of the last iteration is not included).

Both read time from an injected ``Clock`` and report through ``statistics()``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import msgspec

from progressd.clock import Clock

ForecastMode = Literal["rate", "duration"]

DEFAULT_ALPHA = 0.3
DEFAULT_MIN_SAMPLES = 3
DEFAULT_MIN_ELAPSED_S = 2.0
DEFAULT_MIN_INTERVAL_S = 0.25


class ForecastStatistics(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A snapshot of one forecast. ``eta_s`` is ``None`` while held back or stalled."""

    mode: ForecastMode
    done: float
    total: float
    progress: float
    rate_per_s: float | None
    eta_s: float | None
    samples: int
    elapsed_s: float
    held_back: bool


@dataclass(slots=True)
class _Ema:
    """An exponential moving average with the bias correction of an all-zero start."""

    alpha: float
    value: float = 0.0
    calls: int = 0

    def add(self, x: float) -> None:
        self.value = self.alpha * x + (1.0 - self.alpha) * self.value
        self.calls += 1

    def corrected(self) -> float | None:
        if self.calls == 0:
            return None
        return self.value / (1.0 - (1.0 - self.alpha) ** self.calls)


class RateForecast:
    """ETA from a smoothed, bias-corrected work rate. See the module note.

    Raises:
        ValueError: from the constructor when ``alpha`` is outside (0, 1] or a minimum is
            negative.
    """

    __slots__ = (
        "_clock",
        "_done",
        "_ema",
        "_last_t",
        "_last_work",
        "_min_elapsed_s",
        "_min_interval_s",
        "_min_samples",
        "_started",
        "_total",
    )

    def __init__(
        self,
        clock: Clock,
        *,
        alpha: float = DEFAULT_ALPHA,
        min_samples: int = DEFAULT_MIN_SAMPLES,
        min_elapsed_s: float = DEFAULT_MIN_ELAPSED_S,
        min_interval_s: float = DEFAULT_MIN_INTERVAL_S,
    ) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha!r} (tqdm uses 0.3)")
        if min_samples < 1 or min_elapsed_s < 0 or min_interval_s < 0:
            raise ValueError(
                "min_samples must be >= 1 and min_elapsed_s, min_interval_s >= 0, got "
                f"{min_samples!r}, {min_elapsed_s!r}, {min_interval_s!r}"
            )
        self._clock = clock
        self._ema = _Ema(alpha)
        self._min_samples = min_samples
        self._min_elapsed_s = min_elapsed_s
        self._min_interval_s = min_interval_s
        self._started = clock.now()
        self._last_t = self._started
        self._last_work = 0.0
        self._done = 0.0
        self._total = 0.0

    def update(self, *, work: float, done: float, total: float) -> None:
        """Record the current figures.

        ``work`` is the cumulative work performed including rework (it never decreases; a
        smaller value is treated as "no new work"). ``done`` and ``total`` are the workbook's
        current done and total work; ``total - done`` is what remains.
        """
        self._done = max(0.0, done)
        self._total = max(0.0, total)
        now = self._clock.now()
        dt = now - self._last_t
        if dt < self._min_interval_s or dt <= 0.0:
            return
        self._ema.add(max(0.0, work - self._last_work) / dt)
        self._last_work = max(self._last_work, work)
        self._last_t = now

    def rate_per_s(self) -> float | None:
        """The smoothed work rate, or ``None`` before the first sample."""
        return self._ema.corrected()

    def held_back(self) -> bool:
        """True while there is too little history to publish an ETA."""
        elapsed = self._clock.now() - self._started
        return self._ema.calls < self._min_samples or elapsed < self._min_elapsed_s

    def eta_s(self) -> float | None:
        """Seconds until ``done`` reaches ``total``; ``None`` while held back or stalled."""
        remaining = self._total - self._done
        if self._total > 0 and remaining <= 0:
            return 0.0
        rate = self.rate_per_s()
        if self.held_back() or rate is None or rate <= 0.0:
            return None
        return remaining / rate

    def statistics(self) -> ForecastStatistics:
        return ForecastStatistics(
            mode="rate",
            done=self._done,
            total=self._total,
            progress=_ratio(self._done, self._total),
            rate_per_s=self.rate_per_s(),
            eta_s=self.eta_s(),
            samples=self._ema.calls,
            elapsed_s=self._clock.now() - self._started,
            held_back=self.held_back(),
        )


class DurationForecast:
    """Exact, time-based progress for a scenario bound by ``duration``.

    Raises:
        ValueError: from the constructor when ``duration_s`` is not positive.
    """

    __slots__ = ("_clock", "_duration_s", "_started")

    def __init__(self, clock: Clock, *, duration_s: float, started_at: float | None = None) -> None:
        if duration_s <= 0:
            raise ValueError(
                f"a duration-bound scenario needs a positive duration, got {duration_s!r}"
            )
        self._clock = clock
        self._duration_s = duration_s
        self._started = clock.now() if started_at is None else started_at

    def elapsed_s(self) -> float:
        return min(self._duration_s, max(0.0, self._clock.now() - self._started))

    def eta_s(self) -> float:
        return self._duration_s - self.elapsed_s()

    def statistics(self) -> ForecastStatistics:
        elapsed = self.elapsed_s()
        return ForecastStatistics(
            mode="duration",
            done=elapsed,
            total=self._duration_s,
            progress=elapsed / self._duration_s,
            rate_per_s=1.0,
            eta_s=self._duration_s - elapsed,
            samples=0,
            elapsed_s=max(0.0, self._clock.now() - self._started),
            held_back=False,
        )


def combine_eta(parts: Iterable[ForecastStatistics]) -> float | None:
    """The ETA of scenarios running side by side: the latest one, ``None`` if any is unknown.

    A finished part (progress 1) never makes the whole unknown.
    """
    latest = 0.0
    for part in parts:
        if part.progress >= 1.0:
            continue
        if part.eta_s is None:
            return None
        latest = max(latest, part.eta_s)
    return latest


def _ratio(done: float, total: float) -> float:
    if total <= 0:
        return 0.0
    return min(1.0, done / total)
