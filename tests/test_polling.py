"""Tests of the shared poller and TaskHandle, against FakeAkoolServer on loopback."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
import pytest
from aiohttp import web
from conftest import CREATE_ARGS, FAST_POLL, serve_app

from akool_async import (
    AkoolClient,
    AkoolResponseError,
    AkoolValueError,
    ClientClosedError,
    NotFoundError,
    PollPolicy,
    RetryPolicy,
    TaskHandle,
    VideoStatus,
    WaitTimeoutError,
)
from akool_async._client import client_core
from akool_async.testing import FakeAkoolServer, Fault, FaultKind

RESULTS_PATH = "/api/open/v4/image2Video/resultsByIds"
UNKNOWN_ID = "0123456789abcdef01234567"


def make_client(server: FakeAkoolServer, **kwargs: Any) -> AkoolClient:
    """A fast client for ``server``."""
    kwargs.setdefault("poll", FAST_POLL)
    kwargs.setdefault("retry", RetryPolicy.fast())
    kwargs.setdefault("wait_timeout", 30)
    return AkoolClient(server.api_key, base_url=server.url, **kwargs)


async def until(client: AkoolClient, condition: Callable[[], bool]) -> None:
    """Return once ``condition()`` holds, checked after each poller tick; fail after 10 s."""
    ticked = asyncio.Event()
    unsubscribe = client.poller.subscribe(ticked.set)
    try:
        async with asyncio.timeout(10):
            while not condition():
                ticked.clear()
                await ticked.wait()
    finally:
        unsubscribe()


def polls_of(server: FakeAkoolServer, video_id: str, *, since: int = 0) -> list[Any]:
    """The answered results calls, from request ``since`` of the log on, that asked for the id."""
    return [
        r
        for r in server.requests[since:]
        if r.endpoint == "results"
        and r.finished_at is not None
        and video_id in r.body["_ids"].split(",")
    ]


async def pinned_handle(
    client: AkoolClient, server: FakeAkoolServer, status: VideoStatus
) -> TaskHandle:
    """A handle whose video the fake holds at ``status``, once the handle has seen it."""
    (handle,) = (await client.image_to_video.create_batch(**CREATE_ARGS)).handles
    server.set_status(handle.id, status)
    await until(client, lambda: handle.status is status)
    return handle


# --- waiting, cancelling, timing out -----------------------------------------------------------


async def test_cancelling_one_waiter_leaves_the_rest(
    client: AkoolClient, server: FakeAkoolServer
) -> None:
    """Cancelling one wait leaves the other waiters, the id and its polling alive."""
    handle = await pinned_handle(client, server, VideoStatus.PROCESSING)
    twin = client.image_to_video.handle(handle.id)
    doomed = asyncio.create_task(handle.wait())
    others = [asyncio.create_task(handle.wait()), asyncio.create_task(twin.wait())]
    await asyncio.sleep(0.01)
    doomed.cancel()
    with pytest.raises(asyncio.CancelledError):
        await doomed
    assert [handle.id] == client.poller.pending_ids()
    assert not handle.done()
    assert not any(t.done() for t in others)
    mark = len(server.requests)
    await server.wait_until(lambda: len(polls_of(server, handle.id, since=mark)) >= 2)
    server.complete(handle.id)
    first, second = await asyncio.gather(*others)
    assert first == second == await handle
    assert VideoStatus.COMPLETED is first.status


async def test_outer_timeout_cancels_only_that_wait(
    client: AkoolClient, server: FakeAkoolServer
) -> None:
    """A caller's own asyncio timeout around ``await handle`` leaves the handle usable."""
    handle = await pinned_handle(client, server, VideoStatus.QUEUEING)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await handle
    assert not handle.done()
    server.complete(handle.id)
    assert VideoStatus.COMPLETED is (await handle).status


async def test_wait_timeout_raises_and_handle_stays_usable(
    client: AkoolClient, server: FakeAkoolServer
) -> None:
    """``wait(timeout=...)`` raises WaitTimeoutError naming the video and its last status."""
    handle = await pinned_handle(client, server, VideoStatus.PROCESSING)
    with pytest.raises(WaitTimeoutError) as info:
        await handle.wait(timeout=0.05)
    assert isinstance(info.value, TimeoutError)
    assert (handle.id, VideoStatus.PROCESSING) == (info.value.video_id, info.value.last_status)
    assert handle.id in str(info.value)
    assert not handle.done()
    assert [handle.id] == client.poller.pending_ids()
    server.complete(handle.id)
    assert VideoStatus.COMPLETED is (await handle.wait(timeout=None)).status


