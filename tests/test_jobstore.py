"""The job store contract: the SQLite journal and Redis behave the same (one suite, two stores).

Workers are names here; a "dead" worker is one that stops renewing its lease. Waiting for a
lease to lapse polls the store with a deadline (the lease is 0.3 s), never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from akool_async import JobConflictError, Video, VideoStatus
from akool_async._bulk import parse_jobs
from akool_async._bulk_shared import job_requests
from akool_async._jobstore import REFUSED, UNKNOWN, JobStore
from akool_async._jobstore_sqlite import SqliteJobStore
from akool_async.redis import RedisJobStore

LEASE = 0.3
T = TypeVar("T")

BASE = {
    "image_url": "https://images.example/cat.png",
    "prompt": "the cat waves",
    "resolution": "720p",
    "video_length": 5,
}


def rows(*counts: int) -> list[Any]:
    """Job requests with these counts (ids r1, r2, ...)."""
    lines = [json.dumps({**BASE, "id": f"r{i}", "count": n}) for i, n in enumerate(counts, 1)]
    jobs, errors = parse_jobs(lines)
    assert not errors
    return job_requests(jobs)


def video(video_id: str, credits: float = 20.0) -> Video:
    """A video as a create answer names it."""
    return Video(id=video_id, status=VideoStatus.QUEUEING, deduction_credit=credits, create_time=1)


async def eventually(probe: Callable[[], Awaitable[T | None]], timeout: float = 10.0) -> T:
    """Poll the store until ``probe`` gives a value (a lease lapsing), within ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("the store never gave it")
        await asyncio.sleep(0.05)


