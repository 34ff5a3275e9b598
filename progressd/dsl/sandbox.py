"""The sandbox every ``{{ ... }}`` expression passes through at load time.

Design note
-----------
Two fences, in order:

1. **Static check of the Jinja2 AST** (this module). An expression may only use constants,
   field lookups from an allowed root (``context.ROOT_FIELDS``), arithmetic (no ``**``),
   comparisons, ``and/or/not``, ``x if c else y``, literals, and a short list of filters
   and tests. Calls, private or dunder names (``__class__``, ``_x``), unknown roots (``cycler``,
   ``lipsum``, ``self``, ``config``, ``range``...), and ``{% ... %}`` statements are rejected
   here, so a hostile document fails when it is *loaded*, never when it runs.
2. **Jinja2's ``ImmutableSandboxedEnvironment``** evaluates what passed, as a second wall,
   with field access made item-first (``a.b`` reads ``a["b"]``) and string/list repetition
   capped.

The same walk yields the exact set of fields an expression reads: a chain of attribute or
string-key lookups from a root gives one dotted field (``vars.token``, ``lease.address``); a
dynamic or integer subscript ends the chain (``vars.items[0]`` reads ``vars.items``), and the
subscript's own fields are added.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, StrictUndefined, nodes
from jinja2.exceptions import TemplateSyntaxError
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment

from progressd.dsl.context import ROOT_FIELDS

MAX_REPEAT = 100_000
"""Longest string or list that ``*`` may build inside an expression."""

ALLOWED_FILTERS = frozenset(
    {
        "abs", "capitalize", "count", "d", "default", "first", "float", "int", "join",
        "last", "length", "lower", "max", "min", "replace", "round", "string", "sum",
        "title", "tojson", "trim", "truncate", "upper", "urlencode",
    }
)  # fmt: skip
ALLOWED_TESTS = frozenset(
    {
        "boolean", "defined", "divisibleby", "eq", "equalto", "even", "false", "float",
        "ge", "gt", "in", "integer", "le", "lt", "mapping", "ne", "none", "number", "odd",
        "sameas", "sequence", "string", "true", "undefined",
    }
)  # fmt: skip
_ALLOWED_NODES = (
    nodes.Const, nodes.Name, nodes.Getattr, nodes.Getitem, nodes.Slice, nodes.Compare,
    nodes.Operand, nodes.And, nodes.Or, nodes.Not, nodes.Neg, nodes.Pos, nodes.Add,
    nodes.Sub, nodes.Mul, nodes.Div, nodes.FloorDiv, nodes.Mod, nodes.Concat,
    nodes.CondExpr, nodes.Filter, nodes.Test, nodes.List, nodes.Tuple, nodes.Dict,
    nodes.Pair, nodes.Keyword,
)  # fmt: skip


class ExpressionError(ValueError):
    """Raised when an expression is malformed or reaches outside the sandbox (load time).

    ``expression`` is the expression text at fault and ``fragment`` the offending name or
    token inside it, when known: the loader uses them to point the column at the culprit.
    """

    def __init__(
        self, message: str, *, expression: str | None = None, fragment: str | None = None
    ) -> None:
        super().__init__(message)
        self.expression = expression
        self.fragment = fragment


class _Sandbox(ImmutableSandboxedEnvironment):
    """Item-first lookups and bounded repetition on top of Jinja2's immutable sandbox."""

    intercepted_binops = frozenset({"*"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        return self.getitem(obj, attribute)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*" and isinstance(left, int | str | list | tuple):
            sizes = [len(v) for v in (left, right) if isinstance(v, str | list | tuple)]
            counts = [v for v in (left, right) if isinstance(v, int)]
            if sizes and counts and sizes[0] * max(counts[0], 0) > MAX_REPEAT:
                raise OverflowError(f"repetition longer than {MAX_REPEAT} items")
        return super().call_binop(context, operator, left, right)


CONDITION_ENV = _Sandbox(undefined=ChainableUndefined, autoescape=False)
"""Conditions: a missing field is undefined, and undefined is false."""
TEMPLATE_ENV = _Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
"""Templates: rendering a missing field is an error, never an empty string."""


@dataclass(frozen=True, slots=True)
class Analysis:
    """What the static walk learned about one expression."""

    fields: frozenset[str]
    lookup: tuple[str | int, ...] | None
    """The key path when the whole expression is one plain field lookup, else ``None``."""


def parse_expression(source: str) -> nodes.Expr:
    """The Jinja2 AST of one expression (the text between ``{{`` and ``}}``).

    Raises:
        ExpressionError: when the text is not exactly one expression.
    """
    try:
        parser = Parser(CONDITION_ENV, source, state="variable")
        expr = parser.parse_expression()
        if not parser.stream.eos:
            token = parser.stream.current
            raise ExpressionError(f"unexpected {token.value!r} after the expression")
    except TemplateSyntaxError as exc:
        raise ExpressionError(f"syntax error: {exc.message}") from None
    return expr


def compile_evaluator(env: ImmutableSandboxedEnvironment, source: str) -> Callable[[Any], Any]:
    """A function ``ctx -> value`` for an expression that ``analyse`` accepted.

    Built like Jinja2's ``compile_expression`` (a template assigning the expression to
    ``result``) but rendered in a *shared* context: the caller's mapping is the parent
    scope as is, with no per-call merge of globals, which makes an evaluation about three
    times cheaper. Undefined values are returned as the environment's ``Undefined``.
    """
    body = [nodes.Assign(nodes.Name("result", "store"), parse_expression(source), lineno=1)]
    template = env.from_string(nodes.Template(body, lineno=1))
    new_context, render = template.new_context, template.root_render_func

    def evaluate(ctx: Any) -> Any:
        context = new_context(ctx, shared=True)
        for _ in render(context):
            pass
        return context.vars["result"]

    return evaluate


@lru_cache(maxsize=8192)
def analyse(source: str) -> Analysis:
    """Check one expression against the sandbox rules and list the fields it reads.

    Raises:
        ExpressionError: on a syntax error or anything the sandbox does not allow.
    """
    try:
        expr = parse_expression(source)
        fields: set[str] = set()
        _check(expr, fields)
    except ExpressionError as exc:
        exc.expression = source
        raise
    chain = _chain(expr)
    lookup = tuple(chain) if chain is not None and _is_plain(expr) else None
    return Analysis(frozenset(fields), lookup)


def _is_plain(node: nodes.Node) -> bool:
    while isinstance(node, nodes.Getattr | nodes.Getitem):
        if isinstance(node, nodes.Getitem) and not _const_key(node.arg):
            return False
        node = node.node
    return isinstance(node, nodes.Name)


def _const_key(node: nodes.Node) -> bool:
    if not isinstance(node, nodes.Const):
        return False
    return isinstance(node.value, str | int) and not isinstance(node.value, bool)


def _chain(node: nodes.Node) -> list[str | int] | None:
    """Root-first key path of a lookup chain (integer keys included), or ``None``."""
    if isinstance(node, nodes.Name):
        return [node.name]
    if isinstance(node, nodes.Getattr):
        base = _chain(node.node)
        return None if base is None else [*base, node.attr]
    if isinstance(node, nodes.Getitem) and _const_key(node.arg):
        base = _chain(node.node)
        value = node.arg.value  # type: ignore[attr-defined]
        return None if base is None else [*base, value]
    return None


def _field_name(chain: list[str | int]) -> str:
    """Dotted field up to the first integer key: ``["vars", "items", 0]`` -> ``vars.items``."""
    parts: list[str] = []
    for key in chain:
        if isinstance(key, int):
            break
        parts.append(key)
    return ".".join(parts)


def _check(node: nodes.Node, fields: set[str]) -> None:
    if not isinstance(node, _ALLOWED_NODES):
        raise ExpressionError(_disallowed(node))
    _check_node(node)
    chain = _chain(node)
    if chain is not None:
        _check_chain(chain)
        fields.add(_field_name(chain))
        return
    for child in node.iter_child_nodes():
        _check(child, fields)


def _check_node(node: nodes.Node) -> None:
    if isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
        raise ExpressionError(f"private attribute {node.attr!r} is not allowed", fragment=node.attr)
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        key = node.arg.value
        if isinstance(key, str) and key.startswith("_"):
            raise ExpressionError(f"private key {key!r} is not allowed", fragment=key)
    if isinstance(node, nodes.Filter) and node.name not in ALLOWED_FILTERS:
        raise ExpressionError(_unknown("filter", node.name, ALLOWED_FILTERS), fragment=node.name)
    if isinstance(node, nodes.Test) and node.name not in ALLOWED_TESTS:
        raise ExpressionError(_unknown("test", node.name, ALLOWED_TESTS), fragment=node.name)
    if isinstance(node, nodes.Filter | nodes.Test) and (node.dyn_args or node.dyn_kwargs):
        raise ExpressionError("*args and **kwargs are not allowed")
    if isinstance(node, nodes.Name):
        _check_root(node.name)


def _check_chain(chain: list[str | int]) -> None:
    for key in chain[1:]:
        if isinstance(key, str) and key.startswith("_"):
            raise ExpressionError(f"private field {key!r} is not allowed", fragment=key)
    root = str(chain[0])
    _check_root(root)
    known = ROOT_FIELDS[root]
    if known is not None and len(chain) > 1 and chain[1] not in known:
        choices = {f"{root}.{name}" for name in known}
        message = _unknown("field", f"{root}.{chain[1]}", choices)
        raise ExpressionError(message, fragment=str(chain[1]))


def _check_root(name: str) -> None:
    if name not in ROOT_FIELDS:
        hint = " (use vars for values that come from the environment)" if name == "env" else ""
        raise ExpressionError(_unknown("name", name, ROOT_FIELDS) + hint, fragment=name)


def _unknown(what: str, name: str, allowed: Any) -> str:
    choices = sorted(allowed)
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    hint = f'; did you mean "{close[0]}"?' if close else f"; allowed: {', '.join(choices)}"
    return f'unknown {what} "{name}"{hint}'


def _disallowed(node: nodes.Node) -> str:
    if isinstance(node, nodes.Call):
        return "function and method calls are not allowed"
    if isinstance(node, nodes.Pow):
        return "the ** operator is not allowed"
    return f"{type(node).__name__} expressions are not allowed"


__all__ = [
    "ALLOWED_FILTERS",
    "ALLOWED_TESTS",
    "CONDITION_ENV",
    "TEMPLATE_ENV",
    "Analysis",
    "ExpressionError",
    "analyse",
    "compile_evaluator",
    "parse_expression",
]
