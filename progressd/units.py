"""Durations and sizes as people write them: ``250ms``, ``1s``, ``2m``, ``1h30m``, ``64KiB``.

One parser each and one error shape, shared by the DSL and the daemon config. The functions
raise ``ValueError`` with a message that says what was expected; callers add the place.
"""

from __future__ import annotations

import re

_DURATION_UNITS = {
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(us|µs|ms|s|m|h|d)")
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")

DURATION_HINT = 'expected a duration like "1s", "250ms" or "1h30m"'
SIZE_HINT = 'expected a size like "512", "64KiB" or "10MB"'


def parse_duration(value: object) -> float:
    """Seconds in a duration string (``"1h30m"`` -> 5400.0). Bare numbers are seconds.

    Raises:
        ValueError: when ``value`` is not a non-negative duration.
    """
    if isinstance(value, bool):
        raise ValueError(f"{DURATION_HINT}, got {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"{DURATION_HINT}, got {value!r} (durations cannot be negative)")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"{DURATION_HINT}, got {value!r}")
    text = value.strip()
    pos = 0
    total = 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos == 0 or pos != len(text):
        raise ValueError(f"{DURATION_HINT}, got {value!r}")
    return total


def format_duration(seconds: float) -> str:
    """The shortest readable form: ``0.25`` -> ``"250ms"``, ``5400`` -> ``"1h30m"``."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    whole = int(seconds)
    if whole != seconds or whole < 60:
        return f"{seconds:g}s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(hours, "h"), (minutes, "m"), (secs, "s")]
    return "".join(f"{n}{unit}" for n, unit in parts if n)


def parse_size(value: object) -> int:
    """Bytes in a size string (``"64KiB"`` -> 65536). Bare integers are bytes.

    Raises:
        ValueError: when ``value`` is not a non-negative size.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        match = _SIZE.fullmatch(value.strip().lower())
        if match and match.group(2) in _SIZE_UNITS:
            return int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])
    raise ValueError(f"{SIZE_HINT}, got {value!r}")