async def test_client_wait_timeout_is_the_default(server: FakeAkoolServer) -> None:
    """``await handle`` waits the client's ``wait_timeout``."""
    async with make_client(server, wait_timeout=0.05) as client:
        handle = await pinned_handle(client, server, VideoStatus.QUEUEING)
        with pytest.raises(WaitTimeoutError) as info:
            await handle
        assert VideoStatus.QUEUEING is info.value.last_status
        server.complete(handle.id)
        await until(client, handle.done)
        assert VideoStatus.COMPLETED is (await handle).status


async def test_handle_basics(client: AkoolClient, server: FakeAkoolServer) -> None:
    """A handle reports its id, status and doneness; result_nowait refuses before the end."""
    handle = await pinned_handle(client, server, VideoStatus.QUEUEING)
    assert f"<TaskHandle id={handle.id} status=QUEUEING>" == repr(handle)
    assert not handle.done()
    with pytest.raises(asyncio.InvalidStateError):
        handle.result_nowait()
    server.complete(handle.id)
    video = await handle
    assert handle.done()
    assert video == handle.result_nowait()
    assert f"<TaskHandle id={handle.id} status=COMPLETED>" == repr(handle)


# --- status progression, missing ids -----------------------------------------------------------


async def test_status_follows_progression(client: AkoolClient, server: FakeAkoolServer) -> None:
    """A handle sees only forward moves while polling: 1, then 2, then 3."""
    (handle,) = (await client.image_to_video.create_batch(**CREATE_ARGS)).handles
    seen: list[VideoStatus | None] = []
    unsubscribe = client.poller.subscribe(lambda: seen.append(handle.status))
    await handle
    # The listener runs after the tick that resolved the handle: wait for that call.
    await until(client, lambda: VideoStatus.COMPLETED in seen)
    unsubscribe()
    assert seen == sorted(seen, key=int)
    assert VideoStatus.COMPLETED is seen[-1]


async def test_status_never_goes_backwards(client: AkoolClient, server: FakeAkoolServer) -> None:
    """An older status answered after a newer one is ignored; polling goes on."""
    handle = await pinned_handle(client, server, VideoStatus.PROCESSING)
    server.set_status(handle.id, VideoStatus.QUEUEING)
    mark = len(server.requests)
    await server.wait_until(lambda: len(polls_of(server, handle.id, since=mark)) >= 2)
    assert VideoStatus.PROCESSING is handle.status
    server.complete(handle.id)
    assert VideoStatus.COMPLETED is (await handle).status


async def test_missing_id_fails_after_a_few_polls(
    client: AkoolClient, server: FakeAkoolServer
) -> None:
    """An id AKOOL stops reporting fails with NotFoundError after ``missing_polls`` + 1 misses."""
    (handle,) = (await client.image_to_video.create_batch(**CREATE_ARGS)).handles
    server.forget(handle.id)
    with pytest.raises(NotFoundError) as info:
        await handle
    assert ("POST", RESULTS_PATH) == (info.value.method, info.value.path)
    assert handle.id in str(info.value)
    assert FAST_POLL.missing_polls + 1 == len(polls_of(server, handle.id))
    assert [] == client.poller.pending_ids()


async def test_unknown_reattached_id_fails_not_found(
    client: AkoolClient, server: FakeAkoolServer
) -> None:
    """Re-attaching to an id AKOOL never knew ends in NotFoundError, not a hang."""
    with pytest.raises(NotFoundError):
        await client.image_to_video.handle(UNKNOWN_ID)


async def test_transient_miss_does_not_fail(client: AkoolClient, server: FakeAkoolServer) -> None:
    """An id missing from one answer, then back, stays pending and completes."""
    handle = await pinned_handle(client, server, VideoStatus.PROCESSING)
    server.forget(handle.id)
    mark = len(server.requests)
    await server.wait_until(lambda: len(polls_of(server, handle.id, since=mark)) >= 1)
    server.videos[handle.id].forgotten = False
    server.complete(handle.id)
    assert VideoStatus.COMPLETED is (await handle).status


# --- one poller for many handles ---------------------------------------------------------------


@pytest.fixture
async def slow_server() -> AsyncIterator[FakeAkoolServer]:
    """A fake whose videos take long enough for several polling rounds."""
    async with FakeAkoolServer(queue_seconds=0.3, process_seconds=0.3) as fake:
        yield fake


