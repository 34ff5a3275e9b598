"""The ``Workbook``: one run's state, a row per virtual user, a column per field.

See ``progressd/workbook/__init__.py`` for the design note. This module holds the row state and
shape, the hot fields' reads and writes (``get``, ``column``, ``advance``, ``set``, ``add``: the
per-step path), the change feed the bus collects and ``snapshot``/``restore``. ``Workbook`` takes
the rest from mixins, one module each: cold fields (``coldfields``), milestones and rollback
(``stablepoints``), staged dispatch (``dispatch``), totals, statistics and row records
(``readouts``). Storage lives in ``columns`` and ``stable``, totals in ``aggregates``, staged
writes in ``staging`` and the compressed stable snapshot in ``snapshot``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from progressd.errors import StateError
from progressd.workbook.aggregates import Aggregates
from progressd.workbook.coldfields import ColdFields
from progressd.workbook.columns import ColdStore, HotColumns
from progressd.workbook.dispatch import Dispatch
from progressd.workbook.fields import (
    ADDABLE_FIELDS,
    BOXED_FIELDS,
    BOXED_LIMITS,
    COLD_FIELDS,
    HOT_TYPECODES,
    SETTABLE_FIELDS,
    Field,
    Status,
    check_value,
    field_name,
)
from progressd.workbook.model import JournalEntry
from progressd.workbook.readouts import Readouts
from progressd.workbook.snapshot import (
    Codec,
    decode_snapshot,
    encode_snapshot,
    export_stable,
    import_stable,
)
from progressd.workbook.stable import StableColumns
from progressd.workbook.stablepoints import StablePoints
from progressd.workbook.staging import Staging

_COLD = frozenset(COLD_FIELDS)
_HOT_COUNT = len(HOT_TYPECODES)
_SETTABLE_MASK = sum(f.mask for f in SETTABLE_FIELDS)
_ADDABLE_MASK = sum(f.mask for f in ADDABLE_FIELDS)
_STATUS = int(Field.STATUS)
_DONE = int(Field.DONE)
_ERRORS = int(Field.ERRORS)
_BOXED_MASK = sum(f.mask for f in BOXED_FIELDS)
_CHECKED_MASK = Field.STATUS.mask | _BOXED_MASK
_STEP_BIT, _ITER_BIT, _DONE_BIT = Field.STEP.mask, Field.ITERATION.mask, Field.DONE.mask
_SMALL = (1 << 30) - 1  # the widest one-digit int (see advance)
_NEG_SMALL = -_SMALL
_TOTALLED_MASK = Field.DONE.mask | Field.STATUS.mask | Field.ERRORS.mask | Field.MILESTONE.mask


@dataclass(slots=True)
class Changes:
    """What ``Workbook.take_changes()`` hands the event bus.

    ``journal``: milestone and rollback records in commit order. ``rows``: ``(row, dirty_mask,
    version)`` for each row changed since the previous call, in the order rows first changed.
    """

    journal: list[JournalEntry]
    rows: list[tuple[int, int, int]]


class Workbook(ColdFields, StablePoints, Dispatch, Readouts):
    """The state of one run. Satisfies ``ProgressModel``.

    Writes (``set``, ``add``, ``set_cold``, ``record_error``, ``reach_milestone``, ``rollback``)
    commit at once, bump the row's version and set its dirty bits — except inside
    ``dispatching()``, where they are validated, staged and merged when the block ends. Reads
    always see committed state.

    Raises:
        StateError: on an unknown row, field, milestone, status or reason, or a value that does
            not fit its column. Nothing is written when a call raises.
    """

    # every slot, the mixins' included: their __slots__ are empty and they only annotate the
    # attributes they use, so the layout is declared in one place
    __slots__ = (
        "_agg",
        "_cold",
        "_cols",
        "_commits",
        "_dirty",
        "_dirty_rows",
        "_done_col",
        "_hot",
        "_iters_col",
        "_journal",
        "_milestones",
        "_reached",
        "_rows",
        "_snapshot_sizes",
        "_stable",
        "_staging",
        "_steps_col",
        "_stride",
        "_version",
        "on_change",
    )

    def __init__(self, milestones: Sequence[str] = (), *, rows: int = 0) -> None:
        if len(set(milestones)) != len(milestones):
            raise StateError(f"milestone names must be unique, got {list(milestones)}")
        self._milestones = tuple(milestones)
        self._hot = HotColumns()
        self._cols = self._hot.columns
        self._version = self._hot.version
        self._dirty = self._hot.dirty
        self._steps_col = self._cols[Field.STEP]
        self._iters_col = self._cols[Field.ITERATION]
        self._done_col = self._cols[Field.DONE]
        self._cold = ColdStore()
        self._stable = StableColumns()
        self._stride = (len(self._milestones) + 7) // 8
        self._reached = bytearray()
        self._agg = Aggregates(milestone_count=len(self._milestones))
        self._rows = 0
        self._dirty_rows: list[int] = []
        self._journal: list[JournalEntry] = []
        self._staging: Staging | None = None
        self._commits = 0
        self._snapshot_sizes = (0, 0)
        self.on_change: Callable[[], None] | None = None
        """Called when the workbook goes from no uncollected changes to some (wake the bus)."""
        if rows:
            self.add_rows(rows)

    # -- shape ---------------------------------------------------------------------------

    @property
    def milestones(self) -> tuple[str, ...]:
        """Milestone names; a milestone's index is its position here."""
        return self._milestones

    @property
    def rows(self) -> int:
        return self._rows

    def milestone_index(self, name: str) -> int:
        """The index of milestone ``name``.

        Raises:
            StateError: when there is no such milestone.
        """
        try:
            return self._milestones.index(name)
        except ValueError:
            known = ", ".join(self._milestones) or "none"
            raise StateError(f"unknown milestone {name!r} (known: {known})") from None

    def add_rows(self, count: int) -> range:
        """Append ``count`` rows at the start state (``PENDING``, step 0); return their indices."""
        if count < 0:
            raise StateError(f"cannot add {count} rows")
        first = self._rows
        self._hot.grow(count)
        self._reached.extend(bytes(count * self._stride))
        self._rows += count
        self._stable.grow(self._rows)
        self._agg.add_rows(count)
        return range(first, self._rows)

    # -- reads ---------------------------------------------------------------------------

    def get(self, row: int, field: Field) -> int | float:
        """A hot field's committed value."""
        self._check_row(row)
        if field in _COLD or not 0 <= field < len(self._cols):
            raise StateError(f"{field_name(field)} is not a hot field; read it with get_cold()")
        value: int | float = self._cols[field][row]
        return value

    def column(self, field: Field) -> Sequence[Any]:
        """The live column of hot field ``field``, indexed by row: for hot paths that cannot
        pay for ``get`` (the runner's step pointer and iteration).

        Read-only by contract: write through ``set``/``add``/``advance``. It holds committed
        values (a write staged inside ``dispatching()`` is not in it until the merge) and is
        the same object for the workbook's life (``add_rows`` extends it in place).

        Raises:
            StateError: when ``field`` is not a hot field.
        """
        if field in _COLD or not 0 <= field < len(self._cols):
            raise StateError(f"{field_name(field)} is not a hot field")
        return self._cols[field]

    def status(self, row: int) -> Status:
        return Status(int(self.get(row, Field.STATUS)))

    def version(self, row: int) -> int:
        """How many committed writes the row has seen (mod 2**32)."""
        self._check_row(row)
        return int(self._version[row])

    # -- writes --------------------------------------------------------------------------

    def set(self, row: int, field: Field, value: int | float) -> None:
        """Set a hot field (last writer wins). A value equal to the current one commits nothing."""
        if not 0 <= row < self._rows:
            self._check_row(row)
        if not (0 <= field < _HOT_COUNT and _SETTABLE_MASK >> field & 1):
            raise StateError(f"{field_name(field)} cannot be set directly")
        if self._staging is not None:
            check_value(field, value)
            self._staging.stage_set(row, field, value)
            return
        if _CHECKED_MASK >> field & 1:  # a status, or a list column (no range check of its own)
            check_value(field, value)
        # The hot path (every step of every user): _write_hot and _commit inlined.
        column = self._cols[field]
        old = column[row]
        if old == value:
            return
        try:
            column[row] = value
        except (OverflowError, TypeError) as exc:
            raise _unfit(field, row, value, exc) from None
        if _TOTALLED_MASK >> field & 1:
            self._agg.on_change(field, old, column[row])
        version = self._version
        version[row] = (version[row] + 1) & 0xFFFFFFFF
        self._commits += 1
        dirty = self._dirty
        mask = dirty[row]
        if not mask:
            rows = self._dirty_rows
            if not rows and not self._journal and self.on_change is not None:
                self.on_change()
            rows.append(row)
        dirty[row] = mask | 1 << field

    def add(self, row: int, field: Field, delta: int | float) -> None:
        """Add ``delta`` to a counter or pointer (staged adds to one field are summed)."""
        if not 0 <= row < self._rows:
            self._check_row(row)
        if not (0 <= field < _HOT_COUNT and _ADDABLE_MASK >> field & 1):
            raise StateError(f"{field_name(field)} is not a counter; use set()")
        if self._staging is not None:
            self._staging.stage_add(row, field, delta)
            return
        if not delta:
            return
        column = self._cols[field]
        old = column[row]
        new = old + delta
        if _BOXED_MASK >> field & 1:
            check_value(field, new)
        try:
            column[row] = new
        except (OverflowError, TypeError) as exc:
            raise _unfit(field, row, new, exc) from None
        if field == _DONE:
            self._agg.done_work += column[row] - old
        elif field == _ERRORS:
            self._agg.errors += column[row] - old
        version = self._version
        version[row] = (version[row] + 1) & 0xFFFFFFFF
        self._commits += 1
        dirty = self._dirty
        mask = dirty[row]
        if not mask:
            rows = self._dirty_rows
            if not rows and not self._journal and self.on_change is not None:
                self.on_change()
            rows.append(row)
        dirty[row] = mask | 1 << field

    def advance(  # noqa: PLR0915 - one commit inlined: the hot path of every step
        self, row: int, step: int, done: int = 0, iterations: int = 0
    ) -> None:
        """The runner's step transition as ONE commit: set ``STEP`` to ``step``, add ``done``
        to ``DONE`` and ``iterations`` to ``ITERATION``.

        Reads after it equal those after ``set(STEP)``, ``add(DONE)``, ``add(ITERATION)``; the
        row's version advances once (one write), its dirty bits are those of the fields that
        changed, the done-work total moves once. Nothing changes, nothing commits.

        Raises:
            StateError: on an unknown row, or a value that is not an integer or does not fit
                its column (then nothing is written).
        """
        if self._staging is not None:
            self._stage_advance(row, step, done, iterations)
            return
        try:  # one sum, one type test: a float, a Decimal, a str or None makes it fail
            if type(step + done + iterations) is not int:
                raise TypeError
        except TypeError:
            raise _unfit_advance(row, step, done, iterations, "expected integers") from None
        steps = self._steps_col
        if row < 0:
            self._check_row(row)
        try:  # every column holds exactly ``rows`` rows: an index error is an unknown row
            old_step = steps[row]
        except IndexError:
            self._check_row(row)
            raise
        # Every check before any write (the list columns do not range-check themselves). The
        # forms are chosen for CPython 3.11's specialised bytecode: additions and single
        # compares, not |, << or chained compares; ``x != 0``, not ``if x``; and compares with
        # one-digit ints only (below 2**30): a wider constant makes the compare generic, so
        # values past _SMALL take the exact check of _out_of(), off the hot path.
        mask = 0
        if done != 0:
            dones = self._done_col
            new_done = dones[row] + done
            if (new_done > _SMALL or new_done < _NEG_SMALL) and _out_of(Field.DONE, new_done):
                raise _unfit_advance(row, step, done, iterations, "done work out of range")
            mask = _DONE_BIT
        if iterations != 0:
            iters = self._iters_col
            new_iter = iters[row] + iterations
            if (new_iter > _SMALL or new_iter < _NEG_SMALL) and _out_of(Field.ITERATION, new_iter):
                raise _unfit_advance(row, step, done, iterations, "iteration out of range")
            mask += _ITER_BIT
        if old_step != step:
            if (step > _SMALL or step < _NEG_SMALL) and _out_of(Field.STEP, step):
                raise _unfit_advance(row, step, done, iterations, "step out of range")
            steps[row] = step
            mask += _STEP_BIT
        elif mask == 0:
            return
        if done != 0:
            dones[row] = new_done
            self._agg.done_work += done
        if iterations != 0:
            iters[row] = new_iter
        version = self._version
        new_version = version[row] + 1
        version[row] = new_version if new_version < _SMALL or new_version <= 0xFFFFFFFF else 0
        self._commits += 1
        dirty = self._dirty
        old_mask = dirty[row]
        if old_mask == 0:
            rows = self._dirty_rows
            if not rows and not self._journal and self.on_change is not None:
                self.on_change()
            rows.append(row)
        dirty[row] = old_mask | mask

    # -- changes, snapshot ---------------------------------------------------------------

    @property
    def has_changes(self) -> bool:
        """Whether there are dirty rows or journal entries the bus has not collected."""
        return bool(self._dirty_rows or self._journal)

    def take_changes(self) -> Changes:
        """Hand over and clear the dirty rows and the journal (the bus calls this)."""
        journal, self._journal = self._journal, []
        rows, self._dirty_rows = self._dirty_rows, []
        dirty, version = self._dirty, self._version
        changed = [(r, dirty[r], version[r]) for r in rows]
        for r in rows:
            dirty[r] = 0
        return Changes(journal=journal, rows=changed)

    def snapshot(self, codec: Codec = "zlib") -> bytes:
        """The stable state (stable columns, their cold values, error counts, reached bitmap,
        rework and rollback totals) as compressed bytes; ``restore`` rebuilds it."""
        data, raw_size = encode_snapshot(export_stable(self), codec)
        self._snapshot_sizes = (raw_size, len(data))
        return data

    @classmethod
    def restore(cls, data: bytes) -> Workbook:
        """A workbook whose rows stand at the stable points in ``data`` (rows without one at the
        start). Leases are not restored (they do not survive a restart); versions start at 0.

        Raises:
            StateError: when ``data`` is not a valid snapshot.
        """
        snap = decode_snapshot(data)
        workbook = cls(snap.milestones, rows=snap.rows)
        import_stable(workbook, snap)
        return workbook

    # -- internals -----------------------------------------------------------------------

    def _check_row(self, row: int) -> None:
        if not 0 <= row < self._rows:
            raise StateError(f"row {row} out of range 0..{self._rows} (add rows first)")

    def _write_hot(self, row: int, field: Field, value: int | float) -> bool:
        column = self._cols[field]
        old = column[row]
        if old == value:
            return False
        try:
            column[row] = value
        except (OverflowError, TypeError) as exc:
            raise _unfit(field, row, value, exc) from None
        if _TOTALLED_MASK >> field & 1:
            self._agg.on_change(field, old, column[row])
        return True

    def _commit(self, row: int, mask: int) -> None:
        version = self._version
        version[row] = (version[row] + 1) & 0xFFFFFFFF
        self._commits += 1
        if not mask:
            return
        dirty = self._dirty
        old = dirty[row]
        if not old:
            self._note_pending()
            self._dirty_rows.append(row)
        dirty[row] = old | mask

    def _note_pending(self) -> None:
        if self.on_change is not None and not self._dirty_rows and not self._journal:
            self.on_change()


def _unfit(field: Field, row: int, value: object, exc: Exception) -> StateError:
    return StateError(f"{field_name(field)}={value!r} does not fit row {row}: {exc}")


def _unfit_advance(
    row: int, step: object, done: object, iterations: object, why: str
) -> StateError:
    values = f"step={step!r}, done={done!r}, iterations={iterations!r}"
    return StateError(f"advance({values}) does not fit row {row}: {why}")


def _out_of(field: Field, value: int) -> bool:
    low, high = BOXED_LIMITS[field]
    return not low <= value <= high
