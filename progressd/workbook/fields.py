"""The workbook's field set: which fields exist, which are hot (typed columns) and which cold.

Hot fields live in one typed ``array`` each, indexed by row. Cold fields live in one dict each,
holding only the rows that have a value. ``Field`` numbers double as bit positions in a row's
dirty mask, so a row's changed fields are one small integer.
"""

from __future__ import annotations

from array import array
from enum import IntEnum
from typing import Final, Literal

from progressd.errors import StateError


class Status(IntEnum):
    """Where a virtual user stands. Stored as one byte per row.

    ``PENDING`` rows have not started; ``ACTIVE`` rows run a step; ``THINKING`` rows sit in a
    think time; ``WAITING`` rows wait for a condition or an external report;
    ``WAITING_FOR_RESOURCE`` rows wait for a lease; ``DONE``, ``FAILED`` and ``CANCELLED`` are
    final.
    """

    PENDING = 0
    ACTIVE = 1
    THINKING = 2
    WAITING = 3
    WAITING_FOR_RESOURCE = 4
    DONE = 5
    FAILED = 6
    CANCELLED = 7


FINAL_STATUSES: Final = frozenset({Status.DONE, Status.FAILED, Status.CANCELLED})


class Field(IntEnum):
    """A workbook field. The value is the field's bit in a row's dirty mask.

    Hot (typed columns): ``STEP`` step pointer, ``ITERATION``, ``DONE`` done work units,
    ``STATUS`` a ``Status``, ``LEASE`` lease id (``-1`` = none), ``DUE`` next-due time on the run
    clock, ``ERRORS`` error count, ``MILESTONE`` the last milestone reached (``-1`` = none; written
    only by ``reach_milestone`` and ``rollback``).
    Cold (sparse maps): ``VARS`` extracted variables (a mapping, replaced whole, never mutated in
    place), ``ERROR_TEXT`` the last error message, ``PAYLOAD`` the last external report.
    """

    STEP = 0
    ITERATION = 1
    DONE = 2
    STATUS = 3
    LEASE = 4
    DUE = 5
    ERRORS = 6
    MILESTONE = 7
    VARS = 8
    ERROR_TEXT = 9
    PAYLOAD = 10

    @property
    def mask(self) -> int:
        """This field's bit in a dirty mask."""
        return 1 << self.value


HOT_FIELDS: Final = (
    Field.STEP,
    Field.ITERATION,
    Field.DONE,
    Field.STATUS,
    Field.LEASE,
    Field.DUE,
    Field.ERRORS,
    Field.MILESTONE,
)
COLD_FIELDS: Final = (Field.VARS, Field.ERROR_TEXT, Field.PAYLOAD)

# array typecodes: int32 step/iteration/lease, int64 done work, uint8 status, float64 due,
# uint32 error count, int16 milestone.
HOT_TYPECODES: Final[dict[Field, str]] = {
    Field.STEP: "i",
    Field.ITERATION: "i",
    Field.DONE: "q",
    Field.STATUS: "B",
    Field.LEASE: "i",
    Field.DUE: "d",
    Field.ERRORS: "I",
    Field.MILESTONE: "h",
}
# The fields every step writes (step pointer, iteration, done work) live in Python lists, like
# the row version and dirty mask, not in arrays: in CPython 3.11 a list item read or write is
# specialised bytecode, while an array's setitem parses its argument and its getitem boxes a new
# int — a no-op step ran ~30% faster with lists (docs/perf/poller.md). A list costs 8 bytes a row
# plus, once a value leaves the small-int cache (-5..256), a 28-byte int of the row's own.
# Writes to these fields are range-checked against the typecode above (what the array enforced),
# so a value that would not fit a stable column or a snapshot is refused the same way.
BOXED_FIELDS: Final = (Field.STEP, Field.ITERATION, Field.DONE)
BOXED_LIMITS: Final[dict[Field, tuple[int, int]]] = {
    f: (-(1 << bits - 1), (1 << bits - 1) - 1)
    for f in BOXED_FIELDS
    for bits in [8 * array(HOT_TYPECODES[f]).itemsize]
}
HOT_DEFAULTS: Final[dict[Field, int | float]] = {
    Field.STEP: 0,
    Field.ITERATION: 0,
    Field.DONE: 0,
    Field.STATUS: int(Status.PENDING),
    Field.LEASE: -1,
    Field.DUE: 0.0,
    Field.ERRORS: 0,
    Field.MILESTONE: -1,
}
# Fields ``Workbook.set`` accepts (MILESTONE moves only through milestones and rollback).
SETTABLE_FIELDS: Final = frozenset(HOT_FIELDS) - {Field.MILESTONE}
# Fields ``Workbook.add`` accepts: the counters and the numeric pointers.
ADDABLE_FIELDS: Final = frozenset(
    {Field.STEP, Field.ITERATION, Field.DONE, Field.ERRORS, Field.DUE}
)
# Fields a rollback restores from the stable point; the rest (lease, due, errors, error text)
# describe the present, not progress, and stay as they are.
RESTORED_HOT: Final = (Field.STEP, Field.ITERATION, Field.DONE, Field.STATUS, Field.MILESTONE)
RESTORED_COLD: Final = (Field.VARS, Field.PAYLOAD)

ALL_FIELDS_MASK: Final = (1 << len(Field)) - 1
ERROR_MASK: Final = Field.ERRORS.mask | Field.ERROR_TEXT.mask
LEASE_MASK: Final = Field.LEASE.mask

RollbackReason = Literal[
    "health-check-failed",
    "lease-lost",
    "step-failed",
    "manual",
    "restart",
]
"""Why rows were rolled back; recorded with every rollback event."""

ROLLBACK_REASONS: Final = frozenset(
    {"health-check-failed", "lease-lost", "step-failed", "manual", "restart"}
)


def fields_in(mask: int) -> list[Field]:
    """The fields whose bits are set in ``mask``, in field order."""
    return [f for f in Field if mask & (1 << f.value)]


_SCRATCH: Final = {f: array(t, [0]) for f, t in HOT_TYPECODES.items()}


def field_name(field: Field | int) -> str:
    """``Field.DONE`` -> ``"done"``; unknown numbers are named as such."""
    try:
        return Field(field).name.lower()
    except ValueError:
        return f"field {field!r}"


def check_value(field: Field, value: int | float) -> None:
    """Check that ``value`` fits hot field ``field`` without writing it.

    Raises:
        StateError: when it is not an integer (``DUE`` takes floats), not a ``Status``, or
            does not fit the column's type.
    """
    if field == Field.STATUS and not (isinstance(value, int) and 0 <= value < len(Status)):
        raise StateError(f"status={value!r} is not a Status (0..{len(Status) - 1})")
    if field != Field.DUE and not isinstance(value, int):
        raise StateError(f"{field_name(field)}={value!r}: expected an integer")
    try:
        _SCRATCH[field][0] = value  # type: ignore[assignment]
    except (OverflowError, TypeError) as exc:
        raise StateError(f"{field_name(field)}={value!r} does not fit its column: {exc}") from None
