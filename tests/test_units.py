from __future__ import annotations

import pytest

from progressd.units import format_duration, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("1s", 1.0),
        ("2m", 120.0),
        ("1h30m", 5400.0),
        ("1.5s", 1.5),
        (3, 3.0),
        ("100us", 1e-4),
        ("1d", 86400.0),
        (" 10s ", 10.0),
    ],
)
def test_parse_duration_accepts_human_forms(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["fast", "", "1", "1x", "s", "1s2", "-1s", True, None, [1], -2])
def test_parse_duration_rejects_with_hint(bad: object) -> None:
    with pytest.raises(ValueError, match=r"expected a duration like \"1s\""):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.25, "250ms"), (5400, "1h30m"), (1.5, "1.5s"), (90, "1m30s"), (5, "5s")]
)
def test_format_duration_round_trips(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)


def test_parse_size_units() -> None:
    assert parse_size("64KiB") == 65536
    assert parse_size("10MB") == 10_000_000
    assert parse_size(512) == 512
    with pytest.raises(ValueError, match="expected a size"):
        parse_size("lots")