async def test_200_handles_cost_ceil_200_over_50_calls_per_tick(
    slow_server: FakeAkoolServer,
) -> None:
    """200 pending handles are polled with at most ceil(200/50) results calls per tick."""
    server = slow_server
    async with make_client(server, poll=PollPolicy(initial_delay=3600)) as creator:
        batches = await asyncio.gather(
            *(creator.image_to_video.create_batch(**CREATE_ARGS, count=10) for _ in range(20))
        )
    ids = [i for batch in batches for i in batch.ids]
    assert 200 == len(set(ids))
    server.reset_log()
    poll = attrs.evolve(FAST_POLL, interval=0.05, multiplier=1.0)
    assert 50 == poll.max_ids_per_request  # the default under test
    async with make_client(server, poll=poll) as client:
        handles = [client.image_to_video.handle(i) for i in ids]
        videos = await asyncio.gather(*handles)
        stats = client.poller.statistics()
    assert [VideoStatus.COMPLETED] * 200 == [v.status for v in videos]
    calls = server.calls("results")
    sizes = [len(call.body["_ids"].split(",")) for call in calls]
    per_tick = math.ceil(200 / 50)
    assert len(calls) == stats.requests
    assert sum(sizes) == stats.ids_polled
    assert 50 == max(sizes) == stats.max_ids_per_request
    assert per_tick == stats.max_requests_per_tick
    assert len(calls) <= per_tick * stats.ticks
    # The first round asks for all 200 ids in exactly four calls of 50.
    assert sorted(ids) == sorted(i for call in calls[:4] for i in call.body["_ids"].split(","))
    # Never one call per video per round: far fewer calls than ids polled.
    assert stats.ticks >= 2
    assert len(calls) < stats.ids_polled / 10


async def test_poller_idles_with_nothing_pending(
    client: AkoolClient, server: FakeAkoolServer
) -> None:
    """No results call is sent before the first handle nor after the last one finished."""
    await asyncio.sleep(0.1)
    assert 0 == client.poller.statistics().ticks
    (handle,) = (await client.image_to_video.create_batch(**CREATE_ARGS)).handles
    await handle
    calls = server.call_count("results")
    await asyncio.sleep(0.1)  # five poll intervals
    assert calls == server.call_count("results")
    assert 0 == client.poller.statistics().pending


async def test_huge_retry_after_does_not_stall_polling(server: FakeAkoolServer) -> None:
    """A results 429 asking for hours (or inf) delays polling at most ``max_retry_after``."""
    retry = attrs.evolve(RetryPolicy.fast(), max_retry_after=0.05)
    server.inject(
        "results",
        Fault(FaultKind.HTTP_429, retry_after=99_999),
        Fault(FaultKind.HTTP_429, retry_after=math.inf),
    )
    async with make_client(server, retry=retry) as client:
        (handle,) = (await client.image_to_video.create_batch(**CREATE_ARGS)).handles
        video = await handle.wait(timeout=10)
        assert 2 <= client.poller.statistics().rate_limited
    assert VideoStatus.COMPLETED is video.status


# --- closing and crashing ----------------------------------------------------------------------


async def test_aclose_fails_pending_handles(server: FakeAkoolServer) -> None:
    """aclose() fails every pending handle, waiting or not, with ClientClosedError."""
    client = make_client(server)
    batch = await client.image_to_video.create_batch(**CREATE_ARGS, count=2)
    waiter = asyncio.create_task(batch.handles[0].wait())
    await asyncio.sleep(0)
    await client.aclose()
    with pytest.raises(ClientClosedError) as info:
        await waiter
    assert isinstance(info.value, RuntimeError)
    with pytest.raises(ClientClosedError):
        await batch.handles[1]
    assert [] == client.poller.pending_ids()


async def break_the_session(client: AkoolClient) -> None:
    """Close the client's aiohttp session under the running poller: its next call raises a
    plain RuntimeError ("Session is closed"), a bug the poller cannot treat as an answer."""
    session = client_core(client).transport.session()
    await session.close()


