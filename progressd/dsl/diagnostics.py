"""Turn a msgspec ``ValidationError`` into a message a person can act on.

msgspec reports ``Object contains unknown field `htp` - at `$.load.scenarios[0].steps[1]```.
This module parses that into a document path, resolves the schema type found there (walking
the Struct annotations alongside the data, so dict entries that msgspec shows as ``[...]`` get
their real key), and words the message: the bad value, what was expected, and for unknown
fields or enum values a "did you mean" suggestion. It runs only on the error path.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import msgspec

from progressd.dsl.positions import Path, SpecError
from progressd.dsl.schema import Duration
from progressd.units import DURATION_HINT

_AT = re.compile(r"^(?P<msg>.*?)(?: - at (?:`key` in )?`(?P<path>\$[^`]*)`)?$", re.DOTALL)
_TOKEN = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")
_TYPE_WORDS = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "object": "a mapping",
    "array": "a list",
    "null": "nothing (null)",
}


def diagnose(exc: msgspec.ValidationError, data: Any, root: type) -> SpecError:
    """A ``SpecError`` with the document path and a plain-words message for ``exc``."""
    match = _AT.match(str(exc))
    assert match is not None  # the pattern matches any text
    message = match.group("msg")
    raw_path = match.group("path") or "$"
    path, annotation, value = _resolve(raw_path, data, root)
    if " - at `key` in " in str(exc):
        key = (
            next((k for k in value if not isinstance(k, str)), None)
            if isinstance(value, dict)
            else None
        )
        return SpecError(path, f"keys must be strings, got {key!r}")
    return _word(message, path, annotation, value)


def _word(message: str, path: Path, annotation: Any, value: Any) -> SpecError:
    if message.startswith("Object contains unknown field"):
        name = message.split("`")[1]
        return SpecError((*path, name), _unknown_field(name, annotation), at_key=True)
    if message.startswith("Object missing required field"):
        name = message.split("`")[1]
        return SpecError(path, f'missing required field "{name}"')
    if message.startswith("Invalid enum value"):
        return SpecError(path, _bad_choice(value, annotation))
    if message.startswith("Expected"):
        return SpecError(path, _expected(message, annotation, value))
    return SpecError(path, message)


def _resolve(raw: str, data: Any, root: type) -> tuple[Path, Any, Any]:
    """Walk ``$.a[0][...].b`` through data and annotations together."""
    path: list[str | int] = []
    annotation: Any = root
    value = data
    for name, index in _TOKEN.findall(raw[1:]):
        if index == "...":
            key, value, annotation = _failing_entry(value, _dict_value_type(annotation))
            path.append(key)
            continue
        step: str | int = int(index) if index else name
        path.append(step)
        annotation = _member_type(annotation, step)
        value = _index(value, step)
    return tuple(path), annotation, value


def _index(value: Any, step: str | int) -> Any:
    if isinstance(step, int) and isinstance(value, list) and step < len(value):
        return value[step]
    if isinstance(step, str) and isinstance(value, dict):
        return value.get(step)
    return None


def _failing_entry(value: Any, annotation: Any) -> tuple[str, Any, Any]:
    """The first dict entry whose value does not convert to ``annotation`` (msgspec's order)."""
    if isinstance(value, dict):
        for key, item in value.items():
            try:
                msgspec.convert(item, annotation)
            except (msgspec.ValidationError, TypeError):
                return str(key), item, annotation
    return "?", None, annotation


def _strip(annotation: Any) -> list[Any]:
    """The concrete alternatives of an annotation (Annotated and unions unwrapped)."""
    if get_origin(annotation) is typing.Annotated:
        return _strip(get_args(annotation)[0])
    if get_origin(annotation) in (Union, types.UnionType):
        return [alt for arg in get_args(annotation) for alt in _strip(arg)]
    return [annotation]


def _struct_in(annotation: Any) -> type[msgspec.Struct] | None:
    for alt in _strip(annotation):
        if isinstance(alt, type) and issubclass(alt, msgspec.Struct):
            return alt
    return None


def _member_type(annotation: Any, step: str | int) -> Any:
    if isinstance(step, int):
        for alt in _strip(annotation):
            if get_origin(alt) is list:
                return get_args(alt)[0]
        return Any
    struct = _struct_in(annotation)
    if struct is None:
        return Any
    hints = get_type_hints(struct, include_extras=True)
    for field in msgspec.structs.fields(struct):
        if field.encode_name == step:
            return hints[field.name]
    return Any


def _dict_value_type(annotation: Any) -> Any:
    for alt in _strip(annotation):
        if get_origin(alt) is dict:
            return get_args(alt)[1]
    return Any


def _unknown_field(name: str, annotation: Any) -> str:
    struct = _struct_in(annotation)
    known = [f.encode_name for f in msgspec.structs.fields(struct)] if struct else []
    return f'unknown field "{name}"' + suggest(name, known)


def suggest(name: str, choices: typing.Iterable[str]) -> str:
    """``; did you mean "x"?`` for the closest choice, or the list of choices when few."""
    choices = list(choices)
    normal = {c.replace("_", "-").lower(): c for c in choices}
    wanted = name.replace("_", "-").lower()
    if wanted in normal:
        return f'; did you mean "{normal[wanted]}"?'
    close = difflib.get_close_matches(wanted, list(normal), n=1, cutoff=0.6)
    if close:
        return f'; did you mean "{normal[close[0]]}"?'
    if choices and len(choices) <= 12:
        return "; expected one of: " + ", ".join(sorted(choices))
    return ""


def _bad_choice(value: Any, annotation: Any) -> str:
    options = [str(v) for alt in _strip(annotation) if get_origin(alt) is Literal
               for v in get_args(alt)]  # fmt: skip
    listed = ", ".join(f'"{o}"' for o in options)
    hint = suggest(str(value), options) if isinstance(value, str) else ""
    if hint.startswith("; expected"):
        hint = ""
    return f"expected one of {listed}, got {_show(value)}{hint}"


def _expected(message: str, annotation: Any, value: Any) -> str:
    if _is_duration(annotation):
        return f"{DURATION_HINT}, got {_show(value)}"
    struct = _struct_in(annotation)
    if struct is not None and set(_strip(Duration)) <= set(_strip(annotation)):
        fields = ", ".join(f.encode_name for f in msgspec.structs.fields(struct))
        return f"{DURATION_HINT} or a mapping {{{fields}}}, got {_show(value)}"
    literal = [alt for alt in _strip(annotation) if get_origin(alt) is Literal]
    if literal and len(literal) == len([a for a in _strip(annotation) if a is not type(None)]):
        return _bad_choice(value, annotation)
    match = re.match(r"Expected `([^`]*)`(.*?)(?:, got `[^`]*`)?$", message, re.DOTALL)
    if match is None:
        return message
    words = [_TYPE_WORDS.get(name, name) for name in match.group(1).split(" | ")]
    wanted = " or ".join(dict.fromkeys(words)) + match.group(2)
    return f"expected {wanted}, got {_show(value)}"


def _is_duration(annotation: Any) -> bool:
    alts = {a for a in _strip(annotation) if a is not type(None)}
    return alts == set(_strip(Duration))


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"' if len(value) <= 60 else f'"{value[:57]}..."'
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    return repr(value)


__all__ = ["diagnose", "suggest"]
