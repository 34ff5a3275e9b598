"""Document paths and where they are in the YAML text.

Design note
-----------
Loading never keeps positions: the fast path is PyYAML's C parser straight to plain Python
data, then one msgspec conversion. Only when something is wrong does ``locate`` compose the
YAML node tree (again, with the C composer) and walk it along the document path of the
error, so a valid document pays nothing for positioned errors.

A path is a tuple of mapping keys (``str``) and list indexes (``int``):
``("load", "scenarios", 0, "steps", 3, "http", "url")``, written
``load.scenarios[0].steps[3].http.url`` by ``format_path``.
"""

from __future__ import annotations

from typing import TypeAlias

import yaml

Path: TypeAlias = tuple[str | int, ...]
Within: TypeAlias = tuple[str | None, str | None] | None
"""(expression, fragment) to find inside a one-line scalar, to point at the culprit."""


class SpecError(Exception):
    """A validation failure at a document path; the loader turns it into a ``DslError``.

    ``at_key`` points the position at the mapping key of the last path element (unknown or
    duplicate fields) instead of at its value.
    """

    def __init__(
        self, path: Path, message: str, *, at_key: bool = False, within: Within = None
    ) -> None:
        super().__init__(message)
        self.path = path
        self.message = message
        self.at_key = at_key
        self.within = within


def format_path(path: Path) -> str:
    """``("load", "scenarios", 0, "name")`` -> ``"load.scenarios[0].name"``."""
    out = ""
    for key in path:
        if isinstance(key, int):
            out += f"[{key}]"
        else:
            out += f".{key}" if out else str(key)
    return out


def locate(
    text: str, path: Path, *, at_key: bool = False, within: Within = None
) -> tuple[int, int] | None:
    """1-based (line, column) of ``path`` in ``text``: the deepest node the path reaches.

    With ``within``, a one-line scalar is searched for the expression, then for the fragment
    inside it, and the column moves there when found.

    Returns ``None`` when the text does not compose (the caller reports a syntax error then).
    """
    try:
        node = yaml.compose(text, Loader=yaml.CSafeLoader)
    except (yaml.YAMLError, RecursionError):
        return None
    if node is None:
        return (1, 1)
    mark = node.start_mark
    for index, key in enumerate(path):
        last = index == len(path) - 1
        found = _child(node, key)
        if found is None:
            break
        key_node, node = found
        on_key = last and at_key and key_node is not None
        mark = key_node.start_mark if on_key and key_node is not None else node.start_mark
    column = mark.column
    if within is not None and isinstance(node, yaml.ScalarNode) and mark is node.start_mark:
        column = _column_within(text, node, within)
    return (mark.line + 1, column + 1)


def _column_within(text: str, node: yaml.ScalarNode, within: tuple[str | None, str | None]) -> int:
    """0-based column of the fragment (or expression) inside a one-line scalar."""
    start, end = node.start_mark, node.end_mark
    if start.line != end.line:
        return int(start.column)
    line = text.splitlines()[start.line]
    expression, fragment = within
    low, high = start.column, end.column
    if expression:
        found = line.find(expression, low, high)
        if found >= 0:
            low, high = found, found + len(expression)
    if fragment:
        found = line.find(fragment, low, high)
        if found >= 0:
            return found
    return int(low)


def _child(node: yaml.Node, key: str | int) -> tuple[yaml.Node | None, yaml.Node] | None:
    if isinstance(node, yaml.SequenceNode) and isinstance(key, int):
        if 0 <= key < len(node.value):
            item: yaml.Node = node.value[key]
            return None, item
        return None
    if isinstance(node, yaml.MappingNode):
        return _mapping_child(node, str(key))
    return None


def _mapping_child(node: yaml.MappingNode, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    merges: list[yaml.Node] = []
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            return key_node, value_node
        if key_node.tag == "tag:yaml.org,2002:merge":
            merges.append(value_node)
    for merged in merges:
        sources = merged.value if isinstance(merged, yaml.SequenceNode) else [merged]
        for source in sources:
            if isinstance(source, yaml.MappingNode):
                found = _mapping_child(source, key)
                if found is not None:
                    return found
    return None


__all__ = ["Path", "SpecError", "Within", "format_path", "locate"]
