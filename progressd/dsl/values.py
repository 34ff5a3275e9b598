"""Document values with meaning (durations, templates, conditions), checked at their path.

Each helper turns one raw value into its plan form or raises ``SpecError`` at the path it
came from, so every message has one shape: ``<path>: <what was expected>, got <value>``.
"""

from __future__ import annotations

import math

from progressd.dsl.conditions import compile_condition
from progressd.dsl.positions import Path, SpecError
from progressd.dsl.sandbox import ExpressionError
from progressd.dsl.templates import compile_template, has_placeholders
from progressd.dsl.wbs import Condition, Template
from progressd.units import parse_duration


def duration_at(value: object, path: Path) -> float:
    """Seconds in a duration value.

    Raises:
        SpecError: when the value is not a non-negative duration.
    """
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise SpecError(path, str(exc)) from None
    if not math.isfinite(seconds):
        raise SpecError(path, f"a duration is finite, got {value!r}")
    return seconds


def optional_duration_at(value: object | None, path: Path) -> float | None:
    """``duration_at`` that lets ``None`` through. Raises: SpecError as ``duration_at``."""
    return None if value is None else duration_at(value, path)


def template_at(source: str, path: Path) -> Template:
    """A compiled (and cached) template for ``source``.

    Raises:
        SpecError: when the template is malformed or escapes the sandbox.
    """
    if not has_placeholders(source):
        return Template(source=source)
    try:
        compiled = compile_template(source)
    except ExpressionError as exc:
        within = (exc.expression, exc.fragment)
        raise SpecError(path, f"bad template {_quote(source)}: {exc}", within=within) from None
    return Template(source=source, fields=tuple(sorted(compiled.fields)))


def condition_at(source: str, path: Path) -> Condition:
    """A compiled (and cached) condition for ``source``.

    Raises:
        SpecError: when the condition is malformed or escapes the sandbox.
    """
    try:
        compiled = compile_condition(source)
    except ExpressionError as exc:
        within = (exc.expression, exc.fragment)
        raise SpecError(path, f"bad condition {_quote(source)}: {exc}", within=within) from None
    return Condition(source=source, fields=tuple(sorted(compiled.fields)))


def _quote(source: str) -> str:
    return f'"{source}"' if len(source) <= 80 else f'"{source[:77]}..."'


__all__ = [
    "condition_at",
    "duration_at",
    "optional_duration_at",
    "template_at",
]
