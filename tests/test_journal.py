"""Tests of the bulk job journal (akool_async._journal) on real SQLite files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from akool_async import Video, VideoStatus
from akool_async._jobstore import JobRequest
from akool_async._journal import (
    ABANDONED,
    CREATED,
    REFUSED,
    UNKNOWN,
    Journal,
    JournalError,
)


def request(
    key: str = "id:a",
    *,
    line: int = 1,
    fingerprint: str = "f" * 64,
    count: int = 3,
    stem: str = "a",
) -> JobRequest:
    """A journal request record."""
    return JobRequest(
        key=key,
        line=line,
        fingerprint=fingerprint,
        body={"prompt": "wave", "count": count},
        count=count,
        stem=stem,
    )


def video(video_id: str, credit: float = 30.0) -> Video:
    """A freshly created video as a create answer reports it."""
    return Video(
        id=video_id,
        status=VideoStatus.QUEUEING,
        create_time=1_700_000_000_000,
        deduction_credit=credit,
    )


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """Where the journal lives."""
    return tmp_path / "out" / "journal.sqlite3"


def test_the_journal_uses_wal_and_survives_reopening(path: Path) -> None:
    """Requests written are there after reopening; the database is in WAL mode."""
    with Journal.open(path) as journal:
        journal.add_requests([request()])

    with Journal.open(path) as journal:
        recorded = journal.request("id:a")
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]

    assert recorded is not None
    assert ("a", 3, 1) == (recorded.stem, recorded.count, recorded.line)
    assert "wal" == mode


def test_created_ids_are_committed_at_once(path: Path) -> None:
    """finish_create's ids are visible to another connection before the journal closes."""
    with Journal.open(path) as journal:
        journal.add_requests([request()])
        create_id = journal.start_create("id:a", 2)
        journal.finish_create(create_id, [video("v1"), video("v2")])
        seen = sqlite3.connect(path).execute("SELECT id, file_name FROM videos").fetchall()
        (create,) = journal.creates("id:a")

    assert [("v1", "a-1.mp4"), ("v2", "a-2.mp4")] == sorted(seen)
    assert (CREATED, 2, 60.0) == (create.state, create.created, create.credits)


def test_ordinals_continue_across_creates(path: Path) -> None:
    """A request's second create numbers its files after the first one's."""
    with Journal.open(path) as journal:
        journal.add_requests([request(count=3)])
        journal.finish_create(journal.start_create("id:a", 2), [video("v1"), video("v2")])
        rows = journal.finish_create(journal.start_create("id:a", 1), [video("v3")])

    assert ["a-3.mp4"] == [r.file_name for r in rows]


def test_a_create_left_in_flight_is_unknown_after_a_restart(path: Path) -> None:
    """A create still 'sent' when the process died becomes 'unknown' and counts as in doubt."""
    with Journal.open(path) as journal:
        journal.add_requests([request()])
        journal.start_create("id:a", 3)  # the process dies here, answer never recorded

    with Journal.open(path) as journal:
        recovered = journal.recover()
        (create,) = journal.creates("id:a")
        in_doubt = journal.in_doubt("id:a")

    assert [UNKNOWN] == [c.state for c in recovered]
    assert (UNKNOWN, 3) == (create.state, in_doubt)


def test_a_create_cut_off_by_a_crash_counts_at_its_estimate(path: Path) -> None:
    """The estimate recorded when a create starts stands as its cost after recover(); an
    answer or a refusal replaces it."""
    with Journal.open(path) as journal:
        journal.add_requests([request()])
        journal.start_create("id:a", 3, estimate=180.0)  # the process dies here
        answered = journal.start_create("id:a", 1, estimate=60.0)
        journal.finish_create(answered, [video("v1", 30.0)])
        journal.fail_create(journal.start_create("id:a", 1, estimate=60.0), REFUSED, "[1006]")

    with Journal.open(path) as journal:
        journal.recover()
        spent = journal.credits_spent()

    assert 180.0 + 30.0 == spent


