"""From a file or text to a ``Plan``: the public entry points of the DSL.

Design note
-----------
The fast path is: hash the bytes -> cache hit? return the cached plan. Otherwise PyYAML's C
loader builds plain data (rejecting duplicate keys as it goes), the version is read, msgspec
converts the data into the schema Structs in one call, and ``build.py`` makes the plan. No
positions are tracked on that path. When any stage fails, the failure's document path is
mapped to a line and column by composing the YAML node tree once (``positions.locate``), and
a ``DslError(message, file=, line=, column=, doc_path=)`` is raised.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

import msgspec
import yaml

from progressd.dsl.build import build_plan
from progressd.dsl.cache import DEFAULT_CACHE, PlanCache, content_hash
from progressd.dsl.diagnostics import diagnose
from progressd.dsl.positions import Path, SpecError, format_path, locate
from progressd.dsl.schema import Document
from progressd.dsl.v1 import V1Document, lift, v1_path
from progressd.dsl.wbs import Plan
from progressd.errors import DslError

MAX_NODES = 1_000_000
"""Most values a document may expand to once YAML aliases are followed."""
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Loader(yaml.CSafeLoader):
    """The C safe loader, refusing duplicate mapping keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[tuple[str, str]] = set()
        for key_node, _value in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _MERGE_TAG:
                key = (key_node.tag, key_node.value)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f'duplicate key "{key_node.value}"', key_node.start_mark
                    )
                seen.add(key)
        return super().construct_mapping(node, deep)


def load_plan(
    path: str, *, cache: PlanCache | None = DEFAULT_CACHE, shared_pools: Collection[str] = ()
) -> Plan:
    """The plan of the scenario file at ``path`` (from the cache when the bytes are known).
    ``shared_pools``: see ``load_plan_text``.

    Raises:
        DslError: when the file cannot be read, parsed, validated or compiled.
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise DslError(f"cannot read the file: {exc.strerror or exc}", file=path) from None
    return load_plan_text(data, file=path, cache=cache, shared_pools=shared_pools)


def load_plan_text(
    text: str | bytes,
    *,
    file: str = "<string>",
    cache: PlanCache | None = DEFAULT_CACHE,
    shared_pools: Collection[str] = (),
) -> Plan:
    """The plan of a scenario document given as text (``file`` names it in errors).

    ``shared_pools``: names of pools declared in the daemon config that a ``resource_lease``
    may name besides the document's own pools (the daemon passes them at submit;
    ``progressd run``/``check`` pass none, so there an undeclared pool is an error). A plan
    accepted only thanks to them is not cached.

    Raises:
        DslError: when the document cannot be parsed, validated or compiled.
    """
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    digest = content_hash(raw)
    if cache is not None and (plan := cache.get(digest)) is not None:
        return plan
    source = text if isinstance(text, str) else _decode(raw, file)
    plan = _parse(source, file, digest, frozenset(shared_pools))
    if cache is not None and not shared_pools:
        cache.put(digest, plan)
    return plan


def _decode(raw: bytes, file: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DslError(f"the file is not UTF-8 text (byte {exc.start})", file=file,
                       line=line) from None  # fmt: skip


def _parse(source: str, file: str, digest: str, shared_pools: frozenset[str]) -> Plan:
    data = _load_yaml(source, file)
    version = 2
    try:
        version = read_version(data)
        doc = lift(_convert(data, V1Document)) if version == 1 else _convert(data, Document)
        return build_plan(doc, source_hash=digest, version=version, shared_pools=shared_pools)
    except SpecError as exc:
        path = v1_path(exc.path) if version == 1 else exc.path
        raise _positioned(exc, path, source, file) from None
    except RecursionError:
        raise DslError("the document is nested too deeply", file=file) from None


def _convert(data: Any, kind: type[Any]) -> Any:
    try:
        return msgspec.convert(data, kind)
    except msgspec.ValidationError as exc:
        raise diagnose(exc, data, kind) from None


def read_version(data: Any) -> int:
    """The document version: ``version`` if present, else 1 when it has ``scenarios``.

    Raises:
        SpecError: when the document is not a mapping or its version is unsupported.
    """
    if not isinstance(data, dict):
        shown = "an empty document" if data is None else f"a {type(data).__name__}"
        raise SpecError((), f"a scenario document is a mapping (version, name, load), got {shown}")
    version = data.get("version")
    if version is None:
        if "scenarios" in data and "load" not in data:
            return 1
        raise SpecError((), 'missing "version": put "version: 2" at the top of the document')
    if version in (1, 2) and isinstance(version, int) and not isinstance(version, bool):
        return version
    near = None
    if isinstance(version, str | float) and not isinstance(version, bool):
        near = {"1": 1, "2": 2, 1.0: 1, 2.0: 2}.get(version)
    hint = f" (write the whole number: version: {near})" if near else ""
    raise SpecError(
        ("version",), f"unsupported version {version!r}; this progressd reads 1 and 2{hint}"
    )


def _load_yaml(source: str, file: str) -> Any:
    try:
        data = yaml.load(source, Loader=_Loader)  # a CSafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(p for p in (exc.context, exc.problem) if p) or "syntax error"
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        raise DslError(f"YAML: {problem}", file=file, line=line, column=column) from None
    except yaml.YAMLError as exc:
        raise DslError(f"YAML: {exc}", file=file) from None
    except RecursionError:
        raise DslError("the document is nested too deeply", file=file) from None
    if "*" in source:
        _check_expansion(data, source, file)
    return data


def _check_expansion(data: Any, source: str, file: str) -> None:
    """Reject alias bombs and recursive aliases before anything walks the data."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(value: Any) -> int:
        if not isinstance(value, list | dict):
            return 1
        key = id(value)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise _alias_error("a YAML alias refers to itself", source, file)
        active.add(key)
        items = value.values() if isinstance(value, dict) else value
        total = 1 + sum(size(item) for item in items)
        active.discard(key)
        if total > MAX_NODES:
            message = f"the document expands to more than {MAX_NODES} values through YAML aliases"
            raise _alias_error(message, source, file)
        sizes[key] = total
        return total

    try:
        size(data)
    except RecursionError:
        raise DslError("the document is nested too deeply", file=file) from None


def _alias_error(message: str, source: str, file: str) -> DslError:
    """An alias error placed at the first alias (``*name``) in the text."""
    match = re.search(r"(?<![^\s\[{,:-])\*[^\s,\]}]+", source)
    if match is None:
        return DslError(message, file=file)
    line = source.count("\n", 0, match.start()) + 1
    column = match.start() - (source.rfind("\n", 0, match.start()) + 1) + 1
    return DslError(f"{message} ({match.group()})", file=file, line=line, column=column)


def _positioned(exc: SpecError, path: Path, source: str, file: str) -> DslError:
    where = locate(source, path, at_key=exc.at_key, within=exc.within)
    line, column = where if where is not None else (None, None)
    return DslError(exc.message, file=file, line=line, column=column,
                    doc_path=format_path(path) or None)  # fmt: skip


__all__ = ["load_plan", "load_plan_text", "read_version"]
