"""Bulk generation: the create cap, generate_many, as_completed, wait_all, progress, deadlines."""

from __future__ import annotations

import asyncio
import copy
import itertools
import math
from typing import Any

import pytest
from conftest import CREATE_ARGS, FAST_POLL, Proxy

from akool_async import (
    AkoolClient,
    AkoolValueError,
    InsufficientCreditsError,
    PollPolicy,
    RetryPolicy,
    TaskHandle,
    Video,
    VideoFailedError,
    VideoRequest,
    VideoStatus,
    WaitTimeoutError,
)
from akool_async.testing import DEFAULT_MODELS, FakeAkoolServer, Fault, FaultKind


def request(count: int = 1, **changes: object) -> VideoRequest:
    return VideoRequest(**{**CREATE_ARGS, "count": count, **changes})  # type: ignore[arg-type]


def batch_counts(server: FakeAkoolServer) -> list[int]:
    return sorted(r.body["count"] for r in server.calls("create_batch") if r.body)


async def test_create_cap_is_honoured(server: FakeAkoolServer) -> None:
    """Twelve concurrent create_batch calls never have more than the cap in flight at AKOOL."""
    server.create_latency = 0.05
    async with AkoolClient(
        server.api_key, base_url=server.url, max_concurrent_creates=3, poll=FAST_POLL
    ) as client:
        batches = await asyncio.gather(
            *(client.image_to_video.create_batch(**CREATE_ARGS) for _ in range(12))
        )
    assert 12 == len(batches)
    assert 3 == server.max_in_flight("create_batch")


async def test_generate_many_splits_counts_above_ten(
    client: AkoolClient, server: FakeAkoolServer
) -> None:
    """A request for 25 videos becomes batch calls of 10, 10 and 5; every handle comes out."""
    generation = client.image_to_video.generate_many([request(25), request(3)])
    handles = [h async for h in generation]
    assert 28 == len(handles) == len({h.id for h in handles})
    assert [3, 5, 10, 10] == batch_counts(server)
    assert [] == generation.failures
    assert all(h.request is not None and h.request.count in (25, 3) for h in handles)


async def test_generate_many_respects_model_max_count() -> None:
    """With the model list known, counts split at the model's max_count, not at 10."""
    models = copy.deepcopy([dict(m) for m in DEFAULT_MODELS])
    models[0]["maxCount"] = 4
    async with (
        FakeAkoolServer(models=models, queue_seconds=0.01, process_seconds=0.01) as server,
        AkoolClient(server.api_key, base_url=server.url, poll=FAST_POLL) as client,
    ):
        await client.models.list()
        handles = await client.image_to_video.generate_many(
            [request(9, model_name=models[0]["value"])]
        )
        assert 9 == len(handles)
        assert [1, 4, 4] == batch_counts(server)


async def test_generate_many_takes_an_async_iterable(client: AkoolClient) -> None:
    """Requests may come from an async generator (e.g. read from a queue)."""

    async def requests():  # type: ignore[no-untyped-def]
        for n in (2, 1):
            yield request(n)

    handles = await client.image_to_video.generate_many(requests())
    assert 3 == len(handles)


async def test_partial_batch_failure_is_reported_per_request(
    client: AkoolClient, server: FakeAkoolServer
) -> None:
    """errorList items are kept in Generation.failures with their request, never dropped."""
    server.next_batch_errors = 2
    generation = client.image_to_video.generate_many([request(5)])
    handles = await generation
    assert 3 == len(handles)
    (failure,) = generation.failures
    assert 2 == failure.count
    assert 2 == len(failure.items)
    assert failure.error is None
    assert 5 == failure.request.count
    assert 2 == generation.progress().create_failed


async def test_credit_error_stops_creating_and_records_the_rest(server: FakeAkoolServer) -> None:
    """After InsufficientCreditsError no further create is sent; every request is accounted for."""
    server.credit = 20.0 * 10  # enough for exactly one batch of ten 720p/5s videos
    async with AkoolClient(
        server.api_key, base_url=server.url, max_concurrent_creates=1, poll=FAST_POLL
    ) as client:
        generation = client.image_to_video.generate_many([request(10), request(10), request(10)])
        handles = await generation
    assert 10 == len(handles)
    assert 30 == 10 + sum(f.count for f in generation.failures)
    assert all(isinstance(f.error, InsufficientCreditsError) for f in generation.failures)
    # One successful create, one refused; the third request was never sent.
    assert 2 == server.call_count("create_batch")


async def test_as_completed_follows_completion_order(server: FakeAkoolServer) -> None:
    """as_completed yields handles in the order the videos finished, not creation order."""
    server.queue_seconds = server.process_seconds = 60.0  # nothing finishes on its own
    async with AkoolClient(server.api_key, base_url=server.url, poll=FAST_POLL) as client:
        batch = await client.image_to_video.create_batch(**CREATE_ARGS, count=4)
        order = [batch.ids[2], batch.ids[0], batch.ids[3], batch.ids[1]]
        seen: list[str] = []

        by_id = {h.id: h for h in batch.handles}

        async def finish_in_order() -> None:
            for video_id in order:
                server.complete(video_id)
                # Wait until the SDK has seen it, so the next completion is strictly later.
                await asyncio.shield(by_id[video_id]._entry.future)

        finisher = asyncio.create_task(finish_in_order())
        async for handle in client.as_completed(batch.handles, timeout=10):
            seen.append(handle.id)
        await finisher
    assert order == seen


