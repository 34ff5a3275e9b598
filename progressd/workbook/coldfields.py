"""Cold fields: the values few rows hold — extracted vars, last error text, external payloads.

Design note. A cold field lives in ``ColdStore`` (``columns.py``): one dict per field holding
only the rows that have a value, so a run where few users extract anything pays for few
entries. Setting ``None`` clears a value and frees its entry. Values are stored by reference and
stable points share them (``stablepoints.py``), which is why callers hand over fresh objects and
never mutate them afterwards. A changed value commits like a hot write: version bump, the
field's dirty bit; inside ``dispatching()`` it is staged instead.

Kept apart from ``core.py``, which holds the hot fields' reads and writes (the per-step path):
a cold write is a dict update, not a column write, and only steps that leave an error, vars or a
payload come here (the runner's ``_apply``); the step transition itself (``advance``) never does.
``ColdFields`` is a mixin of ``Workbook`` with no state of its own; the slots it uses are
declared on ``Workbook``.
"""

from __future__ import annotations

from collections.abc import Callable

from progressd.errors import StateError
from progressd.workbook.columns import ColdStore
from progressd.workbook.fields import COLD_FIELDS, Field, field_name
from progressd.workbook.staging import Staging

__all__ = ["ColdFields"]

_COLD = frozenset(COLD_FIELDS)


class ColdFields:
    """The cold-field half of ``Workbook`` (a mixin: it uses the workbook's state)."""

    __slots__ = ()

    _cold: ColdStore
    _staging: Staging | None
    _check_row: Callable[[int], None]
    _commit: Callable[[int, int], None]
    add: Callable[[int, Field, int | float], None]

    def get_cold(self, row: int, field: Field) -> object | None:
        """A cold field's committed value, ``None`` when the row has none."""
        self._check_row(row)
        self._check_cold(field)
        return self._cold.get(row, field)

    def set_cold(self, row: int, field: Field, value: object | None) -> None:
        """Set a cold field; ``None`` clears it and frees its entry. Values are not copied:
        hand over a fresh object and never mutate it afterwards (stable points share it)."""
        self._check_row(row)
        self._check_cold(field)
        if self._staging is not None:
            self._staging.stage_cold(row, field, value)
        elif self._cold.set(row, field, value):
            self._commit(row, 1 << field)

    def record_error(self, row: int, text: str) -> None:
        """Count one error on the row and keep ``text`` as its last error (two writes: the
        row's version advances twice, and both land in the same batch of changes)."""
        self.add(row, Field.ERRORS, 1)
        self.set_cold(row, Field.ERROR_TEXT, text)

    def _check_cold(self, field: Field) -> None:
        if field not in _COLD:
            raise StateError(f"{field_name(field)} is not a cold field; use get()/set()")
