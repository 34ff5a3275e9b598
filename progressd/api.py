"""Messages on the control socket: what ``/v1/...`` answers, as msgspec Structs.

The daemon encodes them and ``progressctl`` decodes them with the same types, so the two can
never disagree about a field. Every error answer has the shape
``{"error": {"code": "...", "message": "..."}}``.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

import msgspec

T = TypeVar("T", bound=msgspec.Struct)

__all__ = ["ErrorBody", "ErrorCode", "ErrorReply", "StatusReply", "decoder", "encode"]

ErrorCode = Literal[
    "bad_request",
    "forbidden",
    "not_found",
    "method_not_allowed",
    "conflict",
    "unavailable",
    "internal",
]


class ErrorBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    code: ErrorCode
    message: str


class ErrorReply(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """The body of every non-2xx answer."""

    error: ErrorBody


class StatusReply(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """``GET /v1/status``: is the daemon alive and how is its loop doing."""

    version: str
    pid: int
    started_at: str
    uptime_seconds: float
    loop_lag_seconds: float
    loop_lag_max_seconds: float
    runs: int
    socket: str
    metrics: str | None
    config: str | None


_encoder = msgspec.json.Encoder()


def encode(message: msgspec.Struct) -> bytes:
    """JSON bytes for one message."""
    return _encoder.encode(message)


_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {}


def decoder(kind: type[T]) -> msgspec.json.Decoder[T]:
    """The (cached) JSON decoder for one message type."""
    found = _decoders.get(kind)
    if found is None:
        found = _decoders[kind] = msgspec.json.Decoder(kind)
    return found
