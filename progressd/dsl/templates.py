"""Templated strings (URLs, headers, bodies, argv), compiled once to the cheapest renderer.

Design note
-----------
A template is split with Jinja2's own lexer into literal text and ``{{ ... }}``
placeholders; ``{% ... %}`` statements are rejected and ``{# ... #}`` comments dropped. Each
placeholder goes through the sandbox (``sandbox.py``). Then one of three renderers is chosen:

* no placeholder — the literal string is returned as is;
* only plain field lookups (``lease.address``, ``vars["id"]``, ``vars.items[0]``) — the
  template becomes one generated f-string function,
  ``lambda ctx: f"{L0}{ctx['lease']['address']}{L1}"``, as fast as a hand-written f-string:
  no Jinja2 call, no per-part Python loop. The generated source holds only ``ctx``, the
  names ``L0``, ``L1``... bound to the literal parts, and lookup keys that passed a strict
  pattern (identifier-like strings or integers) written with ``repr`` — no document text is
  ever spliced into code;
* otherwise — a tuple of parts (literal strings, field getters, compiled Jinja2 expressions)
  joined per render; only the real expressions go through Jinja2.

A field the context does not hold raises ``RenderError`` naming the template. Compiled forms
are cached by source text, so a URL shared by 100k users is compiled once.
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError

from progressd.dsl.context import Context, RenderError
from progressd.dsl.sandbox import TEMPLATE_ENV, ExpressionError, analyse, compile_evaluator

Part = str | Callable[[Context], Any]
_SAFE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*\Z")
_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_NEEDS_LEXER = re.compile(r"[\"'{}]")
_STATEMENT_TOKENS = frozenset({"block_begin", "raw_begin", "linestatement_begin"})
_MISSING = (KeyError, IndexError, UndefinedError)
_RUNTIME = (TypeError, ValueError, ArithmeticError, SecurityError)


@dataclass(frozen=True, slots=True)
class CompiledTemplate:
    """A checked, compiled template. ``render`` is the per-request hot path."""

    source: str
    fields: frozenset[str]
    kind: str
    """``"static"``, ``"direct"`` (a generated f-string) or ``"mixed"`` (parts joined)."""
    _render: Callable[[Context], str]

    def render(self, ctx: Context) -> str:
        """The string for one context.

        Raises:
            RenderError: when a field the template reads is missing from ``ctx``, or an
                expression fails on the values it got.
        """
        try:
            return self._render(ctx)
        except _MISSING as exc:
            raise RenderError(f"template {self.source!r}: missing field ({exc})") from None
        except _RUNTIME as exc:
            raise RenderError(f"template {self.source!r}: {exc}") from None


def has_placeholders(text: str) -> bool:
    """Whether ``text`` contains any Jinja2 syntax and must be compiled."""
    return "{{" in text or "{%" in text or "{#" in text


@lru_cache(maxsize=4096)
def compile_template(source: str) -> CompiledTemplate:
    """Check and compile ``source``; the same text always returns the same object.

    Raises:
        ExpressionError: on a syntax error, a statement, or anything the sandbox rejects.
    """
    parts: list[str | tuple[str, tuple[str | int, ...] | None]] = []
    fields: set[str] = set()
    for kind, text in _split(source):
        if kind == "data":
            parts.append(text)
            continue
        info = analyse(text)
        fields |= info.fields
        parts.append((text, info.lookup))
    return CompiledTemplate(source, frozenset(fields), *_choose_renderer(source, parts))


def _split(source: str) -> list[tuple[str, str]]:
    """``("data", text)`` and ``("expr", source)`` pieces, in order."""
    simple = _split_simple(source)
    return simple if simple is not None else _split_lexed(source)


def _split_simple(source: str) -> list[tuple[str, str]] | None:
    """The common case without Jinja2's lexer: only ``{{ }}`` holding no quotes, braces or
    whitespace-control marks. ``None`` when the lexer must decide."""
    if "{%" in source or "{#" in source:
        return None
    pieces: list[tuple[str, str]] = []
    pos = 0
    for match in _PLACEHOLDER.finditer(source):
        inner = match.group(1)
        if _NEEDS_LEXER.search(inner) or inner[:1] in "-+" or inner[-1:] in "-+":
            return None
        if match.start() > pos:
            pieces.append(("data", source[pos : match.start()]))
        pieces.append(("expr", inner.strip()))
        pos = match.end()
    rest = source[pos:]
    if "{{" in rest or "}}" in rest:
        return None
    if rest:
        pieces.append(("data", rest))
    if any(kind == "expr" and not text for kind, text in pieces):
        raise ExpressionError("empty placeholder {{ }}")
    return pieces


def _split_lexed(source: str) -> list[tuple[str, str]]:
    pieces: list[tuple[str, str]] = []
    expr: list[str] | None = None
    try:
        for _line, token, value in TEMPLATE_ENV.lex(source):
            if token in _STATEMENT_TOKENS:
                message = "statements ({% ... %}) are not allowed in a template"
                raise ExpressionError(message, fragment="{%")
            if token == "variable_begin":
                expr = []
            elif token == "variable_end" and expr is not None:
                pieces.append(("expr", "".join(expr).strip()))
                expr = None
            elif expr is not None:
                expr.append(value)
            elif token == "data":
                pieces.append(("data", value))
    except TemplateSyntaxError as exc:
        raise ExpressionError(f"syntax error: {exc.message}") from None
    if expr is not None:
        raise ExpressionError('unclosed placeholder: "{{" without "}}"', fragment="{{")
    if any(kind == "expr" and not text for kind, text in pieces):
        raise ExpressionError("empty placeholder {{ }}")
    return pieces


def _choose_renderer(
    source: str, parts: list[str | tuple[str, tuple[str | int, ...] | None]]
) -> tuple[str, Callable[[Context], str]]:
    exprs = [part for part in parts if not isinstance(part, str)]
    if not exprs:
        literal = "".join(part for part in parts if isinstance(part, str))
        return "static", lambda _ctx: literal
    if all(lookup is not None and _direct_safe(lookup) for _text, lookup in exprs):
        return "direct", _direct_renderer(parts)
    compiled = tuple(_compile_part(part) for part in parts)
    return "mixed", _join_renderer(compiled)


def _direct_safe(path: tuple[str | int, ...]) -> bool:
    return all(
        (isinstance(key, int) and key >= 0) or (isinstance(key, str) and _SAFE_KEY.match(key))
        for key in path
    )


def _direct_renderer(
    parts: list[str | tuple[str, tuple[str | int, ...] | None]],
) -> Callable[[Context], str]:
    """A generated ``lambda ctx: f"..."`` (see the design note for why this is safe)."""
    names: dict[str, Any] = {"__builtins__": {}}
    body = ""
    for part in parts:
        if isinstance(part, str):
            name = f"L{len(names) - 1}"
            names[name] = part
            body += "{" + name + "}"
            continue
        lookup = part[1]
        assert lookup is not None  # checked by _direct_safe
        body += "{ctx" + "".join(f"[{key!r}]" for key in lookup) + "}"
    render: Callable[[Context], str] = types.FunctionType(direct_code(body), names)
    return render


@lru_cache(maxsize=4096)
def direct_code(body: str) -> types.CodeType:
    """Code of ``lambda ctx: f"<body>"``, shared by templates of the same shape."""
    module = compile(f'lambda ctx: f"{body}"', "<template>", "eval")
    code = next(c for c in module.co_consts if isinstance(c, types.CodeType))
    return code


def _compile_part(part: str | tuple[str, tuple[str | int, ...] | None]) -> Part:
    if isinstance(part, str):
        return part
    text, lookup = part
    if lookup is not None:
        return _getter(lookup)
    return compile_evaluator(TEMPLATE_ENV, text)


def _getter(path: tuple[str | int, ...]) -> Callable[[Context], Any]:
    root, *rest = path

    def get(ctx: Context) -> Any:
        value = ctx[str(root)]
        for key in rest:
            value = value[key]
        return value

    return get


def _join_renderer(parts: tuple[Part, ...]) -> Callable[[Context], str]:
    def render(ctx: Context) -> str:
        return "".join([part if isinstance(part, str) else str(part(ctx)) for part in parts])

    return render


def render_json(value: Any, ctx: Context) -> Any:
    """A JSON-like value with every templated string leaf rendered (keys are left alone).

    Raises:
        RenderError: when a template reads a missing field.
    """
    if isinstance(value, str):
        return compile_template(value).render(ctx) if has_placeholders(value) else value
    if isinstance(value, list):
        return [render_json(item, ctx) for item in value]
    if isinstance(value, dict):
        return {key: render_json(item, ctx) for key, item in value.items()}
    return value


__all__ = ["CompiledTemplate", "compile_template", "has_placeholders", "render_json"]
