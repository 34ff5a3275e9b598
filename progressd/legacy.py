"""The legacy progress model: the plain design a first version would have had.

Every user is a dict holding every field; a milestone stores a copy of the user's progress
fields in the dict; change is found by a periodic loop that compares every user against the copy
it kept at the previous scan; totals are computed by scanning. It satisfies the same
``ProgressModel`` interface as the ``Workbook``, so it is the baseline every benchmark compares
against and the "old model" shadow mode runs beside the new one.

It is meant to be a fair baseline, not a strawman: statuses and milestones are stored as short
interned strings, stable copies are shallow (extracted vars are copied as a dict, as a careful
first version would to protect the snapshot from later in-place edits), and the scan compares
dicts with ``!=`` rather than field by field in Python.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

import msgspec

from progressd.errors import StateError
from progressd.workbook.fields import (
    ADDABLE_FIELDS,
    ROLLBACK_REASONS,
    SETTABLE_FIELDS,
    Field,
    RollbackReason,
    Status,
    check_value,
    field_name,
)
from progressd.workbook.model import ProgressTotals

_KEYS: Final = {f: f.name.lower() for f in Field}
_KEYS[Field.ERROR_TEXT] = "error_text"
_STATUS_NAMES: Final = tuple(s.name.lower() for s in Status)
_PROGRESS_KEYS: Final = ("step", "iteration", "done", "status", "milestone", "vars", "payload")


class LegacyEvent(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A change found by a scan: the user and the names of the fields that differ."""

    row: int
    version: int
    changed: tuple[str, ...]


