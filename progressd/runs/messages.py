"""Messages of the runs and resources endpoints (``/v1/runs...``, ``/v1/pools``, ``/v1/leases``).

The daemon encodes them and ``progressctl`` decodes them with the same Structs. A run's event
stream (``GET /v1/runs/{run}/events``) is newline-delimited JSON: one ``RunEvent`` per line,
tagged by ``type`` (``progress``, ``state``, ``milestone``, ``rollback``, ``end``); the last line
of a stream that saw its run end is an ``end`` event carrying the final summary.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from progressd.resources import LeaseRecord, MemberRecord, PoolRecord
from progressd.runs.progress import RunProgress
from progressd.summary import RunState, RunSummary

__all__ = [
    "DrainReply",
    "DrainRequest",
    "EndEvent",
    "LeaseList",
    "MilestoneEvent",
    "PoolList",
    "ProgressEvent",
    "RollbackEvent",
    "RollbackReply",
    "RollbackRequest",
    "RunEvent",
    "RunLease",
    "RunList",
    "RunStateReply",
    "StateEvent",
    "SubmitReply",
    "SubmitRequest",
    "decode_event",
    "encode_event",
]

UserRow = Annotated[int, msgspec.Meta(ge=0)]


class _Message(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    pass


class SubmitRequest(_Message, frozen=True):
    """``POST /v1/runs``: the scenario as ``text`` (``file`` names it in errors) or as a
    ``path`` the daemon reads (absolute); ``users`` overrides every scenario's user count."""

    text: str | None = None
    file: str | None = None
    path: str | None = None
    users: UserRow | None = None

    def __post_init__(self) -> None:
        if (self.text is None) == (self.path is None):
            raise ValueError("give the scenario as exactly one of `text` or `path`")
        if self.path is not None and not self.path.startswith("/"):
            raise ValueError(f"`path` must be absolute (the daemon reads it), got {self.path!r}")


class SubmitReply(_Message, frozen=True):
    run: str


class RunList(_Message, frozen=True):
    """``GET /v1/runs``: live runs and the finished ones still kept, in submission order."""

    runs: list[RunSummary]


class RunStateReply(_Message, frozen=True):
    """The answer to pause / resume / cancel: the run's state after the request."""

    run: str
    state: RunState


class RollbackRequest(_Message, frozen=True):
    """``POST /v1/runs/{run}/rollback``: one user (a row, 0-based) or, without ``user``, all."""

    user: UserRow | None = None


class RollbackReply(_Message, frozen=True):
    run: str
    users: int


class RunLease(LeaseRecord, frozen=True):
    """A lease with the run whose pool granted it."""

    run: str


class LeaseList(_Message, frozen=True):
    leases: list[RunLease]


class PoolList(_Message, frozen=True):
    pools: list[PoolRecord]


class DrainRequest(_Message, frozen=True):
    """Optional body of ``POST /v1/pools/{pool}/members/{member}/drain``."""

    draining: bool = True


class DrainReply(_Message, frozen=True):
    pool: str
    run: str | None
    member: MemberRecord


# -- the event stream ------------------------------------------------------------------------


class _Event(
    msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True, tag_field="type"
):
    pass


class ProgressEvent(_Event, frozen=True, tag="progress"):
    """Where the run stands now (one per stream tick)."""

    progress: RunProgress


class StateEvent(_Event, frozen=True, tag="state"):
    """The run changed state (submitted, paused, resumed, cancel requested, ended)."""

    state: RunState
    elapsed_s: float
    reason: str | None = None


class MilestoneEvent(_Event, frozen=True, tag="milestone"):
    """``users`` users reached ``milestone`` in one event batch."""

    milestone: str
    users: int
    elapsed_s: float


class RollbackEvent(_Event, frozen=True, tag="rollback"):
    """``users`` users were rolled back for ``reason``, undoing ``undone`` units of work."""

    reason: str
    users: int
    undone: int
    elapsed_s: float


class EndEvent(_Event, frozen=True, tag="end"):
    """The run ended: its final summary (always the stream's last line)."""

    summary: RunSummary


RunEvent = ProgressEvent | StateEvent | MilestoneEvent | RollbackEvent | EndEvent

_EVENT_ENCODER = msgspec.json.Encoder()
_EVENT_DECODER: msgspec.json.Decoder[RunEvent] = msgspec.json.Decoder(RunEvent)


def encode_event(event: RunEvent) -> bytes:
    """One NDJSON line (with its newline)."""
    return _EVENT_ENCODER.encode(event) + b"\n"


def decode_event(line: bytes) -> RunEvent:
    """Read one stream line.

    Raises:
        ValueError: naming the faulty field.
    """
    try:
        return _EVENT_DECODER.decode(line)
    except msgspec.DecodeError as exc:
        raise ValueError(f"invalid run event: {exc}") from None
