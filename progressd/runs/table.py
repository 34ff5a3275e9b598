"""What ``progressctl`` writes: compact aligned text tables (no box drawing: easy to read and to
grep) and ``--json`` lines."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

import msgspec

__all__ = ["print_json", "print_table", "seconds"]


def print_json(message: msgspec.Struct, out: TextIO) -> None:
    """``--json`` output: one compact JSON document per line."""
    out.write(msgspec.json.encode(message).decode() + "\n")


def print_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    out: TextIO,
    *,
    right: frozenset[int] = frozenset(),
) -> None:
    """Write ``header`` and ``rows`` as columns two spaces apart; columns in ``right`` are
    right-aligned (numbers), the others left-aligned."""
    widths = [len(title) for title in header]
    for row in rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    for row in (header, *rows):
        cells = [
            cell.rjust(width) if index in right else cell.ljust(width)
            for index, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        out.write("  ".join(cells).rstrip() + "\n")


def seconds(value: float) -> str:
    """``12.3s``, ``4m05s``, ``1h02m03s``."""
    if value < 60:
        return f"{value:.1f}s"
    minutes, secs = divmod(round(value), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"