async def test_wait_all_returns_in_order_and_collects_failures(server: FakeAkoolServer) -> None:
    """wait_all keeps the order given; return_exceptions puts VideoFailedError in place."""
    server.fail_when = lambda body: "melt" in body["prompt"]
    async with AkoolClient(server.api_key, base_url=server.url, poll=FAST_POLL) as client:
        good = await client.image_to_video.create_batch(**CREATE_ARGS, count=2)
        bad = await client.image_to_video.create_batch(**{**CREATE_ARGS, "prompt": "melt"})
        handles = [*good.handles, *bad.handles]
        results = await client.wait_all(handles, timeout=10, return_exceptions=True)
        assert [h.id for h in handles] == [getattr(r, "id", None) or r.video.id for r in results]  # type: ignore[union-attr]
        assert isinstance(results[2], VideoFailedError)
        assert all(isinstance(r, Video) for r in results[:2])
        with pytest.raises(VideoFailedError):
            await client.wait_all(handles, timeout=10)
        assert [good.ids[0]] == [v.id for v in await client.wait_all(good.handles[:1])]


async def test_progress_counts_add_up(server: FakeAkoolServer) -> None:
    """on_progress sees counts that always add up, ending with everything finished."""
    server.fail_when = lambda body: "melt" in body["prompt"]
    seen = []
    async with AkoolClient(server.api_key, base_url=server.url, poll=FAST_POLL) as client:
        generation = client.image_to_video.generate_many(
            [request(12), request(3, prompt="melt")], on_progress=seen.append
        )
        handles = await generation
        await client.wait_all(handles, return_exceptions=True)
        await asyncio.sleep(0.05)  # let the last progress callback run
    for progress in seen:
        assert progress.created == sum(
            (progress.queueing, progress.processing, progress.completed, progress.failed)
        )
    final = generation.progress()
    assert (15, 15, 12, 3, 0) == (
        final.total,
        final.created,
        final.completed,
        final.failed,
        final.create_failed,
    )
    assert 15 * 20.0 == final.credits
    assert final == seen[-1]


async def test_wait_deadline_raises_and_leaves_the_handle_usable(server: FakeAkoolServer) -> None:
    """A wait that times out says which id and status; awaiting again later succeeds."""
    server.queue_seconds = server.process_seconds = 60.0
    async with AkoolClient(
        server.api_key, base_url=server.url, poll=FAST_POLL, wait_timeout=0.1
    ) as client:
        (handle,) = (await client.image_to_video.create_batch(**CREATE_ARGS)).handles
        with pytest.raises(WaitTimeoutError) as caught:
            await handle  # the client's default deadline
        assert handle.id == caught.value.video_id
        assert VideoStatus.QUEUEING == caught.value.last_status
        with pytest.raises(WaitTimeoutError):
            await client.wait_all([handle], timeout=0.05)
        server.complete(handle.id)
        video = await handle.wait(timeout=None)
        assert VideoStatus.COMPLETED == video.status


async def test_as_completed_deadline(server: FakeAkoolServer) -> None:
    """as_completed raises WaitTimeoutError after its deadline, having yielded what finished."""
    server.queue_seconds = server.process_seconds = 60.0
    async with AkoolClient(server.api_key, base_url=server.url, poll=FAST_POLL) as client:
        batch = await client.image_to_video.create_batch(**CREATE_ARGS, count=3)
        server.complete(batch.ids[1])
        got: list[TaskHandle] = []

        async def collect() -> None:
            async for handle in client.as_completed(batch.handles, timeout=0.5):
                got.append(handle)

        with pytest.raises(WaitTimeoutError, match="2 of 3"):
            await collect()
        assert [batch.ids[1]] == [h.id for h in got]


async def test_statistics_count_ceil_n_over_50_requests_per_tick(server: FakeAkoolServer) -> None:
    """120 pending ids cost 3 results calls in a tick, each with at most 50 ids."""
    server.queue_seconds = 0.3
    policy = PollPolicy(
        initial_delay=0.1, interval=0.1, max_interval=0.1, jitter=0.0, max_requests_per_second=None
    )
    async with AkoolClient(server.api_key, base_url=server.url, poll=policy) as client:
        handles = await client.image_to_video.generate_many([request(120)])
        await client.wait_all(handles, timeout=10)
        stats = client.poller.statistics()
    assert math.ceil(120 / 50) == stats.max_requests_per_tick
    assert 50 == stats.max_ids_per_request
    assert server.call_count("results") == stats.requests
    assert sum(len(r.body["_ids"].split(",")) for r in server.calls("results")) == stats.ids_polled
    assert 0 == stats.pending
    assert stats.ticks * 3 >= stats.requests


