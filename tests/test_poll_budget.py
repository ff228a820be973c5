"""Tests of the poller's request budget and filled calls, against FakeAkoolServer on loopback.

Time runs fast here (a 0.05 s interval instead of 5 s), the budget scaled with it. Every
check reads the fake's request log; none asserts an exact count that depends on timing.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from conftest import BUDGET_CALLS_PER_TICK, BUDGET_POLL, CREATE_ARGS, queued_ids, serve_app

from akool_async import AkoolClient, PollPolicy, RetryPolicy, VideoStatus
from akool_async.testing import FakeAkoolServer, FaultKind, RecordedRequest


def ids_of(call: RecordedRequest) -> list[str]:
    """The ids one results call asked for."""
    return list(call.body["_ids"].split(","))


@pytest.fixture
async def busy_server() -> AsyncIterator[FakeAkoolServer]:
    """A fake whose videos stay queued for an hour (until a test says otherwise)."""
    async with FakeAkoolServer(queue_seconds=3600) as fake:
        yield fake


def budget_client(
    server: FakeAkoolServer, poll: PollPolicy = BUDGET_POLL, **kwargs: Any
) -> AkoolClient:
    kwargs.setdefault("retry", RetryPolicy.fast())
    return AkoolClient(server.api_key, base_url=server.url, poll=poll, wait_timeout=30, **kwargs)


def test_budget_is_calls_per_window_rounded_down() -> None:
    """The default budget is 2 calls per second, 10 per 5 s tick; no budget is None."""
    assert (2, 1.0) == PollPolicy().budget()
    assert 10 == PollPolicy().calls_per_tick()
    assert (2, 1.0) == PollPolicy(max_requests_per_second=2.5).budget()
    assert (1, 2.0) == PollPolicy(max_requests_per_second=0.5).budget()
    assert None is PollPolicy(max_requests_per_second=None).calls_per_tick()
    with pytest.raises(ValueError, match="max_requests_per_second"):
        PollPolicy(max_requests_per_second=0)


@pytest.mark.parametrize("fill", [True, False])
async def test_an_old_id_rides_along_in_a_call_with_room(fill: bool) -> None:
    """A webhook id, not due for an hour, rides along in the calls a fresh id makes.

    With ``fill_calls=False`` (the earlier default) it is never asked for.
    """
    async with FakeAkoolServer(queue_seconds=3600) as server:

        async def ok(request: web.Request) -> web.Response:
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_post("/hook", ok)
        async with serve_app(app) as hook_url:
            poll = PollPolicy(
                initial_delay=0.05,
                interval=0.05,
                jitter=0.0,
                webhook_interval=3600,
                fill_calls=fill,
            )
            async with budget_client(server, poll) as client:
                old = await client.image_to_video.create_batch(
                    **CREATE_ARGS, webhook_url=hook_url + "/hook"
                )
                (fresh,) = (await client.image_to_video.create_batch(**CREATE_ARGS)).handles
                await server.wait_until(
                    lambda: sum(fresh.id in ids_of(c) for c in server.calls("results")) >= 3
                )
                with_fresh = [ids_of(c) for c in server.calls("results") if fresh.id in ids_of(c)]
    rode_along = [old.ids[0] in ids for ids in with_fresh]
    assert ([True] * len(rode_along) if fill else [False] * len(rode_along)) == rode_along


async def test_budget_is_never_exceeded_with_thousands_pending(
    busy_server: FakeAkoolServer,
) -> None:
    """3,000 pending ids (60 calls a tick without a budget) stay within 2 calls per window.

    Every call is full, and over the ticks every id gets its turn.
    """
    server = busy_server
    ids = await queued_ids(server, 3000)
    server.reset_log()
    async with budget_client(server) as client:
        handles = [client.image_to_video.handle(i) for i in ids]
        calls = await server.wait_for_calls("results", 70, answered=True)
        stats = client.poller.statistics()
    assert 3000 == len({h.id for h in handles})
    starts = sorted(c.started_at for c in calls)
    window = BUDGET_POLL.budget_window
    busiest = max(sum(1 for t in starts if s <= t < s + window) for s in starts)
    assert busiest <= BUDGET_CALLS_PER_TICK
    assert [50] * 60 == [len(ids_of(c)) for c in calls[:60]]
    assert set(ids) == {i for c in calls[:60] for i in ids_of(c)}
    assert stats.max_requests_per_tick <= BUDGET_CALLS_PER_TICK
    assert stats.thinned > 0


async def test_a_fresh_id_is_polled_in_the_first_tick_after_its_delay(
    busy_server: FakeAkoolServer,
) -> None:
    """2,000 old ids take 20 ticks to go round; a new id is asked for in the next tick."""
    server = busy_server
    ids = await queued_ids(server, 2000)
    server.reset_log()
    async with budget_client(server) as client:
        for i in ids:
            client.image_to_video.handle(i)
        # Every old id polled at least once: they are old now, not fresh.
        await server.wait_until(
            lambda: len({i for c in server.calls("results") for i in ids_of(c)}) >= 2000
        )
        (fresh,) = (await client.image_to_video.create_batch(**CREATE_ARGS)).handles
        due = asyncio.get_running_loop().time() + BUDGET_POLL.initial_delay
        await server.wait_until(lambda: any(fresh.id in ids_of(c) for c in server.calls("results")))
    after = [c for c in server.calls("results") if c.started_at >= due]
    first = next(n for n, c in enumerate(after) if fresh.id in ids_of(c))
    # At most the rest of the tick under way, then the first call of the next tick (a call
    # sent just before ``due`` may reach the fake after it: one tick more of slack).
    assert first < 3 * BUDGET_CALLS_PER_TICK


async def test_a_1005_slows_the_budget_down(busy_server: FakeAkoolServer) -> None:
    """After a 1005 the next results call waits twice the budget's window, not once."""
    server = busy_server
    ids = await queued_ids(server, 300)
    server.reset_log()
    one_at_a_time = PollPolicy(
        initial_delay=0.05,
        interval=0.05,
        jitter=0.0,
        max_requests_per_second=10,
        budget_window=0.1,
    )
    async with budget_client(server, one_at_a_time) as client:
        for i in ids:
            client.image_to_video.handle(i)
        await server.wait_for_calls("results", 2, answered=True)
        server.inject("results", FaultKind.CODE_1005)
        await server.wait_until(lambda: 1 == len(server.faults_served))
        fault = len(server.calls("results")) - 1
        await server.wait_for_calls("results", fault + 3, answered=True)
        stats = client.poller.statistics()
    calls = server.calls("results")
    assert FaultKind.CODE_1005 is calls[fault].fault
    retry, after = calls[fault + 1], calls[fault + 2]
    before = [b.started_at - a.finished_at for a, b in itertools.pairwise(calls[:fault])]
    assert retry.finished_at is not None
    assert all(gap >= 0.1 for gap in before)
    assert after.started_at - retry.finished_at >= 0.2
    assert 1 <= stats.rate_limited
    assert VideoStatus.QUEUEING is server.status_of(ids[0])


async def test_a_known_shape_is_first_polled_near_when_it_can_be_done() -> None:
    """After one video of a shape took 0.55 s, the next is not polled on its own before 0.275 s."""
    async with FakeAkoolServer(queue_seconds=0.05, process_seconds=0.5) as server:
        poll = PollPolicy(
            initial_delay=0.02, interval=0.02, jitter=0.0, max_requests_per_second=None
        )
        async with budget_client(server, poll) as client:
            (first,) = (await client.image_to_video.create_batch(**CREATE_ARGS)).handles
            await first
            (second,) = (await client.image_to_video.create_batch(**CREATE_ARGS)).handles
            created = asyncio.get_running_loop().time()
            await second
            stats = client.poller.statistics()
    polls = [c for c in server.calls("results") if second.id in ids_of(c)]
    assert polls[0].started_at >= created + 0.5 * 0.55 - 0.01  # update_time is in whole ms
    assert 1 == stats.hinted
