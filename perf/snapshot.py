"""Snapshot cost: the loop stall of a run's stable snapshot, chunked vs in one call.

Prints ONE JSON object. A ``--users``-row workbook (default 100,000) whose every user reached a
milestone with random step, iteration and done work and an extracted variable (the worst case
for compression) is snapshotted on a running uvloop:

- baseline ``oneshot_*``: ``Workbook.snapshot()`` — export, msgpack and zlib in one call, the
  loop held for all of it;
- ``chunked_*``: ``progressd.runs.snapshots.encode_stable_chunked`` — export and msgpack at
  once, then zlib 64 KiB per loop turn; ``chunked_stall_ms`` is the longest the loop was held,
  ``loop_lag_max_ms`` what a 1 ms timer probe saw meanwhile.

``stall_ratio`` = oneshot stall / chunked stall (higher is better); ``bytes_ratio`` the size
of the chunked bytes over the one-shot bytes (the same codec and level: 1.0 expected up to
zlib's block boundaries). Both decode to the same workbook (checked).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time

import uvloop

from progressd.runs.snapshots import encode_stable_chunked
from progressd.workbook import Field, Workbook


def build(users: int) -> Workbook:
    rng = random.Random(1)
    wb = Workbook(["a", "b"], rows=users)
    for row in range(users):
        wb.set(row, Field.DONE, rng.randrange(1000))
        wb.set(row, Field.STEP, rng.randrange(8))
        wb.set(row, Field.ITERATION, rng.randrange(50))
        wb.set_cold(row, Field.VARS, {"token": f"tok-{row}"})
        wb.reach_milestone(row, rng.randrange(2))
    wb.take_changes()
    wb.compact_stable()
    return wb


async def lag_probe(stop: asyncio.Event, seen: list[float]) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        due = loop.time() + 0.001
        await asyncio.sleep(0.001)
        seen.append(loop.time() - due)


async def measure(users: int, rounds: int) -> dict[str, float | int]:
    wb = build(users)
    oneshot = []
    for _ in range(rounds):
        began = time.perf_counter()
        data = wb.snapshot()
        oneshot.append(time.perf_counter() - began)
    stalls, totals, lags, turns, size = [], [], [], 0, 0
    for _ in range(rounds):
        stop, seen = asyncio.Event(), []
        probe = asyncio.get_running_loop().create_task(lag_probe(stop, seen))
        await asyncio.sleep(0.005)
        result = await encode_stable_chunked(wb)
        stop.set()
        await probe
        stalls.append(result.stall_s)
        totals.append(result.seconds)
        lags.append(max(seen))
        turns, size = result.turns, len(result.data)
    restored = Workbook.restore(result.data)
    assert restored.totals() == Workbook.restore(data).totals()
    oneshot_ms = min(oneshot) * 1000
    chunked_ms = min(stalls) * 1000
    return {
        "users": users,
        "rounds": rounds,
        "oneshot_stall_ms": round(oneshot_ms, 2),
        "oneshot_bytes": len(data),
        "chunked_stall_ms": round(chunked_ms, 2),
        "chunked_total_ms": round(min(totals) * 1000, 2),
        "chunked_turns": turns,
        "chunked_bytes": size,
        "loop_lag_max_ms": round(min(lags) * 1000, 2),
        "stall_ratio": round(oneshot_ms / chunked_ms, 2),
        "bytes_ratio": round(size / len(data), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(uvloop.run(measure(args.users, args.rounds))))


if __name__ == "__main__":
    main()
