"""The timer seam of the HTTP client.

Request and connect timeouts are plain timers: ``call_at(when, callback)`` returning a handle
with ``cancel()``. The running asyncio loop already is such a scheduler (``loop.time()`` and
``loop.call_at``); the poller can supply its timer pollables instead, and tests supply a manual
scheduler that fires timers when told, so no test sleeps. A pool arms one timer at a time
for all its request deadlines (see ``deadlines.py``), plus one per connect attempt.
"""

from __future__ import annotations

from progressd.scheduling import Scheduler, TimerHandle

__all__ = ["Scheduler", "TimerHandle"]
