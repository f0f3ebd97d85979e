"""The four reporters, driven with the events of realistic runs."""

from __future__ import annotations

import io
import json
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import IO

import pytest

from aglacier.progress.events import (
    AlreadyUploaded,
    Event,
    Message,
    PartUploaded,
    PartUploading,
    Reporter,
    Retrying,
    RunFinished,
    RunStarted,
    StagingDone,
    StagingProgress,
    TaskProgress,
)
from aglacier.progress.render import JsonReporter, PlainReporter, QuietReporter, RichReporter
from aglacier.progress.rich_view import bytes_pair
from aglacier.progress.tally import RunTally
from aglacier.units import GiB, KiB, MiB

RUN = 7
PART = 4 * MiB
SIZE = 18 * MiB  # five parts: 4 + 4 + 4 + 4 + 2 MiB
STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d aglacier: ")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
WARNING = "/home/me/.cache/x.db: file changed as we read it"
RETRY = Retrying(None, "upload_part", 2, "RequestTimeout: socket not read from", 2.3)


def staging(up_to: int, start: int = 0, steps: int = 500) -> list[Event]:
    return [StagingProgress(RUN, start + (up_to - start) * i // steps) for i in range(1, steps + 1)]


def parts(numbers: Iterable[int], event: type[PartUploading | PartUploaded]) -> list[Event]:
    return [event(RUN, n, min(PART, SIZE - (n - 1) * PART)) for n in numbers]


def fresh_run(*, finish: bool = True) -> list[Event]:
    """A new backup: staging and uploads overlap, parts finish out of order."""
    events: list[Event] = [RunStarted(RUN, "/home/me", "s3://bucket/home", 20 * MiB, PART, False)]
    events += staging(9 * MiB)
    events += parts([1, 2], PartUploading) + parts([2, 1], PartUploaded)
    events += [RETRY, Message("warning", WARNING, RUN)]
    events += staging(SIZE, start=9 * MiB)
    events += [StagingDone(RUN, SIZE, 5)]
    events += parts([3, 4, 5], PartUploading) + parts([4], PartUploaded)
    if finish:
        events += parts([3, 5], PartUploaded)
        events += [RunFinished(RUN, "done", "archive-123", SIZE, seconds=4.5)]
    return events


def resumed_run() -> list[Event]:
    """A staged run picked up again: the server already has parts 1 and 2."""
    events: list[Event] = [RunStarted(RUN, "/home/me", "s3://bucket/home", SIZE, PART, True)]
    events += [AlreadyUploaded(RUN, 2 * PART, 2)]
    events += parts([3, 4, 5], PartUploading) + parts([3, 5, 4], PartUploaded)
    return [*events, RunFinished(RUN, "done", "archive-456", SIZE, seconds=2.0)]


def stopped_run() -> list[Event]:
    events: list[Event] = [RunStarted(RUN, "/home/me", "s3://bucket/home", 20 * MiB, PART, False)]
    events += staging(5 * MiB, steps=10)
    events += [Message("debug", "part 1: sha256 ok"), Message("info", "uploading")]
    events += [Message("error", "connection reset by peer", RUN), RunFinished(RUN, "resumable")]
    return events


def feed(reporter: Reporter, events: Iterable[Event], *, close: bool = True) -> None:
    for event in events:
        reporter.emit(event)
    if close:
        reporter.close()


def rich_text(events: Iterable[Event], *, verbose: int = 0) -> str:
    """What a 100-column terminal received, without escape codes."""
    out = io.StringIO()
    feed(RichReporter(out, verbose=verbose, force_terminal=True, width=100), events)
    return ANSI.sub("", out.getvalue()).replace("\r", "\n")


def json_records(events: Iterable[Event], **options: float) -> list[dict[str, object]]:
    out = io.StringIO()
    feed(JsonReporter(out, **options), events)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def plain_lines(events: Iterable[Event], *, verbose: int = 0, interval: float = 0) -> list[str]:
    out = io.StringIO()
    feed(PlainReporter(out, verbose=verbose, interval=interval), events)
    text = out.getvalue()
    assert "\x1b" not in text
    lines = text.splitlines()
    assert all(STAMP.match(line) for line in lines), lines
    return [STAMP.sub("", line) for line in lines]


# JSON lines


def test_json_has_one_line_per_event_in_order_with_its_fields() -> None:
    records = json_records(fresh_run(), staging_interval=60)
    names = [r["event"] for r in records]
    uploads = ["part_uploading"] * 2 + ["part_uploaded"] * 2
    assert names == [
        "run_started",
        "staging_progress",  # the first one; the rest are held back...
        *uploads,
        "retrying",
        "message",
        "staging_progress",  # ...but the last one comes before staging_done
        "staging_done",
        *(["part_uploading"] * 3 + ["part_uploaded"] * 3),
        "run_finished",
    ]
    assert list(records[2]) == ["event", "time", "run_id", "number", "size"]
    assert records[2]["number"] == 1 and records[2]["size"] == PART
    assert [r["number"] for r in records if r["event"] == "part_uploaded"] == [2, 1, 4, 3, 5]
    assert records[8]["spooled"] == SIZE
    assert records[6] == {**records[6], "operation": "upload_part", "attempt": 2, "delay": 2.3}
    assert records[-1] == {**records[-1], "outcome": "done", "archive_id": "archive-123"}
    assert all(
        re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(r["time"])) for r in records
    )


def test_json_thins_staging_progress_but_keeps_the_last() -> None:
    events = [fresh_run()[0], *staging(SIZE, steps=1000), StagingDone(RUN, SIZE, 5)]
    records = json_records(events)
    spooled = [r["spooled"] for r in records if r["event"] == "staging_progress"]
    assert 2 <= len(spooled) <= 5
    assert spooled[-1] == SIZE
    assert records[-1]["event"] == "staging_done"


def test_json_close_writes_held_back_progress() -> None:
    records = json_records([fresh_run()[0], *staging(3 * MiB, steps=20)], staging_interval=60)
    assert [r.get("spooled") for r in records] == [None, 3 * MiB // 20, 3 * MiB]


def test_json_is_ascii_even_for_names_that_are_not_utf8() -> None:
    out = io.StringIO()
    feed(JsonReporter(out), [Message("warning", "/home/me/caf\udce9: permission denied")])
    line = out.getvalue()
    assert line.isascii()
    assert json.loads(line)["text"] == "/home/me/caf\udce9: permission denied"


# Plain lines


def test_plain_lines_tell_the_whole_run() -> None:
    lines = plain_lines(fresh_run())
    assert lines[0] == (
        "run 7: backing up /home/me to s3://bucket/home (about 20 MiB in parts of 4 MiB)"
    )
    assert (
        "retrying upload_part in 2.3 s (attempt 2): RequestTimeout: socket not read from" in lines
    )
    assert f"warning: {WARNING}" in lines
    assert "run 7: staged 18 MiB in 5 parts" in lines
    progress = [line for line in lines if "in flight" in line]
    assert any(re.search(r"staging \d+% \(.* of ~20 MiB, .*/s\); upload", p) for p in progress)
    assert "run 7: upload 100% (18 MiB of 18 MiB" in progress[-1]
    assert lines[-1] == "run 7 done: archive archive-123, 18 MiB in 4s (4 MiB/s)"


def test_plain_progress_lines_wait_for_the_interval() -> None:
    lines = plain_lines(fresh_run(), interval=3600)
    assert not [line for line in lines if "in flight" in line]
    assert len(lines) == 5  # started, retry, warning, staged, done


def test_plain_resumed_run_counts_what_the_server_had() -> None:
    lines = plain_lines(resumed_run())
    assert lines[0].startswith("run 7: resuming /home/me to s3://bucket/home (18 MiB")
    assert "run 7: 2 parts (8 MiB) already uploaded" in lines
    assert "staging" not in " ".join(lines)
    assert lines[-1] == "run 7 done: archive archive-456, 18 MiB in 2s (10 MiB sent, 5 MiB/s)"


def test_plain_verbosity() -> None:
    assert "debug: part 1: sha256 ok" not in plain_lines(stopped_run())
    assert "debug: part 1: sha256 ok" in plain_lines(stopped_run(), verbose=1)
    assert "run 7: uploaded part 5 (2 MiB)" not in plain_lines(fresh_run(), verbose=1)
    assert "run 7: uploaded part 5 (2 MiB)" in plain_lines(fresh_run(), verbose=2)


def test_plain_stopped_run_says_how_to_finish() -> None:
    lines = plain_lines(stopped_run(), interval=3600)
    assert lines[-2:] == [
        "error: connection reset by peer",
        "run 7 stopped; run `aglacier resume` to finish",
    ]


# Quiet


def test_quiet_prints_only_warnings_errors_and_failed_runs() -> None:
    out = io.StringIO()
    others = [RunFinished(8, "aborted"), RunFinished(9, "skipped"), RunFinished(10, "failed")]
    feed(QuietReporter(out), [*fresh_run(), *resumed_run(), *stopped_run(), *others])
    assert out.getvalue().splitlines() == [
        f"aglacier: warning: {WARNING}",
        "aglacier: error: connection reset by peer",
        "aglacier: run 7 stopped; run `aglacier resume` to finish",
        "aglacier: run 10 failed",
    ]


# Rich


def test_rich_shows_both_bars_messages_and_the_summary() -> None:
    text = rich_text(fresh_run())
    assert "run 7: backing up /home/me to s3://bucket/home" in text
    assert re.search(r"staging +━", text) and re.search(r"upload +━", text)
    assert "parts in flight" in text
    assert f"warning: {WARNING}" in text
    assert "retrying upload_part in 2.3 s (attempt 2): RequestTimeout" in text
    assert text.rstrip().endswith("run 7 done: archive archive-123, 18 MiB in 4s (4 MiB/s)")


def test_rich_last_frame_of_an_interrupted_display() -> None:
    text = rich_text(fresh_run(finish=False))
    staging_row = text.rsplit("staging ", 1)[1].split("\n")[0]
    upload_row = text.rsplit("upload ", 1)[1].split("\n")[0]
    assert "100%" in staging_row and "18.0/18.0 MiB" in staging_row and "done in" in staging_row
    assert "66%" in upload_row and "12.0/18.0 MiB" in upload_row
    assert "2 parts in flight" in upload_row


def test_rich_resumed_run_has_no_staging_bar() -> None:
    text = rich_text(resumed_run())
    assert "run 7: 2 parts (8 MiB) already uploaded" in text
    assert "staging" not in text
    assert "(10 MiB sent, 5 MiB/s)" in text


def test_rich_debug_only_when_verbose() -> None:
    assert "part 1: sha256 ok" not in rich_text(stopped_run())
    assert "debug: part 1: sha256 ok" in rich_text(stopped_run(), verbose=1)
    assert "run 7 stopped; run `aglacier resume` to finish" in rich_text(stopped_run())


def test_rich_emit_is_cheap() -> None:
    reporter = RichReporter(io.StringIO(), force_terminal=True, width=100)
    reporter.emit(fresh_run()[0])
    began = time.perf_counter()
    for event in staging(SIZE, steps=10_000):
        reporter.emit(event)
    elapsed = time.perf_counter() - began
    reporter.close()
    assert elapsed < 1.0  # about 0.05 s: the bars are redrawn ten times a second, not per event


# Every reporter


THREADS = 8
PER_THREAD = 50


def hammer(reporter: Reporter) -> None:
    """THREADS threads emit at once: parts, staging progress and a warning each."""
    total = THREADS * PER_THREAD * KiB
    reporter.emit(RunStarted(RUN, "/src", "local:/dst", total, KiB, False))
    reporter.emit(StagingDone(RUN, total, THREADS * PER_THREAD))
    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def work(first: int) -> None:
        try:
            barrier.wait()
            for number in range(first, first + PER_THREAD):
                reporter.emit(PartUploading(RUN, number, KiB))
                reporter.emit(StagingProgress(RUN, total))
                reporter.emit(PartUploaded(RUN, number, KiB))
            reporter.emit(Message("warning", f"thread {first}"))
        except BaseException as exc:  # reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(1 + i * PER_THREAD,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    reporter.close()
    assert errors == []


def test_json_from_many_threads() -> None:
    out = io.StringIO()
    hammer(JsonReporter(out))
    names = [json.loads(line)["event"] for line in out.getvalue().splitlines()]
    assert names.count("part_uploaded") == names.count("part_uploading") == THREADS * PER_THREAD
    assert names.count("message") == THREADS


def test_plain_from_many_threads() -> None:
    out = io.StringIO()
    hammer(PlainReporter(out, verbose=2, interval=0))
    lines = out.getvalue().splitlines()
    assert all(STAMP.match(line) for line in lines)
    assert sum(" uploaded part " in line for line in lines) == THREADS * PER_THREAD
    assert "upload 100% (400 KiB of 400 KiB" in [x for x in lines if "in flight" in x][-1]


def test_rich_from_many_threads() -> None:
    out = io.StringIO()
    hammer(RichReporter(out, force_terminal=True, width=100))
    text = ANSI.sub("", out.getvalue())
    upload_row = text.rsplit("upload ", 1)[1].split("\n")[0]
    assert "100%" in upload_row and "done" in upload_row
    assert all(f"warning: thread {1 + i * PER_THREAD}" in text for i in range(THREADS))


def test_quiet_from_many_threads() -> None:
    out = io.StringIO()
    hammer(QuietReporter(out))
    assert len(out.getvalue().splitlines()) == THREADS


class BrokenPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def closed_stream() -> IO[str]:
    stream = io.StringIO()
    stream.close()
    return stream


FACTORIES: dict[str, Callable[[IO[str]], Reporter]] = {
    "rich": lambda s: RichReporter(s, force_terminal=True, width=100),
    "plain": lambda s: PlainReporter(s, verbose=2, interval=0),
    "json": JsonReporter,
    "quiet": QuietReporter,
}


@pytest.mark.parametrize("make_stream", [closed_stream, BrokenPipe])
@pytest.mark.parametrize("kind", FACTORIES)
def test_a_dead_stream_never_raises(kind: str, make_stream: Callable[[], IO[str]]) -> None:
    reporter = FACTORIES[kind](make_stream())
    feed(reporter, [*fresh_run(), *stopped_run()])
    reporter.close()  # twice: close is idempotent
    reporter.emit(Message("error", "after close"))


@pytest.mark.parametrize("kind", FACTORIES)
def test_nothing_is_written_after_close(kind: str) -> None:
    out = io.StringIO()
    reporter = FACTORIES[kind](out)
    reporter.close()
    written = out.getvalue()
    reporter.emit(Message("error", "too late"))
    reporter.emit(RunFinished(RUN, "failed"))
    assert out.getvalue() == written


# The counting behind the bars and lines


def test_already_uploaded_bytes_are_done_but_not_part_of_the_rate() -> None:
    tally = RunTally.start(RunStarted(RUN, "/src", "dst", GiB, 8 * MiB, True), now=100.0)
    tally.apply(AlreadyUploaded(RUN, GiB - 80 * MiB, 118), 100.0)
    for second in range(10):
        tally.apply(PartUploading(RUN, 119 + second, 8 * MiB), 100.0 + second)
        tally.apply(PartUploaded(RUN, 119 + second, 8 * MiB), 101.0 + second)
    tally.apply(PartUploaded(RUN, 128, 8 * MiB), 111.0)  # a part acknowledged twice
    assert tally.uploaded == GiB and tally.upload_done
    assert tally.upload_rate.rate() == pytest.approx(8 * MiB)
    assert tally.eta() is None


def test_estimate_is_a_floor_until_staging_is_done() -> None:
    tally = RunTally.start(RunStarted(RUN, "/src", "dst", 10 * MiB, MiB, False), now=0.0)
    tally.apply(StagingProgress(RUN, 12 * MiB), 1.0)
    assert (tally.total, tally.size_final) == (12 * MiB, False)
    tally.apply(StagingDone(RUN, 13 * MiB, 13), 2.0)
    assert (tally.total, tally.size_final) == (13 * MiB, True)
    assert tally.staging_speed() == pytest.approx(6.5 * MiB)


@pytest.mark.parametrize(
    ("done", "total", "final", "expected"),
    [
        (0, 2 * GiB, False, "0.00/~2.00 GiB"),
        (GiB // 2, 2 * GiB, True, "0.50/2.00 GiB"),
        (12 * MiB, 18 * MiB, True, "12.0/18.0 MiB"),
        (5 * MiB, 700 * MiB, True, "  5.0/700.0 MiB"),
        (10, 500, True, " 10/500 B"),
    ],
)
def test_bytes_pair(done: int, total: int, final: bool, expected: str) -> None:
    assert bytes_pair(done, total, final=final) == expected


def test_staging_count_is_never_behind_the_parts_being_sent() -> None:
    tally = RunTally.start(RunStarted(1, "/src", "file:///d", 100 * MiB, 8 * MiB, False), 0.0)
    tally.apply(StagingProgress(1, 3 * MiB), 0.1)  # progress lags behind the spool
    tally.apply(PartUploading(1, 2, 8 * MiB), 0.2)  # part 2 (0-based) is on disk
    assert tally.spooled == 24 * MiB


def test_task_progress_bars_lines_and_json() -> None:
    steps = [
        TaskProgress("download", "downloading archive 3", 0, 48 * MiB),
        TaskProgress("download", "downloading archive 3", 24 * MiB, 48 * MiB),
        TaskProgress("download", "downloading archive 3", 48 * MiB, 48 * MiB, finished=True),
    ]
    rich_out = io.StringIO()
    rich = RichReporter(rich_out, force_terminal=True, width=100)
    plain_out = io.StringIO()
    plain = PlainReporter(plain_out, interval=3600)
    json_out = io.StringIO()
    jsonl = JsonReporter(json_out, staging_interval=3600)
    for reporter in (rich, plain, jsonl):
        for step in steps:
            reporter.emit(step)
        reporter.close()
    assert "downloading archive 3: 48 MiB in" in rich_out.getvalue()
    lines = plain_out.getvalue().splitlines()
    # The first update and the end; the middle one falls inside the interval.
    assert len(lines) == 2
    assert lines[-1].endswith("downloading archive 3: 48 MiB of 48 MiB (100 %)")
    records = [json.loads(line) for line in json_out.getvalue().splitlines()]
    assert [r["event"] for r in records] == ["task_progress", "task_progress"]
    assert records[-1]["finished"] is True and records[-1]["done"] == 48 * MiB
