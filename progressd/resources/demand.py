"""Resource-use prediction: how many leases a pool will hold a little while from now.

Design note: each pool learns two numbers by exponential smoothing (with the usual bias
correction, so the first samples are not dragged towards zero): the gap between new lease
requests, whose inverse is the arrival rate ``λ``, and how long a lease is held, ``W``. With
holds taken as exponential, the expected leases in use ``h`` seconds ahead are

    active * exp(-h/W)  +  λ * W * (1 - exp(-h/W))

— the leases held now that are still held, plus the arrivals not yet gone; for long horizons
it tends to ``λ·W`` (Little's law). Moves after a member failure are not demand and are not
counted. The prediction is held back (``None``) until both numbers have ``min_samples``
samples: an early guess is worse than none.

The manager uses it to *prepare resources ahead of predicted progress*: when the predicted
demand exceeds the room on healthy members, the checks of critical members are brought
forward, so a member that has recovered is back in the pool before the users arrive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_ALPHA = 0.2
DEFAULT_MIN_SAMPLES = 5
_MIN_GAP_S = 1e-6


@dataclass(slots=True)
class _Ema:
    alpha: float
    value: float = 0.0
    samples: int = 0

    def add(self, x: float) -> None:
        self.value = self.alpha * x + (1 - self.alpha) * self.value
        self.samples += 1

    def corrected(self) -> float:
        return self.value / (1 - (1 - self.alpha) ** self.samples)


@dataclass(slots=True)
class DemandForecast:
    """Learns one pool's lease arrival rate and hold time; predicts leases in use."""

    alpha: float = DEFAULT_ALPHA
    min_samples: int = DEFAULT_MIN_SAMPLES
    _gap: _Ema | None = None
    _hold: _Ema | None = None
    _last_arrival: float | None = None

    def __post_init__(self) -> None:
        self._gap = _Ema(self.alpha)
        self._hold = _Ema(self.alpha)

    def on_request(self, now: float) -> None:
        """A new lease was asked for (granted or queued)."""
        assert self._gap is not None  # Invariant: set in __post_init__.
        if self._last_arrival is not None:
            self._gap.add(max(now - self._last_arrival, _MIN_GAP_S))
        self._last_arrival = now

    def on_release(self, held_s: float) -> None:
        """A lease ended after ``held_s`` seconds (released, finished or expired)."""
        assert self._hold is not None
        self._hold.add(max(held_s, 0.0))

    @property
    def rate_per_s(self) -> float | None:
        """Smoothed lease requests per second, or ``None`` while held back."""
        assert self._gap is not None
        if self._gap.samples < self.min_samples:
            return None
        return 1.0 / max(self._gap.corrected(), _MIN_GAP_S)

    @property
    def hold_s(self) -> float | None:
        """Smoothed seconds a lease is held, or ``None`` while held back."""
        assert self._hold is not None
        return self._hold.corrected() if self._hold.samples >= self.min_samples else None

    def predict(self, active: int, horizon_s: float) -> float | None:
        """Expected leases in use ``horizon_s`` from now (``None`` while held back)."""
        rate, hold = self.rate_per_s, self.hold_s
        if rate is None or hold is None:
            return None
        if hold <= 0:
            return float(active) if horizon_s <= 0 else 0.0
        still = math.exp(-horizon_s / hold)
        return active * still + rate * hold * (1 - still)
