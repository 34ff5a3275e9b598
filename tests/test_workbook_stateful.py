"""Random interleavings of writes, dispatch write-backs, milestones and rollbacks, run on the
Workbook, the LegacyWorkbook and a trivially correct reference model side by side."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from progressd.clock import FakeClock
from progressd.events import Batch, BatchingConfig, EventBus
from progressd.legacy import LegacyWorkbook
from progressd.workbook import Field, Status, Workbook
from progressd.workbook.model import ProgressTotals

ROWS = 12
MILESTONES = ("a", "b", "c")
HOT = (Field.STEP, Field.ITERATION, Field.DONE, Field.STATUS, Field.LEASE, Field.DUE)
RESTORED = ("step", "iteration", "done", "status", "milestone", "vars", "payload")

Op = tuple[Any, ...]

rows = st.integers(0, ROWS - 1)
set_ops = st.one_of(
    st.tuples(st.just("set"), rows, st.just(Field.STEP), st.integers(0, 50)),
    st.tuples(st.just("set"), rows, st.just(Field.ITERATION), st.integers(0, 5)),
    st.tuples(st.just("set"), rows, st.just(Field.STATUS), st.sampled_from(list(Status))),
    st.tuples(st.just("set"), rows, st.just(Field.LEASE), st.integers(-1, 3)),
    st.tuples(st.just("set"), rows, st.just(Field.DUE), st.sampled_from([0.0, 1.5, 2.0])),
    st.tuples(st.just("set"), rows, st.just(Field.DONE), st.integers(0, 20)),
)
add_ops = st.tuples(
    st.just("add"), rows, st.sampled_from([Field.DONE, Field.STEP, Field.ERRORS]), st.integers(0, 4)
)
var_values = st.one_of(st.none(), st.fixed_dictionaries({"t": st.sampled_from(["x", "y", "z"])}))
payload_values = st.one_of(st.none(), st.sampled_from(["p", "q"]), st.lists(st.integers(0, 3)))
cold_ops = st.one_of(
    st.tuples(st.just("cold"), rows, st.just(Field.VARS), var_values),
    st.tuples(st.just("cold"), rows, st.just(Field.PAYLOAD), payload_values),
)
error_ops = st.tuples(st.just("error"), rows, st.sampled_from(["boom", "timeout"]))
milestone_ops = st.tuples(st.just("milestone"), rows, st.integers(0, len(MILESTONES) - 1))
rollback_ops = st.tuples(
    st.just("rollback"), st.lists(rows, max_size=3), st.sampled_from(["manual", "lease-lost"])
)
advance_ops = st.tuples(
    st.just("advance"), rows, st.integers(0, 4), st.integers(0, 2), st.integers(0, 1)
)
any_op = st.one_of(set_ops, add_ops, advance_ops, cold_ops, error_ops, milestone_ops, rollback_ops)


@dataclass
class RefRow:
    hot: dict[Field, Any] = field(
        default_factory=lambda: {
            Field.STEP: 0,
            Field.ITERATION: 0,
            Field.DONE: 0,
            Field.STATUS: 0,
            Field.LEASE: -1,
            Field.DUE: 0.0,
            Field.ERRORS: 0,
            Field.MILESTONE: -1,
        }
    )
    cold: dict[Field, Any] = field(default_factory=dict)
    stable: dict[str, Any] | None = None
    reached: set[int] = field(default_factory=set)


class Reference:
    """Plain dicts, writes applied in order; no staging tricks, no coalescing."""

    def __init__(self) -> None:
        self.rows = [RefRow() for _ in range(ROWS)]
        self.rework = self.rollbacks = self.reaches = 0
        self.dirty: set[int] = set()
        self.journal: list[tuple[str, int, int]] = []

    def apply(self, op: Op) -> None:
        match op:
            case ("set", row, f, value):
                self._write(row, f, value)
            case ("add", row, f, delta):
                self._write(row, f, self.rows[row].hot[f] + delta)
            case ("advance", row, step, done, iterations):
                hot = self.rows[row].hot
                self._write(row, Field.STEP, step)
                self._write(row, Field.DONE, hot[Field.DONE] + done)
                self._write(row, Field.ITERATION, hot[Field.ITERATION] + iterations)
            case ("cold", row, f, value):
                self._cold(row, f, value)
            case ("error", row, text):
                self._write(row, Field.ERRORS, self.rows[row].hot[Field.ERRORS] + 1)
                self._cold(row, Field.ERROR_TEXT, text)
            case ("milestone", row, m):
                self._milestone(row, m)
            case ("rollback", targets, _reason):
                for row in targets:
                    self._rollback(row)

    def _write(self, row: int, f: Field, value: Any) -> None:
        if self.rows[row].hot[f] != value:
            self.rows[row].hot[f] = value
            self.dirty.add(row)

    def _cold(self, row: int, f: Field, value: Any) -> None:
        if self.rows[row].cold.get(f) != value:
            if value is None:
                del self.rows[row].cold[f]
            else:
                self.rows[row].cold[f] = value
            self.dirty.add(row)

    def _milestone(self, row: int, m: int) -> None:
        r = self.rows[row]
        self._write(row, Field.MILESTONE, m)
        r.reached.add(m)
        self.reaches += 1
        r.stable = {k: self._read(row, k) for k in RESTORED}
        self.journal.append(("milestone", row, m))

    def _rollback(self, row: int) -> None:
        r = self.rows[row]
        start = {"step": 0, "iteration": 0, "done": 0, "status": 0, "milestone": -1}
        target = r.stable or start
        before = r.hot[Field.DONE]
        for name in RESTORED:
            f = Field[name.upper()]
            if f in (Field.VARS, Field.PAYLOAD):
                self._cold(row, f, target.get(name))
            else:
                self._write(row, f, target[name])
        self.rework += max(0, before - r.hot[Field.DONE])
        self.rollbacks += 1
        self.journal.append(("rollback", row, target["milestone"]))

    def _read(self, row: int, name: str) -> Any:
        f = Field[name.upper()]
        r = self.rows[row]
        return r.cold.get(f) if f in (Field.VARS, Field.PAYLOAD) else r.hot[f]

    def totals(self) -> ProgressTotals:
        status = [0] * len(Status)
        current = [0] * len(MILESTONES)
        reached = [0] * len(MILESTONES)
        for r in self.rows:
            status[r.hot[Field.STATUS]] += 1
            if r.hot[Field.MILESTONE] >= 0:
                current[r.hot[Field.MILESTONE]] += 1
            for m in r.reached:
                reached[m] += 1
        return ProgressTotals(
            rows=ROWS,
            done_work=sum(r.hot[Field.DONE] for r in self.rows),
            errors=sum(r.hot[Field.ERRORS] for r in self.rows),
            rework=self.rework,
            rollbacks=self.rollbacks,
            milestone_reaches=self.reaches,
            status_counts=tuple(status),
            milestone_current=tuple(current),
            milestone_reached=tuple(reached),
        )


def run_op(model: Workbook | LegacyWorkbook, op: Op) -> None:
    match op:
        case ("set", row, f, value):
            model.set(row, f, value)
        case ("add", row, f, delta):
            model.add(row, f, delta)
        case ("advance", row, step, done, iterations) if isinstance(model, Workbook):
            model.advance(row, step, done, iterations)
        case ("advance", row, step, done, iterations):  # the legacy model: three writes
            model.set(row, Field.STEP, step)
            model.add(row, Field.DONE, done)
            model.add(row, Field.ITERATION, iterations)
        case ("cold", row, f, value):
            model.set_cold(row, f, value)
        case ("error", row, text):
            model.record_error(row, text)
        case ("milestone", row, m):
            model.reach_milestone(row, m)
        case ("rollback", targets, reason):
            model.rollback(targets, reason)


class WorkbookMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.wb = Workbook(MILESTONES, rows=ROWS)
        self.legacy = LegacyWorkbook(MILESTONES, rows=ROWS)
        self.ref = Reference()
        self.clock = FakeClock()
        self.bus = EventBus(self.wb, self.clock, BatchingConfig(max_batch_size=7))
        self.bus.subscribe(["field", "milestone", "rollback", "error", "lease"], self._on_batch)
        self.write_backs: list[Op] = []
        self.batches: list[Batch] = []
        self.failures: list[AssertionError] = []
        self.flushed_state = self._ref_state()

    def _ref_state(self) -> list[tuple[dict[Field, Any], dict[Field, Any]]]:
        return [(dict(r.hot), dict(r.cold)) for r in self.ref.rows]

    def _on_batch(self, batch: Batch) -> None:
        self.batches.append(batch)
        try:
            self._assert_reads_match(self.ref)  # readers see the committed, pre-dispatch state
        except AssertionError as exc:
            self.failures.append(exc)
        for op in self.write_backs:
            run_op(self.wb, op)  # staged: merged when this batch's dispatch ends
        for op in self.write_backs:
            run_op(self.legacy, op)
            self.ref.apply(op)
        self.write_backs = []

    @rule(op=any_op)
    def write(self, op: Op) -> None:
        run_op(self.wb, op)
        run_op(self.legacy, op)
        self.ref.apply(op)

    @rule(ops=st.lists(any_op, max_size=6))
    def dispatch_block(self, ops: list[Op]) -> None:
        with self.wb.dispatching():
            for op in ops:
                run_op(self.wb, op)
            self._assert_reads_match(self.ref)
        for op in ops:
            run_op(self.legacy, op)
            self.ref.apply(op)

    @rule(
        row=rows,
        f=st.sampled_from([Field.DONE, Field.STEP, Field.ERRORS]),
        steps=st.lists(st.tuples(st.sampled_from(["set", "add"]), st.integers(0, 9)), max_size=6),
    )
    def dispatch_burst_on_one_field(self, row: int, f: Field, steps: list[tuple[str, int]]) -> None:
        ops: list[Op] = [
            (kind, row, f, value) for kind, value in steps if kind == "add" or f != Field.ERRORS
        ]
        self.dispatch_block(ops)

    @rule(ops=st.lists(any_op, min_size=1, max_size=6))
    def flush_with_write_backs(self, ops: list[Op]) -> None:
        self.write(("add", 0, Field.DONE, 1))
        expected_rows, expected_journal = self.ref.dirty, self.ref.journal
        self.ref.dirty, self.ref.journal = set(), []
        self.write_backs = list(ops)
        self.batches = []
        now_state = self._ref_state()
        self.clock.advance(1.0)
        self.bus.flush(self.clock.now())
        assert not self.failures
        assert not self.write_backs, "the subscriber ran"
        events = [e for b in self.batches for e in b.events]
        net = {
            row
            for row, (a, b) in enumerate(zip(self.flushed_state, now_state, strict=True))
            if a != b
        }
        self.flushed_state = now_state
        # nothing lost (every net change has an event), nothing invented (only written rows)
        assert net <= {e.row for e in events if e.topic == "field"} <= expected_rows
        assert [
            (e.topic, e.row, e.milestone) for e in events if e.topic in ("milestone", "rollback")
        ] == expected_journal
        assert [b.seq for b in self.batches] == sorted(b.seq for b in self.batches)
        assert all(len(b.events) <= 7 for b in self.batches)

    @rule()
    def compact(self) -> None:
        self.wb.compact_stable()

    @invariant()
    def states_agree(self) -> None:
        self._assert_reads_match(self.ref)
        self._assert_reads_match(self.ref, self.legacy)
        expected = self.ref.totals()
        assert self.wb.totals() == expected
        assert self.wb.recount() == expected
        assert self.legacy.totals() == expected

    def _assert_reads_match(
        self, ref: Reference, model: Workbook | LegacyWorkbook | None = None
    ) -> None:
        model = model or self.wb
        for row, r in enumerate(ref.rows):
            for f in (*HOT, Field.ERRORS, Field.MILESTONE):
                assert model.get(row, f) == r.hot[f], (row, f)
            for f in (Field.VARS, Field.PAYLOAD, Field.ERROR_TEXT):
                assert model.get_cold(row, f) == r.cold.get(f), (row, f)


WorkbookMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestWorkbookMachine = WorkbookMachine.TestCase