async def test_poller_crash_reaches_every_waiter_and_aclose(server: FakeAkoolServer) -> None:
    """When the poller dies, every waiting handle gets its exception and aclose() re-raises it."""
    client = make_client(server)
    batch = await client.image_to_video.create_batch(**CREATE_ARGS, count=3)
    (poller_task,) = [t for t in asyncio.all_tasks() if t.get_name() == "akool-async-poller"]
    for video_id in batch.ids:
        server.set_status(video_id, VideoStatus.QUEUEING)
    waiters = [asyncio.create_task(h.wait(timeout=None)) for h in batch.handles]
    await break_the_session(client)
    outcomes = await asyncio.gather(*waiters, return_exceptions=True)
    assert [RuntimeError] * 3 == [type(o) for o in outcomes]
    assert all(o is outcomes[0] for o in outcomes)
    assert all(h.done() for h in batch.handles)
    # A handle made after the crash fails at once instead of hanging.
    with pytest.raises(RuntimeError, match="Session is closed"):
        await client.image_to_video.handle(batch.ids[0]).wait(timeout=None)
    with pytest.raises(RuntimeError, match="Session is closed"):
        await client.aclose()
    assert client.closed
    # The crash was delivered: the poller task itself ended cleanly, leaving asyncio no
    # "exception was never retrieved" to log whenever it is garbage collected.
    assert (True, False) == (poller_task.done(), poller_task.cancelled())
    assert None is poller_task.exception()


async def test_crash_is_raised_once_and_never_hides_the_blocks_own_error(
    server: FakeAkoolServer,
) -> None:
    """In `async with`, the block's own error wins over a poller crash; aclose() is idempotent."""
    client = make_client(server)

    async def use_client() -> None:
        async with client:
            batch = await client.image_to_video.create_batch(**CREATE_ARGS)
            await break_the_session(client)
            with pytest.raises(RuntimeError):
                await batch.handles[0].wait(timeout=None)
            raise KeyError("the block's own")

    with pytest.raises(KeyError, match="the block's own"):
        await use_client()
    assert client.closed
    await client.aclose()  # already closed: no second raise


