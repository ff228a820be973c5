"""Several clients sharing one pool of videos through a real Redis (``AkoolClient(hub=...)``).

These run the clients in one process, each with its own ``RedisHub`` (as separate workers
would have); tests/test_cluster_processes.py does the same with real separate processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from _redis_server import RedisServer, dump_namespace
from aiohttp import web
from conftest import (
    BUDGET_CALLS_PER_TICK,
    BUDGET_POLL,
    CREATE_ARGS,
    FAST_POLL,
    queued_ids,
    serve_app,
)

from akool_async import AkoolClient, BudgetExceededError, NotFoundError, PollPolicy, RetryPolicy
from akool_async._client import client_core
from akool_async.redis import HubUnavailableError, RedisHub
from akool_async.testing import FakeAkoolServer, sign_webhook

RESULTS_PATH = "/api/open/v4/image2Video/resultsByIds"

#: The leader polls every 50 ms; a lease lasts 1 s (renewed every 1/3 s).
CLUSTER_POLL = PollPolicy(initial_delay=0.02, interval=0.05, max_interval=0.1, jitter=0.0)

MakeClient = Callable[..., AkoolClient]


@pytest.fixture
async def cluster(
    server: FakeAkoolServer, redis_url: str, redis_namespace: str
) -> AsyncIterator[MakeClient]:
    """Make hub-connected clients on one namespace; all are closed at the end."""
    clients: list[AkoolClient] = []

    def make(**kwargs: Any) -> AkoolClient:
        kwargs.setdefault("poll", CLUSTER_POLL)
        hub = RedisHub(
            kwargs.pop("url", redis_url),
            namespace=kwargs.pop("namespace", redis_namespace),
            leader_ttl=1.0,
            heartbeat_ttl=3.0,
            stream_block=0.2,
            max_concurrent_creates=kwargs.pop("cluster_creates", None),
        )
        client = AkoolClient(
            server.api_key,
            client_id=server.client_id,
            base_url=kwargs.pop("base_url", server.url),
            retry=RetryPolicy.fast(),
            hub=hub,
            **kwargs,
        )
        clients.append(client)
        return client

    try:
        yield make
    finally:
        for client in clients:
            await client.aclose()


async def leader_of(*clients: AkoolClient) -> AkoolClient:
    """The client whose hub holds the lease, once one does."""
    async with asyncio.timeout(10):
        while True:
            for client in clients:
                assert client.hub is not None
                if client.hub.statistics().role == "leader":
                    return client
            await asyncio.sleep(0.02)


async def test_a_webhook_received_by_one_process_resolves_a_handle_in_another(
    cluster: MakeClient, server: FakeAkoolServer
) -> None:
    """Only the hub can resolve it in time: the waiting client's backstop poll is 600 s away."""
    slow_backstop = PollPolicy(initial_delay=600, interval=600, webhook_interval=600)
    waiting = cluster(poll=slow_backstop)
    receiving = cluster(poll=slow_backstop)
    async with waiting, receiving:
        batch = await waiting.image_to_video.create_batch(
            **CREATE_ARGS, webhook_url="https://hooks.example/akool"
        )
        (video_id,) = batch.ids
        server.complete(video_id)
        body = sign_webhook(
            {"_id": video_id, "status": 3, "type": "video", "url": server.video_url(video_id)},
            client_id=server.client_id,
            client_secret=server.api_key,
        )
        await receiving.webhooks.receive(body)
        video = await batch.handles[0].wait(timeout=10)
    assert server.video_url(video_id) == video.video_url
    assert 0 == server.call_count("results")


async def test_one_process_polls_for_all(cluster: MakeClient, server: FakeAkoolServer) -> None:
    """Two clients' pending ids are polled by the leader alone, in shared results calls."""
    server.queue_seconds = 0.3
    first, second = cluster(), cluster()
    async with first, second:
        one = await first.image_to_video.create_batch(**CREATE_ARGS, count=3)
        two = await second.image_to_video.create_batch(**CREATE_ARGS, count=3)
        leader = await leader_of(first, second)
        videos = await asyncio.gather(*one.handles, *two.handles)
        follower = second if leader is first else first
        assert 0 == follower.poller.statistics().requests
    assert {v.id for v in videos} == set(one.ids) | set(two.ids)
    # Some results call carried ids of both clients: one poll for the cluster.
    mixed = [
        c
        for c in server.calls("results")
        if set(c.body["_ids"].split(",")) & set(one.ids)
        and set(c.body["_ids"].split(",")) & set(two.ids)
    ]
    assert mixed


