"""Step values -> user variables: the one ``extract`` implementation of http and exec steps.

A source is either a JSON path, ``json.a.b[0]``, into the step's document (an http step's
response body, an exec step's standard output), or a scalar its kind names: ``status`` and
``body`` for http, ``stdout`` and ``exit_code`` for exec. Sources are parsed once per step
(``extract_source``) into ``Extractor`` triples; ``extract`` decodes the document at most once
per completion, and only when a ``json.*`` source asks for it. A document that is not JSON, or
a path that is not in it, fails the step with error class ``extract`` and a message naming the
variable and the path.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import msgspec

from progressd.errors import StateError

__all__ = ["Extractor", "extract", "extract_source"]

Extractor = tuple[str, str, tuple[str | int, ...]]
"""(variable, kind, path): kind ``json`` (with its path) or one of the step's scalars."""

_PATH_PART = re.compile(r"\.([A-Za-z0-9_\-]+)|\[(\d+)\]")
_MISSING = object()


def extract_source(source: str, scalars: tuple[str, ...]) -> tuple[str, tuple[str | int, ...]]:
    """``"json.items[0].id"`` -> ``("json", ("items", 0, "id"))``; a scalar ``s`` in
    ``scalars`` -> ``(s, ())``.

    Raises:
        StateError: for a source that is neither (the DSL would not have accepted it).
    """
    if source in scalars:
        return source, ()
    rest = source[4:]
    if not source.startswith("json") or _PATH_PART.sub("", rest):
        expected = ", ".join(f'"{s}"' for s in ("json.a.b", *scalars))
        raise StateError(f'extract "{source}": expected one of {expected}')
    parts: list[str | int] = []
    for match in _PATH_PART.finditer(rest):
        name, index = match.groups()
        parts.append(int(index) if index is not None else name)
    return "json", tuple(parts)


def extract(
    step: str,
    extractors: tuple[Extractor, ...],
    document: bytes,
    scalar: Callable[[str], Any],
    where: str,
) -> tuple[dict[str, Any] | None, tuple[str, str] | None]:
    """The variables of ``extractors``, or ``(None, ("extract", message))`` on the first
    failure. ``document`` is decoded as JSON for ``json.*`` sources; ``scalar(kind)`` gives
    the others; ``where`` names the document in messages (``"the body"``, ``"stdout"``)."""
    variables: dict[str, Any] = {}
    decoded: Any = _MISSING
    for var, kind, path in extractors:
        if kind != "json":
            variables[var] = scalar(kind)
            continue
        if decoded is _MISSING:
            try:
                decoded = msgspec.json.decode(document)
            except msgspec.DecodeError as exc:
                message = f"{where} is not JSON ({exc}), cannot read {_show(path)}"
                return None, ("extract", f"{step}: extract {var}: {message}")
        value = _follow(decoded, path)
        if value is _MISSING:
            return None, ("extract", f"{step}: extract {var}: {_show(path)} is not in {where}")
        variables[var] = value
    return variables, None


def _show(path: tuple[str | int, ...]) -> str:
    return "json" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def _follow(document: Any, path: tuple[str | int, ...]) -> Any:
    value = document
    for part in path:
        if isinstance(part, int):
            if not isinstance(value, list) or part >= len(value):
                return _MISSING
        elif not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value