async def test_rate_limit_slows_the_poller_and_honours_retry_after(
    server: FakeAkoolServer,
) -> None:
    """A 429 with Retry-After delays the next results call at least that long; 1005 slows too."""
    server.queue_seconds = 0.6
    server.inject("results", Fault(FaultKind.HTTP_429, retry_after=0.3), FaultKind.CODE_1005)
    policy = PollPolicy(initial_delay=0.02, interval=0.02, max_interval=0.05, jitter=0.0)
    async with AkoolClient(
        server.api_key, base_url=server.url, poll=policy, retry=RetryPolicy.fast()
    ) as client:
        (handle,) = (await client.image_to_video.create_batch(**CREATE_ARGS)).handles
        await handle.wait(timeout=10)
        stats = client.poller.statistics()
    calls = server.calls("results")
    assert FaultKind.HTTP_429 == calls[0].fault
    assert calls[1].started_at - calls[0].finished_at >= 0.3
    assert 2 <= stats.rate_limited
    # After the limits, ticks are spaced wider than the 0.02 s policy interval.
    clean = [c for c in calls if c.fault is None]
    gaps = [b.started_at - a.started_at for a, b in itertools.pairwise(clean)]
    assert gaps
    assert gaps[0] >= 0.02 * 2


def test_poll_policy_delay_grows_by_age_up_to_the_cap() -> None:
    """Fresh ids are polled soon, older ones less often, never beyond max_interval."""
    policy = PollPolicy(initial_delay=2, interval=5, multiplier=2, max_interval=30)
    assert [2, 5, 10, 20, 30, 30] == [policy.delay(n) for n in range(6)]
    assert 60 == policy.delay(3, webhook=True)
    assert 30 == policy.delay(10_000)
    assert 30 == PollPolicy(multiplier=1e5, max_interval=30).delay(1_000)  # no OverflowError


async def test_break_keeps_creates_already_sent_even_when_the_client_closes(
    server: FakeAkoolServer,
) -> None:
    """`break`, then leaving `async with`: creates already at AKOOL still land in handles."""
    server.inject(
        "create_batch",
        Fault(FaultKind.SLOW, delay=0.0),
        *[Fault(FaultKind.SLOW, delay=0.3)] * 2,
    )
    async with AkoolClient(
        server.api_key, base_url=server.url, poll=FAST_POLL, max_concurrent_creates=3
    ) as client:
        generation = client.image_to_video.generate_many([request(10) for _ in range(6)])
        async for _ in generation:
            break
    # aclose() waited for the two slow creates in flight; none was started after the break.
    assert 3 == server.call_count("create_batch")
    assert server.created_count == len(generation.handles) == 30


async def test_aclose_stops_new_creates_at_once(server: FakeAkoolServer) -> None:
    """Generation.aclose() sends no further create; those in flight finish into handles."""
    server.create_latency = 0.2
    async with AkoolClient(
        server.api_key, base_url=server.url, poll=FAST_POLL, max_concurrent_creates=2
    ) as client:
        generation = client.image_to_video.generate_many([request(10) for _ in range(6)])
        async for _ in generation:
            await generation.aclose()
            break
        assert 2 == server.call_count("create_batch")
        assert server.created_count == len(generation.handles) == 20


async def test_ids_named_by_a_partly_unreadable_answer_are_followed(
    server: FakeAkoolServer, proxy: Proxy
) -> None:
    """A create answer with one unreadable item: its named videos get handles, none is lost."""

    def unreadable_status(envelope: dict[str, Any]) -> None:
        items = envelope["data"]["successList"]
        items[1] = {**items[1], "status": "1"}

    proxy.mangle = unreadable_status
    async with AkoolClient(server.api_key, base_url=proxy.url, poll=FAST_POLL) as client:
        generation = client.image_to_video.generate_many([request(3)])
        handles = await generation
        videos = await client.wait_all(handles, timeout=10)
    assert sorted(server.videos) == sorted(v.id for v in videos)
    assert [] == generation.failures
    assert 3 == generation.progress().created


async def test_a_bad_request_is_a_failure_not_a_loss(client: AkoolClient) -> None:
    """An unknown model in one request is recorded in failures; the other requests go on."""
    await client.models.list()
    generation = client.image_to_video.generate_many(
        [request(5), request(3, model_name="no-such-model"), request(2)]
    )
    handles = await generation
    assert 7 == len(handles)
    (failure,) = generation.failures
    assert (3, "no-such-model") == (failure.count, failure.request.model_name)
    assert isinstance(failure.error, AkoolValueError)


async def test_an_error_in_the_callers_iterable_keeps_creates_in_flight(
    server: FakeAkoolServer,
) -> None:
    """If the caller's iterable raises, creates already sent still land; its error is raised."""
    server.create_latency = 0.2

    def requests():  # type: ignore[no-untyped-def]
        yield request(10)
        yield request(10)
        raise LookupError("row 3 is broken")

    async with AkoolClient(server.api_key, base_url=server.url, poll=FAST_POLL) as client:
        generation = client.image_to_video.generate_many(requests())
        with pytest.raises(LookupError, match="row 3"):
            await generation
        assert server.created_count == len(generation.handles) == 20