async def test_a_video_seen_final_resolves_on_reattach_without_a_call(
    cluster: MakeClient, server: FakeAkoolServer
) -> None:
    """``handle(id)`` on another client resolves from Redis when some process saw it final."""
    first = cluster()
    async with first:
        batch = await first.image_to_video.create_batch(**CREATE_ARGS)
        await batch.handles[0]
    calls = server.call_count("results")
    second = cluster(poll=PollPolicy(initial_delay=600, interval=600))
    async with second:
        video = await second.image_to_video.handle(batch.ids[0]).wait(timeout=10)
    assert batch.ids[0] == video.id
    assert calls == server.call_count("results")


async def test_max_credits_is_one_budget_for_every_process(
    cluster: MakeClient, server: FakeAkoolServer
) -> None:
    """Three clients under one cap: the fake's total charge never passes it."""
    clients = [cluster(max_credits=100) for _ in range(3)]
    refused = 0

    async def create(client: AkoolClient) -> None:
        nonlocal refused
        for _ in range(4):
            try:
                await client.image_to_video.create_batch(**CREATE_ARGS)
            except BudgetExceededError:
                refused += 1

    async with contextlib.AsyncExitStack() as stack:
        for client in clients:
            await stack.enter_async_context(client)
        await asyncio.gather(*(create(c) for c in clients))
        # The fake's balance is what AKOOL charged, whichever process created.
        charged = 100_000.0 - await clients[0].account.credits()
    assert 0 < charged <= 100
    assert refused > 0


