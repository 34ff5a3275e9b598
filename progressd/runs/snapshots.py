"""A run's stable snapshot encoded without one long loop stall.

``Workbook.snapshot()`` exports the stable columns, packs them with msgpack and zlib-compresses
the lot in one call; the compression dominates (measured by ``perf/snapshot.py``: about 90 % of
the time, ~160 ms for 100,000 users with extracted variables). ``encode_stable_chunked`` takes
the export and the msgpack encoding in one go — they fix the instant the snapshot describes —
then compresses ``chunk`` bytes per loop turn with one ``zlib.compressobj``, yielding between
chunks, so the longest stall is the export plus one chunk. The bytes have the same framing as
``Workbook.snapshot()`` (``b"PDST" b"z"`` + one zlib stream), so ``Workbook.restore`` and
``decode_snapshot`` read them unchanged.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from dataclasses import dataclass

import msgspec

from progressd.workbook import Workbook
from progressd.workbook.snapshot import MAGIC, export_stable

__all__ = ["DEFAULT_CHUNK", "ChunkedSnapshot", "encode_stable_chunked"]

DEFAULT_CHUNK = 64 * 1024
_encoder = msgspec.msgpack.Encoder()


@dataclass(frozen=True, slots=True)
class ChunkedSnapshot:
    """The framed bytes; ``version`` the workbook's commit count when exported;
    ``stall_s`` the longest the loop was held; ``seconds`` the whole encode; ``turns`` the loop
    turns it yielded."""

    data: bytes
    version: int
    stall_s: float
    seconds: float
    turns: int


async def encode_stable_chunked(
    workbook: Workbook, *, chunk: int = DEFAULT_CHUNK, level: int = 6
) -> ChunkedSnapshot:
    """Snapshot ``workbook``'s stable state, compressing ``chunk`` bytes per loop turn."""
    began = time.perf_counter()
    version = workbook.statistics().version
    raw = memoryview(_encoder.encode(export_stable(workbook)))
    stall = time.perf_counter() - began
    compressor = zlib.compressobj(level)
    parts = [MAGIC, b"z"]
    turns = 0
    for offset in range(0, len(raw), chunk):
        await asyncio.sleep(0)
        turns += 1
        at = time.perf_counter()
        parts.append(compressor.compress(raw[offset : offset + chunk]))
        stall = max(stall, time.perf_counter() - at)
    at = time.perf_counter()
    parts.append(compressor.flush())
    stall = max(stall, time.perf_counter() - at)
    return ChunkedSnapshot(
        data=b"".join(parts),
        version=version,
        stall_s=stall,
        seconds=time.perf_counter() - began,
        turns=turns,
    )