def test_ids_an_unknown_create_certainly_made_are_journaled(path: Path) -> None:
    """Ids read from an unreadable answer become videos; only the rest is in doubt, and
    abandoning the create keeps them."""
    with Journal.open(path) as journal:
        journal.add_requests([request(count=3)])
        create_id = journal.start_create("id:a", 3, estimate=180.0)
        rows = journal.fail_create(
            create_id, UNKNOWN, "unreadable", credits=180.0, video_ids=["v1", "v3"]
        )
        in_doubt = journal.in_doubt("id:a")
        journal.abandon_unknown()
        after = (journal.in_doubt("id:a"), [v.id for v in journal.videos("id:a")])
        spent = journal.credits_spent()

    assert [("v1", "a-1.mp4"), ("v3", "a-2.mp4")] == [(r.id, r.file_name) for r in rows]
    assert (1, (0, ["v1", "v3"]), 180.0) == (in_doubt, after, spent)


def test_abandoning_unknown_creates_clears_the_doubt(path: Path) -> None:
    """abandon_unknown (--retry-unknown) leaves nothing in doubt."""
    with Journal.open(path) as journal:
        journal.add_requests([request()])
        journal.fail_create(journal.start_create("id:a", 3), UNKNOWN, "lost", credits=180.0)
        abandoned = journal.abandon_unknown()
        state = journal.creates("id:a")[0].state
        in_doubt = journal.in_doubt("id:a")

    assert (1, ABANDONED, 0) == (len(abandoned), state, in_doubt)


def test_credits_spent_counts_created_and_unknown_but_not_refused(path: Path) -> None:
    """The job's spend includes estimates of unknown creates; refused ones cost nothing."""
    with Journal.open(path) as journal:
        journal.add_requests([request()])
        journal.finish_create(journal.start_create("id:a", 1), [video("v1", 30.0)])
        journal.fail_create(journal.start_create("id:a", 1), UNKNOWN, "lost", credits=60.0)
        journal.fail_create(journal.start_create("id:a", 1), REFUSED, "[1003] bad")
        spent = journal.credits_spent()

    assert 90.0 == spent


def test_a_changed_request_under_the_same_id_is_refused(path: Path) -> None:
    """Reusing a recorded id for other fields raises JournalError naming the line."""
    with Journal.open(path) as journal:
        journal.add_requests([request()])
        with pytest.raises(JournalError, match="line 7"):
            journal.add_requests([request(line=7, fingerprint="0" * 64)])


def test_a_new_count_is_taken_for_a_known_request(path: Path) -> None:
    """Raising a request's count keeps its key and stem and records the new count."""
    with Journal.open(path) as journal:
        journal.add_requests([request(count=3)])
        journal.add_requests([request(count=5, line=4)])
        recorded = journal.request("id:a")

    assert recorded is not None
    assert (5, 4, "a") == (recorded.count, recorded.line, recorded.stem)


def test_a_taken_file_stem_gets_a_suffix(path: Path) -> None:
    """Two requests whose stems collide get distinct file names."""
    with Journal.open(path) as journal:
        journal.add_requests(
            [request("id:a/b", stem="a_b"), request("id:a_b", stem="a_b", fingerprint="e" * 64)]
        )
        stems = [r.stem for r in journal.requests()]

    assert ["a_b", "a_b-eeeeeeee"] == sorted(stems)


def test_a_second_process_cannot_open_a_journal_in_use(path: Path) -> None:
    """The journal is locked while open; the lock goes with close()."""
    first = Journal.open(path)
    try:
        with pytest.raises(JournalError, match="in use"):
            Journal.open(path)
    finally:
        first.close()

    Journal.open(path).close()


def test_a_file_that_is_not_a_journal_is_refused(path: Path) -> None:
    """Opening a non-SQLite file raises JournalError."""
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not sqlite" * 100)

    with pytest.raises(JournalError, match="not a usable journal"):
        Journal.open(path)


def test_download_state_is_recorded(path: Path) -> None:
    """mark_downloaded and set_status land in the video's row."""
    with Journal.open(path) as journal:
        journal.add_requests([request()])
        journal.finish_create(journal.start_create("id:a", 1), [video("v1")])
        journal.set_status("v1", int(VideoStatus.COMPLETED))
        journal.mark_downloaded("v1", 4096)
        (row,) = journal.videos("id:a")

    assert (3, 4096) == (row.status, row.size)
    assert row.downloaded_at is not None