async def test_redis_unreachable_falls_back_to_local_polling(
    server: FakeAkoolServer, redis_namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    """No Redis at start: a WARNING, then the client polls its own handles; no video lost."""
    hub = RedisHub("redis://127.0.0.1:1/0", namespace=redis_namespace, timeout=0.2)
    async with AkoolClient(
        server.api_key, base_url=server.url, poll=FAST_POLL, retry=RetryPolicy.fast(), hub=hub
    ) as client:
        batch = await client.image_to_video.create_batch(**CREATE_ARGS, count=2)
        videos = await asyncio.gather(*batch.handles)
    assert all(v.video_url for v in videos)
    assert "unreachable" in caplog.text


async def test_redis_unreachable_with_max_credits_refuses_to_create(
    server: FakeAkoolServer, redis_namespace: str
) -> None:
    """With a cap and no Redis, a create raises HubUnavailableError and is never sent."""
    hub = RedisHub("redis://127.0.0.1:1/0", namespace=redis_namespace, timeout=0.2)
    async with AkoolClient(
        server.api_key, base_url=server.url, retry=RetryPolicy.fast(), hub=hub, max_credits=100
    ) as client:
        with pytest.raises(HubUnavailableError):
            await client.image_to_video.create_batch(**CREATE_ARGS)
    assert 0 == server.call_count("create_batch")


async def test_redis_killed_mid_run_loses_no_video(
    server: FakeAkoolServer,
    make_redis_server: Callable[..., RedisServer],
    redis_namespace: str,
) -> None:
    """redis-server killed while handles wait, then restarted: every handle still resolves."""
    redis = make_redis_server()
    server.queue_seconds = 0.5
    hub = RedisHub(redis.url, namespace=redis_namespace, leader_ttl=1.0, stream_block=0.2)
    async with AkoolClient(
        server.api_key,
        base_url=server.url,
        poll=CLUSTER_POLL,
        retry=RetryPolicy.fast(),
        hub=hub,
    ) as client:
        batch = await client.image_to_video.create_batch(**CREATE_ARGS, count=3)
        redis.kill()
        videos = await asyncio.wait_for(asyncio.gather(*batch.handles), 20)
        redis.start()
        more = await client.image_to_video.create_batch(**CREATE_ARGS)
        await asyncio.wait_for(more.handles[0].wait(), 20)
        assert hub.statistics().fallbacks >= 1
    assert all(v.video_url for v in videos)


async def test_namespaces_are_apart_and_no_secret_reaches_redis(
    cluster: MakeClient, server: FakeAkoolServer, redis_url: str, redis_namespace: str
) -> None:
    """Two namespaces do not see each other; no key, secret or token is ever written."""
    other = f"{redis_namespace}-other"
    mine = cluster()
    theirs = cluster(namespace=other, max_credits=1000)
    try:
        async with mine, theirs:
            batch = await mine.image_to_video.create_batch(**CREATE_ARGS, count=2)
            await asyncio.gather(*batch.handles)
            body = sign_webhook(
                {"_id": batch.ids[0], "status": 3, "url": server.video_url(batch.ids[0])},
                client_id=server.client_id,
                client_secret=server.api_key,
            )
            await mine.webhooks.receive(body)
            await theirs.image_to_video.create_batch(**CREATE_ARGS)
        ours = dump_namespace(redis_url, redis_namespace)
        foreign = dump_namespace(redis_url, other)
    finally:
        with contextlib.suppress(Exception):
            from _redis_server import clean_namespace

            clean_namespace(redis_url, other)
    assert batch.ids[0] in ours
    assert batch.ids[0] not in foreign
    for text in (ours, foreign):
        assert server.api_key not in text


async def test_max_concurrent_creates_can_be_cluster_wide(
    cluster: MakeClient, server: FakeAkoolServer
) -> None:
    """``RedisHub(max_concurrent_creates=1)``: one create in flight across every process."""
    server.create_latency = 0.05
    clients = [cluster(cluster_creates=1) for _ in range(3)]
    async with contextlib.AsyncExitStack() as stack:
        for client in clients:
            await stack.enter_async_context(client)
        await asyncio.gather(
            *(c.image_to_video.create_batch(**CREATE_ARGS) for c in clients for _ in range(2))
        )
    assert 6 == server.call_count("create_batch")
    assert 1 == server.max_in_flight("create_batch")


async def test_an_id_akool_does_not_know_fails_in_every_process(
    cluster: MakeClient, server: FakeAkoolServer
) -> None:
    """The leader gives up on an id AKOOL keeps leaving out; each process's handle fails."""
    first, second = cluster(), cluster()
    async with first, second:
        ghost = "0123456789abcdef01234567"
        handles = [c.image_to_video.handle(ghost) for c in (first, second)]
        for handle in handles:
            with pytest.raises(NotFoundError, match="unknown to AKOOL"):
                await handle.wait(timeout=20)


async def test_a_whole_call_not_found_counts_as_a_miss_not_a_verdict(
    cluster: MakeClient,
) -> None:
    """AKOOL answers 1008 (not found) for any call holding one id: the leader halves its way
    to that id, counts a miss for it each tick and gives it up only after ``missing_polls``
    misses, as for an id left out of answers; the healthy id beside it stays pending."""
    ghost, alive = "0123456789abcdef01234567", "76543210fedcba9876543210"
    asked: list[list[str]] = []
    alive_asked = asyncio.Event()

    async def results(request: web.Request) -> web.Response:
        ids = (await request.json())["_ids"].split(",")
        asked.append(ids)
        if alive in ids:
            alive_asked.set()
        if ghost in ids:
            return web.json_response({"code": 1008, "msg": "video not found"})
        result = [{"_id": i, "status": 1} for i in ids]
        return web.json_response({"code": 1000, "msg": "OK", "data": {"result": result}})

    app = web.Application()
    app.router.add_post(RESULTS_PATH, results)
    async with serve_app(app) as url:
        client = cluster(base_url=url, poll=FAST_POLL)
        async with client:
            lost, kept = client.image_to_video.handle(ghost), client.image_to_video.handle(alive)
            with pytest.raises(NotFoundError, match="missing from"):
                await lost.wait(timeout=20)
            alive_asked.clear()
            await asyncio.wait_for(alive_asked.wait(), 20)  # still polled afterwards
            assert not kept.done()
    alone = [ids for ids in asked if ids == [ghost]]
    assert len(alone) == FAST_POLL.missing_polls + 1


async def test_holds_that_never_settle_do_not_make_a_create_wait_forever(
    cluster: MakeClient, server: FakeAkoolServer, redis_url: str, redis_namespace: str
) -> None:
    """A crashed process's hold stays in Redis: a create that does not fit beside it is
    refused after the stale time instead of waiting for it forever."""
    async with RedisHub(redis_url, namespace=redis_namespace) as crashed:
        assert await crashed.budget.reserve(40, 50) is not None  # never settled
    client = cluster(max_credits=50)
    client_core(client).budget.stale_after = 0.3
    async with client:
        with pytest.raises(BudgetExceededError):
            await asyncio.wait_for(client.image_to_video.create_batch(**CREATE_ARGS), 20)
    assert 0 == server.call_count("create_batch")


@pytest.mark.parametrize("fill", [True, False])
async def test_webhook_ids_keep_their_slow_backstop_cadence_in_the_cluster(
    cluster: MakeClient, server: FakeAkoolServer, fill: bool
) -> None:
    """The leader polls an id a webhook reports at ``webhook_interval``, not every tick.

    It rides along free in the calls other ids make (``fill_calls``); without fill it is never
    asked for before its cadence.
    """
    server.queue_seconds = 3600.0
    policy = PollPolicy(
        initial_delay=0.02, interval=0.05, webhook_interval=600, jitter=0.0, fill_calls=fill
    )
    client = cluster(poll=policy)
    async with client:
        hooked = await client.image_to_video.create_batch(
            **CREATE_ARGS, webhook_url="https://hooks.example/akool"
        )
        plain = await client.image_to_video.create_batch(**CREATE_ARGS)

        def polled(video_id: str) -> int:
            return sum(video_id in c.body["_ids"].split(",") for c in server.calls("results"))

        await server.wait_until(lambda: polled(plain.ids[0]) >= 3, timeout=20)
        asked = [c.body["_ids"].split(",") for c in server.calls("results")]
    if fill:
        # Only ever alongside the plain id, never on its own.
        assert all(plain.ids[0] in ids for ids in asked if hooked.ids[0] in ids)
        assert any(hooked.ids[0] in ids for ids in asked)
    else:
        assert 0 == polled(hooked.ids[0])


def ids_in(call: Any) -> list[str]:
    return list(call.body["_ids"].split(","))


async def test_the_leader_keeps_the_request_budget_for_the_whole_cluster(
    cluster: MakeClient, server: FakeAkoolServer
) -> None:
    """Two processes wait for 3,000 ids (60 calls a tick without a budget): the leader sends
    no more than 2 calls per window, each full, and every id gets its turn."""
    server.queue_seconds = 3600.0
    ids = await queued_ids(server, 3000)
    server.reset_log()
    first, second = cluster(poll=BUDGET_POLL), cluster(poll=BUDGET_POLL)
    async with first, second:
        for n, video_id in enumerate(ids):
            (first if n % 2 else second).image_to_video.handle(video_id)
        calls = await server.wait_for_calls("results", 70, answered=True, timeout=60)
    starts = sorted(c.started_at for c in calls)
    window = BUDGET_POLL.budget_window
    assert (
        max(sum(1 for t in starts if s <= t < s + window) for s in starts) <= BUDGET_CALLS_PER_TICK
    )
    assert [50] * 60 == [len(ids_in(c)) for c in calls[:60]]
    assert set(ids) == {i for c in calls[:60] for i in ids_in(c)}


async def test_a_fresh_id_is_not_kept_behind_thousands_of_overdue_ones(
    cluster: MakeClient, server: FakeAkoolServer
) -> None:
    """2,000 old ids take 20 ticks to go round; a new one is asked for in the next tick."""
    server.queue_seconds = 3600.0
    ids = await queued_ids(server, 2000)
    server.reset_log()
    client = cluster(poll=BUDGET_POLL)
    async with client:
        for video_id in ids:
            client.image_to_video.handle(video_id)
        await server.wait_until(
            lambda: len({i for c in server.calls("results") for i in ids_in(c)}) >= 2000,
            timeout=60,
        )
        (fresh,) = (await client.image_to_video.create_batch(**CREATE_ARGS)).handles
        created = len(server.calls("results"))
        await server.wait_until(
            lambda: any(fresh.id in ids_in(c) for c in server.calls("results")), timeout=60
        )
    after = server.calls("results")[created:]
    first = next(n for n, c in enumerate(after) if fresh.id in ids_in(c))
    # Its initial delay (one tick), the registration's round trip, then the next tick's first
    # call; behind the 2,000 overdue ids it would wait 20 ticks (40 calls).
    assert first < 4 * BUDGET_CALLS_PER_TICK


async def test_a_refusing_akool_is_searched_within_the_budget(
    cluster: MakeClient, server: FakeAkoolServer
) -> None:
    """AKOOL refuses every results call (1003): the leader asks each chunk, then its two
    halves, and gives up, failing every handle; the split calls stay within the budget."""
    server.queue_seconds = 3600.0
    ids = await queued_ids(server, 300)
    server.max_ids_per_results = 0
    server.reset_log()
    client = cluster(poll=BUDGET_POLL)
    async with client:
        handles = [client.image_to_video.handle(i) for i in ids]
        outcomes = await asyncio.gather(
            *(h.wait(timeout=60) for h in handles), return_exceptions=True
        )
    assert all(isinstance(o, NotFoundError) for o in outcomes), outcomes[:3]
    calls = server.calls("results")
    starts = sorted(c.started_at for c in calls)
    window = BUDGET_POLL.budget_window
    assert max(sum(1 for t in starts if s <= t < s + window) for s in starts) <= 2
    asked = [tuple(ids_in(c)) for c in calls]
    halves = {p for a in asked if len(a) > 1 for p in (a[: len(a) // 2], a[len(a) // 2 :])}
    chunks = [a for a in asked if a not in halves]
    assert sorted(p for c in chunks for p in (c, c[: len(c) // 2], c[len(c) // 2 :])) == sorted(
        asked
    )
    assert sorted(ids) == sorted(i for c in chunks for i in c)


async def test_ids_polled_in_one_tick_are_due_together_at_the_next(
    cluster: MakeClient, server: FakeAkoolServer
) -> None:
    """450 ids in 9 calls a tick, the budget pacing them over part of the tick: every id a
    tick polls is due again when the next tick starts (as in the local poller), not an
    interval after its own call, which would push the ids of the tick's last calls past the
    next tick."""
    server.queue_seconds = 3600.0
    ids = await queued_ids(server, 450)
    server.reset_log()
    poll = PollPolicy(
        initial_delay=0.05,
        interval=1.0,
        jitter=0.0,
        max_requests_per_second=40,
        budget_window=0.05,  # 2 calls per 0.05 s: 9 calls take a fifth of the tick at least
    )
    client = cluster(poll=poll)
    async with client:
        for i in ids:
            client.image_to_video.handle(i)
        await server.wait_for_calls("results", 9 * 3, answered=True, timeout=60)
        assert client.hub is not None
        dues = await client.hub.pending.due_times(ids)
    # Claimed ids (a call in flight) are pushed 30 s ahead; the others are due at this tick's
    # start (not polled in it yet) or at the next tick's.
    known = [d for d in dues if d is not None]
    assert len(ids) == len(known)
    scheduled = {d for d in known if d < min(known) + 10}
    assert len(scheduled) <= 2, sorted(scheduled)


async def test_the_leader_first_polls_a_known_shape_near_when_it_can_be_done(
    cluster: MakeClient, server: FakeAkoolServer
) -> None:
    """After one video of a shape took about 0.55 s, the leader does not ask for the next one
    before half that time: the waiting process's duration hint goes with its registration."""
    server.process_seconds = 0.5
    poll = PollPolicy(initial_delay=0.02, interval=0.02, jitter=0.0, max_requests_per_second=None)
    client = cluster(poll=poll)
    async with client:
        (first,) = (await client.image_to_video.create_batch(**CREATE_ARGS)).handles
        await first
        before = time.monotonic()  # the fake's clock
        (second,) = (await client.image_to_video.create_batch(**CREATE_ARGS)).handles
        await second
    polls = [c for c in server.calls("results") if second.id in ids_in(c)]
    # Half of 0.55 s, less the half interval a tick takes ids early, less 2 ms (whole ms).
    assert polls[0].started_at >= before + 0.5 * 0.55 - poll.interval / 2 - 0.002


@pytest.mark.parametrize("max_credits", [None, 100.0])
async def test_a_create_cancelled_while_redis_answers_is_not_sent(
    cluster: MakeClient, server: FakeAkoolServer, max_credits: float | None
) -> None:
    """redis-py may finish a command its task was cancelled during: the cancel still holds,
    so a create cancelled at its first await is never sent."""
    client = cluster(max_credits=max_credits)
    async with client:
        await client.image_to_video.create_batch(**CREATE_ARGS)
        sent = server.call_count("create_batch")
        task = asyncio.create_task(client.image_to_video.create_batch(**CREATE_ARGS))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert sent == server.call_count("create_batch")
