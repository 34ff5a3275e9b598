"""WAL checkpoints, preferably in a short-lived child process so their fsyncs never stall the loop.

Design note. In WAL mode a commit only appends to the ``-wal`` file; a *checkpoint* copies
those pages back into the database and fsyncs both files. On ordinary disks one fsync costs
several milliseconds, so a checkpoint inside a flush would be the store's worst loop stall.
The store therefore turns SQLite's automatic checkpoint off, and the daemon runs
``checkpoint_in_subprocess`` every so often: a child Python opens the same file and runs
``PRAGMA wal_checkpoint(PASSIVE)``, which SQLite supports from any connection and which never
blocks the writer. The loop only awaits the child's exit. ``Store.checkpoint()`` is the
in-process fallback (measured), used when the child fails or the WAL grows past a hard limit.
"""

from __future__ import annotations

import asyncio
import sys
import time

import msgspec

from progressd.errors import StoreError

__all__ = ["CheckpointResult", "checkpoint_in_subprocess"]

_SCRIPT = """
import json, sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=5.0)
row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
conn.close()
print(json.dumps(list(row)))
"""


class CheckpointResult(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``busy``: a lock kept it from finishing; ``wal_frames`` frames in the WAL;
    ``checkpointed`` frames copied into the database; ``seconds`` how long it took."""

    busy: bool
    wal_frames: int
    checkpointed: int
    seconds: float


def result_from_row(row: object, seconds: float) -> CheckpointResult:
    """Build a result from the ``(busy, log, checkpointed)`` row SQLite returns."""
    busy, frames, done = msgspec.convert(row, tuple[int, int, int])
    return CheckpointResult(busy=bool(busy), wal_frames=frames, checkpointed=done, seconds=seconds)


async def checkpoint_in_subprocess(path: str, *, within: float = 60.0) -> CheckpointResult:
    """Checkpoint the store at ``path`` from a child process; the loop only waits for it.

    Raises:
        StoreError: the child failed, timed out or printed something unexpected.
    """
    began = time.monotonic()
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-I",
        "-S",
        "-c",
        _SCRIPT,
        path,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(child.communicate(), within)
    except TimeoutError:
        child.kill()
        await child.wait()
        raise StoreError(f"the checkpoint did not finish within {within:g}s", path=path) from None
    if child.returncode != 0:
        detail = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise StoreError(f"the checkpoint failed: {detail[0]}", path=path)
    try:
        return result_from_row(msgspec.json.decode(out), time.monotonic() - began)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise StoreError(f"the checkpoint printed {out[:80]!r}", path=path) from None