async def test_a_raising_listener_does_not_stop_polling(
    server: FakeAkoolServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A subscriber that raises is logged; the poller and every handle carry on."""

    def broken_listener() -> None:
        raise LookupError("a progress callback failed")

    async with make_client(server) as client:
        client.poller.subscribe(broken_listener)
        batch = await client.image_to_video.create_batch(**CREATE_ARGS, count=2)
        videos = await asyncio.gather(*batch.handles)
    assert [VideoStatus.COMPLETED] * 2 == [v.status for v in videos]
    assert "a poller listener raised" in caplog.text


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), "5", True])
async def test_wait_rejects_a_bad_timeout(client: AkoolClient, timeout: object) -> None:
    """A timeout that is not a positive, finite number raises AkoolValueError, done or not."""
    (handle,) = (await client.image_to_video.create_batch(**CREATE_ARGS)).handles
    with pytest.raises(AkoolValueError, match="timeout"):
        await handle.wait(timeout=timeout)  # type: ignore[arg-type]
    await handle
    with pytest.raises(AkoolValueError, match="timeout"):
        await handle.wait(timeout=timeout)  # type: ignore[arg-type]
    with pytest.raises(AkoolValueError, match="timeout"):
        await client.wait_all([handle], timeout=timeout)  # type: ignore[arg-type]


# --- surprising result items (a loopback stand-in for AKOOL answers them) ----------------------


@attrs.define
class ResultsApp:
    """Answers resultsByIds with ``items[id]`` (ids without one are left out of the answer).

    ``polled(id, n)`` returns once ``n`` answers about the id went out: an event to wait on,
    never a clock.
    """

    url: str = ""
    items: dict[str, dict[str, Any]] = attrs.Factory(dict)
    served: dict[str, int] = attrs.Factory(dict)
    changed: asyncio.Condition = attrs.Factory(asyncio.Condition)

    async def answer(self, request: web.Request) -> web.Response:
        ids = (await request.json())["_ids"].split(",")
        result = [self.items[i] for i in ids if i in self.items]
        async with self.changed:
            for i in ids:
                self.served[i] = self.served.get(i, 0) + 1
            self.changed.notify_all()
        return web.json_response({"code": 1000, "msg": "OK", "data": {"result": result}})

    async def polled(self, video_id: str, times: int) -> None:
        async with asyncio.timeout(10), self.changed:
            await self.changed.wait_for(lambda: self.served.get(video_id, 0) >= times)


@pytest.fixture
async def results_app() -> AsyncIterator[ResultsApp]:
    """A ``ResultsApp`` served on loopback."""
    state = ResultsApp()
    app = web.Application()
    app.router.add_post(RESULTS_PATH, state.answer)
    async with serve_app(app) as state.url:
        yield state


@pytest.fixture
async def odd_client(results_app: ResultsApp) -> AsyncIterator[AkoolClient]:
    """A fast client for ``results_app``."""
    async with AkoolClient(
        "k" * 32, base_url=results_app.url, poll=FAST_POLL, retry=RetryPolicy.fast()
    ) as akool:
        yield akool


ODD_ID = "6b06a05adcf4bea9730c9d9d"
GOOD_URL = "https://cdn.example/v.mp4"


async def test_wrong_typed_optional_fields_never_fail_a_video(
    results_app: ResultsApp, odd_client: AkoolClient
) -> None:
    """A completed item with surprising optional fields resolves: what reads is set, raw whole."""
    item = {
        "_id": ODD_ID,
        "status": 3,
        "video_url": GOOD_URL,
        "only_add_audio": "no",
        "video_duration": "five seconds",
        "deduction_credit": "25",
        "create_time": [2024],
        "model_name": "AkoolImage2VideoHDV1",
        "batch_count": {"n": 1},
        "brand_new_key": {"nested": True},
    }
    results_app.items[ODD_ID] = item
    video = await odd_client.image_to_video.handle(ODD_ID)
    assert (VideoStatus.COMPLETED, GOOD_URL, "AkoolImage2VideoHDV1", 25.0) == (
        video.status,
        video.video_url,
        video.model_name,
        video.deduction_credit,
    )
    assert [None] * 4 == [
        video.only_add_audio,
        video.video_duration,
        video.create_time,
        video.batch_count,
    ]
    assert item == dict(video.raw)


@pytest.mark.parametrize("blank", ["", "  "])
async def test_completed_with_empty_url_stays_pending_until_it_has_one(
    results_app: ResultsApp, odd_client: AkoolClient, blank: str
) -> None:
    """Status 3 with ``video_url: ""`` keeps the handle pending (shown as processing)."""
    results_app.items[ODD_ID] = {"_id": ODD_ID, "status": 3, "video_url": blank}
    handle = odd_client.image_to_video.handle(ODD_ID)
    await results_app.polled(ODD_ID, 3)
    assert (False, VideoStatus.PROCESSING) == (handle.done(), handle.status)
    with pytest.raises(WaitTimeoutError):
        await handle.wait(timeout=0.01)  # the wait deadline bounds it

    results_app.items[ODD_ID] = {"_id": ODD_ID, "status": 3, "video_url": GOOD_URL}
    assert GOOD_URL == (await handle).video_url


@pytest.mark.parametrize(
    "item",
    [
        {"_id": ODD_ID, "status": 3},
        {"_id": ODD_ID, "status": 3, "video_url": None},
        {"_id": ODD_ID, "status": 3, "video_url": 5},
    ],
    ids=["missing", "null", "number"],
)
async def test_completed_without_a_usable_url_fails(
    results_app: ResultsApp, odd_client: AkoolClient, item: dict[str, Any]
) -> None:
    """A completed item whose ``video_url`` is missing or not a string fails the handle."""
    results_app.items[ODD_ID] = item
    with pytest.raises(AkoolResponseError, match="no usable video_url") as info:
        await odd_client.image_to_video.handle(ODD_ID)
    assert item == info.value.body


async def test_unknown_status_stays_pending_with_one_warning(
    results_app: ResultsApp, odd_client: AkoolClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Status 5 keeps the video pending: one WARNING per id, counted in the statistics."""
    other = "6b06a05adcf4bea9730c9d9e"
    results_app.items[ODD_ID] = {"_id": ODD_ID, "status": 5, "video_url": GOOD_URL}
    results_app.items[other] = {"_id": other, "status": "later"}
    with caplog.at_level("WARNING", logger="akool_async"):
        handle = odd_client.image_to_video.handle(ODD_ID)
        other_handle = odd_client.image_to_video.handle(other)
        # The third answer is only asked for once the first two were handled.
        await results_app.polled(ODD_ID, 3)
        await results_app.polled(other, 3)
        assert (False, False) == (handle.done(), other_handle.done())
        with pytest.raises(WaitTimeoutError):
            await handle.wait(timeout=0.01)
        assert odd_client.poller.statistics().unknown_statuses >= 4
        results_app.items[ODD_ID] = {"_id": ODD_ID, "status": "3", "video_url": GOOD_URL}
        assert GOOD_URL == (await handle).video_url

    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert 1 == sum(ODD_ID in w for w in warnings)
    assert 1 == sum(other in w for w in warnings)
    assert "unknown status 5" in warnings[0] or "unknown status 5" in warnings[1]