class LegacyWorkbook:
    """Dict-per-user progress state. Satisfies ``ProgressModel``.

    Raises:
        StateError: on an unknown row, field, milestone, status or reason.
    """

    def __init__(self, milestones: Sequence[str] = (), *, rows: int = 0) -> None:
        self._milestones = tuple(milestones)
        self.users: list[dict[str, Any]] = []
        self._seen: list[dict[str, Any]] = []
        self._rework = 0
        self._rollbacks = 0
        self._reaches = 0
        self.subscribers: list[Callable[[list[LegacyEvent]], None]] = []
        if rows:
            self.add_rows(rows)

    @property
    def milestones(self) -> tuple[str, ...]:
        return self._milestones

    def add_rows(self, count: int) -> range:
        first = len(self.users)
        for row in range(first, first + count):
            user = _new_user(row)
            self.users.append(user)
            self._seen.append(dict(user))
        return range(first, len(self.users))

    # -- reads ---------------------------------------------------------------------------

    def get(self, row: int, field: Field) -> int | float:
        user = self._user(row)
        value = user[_KEYS[field]]
        if field == Field.STATUS:
            return _STATUS_NAMES.index(value)
        if field == Field.MILESTONE:
            return -1 if value is None else self._milestones.index(value)
        if field == Field.LEASE:
            return -1 if value is None else int(value)
        return int(value) if field != Field.DUE else float(value)

    def get_cold(self, row: int, field: Field) -> object | None:
        value = self._user(row)[_KEYS[field]]
        return value or None if field == Field.VARS else value

    def version(self, row: int) -> int:
        return int(self._user(row)["version"])

    # -- writes --------------------------------------------------------------------------

    def set(self, row: int, field: Field, value: int | float) -> None:
        user = self._user(row)
        if field not in SETTABLE_FIELDS:
            raise StateError(f"{field_name(field)} cannot be set directly")
        check_value(field, value)
        stored = _to_stored(field, value)
        if user[_KEYS[field]] != stored:
            user[_KEYS[field]] = stored
            user["version"] += 1

    def add(self, row: int, field: Field, delta: int | float) -> None:
        user = self._user(row)
        if field not in ADDABLE_FIELDS:
            raise StateError(f"{field_name(field)} is not a counter; use set()")
        if delta:
            user[_KEYS[field]] += delta
            user["version"] += 1

    def set_cold(self, row: int, field: Field, value: object | None) -> None:
        user = self._user(row)
        key = _KEYS[field]
        stored = (value or {}) if field == Field.VARS else value
        if user[key] != stored:
            user[key] = stored
            user["version"] += 1

    def record_error(self, row: int, text: str) -> None:
        self.add(row, Field.ERRORS, 1)
        self.set_cold(row, Field.ERROR_TEXT, text)

    def reach_milestone(self, row: int, milestone: int) -> None:
        user = self._user(row)
        if not 0 <= milestone < len(self._milestones):
            raise StateError(f"milestone index {milestone} out of range")
        name = self._milestones[milestone]
        user["milestone"] = name
        user["reached"].add(name)
        stable = {k: user[k] for k in _PROGRESS_KEYS}
        stable["vars"] = dict(user["vars"])
        user["stable"] = stable
        user["version"] += 1
        self._reaches += 1

    def rollback(self, rows: Iterable[int], reason: RollbackReason) -> None:
        targets = [self._user(r) for r in rows]
        if reason not in ROLLBACK_REASONS:
            raise StateError(f"unknown rollback reason {reason!r}")
        for user in targets:
            before = user["done"]
            stable = user["stable"] or _START
            user.update({k: stable[k] for k in _PROGRESS_KEYS})
            user["vars"] = dict(stable["vars"])
            user["version"] += 1
            self._rework += max(0, before - user["done"])
            self._rollbacks += 1

    # -- change detection and totals -----------------------------------------------------

    def scan(self) -> list[LegacyEvent]:
        """Compare every user with the copy taken at the previous scan; publish the changes."""
        events: list[LegacyEvent] = []
        for row, user in enumerate(self.users):
            seen = self._seen[row]
            if user != seen:
                changed = tuple(k for k in user if user[k] != seen.get(k))
                events.append(LegacyEvent(row=row, version=user["version"], changed=changed))
                self._seen[row] = dict(user)
        if events:
            for subscriber in self.subscribers:
                subscriber(events)
        return events

    async def scan_forever(self, interval: float) -> None:
        """The legacy polling loop: scan, then sleep ``interval`` seconds, until cancelled."""
        while True:
            self.scan()
            await asyncio.sleep(interval)

    def totals(self) -> ProgressTotals:
        """Totals computed the plain way: one pass over every user."""
        statuses = [0] * len(Status)
        current = [0] * len(self._milestones)
        reached = [0] * len(self._milestones)
        done = errors = 0
        for user in self.users:
            done += user["done"]
            errors += user["errors"]
            statuses[_STATUS_NAMES.index(user["status"])] += 1
            if user["milestone"] is not None:
                current[self._milestones.index(user["milestone"])] += 1
            for name in user["reached"]:
                reached[self._milestones.index(name)] += 1
        return ProgressTotals(
            rows=len(self.users),
            done_work=done,
            errors=errors,
            rework=self._rework,
            rollbacks=self._rollbacks,
            milestone_reaches=self._reaches,
            status_counts=tuple(statuses),
            milestone_current=tuple(current),
            milestone_reached=tuple(reached),
        )

    def memory_bytes(self) -> int:
        """Deep size of every user dict (its stable copy included) and the scan copies.

        Objects shared by every user (field-name keys, status and milestone names, small ints)
        are not counted; objects a user shares with its own stable or scan copy count once.
        """
        shared = {id(name) for name in (*_STATUS_NAMES, *self._milestones)}
        total = sys.getsizeof(self.users) + sys.getsizeof(self._seen)
        for user, seen in zip(self.users, self._seen, strict=True):
            counted = set(shared)
            total += _deep_size(user, counted) + _deep_size(seen, counted)
        return total

    def _user(self, row: int) -> dict[str, Any]:
        if not 0 <= row < len(self.users):
            raise StateError(f"row {row} out of range 0..{len(self.users)}")
        return self.users[row]


_START: Final[dict[str, Any]] = {
    "step": 0,
    "iteration": 0,
    "done": 0,
    "status": "pending",
    "milestone": None,
    "vars": {},
    "payload": None,
}


def _new_user(row: int) -> dict[str, Any]:
    return {
        "id": row,
        "step": 0,
        "iteration": 0,
        "done": 0,
        "status": "pending",
        "lease": None,
        "due": 0.0,
        "errors": 0,
        "milestone": None,
        "reached": set(),
        "vars": {},
        "error_text": None,
        "payload": None,
        "version": 0,
        "stable": None,
    }


def _deep_size(value: object, counted: set[int]) -> int:
    if value is None or isinstance(value, bool) or id(value) in counted:
        return 0
    if isinstance(value, int) and -5 <= value <= 256:
        return 0
    counted.add(id(value))
    size = sys.getsizeof(value)
    if isinstance(value, dict):
        size += sum(_deep_size(v, counted) for v in value.values())
    elif isinstance(value, list | tuple | set | frozenset):
        size += sum(_deep_size(item, counted) for item in value)
    return size


def _to_stored(field: Field, value: int | float) -> object:
    if field == Field.STATUS:
        return _STATUS_NAMES[int(value)]
    if field == Field.LEASE:
        return None if value == -1 else int(value)
    return value
