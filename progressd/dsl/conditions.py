"""``when:`` conditions, compiled once per distinct source text.

A condition is written ``"{{ vars.token }}"`` or as a bare expression ``"vars.token"``
(Ansible style); both compile to the same thing. Compilation checks the expression against
the sandbox (``sandbox.py``), records the exact fields it reads (``fields``) so the runner
re-evaluates it only when one of them changed, and picks the cheapest evaluator: a plain
field lookup is read straight from the context (missing -> false); anything else calls
Jinja2's compiled expression in the sandbox. A comparison or arithmetic on a missing field
is false too; an expression that fails on the values it got (``"a" > 1``) raises
``RenderError`` so the runner can fail that one step instead of the loop.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2.exceptions import SecurityError, UndefinedError

from progressd.dsl.context import Context, RenderError
from progressd.dsl.sandbox import CONDITION_ENV, ExpressionError, analyse, compile_evaluator

_WRAPPED = re.compile(r"\A\s*\{\{(?P<expr>.*)\}\}\s*\Z", re.DOTALL)
_MISSING = (KeyError, IndexError, TypeError)
_RUNTIME = (TypeError, ValueError, ArithmeticError, LookupError, SecurityError)


@dataclass(frozen=True, slots=True)
class CompiledCondition:
    """A checked, compiled condition. ``evaluate`` is safe to call per user, per event."""

    source: str
    expression: str
    fields: frozenset[str]
    _evaluate: Callable[[Context], Any]

    def evaluate(self, ctx: Context) -> bool:
        """Truth of the condition for one context; a missing field makes it false.

        Raises:
            RenderError: when the expression fails on the values it got (``"a" > 1``,
                division by zero, a repetition over the sandbox's limit).
        """
        try:
            return bool(self._evaluate(ctx))
        except UndefinedError:
            return False
        except _RUNTIME as exc:
            raise RenderError(f"condition {self.source!r}: {exc}") from None


def unwrap(source: str) -> str:
    """The expression inside ``{{ ... }}``, or the text itself when it is not wrapped.

    Raises:
        ExpressionError: when the text holds ``{%``, or more than one ``{{ }}`` block.
    """
    if "{%" in source:
        message = "statements ({% ... %}) are not allowed in a condition"
        raise ExpressionError(message, fragment="{%")
    match = _WRAPPED.match(source)
    expr = match.group("expr") if match else source
    if "{{" in expr or "}}" in expr:
        raise ExpressionError('a condition is one expression: write "{{ a and b }}"')
    if not expr.strip():
        raise ExpressionError("empty condition")
    return expr.strip()


@lru_cache(maxsize=4096)
def compile_condition(source: str) -> CompiledCondition:
    """Check and compile ``source``; the same text always returns the same object.

    Raises:
        ExpressionError: on a syntax error or anything the sandbox rejects.
    """
    expr = unwrap(source)
    info = analyse(expr)
    if info.lookup is not None:
        evaluate = _lookup_evaluator(info.lookup)
    else:
        evaluate = compile_evaluator(CONDITION_ENV, expr)
    return CompiledCondition(source, expr, info.fields, evaluate)


def _lookup_evaluator(path: tuple[str | int, ...]) -> Callable[[Context], Any]:
    root, *rest = path

    def evaluate(ctx: Context) -> Any:
        try:
            value = ctx[str(root)]
            for key in rest:
                value = value[key]
        except _MISSING:
            return None
        return value

    return evaluate


__all__ = ["CompiledCondition", "compile_condition", "unwrap"]
