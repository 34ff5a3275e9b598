from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from progressd.clock import FakeClock
from progressd.errors import StateError
from progressd.reports import (
    Report,
    ReportMailbox,
    ReportWait,
    decode_report_batch,
)
from progressd.scheduling import FakeScheduler


@dataclass
class Inbox:
    """What one waiting row was told."""

    reports: list[Report] = field(default_factory=list)
    progress: list[Report] = field(default_factory=list)
    timeouts: int = 0

    def wait(
        self, mailbox: ReportMailbox, row: int, key: str, deadline: float | None = None
    ) -> ReportWait:
        return mailbox.wait(
            row=row,
            key=key,
            deadline=deadline,
            on_report=self.reports.append,
            on_timeout=self._timed_out,
            on_progress=self.progress.append,
        )

    def _timed_out(self) -> None:
        self.timeouts += 1


def _mailbox(max_pending: int = 100) -> tuple[ReportMailbox, FakeScheduler]:
    scheduler = FakeScheduler(FakeClock(100.0))
    return ReportMailbox(scheduler, max_pending=max_pending), scheduler


def test_decode_report_batch_reads_many_reports_with_payloads() -> None:
    batch = decode_report_batch(
        b'{"reports": [{"key": "build", "user": 3, "done": 5, "total": 10},'
        b' {"key": "deploy", "payload": {"sha": "abc", "ok": [1, 2]}}]}'
    )
    assert batch.reports[0] == Report(key="build", user=3, done=5.0, total=10.0)
    assert not batch.reports[0].final
    assert batch.reports[1].payload == {"sha": "abc", "ok": [1, 2]}
    assert batch.reports[1].final


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"reports": [{"key": "a", "usr": 1}]}', r"unknown field `usr` - at `\$.reports\[0\]`"),
        (b'{"reports": [{"key": "a", "user": -1}]}', r">= 0 - at `\$.reports\[0\].user`"),
        (b'{"reports": [{"user": 1}]}', r"missing required field `key`"),
        (b'{"reports": [{"key": ""}]}', r"length >= 1 - at `\$.reports\[0\].key`"),
        (b'{"reports": []}', r"length >= 1 - at `\$.reports`"),
        (b'{"reports": [{"key": "a", "done": 1}]}', "give done and total together"),
        (b'{"reports": [{"key": "a", "done": 3, "total": 2}]}', r"done \(3\) cannot exceed total"),
        (b'{"report": []}', "unknown field `report`"),
        (b"not json", "invalid report batch: JSON is malformed"),
    ],
)
def test_decode_report_batch_errors_name_the_field_and_shape(body: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        decode_report_batch(body)
    assert 'expected {"reports": [{"key": "build"' in str(info.value)


def test_mailbox_report_for_a_user_reaches_only_that_user() -> None:
    mailbox, _ = _mailbox()
    first, second = Inbox(), Inbox()
    first.wait(mailbox, 1, "build")
    second.wait(mailbox, 2, "build")
    count = mailbox.deliver([Report(key="build", user=2, payload="done")])
    assert (count.matched, count.kept, count.dropped) == (1, 0, 0)
    assert first.reports == []
    assert [r.payload for r in second.reports] == ["done"]
    assert mailbox.statistics().waiting == 1


def test_mailbox_report_without_user_releases_every_waiting_row() -> None:
    mailbox, _ = _mailbox()
    inboxes = [Inbox() for _ in range(3)]
    for row, inbox in enumerate(inboxes):
        inbox.wait(mailbox, row, "gate")
    assert mailbox.deliver([Report(key="gate")]).matched == 1
    assert all(len(inbox.reports) == 1 for inbox in inboxes)
    assert mailbox.statistics().waiting == 0


def test_mailbox_keeps_early_reports_and_delivers_them_on_the_next_turn() -> None:
    mailbox, scheduler = _mailbox()
    count = mailbox.deliver([Report(key="build", user=7), Report(key="gate")])
    assert (count.matched, count.kept) == (0, 2)
    late, other = Inbox(), Inbox()
    late.wait(mailbox, 7, "build")
    assert late.reports == []  # never from inside wait()
    scheduler.run_due()
    assert late.reports == [Report(key="build", user=7)]
    # The kept broadcast goes to the next single waiter.
    other.wait(mailbox, 1, "gate")
    scheduler.run_due()
    assert other.reports == [Report(key="gate")]
    assert mailbox.statistics().pending == 0


def test_mailbox_progress_reports_feed_progress_and_the_wait_goes_on() -> None:
    mailbox, _ = _mailbox()
    inbox = Inbox()
    inbox.wait(mailbox, 0, "job")
    mailbox.deliver([Report(key="job", user=0, done=1, total=4)])
    mailbox.deliver([Report(key="job", user=0, done=3, total=4)])
    assert [r.done for r in inbox.progress] == [1.0, 3.0]
    assert inbox.reports == []
    mailbox.deliver([Report(key="job", user=0, done=4, total=4)])
    assert [r.done for r in inbox.reports] == [4.0]


def test_mailbox_kept_progress_coalesces_to_the_latest() -> None:
    mailbox, scheduler = _mailbox()
    mailbox.deliver([Report(key="job", user=0, done=n, total=10) for n in range(1, 6)])
    assert mailbox.statistics().pending == 1
    inbox = Inbox()
    inbox.wait(mailbox, 0, "job")
    scheduler.run_due()
    assert [r.done for r in inbox.progress] == [5.0]
    assert inbox.reports == []


def test_mailbox_wait_times_out_at_its_deadline_once() -> None:
    mailbox, scheduler = _mailbox()
    inbox = Inbox()
    inbox.wait(mailbox, 0, "job", deadline=scheduler.time() + 5.0)
    scheduler.advance(4.9)
    assert inbox.timeouts == 0
    scheduler.advance(0.2)
    assert inbox.timeouts == 1
    # After the timeout the report is not the expired waiter's: it is kept for the next one.
    assert mailbox.deliver([Report(key="job", user=0)]).kept == 1
    assert inbox.reports == []
    assert mailbox.statistics().timed_out == 1


def test_mailbox_report_before_deadline_cancels_the_timeout() -> None:
    mailbox, scheduler = _mailbox()
    inbox = Inbox()
    inbox.wait(mailbox, 0, "job", deadline=scheduler.time() + 1.0)
    mailbox.deliver([Report(key="job")])
    assert scheduler.advance(5.0) == 0
    assert (len(inbox.reports), inbox.timeouts) == (1, 0)


def test_mailbox_cancelled_wait_gets_no_callback() -> None:
    mailbox, scheduler = _mailbox()
    mailbox.deliver([Report(key="job", user=0)])
    inbox = Inbox()
    inbox.wait(mailbox, 0, "job", deadline=scheduler.time() + 1.0).cancel()
    assert scheduler.advance(2.0) == 0
    assert (inbox.reports, inbox.timeouts) == ([], 0)
    assert mailbox.statistics().pending == 1  # still there for a later wait


def test_mailbox_refuses_a_second_wait_for_the_same_row_and_key() -> None:
    mailbox, _ = _mailbox()
    Inbox().wait(mailbox, 0, "job")
    with pytest.raises(StateError, match='user 0 already waits for a report on "job"'):
        Inbox().wait(mailbox, 0, "job")


def test_mailbox_drops_the_oldest_kept_report_beyond_its_limit() -> None:
    mailbox, _ = _mailbox(max_pending=3)
    count = mailbox.deliver([Report(key="job", user=row) for row in range(5)])
    assert (count.kept, count.dropped) == (5, 2)
    assert mailbox.statistics().pending == 3
    assert mailbox.take_nowait(row=0, key="job") is None
    assert mailbox.take_nowait(row=4, key="job") == Report(key="job", user=4)


def test_mailbox_waiter_that_waits_again_from_its_callback_gets_the_next_report() -> None:
    mailbox, _ = _mailbox()
    seen: list[object] = []

    def on_report(report: Report) -> None:
        seen.append(report.payload)
        mailbox.wait(row=0, key="tick", deadline=None, on_report=on_report, on_timeout=list)

    mailbox.wait(row=0, key="tick", deadline=None, on_report=on_report, on_timeout=list)
    mailbox.deliver([Report(key="tick", payload=1), Report(key="tick", user=0, payload=2)])
    assert seen == [1, 2]


def test_mailbox_take_nowait_skips_progress_and_returns_the_final_report() -> None:
    mailbox, _ = _mailbox()
    mailbox.deliver([Report(key="job", user=2, done=1, total=2), Report(key="job", user=2)])
    assert mailbox.take_nowait(row=2, key="job") == Report(key="job", user=2)
    assert mailbox.take_nowait(row=2, key="job") is None


async def test_mailbox_runs_on_a_real_event_loop_scheduler() -> None:
    loop = asyncio.get_running_loop()
    mailbox = ReportMailbox(loop)
    fired: asyncio.Future[str] = loop.create_future()
    mailbox.wait(
        row=0,
        key="job",
        deadline=loop.time(),
        on_report=lambda r: fired.set_result("report"),
        on_timeout=lambda: fired.set_result("timeout"),
    )
    assert await asyncio.wait_for(fired, 5.0) == "timeout"
    mailbox.deliver([Report(key="job", user=1)])
    got: asyncio.Future[Report] = loop.create_future()
    mailbox.wait(row=1, key="job", deadline=None, on_report=got.set_result, on_timeout=list)
    assert (await asyncio.wait_for(got, 5.0)).user == 1


def test_mailbox_kept_report_wins_over_an_already_passed_deadline() -> None:
    mailbox, scheduler = _mailbox()
    mailbox.deliver([Report(key="job", user=0)])
    inbox = Inbox()
    inbox.wait(mailbox, 0, "job", deadline=scheduler.time() - 1.0)
    scheduler.run_due()
    assert (len(inbox.reports), inbox.timeouts) == (1, 0)
