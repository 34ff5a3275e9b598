from __future__ import annotations

import pytest

from progressd.clock import FakeClock
from progressd.forecast import (
    DurationForecast,
    ForecastStatistics,
    RateForecast,
    combine_eta,
)


def _feed(
    forecast: RateForecast,
    clock: FakeClock,
    *,
    seconds: int,
    rate: float,
    work: float,
    total: float,
    done: float | None = None,
) -> float:
    """Advance one second at a time doing ``rate`` work per second; return the new work."""
    for _ in range(seconds):
        clock.advance(1.0)
        work += rate
        forecast.update(work=work, done=work if done is None else done, total=total)
    return work


def test_rate_forecast_constant_rate_converges_to_exact_eta() -> None:
    clock = FakeClock()
    forecast = RateForecast(clock)
    _feed(forecast, clock, seconds=10, rate=5.0, work=0.0, total=100.0)
    assert forecast.rate_per_s() == pytest.approx(5.0)
    assert forecast.eta_s() == pytest.approx(10.0)


def test_rate_forecast_bias_correction_makes_first_sample_exact() -> None:
    clock = FakeClock()
    forecast = RateForecast(clock, min_samples=1, min_elapsed_s=0.0)
    clock.advance(2.0)
    forecast.update(work=8.0, done=8.0, total=16.0)
    # Without the 1 - (1 - alpha)^n correction this would read 0.3 * 4 = 1.2.
    assert forecast.rate_per_s() == pytest.approx(4.0)
    assert forecast.eta_s() == pytest.approx(2.0)


def test_rate_forecast_step_change_adapts_within_a_few_samples() -> None:
    clock = FakeClock()
    forecast = RateForecast(clock)
    work = _feed(forecast, clock, seconds=20, rate=10.0, work=0.0, total=1000.0)
    _feed(forecast, clock, seconds=3, rate=2.0, work=work, total=1000.0)
    after_three = forecast.rate_per_s()
    assert after_three is not None
    assert 2.0 < after_three < 5.0
    _feed(forecast, clock, seconds=12, rate=2.0, work=work + 6.0, total=1000.0)
    assert forecast.rate_per_s() == pytest.approx(2.0, rel=0.02)


def test_rate_forecast_rollback_keeps_rate_and_grows_remaining_work() -> None:
    clock = FakeClock()
    forecast = RateForecast(clock)
    work = _feed(forecast, clock, seconds=10, rate=4.0, work=0.0, total=100.0)
    # A rollback undoes 20 units: done drops to 20, the work counter (with rework) keeps going.
    _feed(forecast, clock, seconds=1, rate=4.0, work=work, total=100.0, done=24.0)
    assert forecast.rate_per_s() == pytest.approx(4.0)
    assert forecast.eta_s() == pytest.approx(76.0 / 4.0)
    stats = forecast.statistics()
    assert stats.done == 24.0
    assert stats.progress == pytest.approx(0.24)


def test_rate_forecast_decreasing_work_counts_as_no_new_work() -> None:
    clock = FakeClock()
    forecast = RateForecast(clock, min_samples=1, min_elapsed_s=0.0)
    clock.advance(1.0)
    forecast.update(work=10.0, done=10.0, total=100.0)
    clock.advance(1.0)
    forecast.update(work=5.0, done=5.0, total=100.0)
    clock.advance(1.0)
    forecast.update(work=15.0, done=15.0, total=100.0)
    rate = forecast.rate_per_s()
    assert rate is not None
    # Samples were 10, 0, 5 (not -5 then 10): the bad value never becomes negative speed.
    assert 0.0 < rate < 10.0


def test_rate_forecast_holds_back_until_enough_samples_and_time() -> None:
    clock = FakeClock()
    forecast = RateForecast(clock, min_samples=3, min_elapsed_s=5.0)
    assert forecast.eta_s() is None
    _feed(forecast, clock, seconds=3, rate=1.0, work=0.0, total=10.0)
    assert forecast.rate_per_s() == pytest.approx(1.0)
    assert forecast.held_back()
    assert forecast.eta_s() is None
    _feed(forecast, clock, seconds=2, rate=1.0, work=3.0, total=10.0)
    assert not forecast.held_back()
    assert forecast.eta_s() == pytest.approx(5.0)


def test_rate_forecast_folds_updates_closer_than_min_interval() -> None:
    clock = FakeClock()
    forecast = RateForecast(clock, min_interval_s=1.0)
    for step in range(1, 9):
        clock.advance(0.125)
        forecast.update(work=float(step), done=float(step), total=100.0)
    stats = forecast.statistics()
    assert stats.samples == 1
    assert stats.rate_per_s == pytest.approx(8.0)


def test_rate_forecast_stalled_has_no_eta_and_finished_has_zero() -> None:
    clock = FakeClock()
    forecast = RateForecast(clock, min_samples=1, min_elapsed_s=0.0)
    _feed(forecast, clock, seconds=3, rate=0.0, work=0.0, total=10.0)
    assert forecast.eta_s() is None
    forecast.update(work=10.0, done=10.0, total=10.0)
    assert forecast.eta_s() == 0.0


def test_rate_forecast_rejects_bad_alpha() -> None:
    with pytest.raises(ValueError, match=r"alpha must be in \(0, 1\]"):
        RateForecast(FakeClock(), alpha=0.0)


def test_duration_forecast_is_exact_and_capped() -> None:
    clock = FakeClock(100.0)
    forecast = DurationForecast(clock, duration_s=60.0)
    clock.advance(15.0)
    stats = forecast.statistics()
    assert stats.mode == "duration"
    assert stats.progress == pytest.approx(0.25)
    assert stats.eta_s == pytest.approx(45.0)
    assert not stats.held_back
    clock.advance(100.0)
    assert forecast.statistics().progress == 1.0
    assert forecast.eta_s() == 0.0


def test_duration_forecast_rejects_non_positive_duration() -> None:
    with pytest.raises(ValueError, match="positive duration"):
        DurationForecast(FakeClock(), duration_s=0.0)


def _stats(progress: float, eta: float | None) -> ForecastStatistics:
    return ForecastStatistics(
        mode="rate",
        done=progress,
        total=1.0,
        progress=progress,
        rate_per_s=None,
        eta_s=eta,
        samples=0,
        elapsed_s=0.0,
        held_back=eta is None,
    )


def test_combine_eta_takes_latest_and_unknown_wins_unless_finished() -> None:
    assert combine_eta([_stats(0.5, 10.0), _stats(0.2, 30.0)]) == 30.0
    assert combine_eta([_stats(0.5, 10.0), _stats(0.2, None)]) is None
    assert combine_eta([_stats(0.5, 10.0), _stats(1.0, None)]) == 10.0
    assert combine_eta([]) == 0.0