@pytest.fixture(params=["sqlite", "redis"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, redis_url: str, redis_namespace: str
) -> AsyncIterator[JobStore]:
    """The same job in each store."""
    if request.param == "sqlite":
        async with SqliteJobStore.open(tmp_path / "journal.sqlite3", job="j") as sqlite:
            yield sqlite
    else:
        async with RedisJobStore(redis_url, job="j", namespace=redis_namespace) as redis_store:
            yield redis_store


async def test_loading_is_idempotent_and_a_different_file_is_refused(store: JobStore) -> None:
    """Each line is recorded once; the same file again adds nothing; another file is refused."""
    first = await store.load("digest-a", rows(2, 3))
    again = await store.load("digest-a", rows(2, 3))

    assert (2, 0) == (first.added, first.existing)
    assert (0, 2) == (again.added, again.existing)
    with pytest.raises(JobConflictError, match="another jobs file"):
        await store.load("digest-b", rows(2, 3, 4))
    status = await store.status()
    assert 5 == status.videos["wanted"]
    assert 2 == status.rows["to_create"]


async def test_a_row_is_claimed_by_one_live_worker_and_sent_only_by_its_holder(
    store: JobStore,
) -> None:
    """Two workers never hold one row; only the holder may record a create, never past
    the row's need."""
    await store.load("d", rows(3))
    await store.join("w1", 60, {})
    await store.join("w2", 60, {})

    claim = await store.claim_row("w1")
    assert claim is not None
    assert 3 == claim.missing
    assert None is await store.claim_row("w2")
    assert None is await store.start_create("w2", claim.key, 1, 20.0)
    assert None is await store.start_create("w1", claim.key, 4, 80.0)
    create = await store.start_create("w1", claim.key, 3, 60.0)
    assert create is not None
    assert None is await store.start_create("w1", claim.key, 1, 20.0)

    made = await store.finish_create(create, [video("v1"), video("v2"), video("v3")])

    assert ["v1", "v2", "v3"] == [v.id for v in made]
    assert ["r1-1.mp4", "r1-2.mp4", "r1-3.mp4"] == [v.file_name for v in made]
    assert 60.0 == (await store.status()).credits
    assert None is await store.claim_row("w2")


async def test_a_dead_workers_row_is_taken_over_and_its_create_in_flight_is_unknown(
    store: JobStore,
) -> None:
    """A worker that stops renewing loses its claims; its sent create becomes unknown, is
    not created again, and only ``retry_unknown`` lets it be sent."""
    await store.load("d", rows(5))
    await store.join("dead", LEASE, {})
    claim = await store.claim_row("dead")
    assert claim is not None
    first = await store.start_create("dead", claim.key, 2, 40.0)
    assert first is not None
    await store.finish_create(first, [video("a"), video("b")])
    in_flight = await store.start_create("dead", claim.key, 3, 60.0)
    assert in_flight is not None
    await store.join("live", 60, {})

    assert [claim.key] == await eventually(store.recover)

    status = await store.status()
    assert 3 == status.videos["unknown"]
    assert [3] == [u["videos"] for u in status.unknown]
    assert 100.0 == status.credits
    assert None is await store.claim_row("live")  # in doubt: not created again
    taken = await eventually(lambda: _claim_videos(store, "live"))
    assert {"a", "b"} == {v.id for v in taken}

    assert 3 == await store.retry_unknown()
    again = await store.claim_row("live")
    assert again is not None
    assert 3 == again.missing


async def _claim_videos(store: JobStore, worker: str) -> list[Any]:
    await store.heartbeat(worker, 60)
    return await store.claim_videos(worker, 10)


async def test_an_answer_after_the_lease_lapsed_still_records_its_ids(store: JobStore) -> None:
    """Ids are real videos even when their worker was presumed dead meanwhile."""
    await store.load("d", rows(2))
    await store.join("slow", LEASE, {})
    claim = await store.claim_row("slow")
    assert claim is not None
    create = await store.start_create("slow", claim.key, 2, 40.0)
    assert create is not None
    await store.join("other", 60, {})
    await eventually(store.recover)

    made = await store.finish_create(create, [video("x"), video("y")])

    assert ["x", "y"] == [v.id for v in made]
    status = await store.status()
    assert 0 == status.videos["unknown"]
    assert 2 == status.videos["created"]


async def test_refused_and_partly_unknown_creates(store: JobStore) -> None:
    """A refusal frees the row; an unknown create keeps the ids it named, the rest in doubt."""
    await store.load("d", rows(4))
    await store.join("w", 60, {})
    claim = await store.claim_row("w")
    assert claim is not None
    refused = await store.start_create("w", claim.key, 4, 80.0)
    assert refused is not None
    await store.fail_create(refused, REFUSED, "1003 bad value")
    unknown = await store.start_create("w", claim.key, 4, 80.0)
    assert unknown is not None

    made = await store.fail_create(
        unknown, UNKNOWN, "answer unreadable", credits=80.0, video_ids=["k1"]
    )

    assert ["k1"] == [v.id for v in made]
    status = await store.status()
    assert 3 == status.videos["unknown"]
    assert 80.0 == status.credits
    assert not status.done


async def test_videos_are_claimed_once_saved_once_and_where_is_recorded(
    store: JobStore,
) -> None:
    """A video is followed by one live worker; its download records worker and path; a lost
    machine's files are saved again."""
    await store.load("d", rows(2))
    await store.join("w1", 60, {})
    await store.join("w2", 60, {})
    claim = await store.claim_row("w1")
    assert claim is not None
    create = await store.start_create("w1", claim.key, 2, 40.0)
    assert create is not None
    await store.finish_create(create, [video("v1"), video("v2")])

    assert [] == await store.claim_videos("w2", 10)  # w1 follows what it created
    await store.mark_downloaded("v1", "w1", "/out1/r1-1.mp4", 100)
    await store.set_status("v2", int(VideoStatus.FAILED))

    status = await store.status()
    assert status.done
    assert {"downloaded": 1, "failed": 1, "open": 0} == {
        k: status.videos[k] for k in ("downloaded", "failed", "open")
    }
    assert 1 == status.workers["w1"]["downloaded"]

    assert 1 == await store.reopen_downloads("w1")
    again = await store.claim_videos("w2", 10)
    assert ["v1"] == [v.id for v in again]
    assert None is again[0].path
    await store.mark_downloaded("v1", "w2", "/out2/r1-1.mp4", 100)
    assert (await store.status()).done


async def test_retry_failed_adds_a_video_per_failure_at_most_n_times(store: JobStore) -> None:
    """Each failed video asks for one replacement, of the next generation, up to the limit."""
    await store.load("d", rows(2))
    await store.join("w", 60, {})
    claim = await store.claim_row("w")
    assert claim is not None
    create = await store.start_create("w", claim.key, 2, 40.0)
    assert create is not None
    await store.finish_create(create, [video("f1"), video("ok")])
    await store.set_status("f1", int(VideoStatus.FAILED))
    await store.mark_downloaded("ok", "w", "/o/ok.mp4", 1)
    await store.release_row("w", claim.key)

    assert ["f1"] == await store.retry_failed(1)
    assert [] == await store.retry_failed(1)  # each failure is retried once
    again = await store.claim_row("w")
    assert again is not None
    assert 1 == again.missing
    retry = await store.start_create("w", again.key, 1, 20.0)
    assert retry is not None
    made = await store.finish_create(retry, [video("f2")])
    assert [1] == [v.generation for v in made]
    await store.set_status("f2", int(VideoStatus.FAILED))

    assert [] == await store.retry_failed(1)  # f2 is already the first retry
    assert ["f2"] == await store.retry_failed(2)


async def test_the_budget_is_one_cap_for_every_reservation(store: JobStore) -> None:
    """Reservations never pass the cap; a released one gives its room back."""
    first = await store.reserve(60.0, 100.0)
    assert first is not None
    assert None is await store.reserve(50.0, 100.0)
    await store.release(first)
    second = await store.reserve(100.0, 100.0)
    assert second is not None


async def test_work_left_counts_rows_videos_and_creates_in_flight(store: JobStore) -> None:
    """A worker stays while anything is left for someone."""
    await store.load("d", rows(1))
    await store.join("w", 60, {})
    assert await store.work_left([], [])
    claim = await store.claim_row("w")
    assert claim is not None
    assert not await store.work_left([claim.key], [])
    create = await store.start_create("w", claim.key, 1, 20.0)
    assert create is not None
    assert await store.work_left([claim.key], [], rows=False)
    await store.finish_create(create, [video("v")])
    assert await store.work_left([], [])
    assert not await store.work_left([], ["v"])
