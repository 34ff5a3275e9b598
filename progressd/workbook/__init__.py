"""The workbook: one run's state, a row per virtual user, a column per field.

Design note (the long form is docs/workbook.md).

*Idea.* A virtual user is a row index, not an object. Hot fields (step pointer, iteration, done
work, status, lease id, next-due time, error count, current milestone) and the row's version and
dirty mask live in columns, no per-user Python object: typed ``array`` columns, except step,
iteration, done work, version and dirty mask, which are lists (``fields.BOXED_FIELDS``: the hot
path reads and writes them every step, and list item access is specialised bytecode in CPython
3.11 where an array's is not). Lists cost a pointer per row plus an int object per value past
the small-int cache: ~140 bytes per user fresh, ~230 after a long run (docs/perf/memory.md). Cold
fields (extracted vars, last error text, external payloads) live in one dict per field holding
only rows that have a value; clearing a value frees its entry. A milestone copies the row's
progress fields into segmented stable columns (compressed when idle) and references its cold
values; rollback restores from there.

*Invariants.*
- Totals (done work, errors, rework, per-status and per-milestone counts) equal a full scan at
  every point outside a merge; every write adjusts them in O(1) (``recount()`` is the scan).
- A committed write that changes something bumps the row version and sets the field's dirty bit;
  a row is in the dirty list iff its dirty mask is non-zero. Nothing ever scans rows to find
  change: the event bus takes the dirty list and the milestone/rollback journal.
- Inside ``dispatching()`` no committed state changes: writes are validated, staged (small
  updates coalesce: sets last-writer-wins, adds summed) and merged in issue order when the
  dispatch ends. Readers never see a half-applied write and no container changes size under an
  iterator.

*Trade-off.* Row access goes through field indices rather than attributes, and cold values are
shared with stable points by reference, so callers hand over fresh objects and never mutate
them in place.
"""

from __future__ import annotations

from progressd.workbook.core import Changes, Workbook
from progressd.workbook.fields import (
    COLD_FIELDS,
    FINAL_STATUSES,
    HOT_FIELDS,
    ROLLBACK_REASONS,
    Field,
    RollbackReason,
    Status,
    fields_in,
)
from progressd.workbook.model import (
    JournalEntry,
    ProgressModel,
    ProgressTotals,
    RowRecord,
    WorkbookStatistics,
)
from progressd.workbook.snapshot import Codec, StableSnapshot

__all__ = [
    "COLD_FIELDS",
    "FINAL_STATUSES",
    "HOT_FIELDS",
    "ROLLBACK_REASONS",
    "Changes",
    "Codec",
    "Field",
    "JournalEntry",
    "ProgressModel",
    "ProgressTotals",
    "RollbackReason",
    "RowRecord",
    "StableSnapshot",
    "Status",
    "Workbook",
    "WorkbookStatistics",
    "fields_in",
]
