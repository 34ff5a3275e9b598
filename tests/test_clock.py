from __future__ import annotations

import pytest

from progressd.clock import FakeClock, MonotonicClock


def test_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(10.0)
    assert clock.now() == 10.0
    clock.advance(0.5)
    clock.set(12.0)
    assert clock.now() == 12.0


def test_fake_clock_refuses_to_go_backwards() -> None:
    with pytest.raises(ValueError, match="cannot go backwards"):
        FakeClock(5.0).set(4.0)


def test_monotonic_clock_never_goes_backwards() -> None:
    clock = MonotonicClock()
    first = clock.now()
    assert clock.now() >= first
