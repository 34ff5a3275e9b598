"""The ``external`` step: wait for a progress report another program sends with a key.

``start(call)`` renders the step's key for the user and registers a wait in the run's
``ReportMailbox`` (``progressd/reports.py``): no task, only the mailbox's callback and, with a
timeout, one timer. A final report completes the step with the report's payload (kept as the
user's last external payload); the timeout fails it (error class ``external-timeout``).

A user rolled back while waiting leaves a stale wait behind; when the user reaches the step
again the stale wait is withdrawn first, so the mailbox's "one wait per row and key" rule holds.

With ``lease_waits``, a key reading ``lease.*`` (a report per leased member) waits for its
user's lease (at most the step's timeout, else 30 s; ``leases.py``) instead of failing to
render, as http and exec steps do; the report's own timeout starts once the key is known.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from progressd.dsl import CompiledTemplate, ExternalSpec, RenderError, StepPlan
from progressd.reports import Report, ReportMailbox, ReportWait
from progressd.runner import StepCall
from progressd.steps.leases import DEFAULT_LEASE_WAIT_S, LeaseWaits, fail_no_lease
from progressd.steps.metrics import ScenarioMetrics, StepMetrics

__all__ = ["ExternalStepExecutor"]


@dataclass(slots=True, eq=False)
class _PreparedExternal:
    name: str
    key: CompiledTemplate
    timeout_s: float | None
    metrics: StepMetrics
    reads_lease: bool


class ExternalStepExecutor:
    """Runs ``external`` steps over ``mailbox``; ``time()`` is the mailbox scheduler's clock
    (deadlines are ``time() + timeout``). ``lease_waits``: see the module note."""

    __slots__ = ("_lease_waits", "_mailbox", "_prepared", "_time", "_waits", "unregistered")

    def __init__(
        self,
        mailbox: ReportMailbox,
        time: Callable[[], float],
        *,
        lease_waits: LeaseWaits | None = None,
    ) -> None:
        self._mailbox = mailbox
        self._time = time
        self._lease_waits = lease_waits
        self._prepared: dict[int, tuple[StepPlan, _PreparedExternal]] = {}
        self._waits: dict[tuple[int, str], tuple[StepCall, ReportWait]] = {}
        self.unregistered = ScenarioMetrics(name="unregistered")

    def register(self, step: StepPlan, metrics: ScenarioMetrics) -> None:
        """Prepare ``step`` and count it into ``metrics``.

        Raises:
            TypeError: when ``step`` is not an external step.
        """
        spec = step.spec
        if not isinstance(spec, ExternalSpec):
            raise TypeError(f"step {step.name!r} is a {step.kind} step, not an external step")
        key = spec.key.compiled()
        reads_lease = any(f.startswith("lease") for f in key.fields)
        prep = _PreparedExternal(
            step.name, key, spec.timeout_s, metrics.step(step.name), reads_lease
        )
        self._prepared[id(step)] = (step, prep)

    @property
    def waiting(self) -> int:
        """Users whose external step waits for its report."""
        return len(self._waits)

    def start(self, call: StepCall) -> None:
        """Wait for the report of ``call.step``'s key for ``call.row``."""
        entry = self._prepared.get(id(call.step))
        if entry is None:
            self.register(call.step, self.unregistered)
            entry = self._prepared[id(call.step)]
        prep = entry[1]
        waits = self._lease_waits
        if prep.reads_lease and waits is not None and "lease" not in call.context:
            timeout = prep.timeout_s or DEFAULT_LEASE_WAIT_S
            waits.park(
                call, timeout, self.start, partial(fail_no_lease, prep.name, prep.metrics, timeout)
            )
            return
        try:
            key = prep.key.render(call.context)
        except RenderError as exc:
            prep.metrics.end("request")
            call.fail(f"{prep.name}: {exc}")
            return
        where = (call.row, key)
        stale = self._waits.pop(where, None)
        if stale is not None:
            stale[1].cancel()
        deadline = None if prep.timeout_s is None else self._time() + prep.timeout_s
        wait = self._mailbox.wait(
            row=call.row,
            key=key,
            deadline=deadline,
            on_report=lambda report: self._reported(prep, call, where, report),
            on_timeout=lambda: self._timed_out(prep, call, where),
        )
        self._waits[where] = (call, wait)

    def _reported(
        self, prep: _PreparedExternal, call: StepCall, where: tuple[int, str], report: Report
    ) -> None:
        self._forget(call, where)
        prep.metrics.end(None)
        call.succeed(payload=report.payload)

    def _timed_out(self, prep: _PreparedExternal, call: StepCall, where: tuple[int, str]) -> None:
        self._forget(call, where)
        prep.metrics.end("external-timeout")
        call.fail(f"{prep.name}: no report for key {where[1]!r} before the timeout")

    def _forget(self, call: StepCall, where: tuple[int, str]) -> None:
        held = self._waits.get(where)
        if held is not None and held[0] is call:
            del self._waits[where]

    def cancel_all(self) -> int:
        """Withdraw every wait (the run ended); how many there were."""
        waits, self._waits = self._waits, {}
        for _, wait in waits.values():
            wait.cancel()
        return len(waits)
