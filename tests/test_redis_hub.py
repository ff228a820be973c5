"""akool_async.redis.RedisHub against a real redis-server on loopback (see _redis_server.py)."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import textwrap
import time
import traceback
import urllib.parse
from collections.abc import AsyncIterator, Callable

import pytest
import redis
import redis.asyncio as aioredis
from _redis_server import RedisServer, clean_namespace, dump_namespace, free_port

from akool_async import AkoolConnectionError, AkoolValueError, ClientClosedError
from akool_async.redis import BudgetSnapshot, HubEvent, HubUnavailableError, RedisHub

ITEM = {"_id": "v1", "status": 3, "video_url": "https://cdn.example/v1.mp4"}


@pytest.fixture
async def hub(redis_url: str, redis_namespace: str) -> AsyncIterator[RedisHub]:
    async with RedisHub(redis_url, namespace=redis_namespace, leader_ttl=5.0) as opened:
        yield opened


@pytest.fixture
async def other(redis_url: str, redis_namespace: str) -> AsyncIterator[RedisHub]:
    """A second process's hub on the same namespace (its own connection)."""
    async with RedisHub(redis_url, namespace=redis_namespace, leader_ttl=5.0) as opened:
        yield opened


async def next_event(events: AsyncIterator[HubEvent]) -> HubEvent:
    async with asyncio.timeout(20):
        return await anext(events)


# --- lifecycle and errors ------------------------------------------------------------------


async def test_open_reports_reachable_and_statistics_start_empty(hub: RedisHub) -> None:
    """An opened hub answers PING; its statistics start at zero with no role yet."""
    await hub.ping()
    stats = hub.statistics()
    assert (None, True, 0, 0, None, 0, 0) == (
        stats.role,
        stats.available,
        stats.events_published,
        stats.events_received,
        stats.stream_lag,
        stats.fallbacks,
        stats.leader_changes,
    )


async def test_bad_arguments_are_refused_before_any_command() -> None:
    """An empty namespace or a non-positive ttl is an AkoolValueError."""
    with pytest.raises(AkoolValueError):
        RedisHub("redis://127.0.0.1:1/0", namespace="")
    with pytest.raises(AkoolValueError):
        RedisHub("redis://127.0.0.1:1/0", leader_ttl=0)


async def test_unreachable_redis_is_one_typed_error_and_counts_a_fallback() -> None:
    """With nothing listening, open() says so and every call raises HubUnavailableError."""
    hub = RedisHub(f"redis://127.0.0.1:{free_port()}/0", namespace="x", timeout=2.0)
    assert await hub.open() is False
    with pytest.raises(HubUnavailableError) as caught:
        await hub.publish("v1", 3, None, ITEM)
    assert isinstance(caught.value, AkoolConnectionError)
    stats = hub.statistics()
    assert (False, 1) == (stats.available, stats.fallbacks)
    await hub.aclose()


async def test_use_after_close_raises_client_closed(redis_url: str, redis_namespace: str) -> None:
    """A closed hub refuses work with ClientClosedError and cannot be reopened."""
    hub = RedisHub(redis_url, namespace=redis_namespace)
    await hub.open()
    await hub.aclose()
    await hub.aclose()
    with pytest.raises(ClientClosedError):
        await hub.get_state("v1")
    with pytest.raises(ClientClosedError):
        await hub.open()


async def test_caller_owned_client_is_left_open(redis_url: str, redis_namespace: str) -> None:
    """A hub made from the caller's redis client never closes that client."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        async with RedisHub(client, namespace=redis_namespace) as hub:
            assert hub.owns_connection is False
            events = hub.events(last_id=await hub.latest_event_id())
            assert await hub.publish("v1", 3, ITEM["video_url"], ITEM) is True
            state = await hub.get_state("v1")  # a client without decode_responses: bytes
            assert state is not None
            assert ITEM["video_url"] == state.video_url
            assert state == (await next_event(events)).state
            await events.aclose()
        assert await client.ping() is True
    finally:
        await client.aclose()


# --- passwords -----------------------------------------------------------------------------

PASSWORD = "s3cret-Pw-0b5cure"


async def test_password_never_in_repr_error_or_log(
    make_redis_server: Callable[..., RedisServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With a wrong or right password, no repr, error, traceback or log line shows it."""
    server = make_redis_server(password=PASSWORD)
    caplog.set_level(logging.DEBUG)
    good = RedisHub(server.url, namespace="pw")
    wrong_url = server.url.replace(PASSWORD, PASSWORD + "-wrong")
    bad = RedisHub(wrong_url, namespace="pw", timeout=2.0)
    tls_url = f"rediss://:{PASSWORD}@127.0.0.1:{server.port}/0"
    # A plain server never answers a TLS hello: keep the wait for that short.
    tls = RedisHub(tls_url, namespace="pw", timeout=0.3, stream_block=0.1)
    texts = [repr(good), repr(bad), repr(tls)]
    async with good:
        assert await good.publish("v1", 3, None, ITEM) is True
        texts.append(repr(good))
    for failing in (bad, tls):
        # rediss:// speaks TLS to a plain server here: the handshake fails, the URL is accepted.
        assert await failing.open() is False
        with pytest.raises(HubUnavailableError) as caught:
            await failing.get_state("v1")
        texts += [str(caught.value), repr(caught.value)]
        texts += traceback.format_exception(caught.value)
        await failing.aclose()
    texts += [record.getMessage() for record in caplog.records]
    assert any("***" in t for t in texts)
    assert not [t for t in texts if PASSWORD in t]


async def test_password_of_a_caller_owned_client_stays_out_of_errors(
    make_redis_server: Callable[..., RedisServer],
) -> None:
    """Errors of a hub on the caller's authenticated client do not show its password."""
    server = make_redis_server(password=PASSWORD)
    client = aioredis.Redis.from_url(server.url, socket_timeout=2.0)
    try:
        async with RedisHub(client, namespace="pw") as hub:
            assert PASSWORD not in repr(hub)
            server.kill()
            with pytest.raises(HubUnavailableError) as caught:
                await hub.get_state("v1")
            assert PASSWORD not in "".join(traceback.format_exception(caught.value))
    finally:
        await client.aclose()


# --- video state and the event stream ------------------------------------------------------


async def test_status_only_moves_forward(hub: RedisHub) -> None:
    """Duplicates and older statuses are not news; a final status never changes."""
    assert await hub.publish("v1", 1, None, {"_id": "v1", "status": 1}) is True
    assert await hub.publish("v1", 1, None, {"_id": "v1", "status": 1}) is False
    assert await hub.publish("v1", 2, None, {"_id": "v1", "status": 2}) is True
    assert await hub.publish("v1", 1, None, {"_id": "v1", "status": 1}) is False
    assert await hub.publish("v1", 3, ITEM["video_url"], ITEM) is True
    assert await hub.publish("v1", 4, None, {"_id": "v1", "status": 4}) is False
    assert await hub.publish("v1", 2, None, {"_id": "v1", "status": 2}) is False
    state = await hub.get_state("v1")
    assert state is not None
    assert (3, ITEM["video_url"], ITEM) == (state.status, state.video_url, dict(state.raw))
    assert 3 == hub.statistics().events_published


async def test_final_status_wins_even_out_of_order(hub: RedisHub) -> None:
    """A late 'processing' after 'failed' is ignored; a 'failed' after 'processing' counts."""
    assert await hub.publish("v2", 4, None, {"_id": "v2", "status": 4}) is True
    assert await hub.publish("v2", 2, None, {"_id": "v2", "status": 2}) is False
    state = await hub.get_state("v2")
    assert state is not None
    assert (4, None) == (state.status, state.video_url)


async def test_state_is_kept_seven_days(hub: RedisHub, redis_url: str) -> None:
    """A recorded state expires after AKOOL's 7 days; an unknown video has no state."""
    await hub.publish("v1", 3, ITEM["video_url"], ITEM)
    sync = redis.Redis.from_url(redis_url)
    try:
        ttl = sync.pttl(f"{hub.namespace}:video:v1")
    finally:
        sync.close()
    assert 6.9 * 86400 * 1000 < ttl <= 7 * 86400 * 1000
    assert await hub.get_state("unknown") is None


async def test_every_hub_tails_every_event_in_order(hub: RedisHub, other: RedisHub) -> None:
    """Events published by one hub reach another's tail, in order, and only once."""
    start = await other.latest_event_id()
    events = other.events(last_id=start)
    await hub.publish("v1", 2, None, {"_id": "v1", "status": 2})
    await hub.publish("v1", 2, None, {"_id": "v1", "status": 2})  # duplicate: no event
    await hub.publish("v1", 3, ITEM["video_url"], ITEM)
    first, second = await next_event(events), await next_event(events)
    assert [("v1", 2, None), ("v1", 3, ITEM["video_url"])] == [
        (e.video_id, e.status, e.video_url) for e in (first, second)
    ]
    assert ITEM == dict(second.raw)
    assert second.state.status == 3
    stats = other.statistics()
    assert 2 == stats.events_received
    assert stats.stream_lag is not None
    # Resuming after the first entry yields the second again, nothing before it.
    resumed = other.events(last_id=first.entry_id)
    assert second == await next_event(resumed)
    await events.aclose()
    await resumed.aclose()


async def test_tail_resumes_after_redis_is_killed_and_restarted(
    make_redis_server: Callable[..., RedisServer],
) -> None:
    """A tail waits out a dead server, then goes on from its last entry once it is back."""
    server = make_redis_server()
    changes: list[bool] = []
    lost = asyncio.Event()

    def watch(available: bool) -> None:
        changes.append(available)
        if not available:
            lost.set()

    async with (
        RedisHub(server.url, namespace="k", timeout=2.0) as tailer,
        RedisHub(server.url, namespace="k", timeout=2.0) as publisher,
    ):
        tailer.watch_availability(watch)
        events = tailer.events(last_id=await tailer.latest_event_id())
        await publisher.publish("v1", 2, None, {"_id": "v1", "status": 2})
        assert "v1" == (await next_event(events)).video_id
        waiting = asyncio.ensure_future(next_event(events))
        server.kill()
        with pytest.raises(HubUnavailableError):
            await publisher.publish("v2", 2, None, {"_id": "v2", "status": 2})
        async with asyncio.timeout(20):
            await lost.wait()  # the tail's blocking read broke: it is backing off now
        server.start()
        await publisher.publish("v2", 3, None, {"_id": "v2", "status": 3})
        event = await waiting
        assert ("v2", 3) == (event.video_id, event.status)
        assert [False, True] == changes
        assert 1 == tailer.statistics().fallbacks
        await events.aclose()


async def test_publish_writes_only_what_it_is_given(hub: RedisHub, redis_url: str) -> None:
    """A publish writes the state hash and one stream entry holding the given fields only."""
    await hub.publish("v1", 3, ITEM["video_url"], ITEM)
    sync = redis.Redis.from_url(redis_url)
    try:
        keys = sorted(k.decode() for k in sync.scan_iter(match=f"{hub.namespace}:*"))
        entries = sync.xrange(f"{hub.namespace}:events")
    finally:
        sync.close()
    assert [f"{hub.namespace}:events", f"{hub.namespace}:video:v1"] == keys
    assert 1 == len(entries)
    assert {b"video_id", b"status", b"video_url", b"raw"} == set(entries[0][1])
    dump = dump_namespace(redis_url, hub.namespace)
    assert "cdn.example/v1.mp4" in dump


async def test_namespaces_do_not_see_each_other(redis_url: str, redis_namespace: str) -> None:
    """Events, states, pending ids and budgets of one namespace are invisible to another."""
    async with (
        RedisHub(redis_url, namespace=redis_namespace) as a,
        RedisHub(redis_url, namespace=redis_namespace + "-b") as b,
    ):
        try:
            events = b.events(last_id=await b.latest_event_id())
            await a.publish("va", 3, None, {"_id": "va", "status": 3})
            await b.publish("vb", 3, None, {"_id": "vb", "status": 3})
            assert "vb" == (await next_event(events)).video_id
            await events.aclose()
            assert await b.get_state("va") is None
            await a.pending.register(["va"], due=0)
            assert await b.leader.maintain() is True
            assert [] == await b.pending.take_due()
            assert await a.budget.reserve(10, cap=10) is not None
            assert await b.budget.reserve(10, cap=10) is not None
        finally:
            clean_namespace(redis_url, redis_namespace + "-b")


# --- leader lease --------------------------------------------------------------------------


async def test_one_leader_at_a_time_and_release_hands_over(hub: RedisHub, other: RedisHub) -> None:
    """The first to ask leads; the other follows until the lease is released."""
    assert await hub.leader.maintain() is True
    assert await other.leader.maintain() is False
    assert await hub.leader.maintain() is True  # renewal
    assert ("leader", "follower") == (hub.statistics().role, other.statistics().role)
    assert hub.process_id == await other.leader.holder()
    await hub.leader.release()
    assert "follower" == hub.statistics().role
    assert await other.leader.maintain() is True
    assert await hub.leader.maintain() is False
    assert 2 == hub.statistics().leader_changes
    assert 1 == other.statistics().leader_changes


async def test_lost_renewal_makes_a_follower_at_once(
    hub: RedisHub, other: RedisHub, redis_url: str
) -> None:
    """When the lease ran out and another took it, the old leader stops at its next renewal."""
    assert await hub.leader.maintain() is True
    sync = redis.Redis.from_url(redis_url)
    try:
        sync.delete(hub.leader.key)  # as if the lease ran out while this process stalled
    finally:
        sync.close()
    assert await other.leader.maintain() is True
    assert await hub.leader.maintain() is False
    assert hub.leader.is_leader is False


async def test_take_due_refuses_a_deposed_leader(
    hub: RedisHub, other: RedisHub, redis_url: str
) -> None:
    """A leader whose lease is gone in Redis gets no ids and becomes a follower."""
    await hub.pending.register(["a"], due=0)
    assert await hub.leader.maintain() is True
    sync = redis.Redis.from_url(redis_url)
    try:
        sync.set(hub.leader.key, "someone-else")
    finally:
        sync.close()
    assert [] == await hub.pending.take_due()
    assert "follower" == hub.statistics().role


# --- pending ids ---------------------------------------------------------------------------


async def test_take_due_hands_out_due_ids_once_per_claim(hub: RedisHub) -> None:
    """Due ids come earliest first, at most `limit`, and not again until rescheduled."""
    now = time.time()
    await hub.pending.register(["a", "b", "c"], due=now - 10)
    await hub.pending.register(["later"], due=now + 3600)
    await hub.leader.maintain()
    assert 3 == len(first := await hub.pending.take_due(now, limit=2)) + 1
    rest = await hub.pending.take_due(now, limit=50)
    assert {"a", "b", "c"} == set(first) | set(rest)
    assert [] == await hub.pending.take_due(now, limit=50)  # claimed until rescheduled
    await hub.pending.reschedule(["a"], due=now - 1)
    assert ["a"] == await hub.pending.take_due(now)
    await hub.pending.drop_final(["a"])
    await hub.pending.reschedule(["a"], due=now - 1)  # dropped ids stay dropped
    assert [None, now + 3600] == await hub.pending.due_times(["a", "later"])


async def test_fresh_ids_come_first_and_riders_fill_the_room(hub: RedisHub) -> None:
    """A new id is taken before overdue old ones; riders are the ids due soonest after
    ``now``, never one already in the call, and only in a call some due id makes."""
    now = time.time()
    await hub.pending.register(["old1", "old2"], due=now - 100)
    await hub.leader.maintain()
    assert {"old1", "old2"} == set(await hub.pending.take_due(now))
    await hub.pending.reschedule(["old1", "old2"], due=now - 50)  # polled once: old now
    await hub.pending.register(["new"], due=now - 1)
    assert ["new"] == await hub.pending.take_due(now, limit=1)
    await hub.pending.reschedule(["new"], due=now + 10)
    await hub.pending.register(["later"], due=now + 100)
    due, riders = await hub.pending.take_call(now, limit=3)
    assert (["old1", "old2"], ["new"]) == (sorted(due), riders)
    assert ([], []) == await hub.pending.take_call(now, limit=3)  # "later" rides with no one
    assert [now + 100] == await hub.pending.due_times(["later"])
    await hub.pending.reschedule(["old1", "old2", "new"], due=now + 200)
    await hub.pending.register(["newest"], due=now - 1)
    assert (["newest"], ["later"]) == await hub.pending.take_call(now, limit=2)


async def test_a_fresh_id_is_handed_out_once_per_claim(
    hub: RedisHub, other: RedisHub, redis_url: str, redis_namespace: str
) -> None:
    """An id stays fresh until polled, but a claimed one is not taken again; ids dropped
    before their first poll leave no trace that could crowd the fresh ones out."""
    async with aioredis.Redis.from_url(redis_url) as raw:
        now = time.time()
        await hub.pending.register(["gone"], due=now - 2)
        await hub.pending.unregister(["gone"])
        assert [] == await raw.zrange(f"{redis_namespace}:fresh", 0, -1)
        await hub.pending.register(["x", "y"], due=now - 1)
        await hub.leader.maintain()
        taken = [await hub.pending.take_call(now, limit=1) for _ in range(3)]
        assert [(["x"], []), (["y"], []), ([], [])] == taken
        # A webhook id registered late, then by another process as due now: fresh and due.
        await hub.pending.register(["w"], due=now + 60)
        await other.pending.register(["w"], due=now - 1)
        assert ["w"] == await hub.pending.take_due(now)
        await hub.pending.reschedule(["w"], due=now + 100)  # polled: not fresh any more
        assert "w" not in await hub.pending.take_due(now + 61)


async def test_an_id_stays_pending_while_any_process_waits(hub: RedisHub, other: RedisHub) -> None:
    """An id leaves the pending set only when its last waiter unregisters it."""
    assert 1 == await hub.pending.register(["x"], due=0)
    assert 0 == await hub.pending.register(["x"], due=0)  # again: harmless
    await other.pending.register(["x"], due=5)
    assert [0.0] == await hub.pending.due_times(["x"])  # the earlier due time is kept
    assert 0 == await hub.pending.unregister(["x"])
    assert 1 == await hub.pending.count()
    assert 1 == await other.pending.unregister(["x"])
    assert 0 == await hub.pending.count()


async def test_ids_of_a_dead_process_are_reaped(
    hub: RedisHub, redis_url: str, redis_namespace: str
) -> None:
    """A process that stops its heartbeat loses its ids, except those others still wait for."""
    dying = RedisHub(redis_url, namespace=redis_namespace, heartbeat_ttl=0.1)
    await dying.open()
    await dying.pending.register(["mine", "shared"], due=0)
    await hub.pending.register(["shared"], due=0)
    assert await hub.pending.heartbeat() is True
    await asyncio.sleep(0.3)  # let the dying process's heartbeat deadline pass
    assert 1 == await hub.pending.reap_orphans()
    assert [None, 0.0] == await hub.pending.due_times(["mine", "shared"])
    # The reaped process learns it was forgotten and can register again.
    assert await dying.pending.heartbeat() is False
    assert 1 == await dying.pending.register(["mine"], due=0)
    await dying.aclose()  # closing forgets its ids
    assert [None] == await hub.pending.due_times(["mine"])


# --- shared budget -------------------------------------------------------------------------


class ReplyDropper:
    """A loopback TCP proxy in front of redis-server that swallows its answers while
    ``dropping``: commands still run, their callers time out."""

    def __init__(self, upstream: str) -> None:
        parts = urllib.parse.urlsplit(upstream)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 6379
        self.dropping = False
        self.url = ""
        self._server: asyncio.Server | None = None
        self._pumps: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> ReplyDropper:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"redis://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/0"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for pump in self._pumps:
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        for pump in (
            self._pump(reader, up_writer, answers=False),
            self._pump(up_reader, writer, answers=True),
        ):
            task = asyncio.create_task(pump)
            self._pumps.add(task)

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, answers: bool
    ) -> None:
        try:
            while data := await source.read(65536):
                if not (answers and self.dropping):
                    sink.write(data)
                    await sink.drain()
        except ConnectionError:
            pass
        finally:
            sink.close()


async def test_a_reservation_whose_answer_is_lost_is_held_once_and_given_back(
    redis_url: str, redis_namespace: str
) -> None:
    """Redis runs reservations whose answers never come back: each caller sees
    HubUnavailableError and sends no create, so each hold is given back, once, by the next
    budget commands, even when several run at once; the cap is not eaten."""
    async with (
        ReplyDropper(redis_url) as proxy,
        RedisHub(proxy.url, namespace=redis_namespace, timeout=1.0, stream_block=0.05) as hub,
    ):
        assert await hub.budget.reserve(5, 100) is not None  # the scripts are loaded
        proxy.dropping = True
        for amount in (20, 30):
            with pytest.raises(HubUnavailableError):
                await hub.budget.reserve(amount, 100)
        proxy.dropping = False
        held = await asyncio.gather(*(hub.budget.reserve(10, 100) for _ in range(3)))
        assert all(r is not None for r in held)
        assert BudgetSnapshot(charged=0.0, reserved=35.0) == await hub.budget.snapshot()


async def test_reserve_settle_release(hub: RedisHub) -> None:
    """Reservations count against the cap until settled (at their real cost) or released."""
    first = await hub.budget.reserve(60, cap=100)
    assert first is not None
    assert await hub.budget.reserve(50, cap=100) is None
    second = await hub.budget.reserve(40, cap=100)
    assert second is not None
    assert await hub.budget.settle(first, 22.5) is True
    assert await hub.budget.settle(first, 22.5) is False  # once only
    assert await hub.budget.release(second) is True
    assert await hub.budget.release(second) is False
    snapshot = await hub.budget.snapshot()
    assert (22.5, 0.0) == (snapshot.charged, pytest.approx(snapshot.reserved, abs=1e-9))
    assert 22.5 == await hub.budget.charged()
    assert await hub.budget.reserve(77.5, cap=100) is not None
    with pytest.raises(AkoolValueError):
        await hub.budget.reserve(-1, cap=100)


async def test_concurrent_reservations_never_pass_the_cap(
    redis_url: str, redis_namespace: str
) -> None:
    """90 reservations of 7 at once from three hubs: exactly floor(100/7) fit."""
    hubs = [RedisHub(redis_url, namespace=redis_namespace) for _ in range(3)]
    for h in hubs:
        await h.open()
    try:
        results = await asyncio.gather(
            *(h.budget.reserve(7, cap=100) for h in hubs for _ in range(30))
        )
        held = [r for r in results if r is not None]
        assert 14 == len(held)
        await asyncio.gather(*(hubs[0].budget.settle(r, 7) for r in held))
        assert 98 == await hubs[1].budget.charged()
    finally:
        for h in hubs:
            await h.aclose()


async def test_processes_share_one_budget(redis_url: str, redis_namespace: str) -> None:
    """Three OS processes reserving and settling concurrently never charge past the cap."""
    script = textwrap.dedent(
        """
        import asyncio, sys
        from akool_async.redis import RedisHub

        async def main():
            async with RedisHub(sys.argv[1], namespace=sys.argv[2]) as hub:
                async def one():
                    r = await hub.budget.reserve(5, cap=100)
                    if r is not None:
                        await hub.budget.settle(r, 5)
                    return r is not None
                print(sum(await asyncio.gather(*(one() for _ in range(20)))))

        asyncio.run(main())
        """
    )
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            script,
            redis_url,
            redis_namespace,
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        for _ in range(3)
    ]
    outputs = [await p.communicate() for p in procs]
    assert [0, 0, 0] == [p.returncode for p in procs]
    assert 20 == sum(int(out.decode()) for out, _ in outputs)
    async with RedisHub(redis_url, namespace=redis_namespace) as hub:
        snapshot = await hub.budget.snapshot()
    assert (100.0, 0.0) == (snapshot.charged, snapshot.reserved)


# --- slow-down and create slots ------------------------------------------------------------


async def test_slow_down_is_shared_and_only_extends(hub: RedisHub, other: RedisHub) -> None:
    """A slow-down set by one process is seen by another; a shorter one does not cut it."""
    assert await other.slowed_until() is None
    before = time.time()
    await hub.slow_down(30)
    await hub.slow_down(1)
    until = await other.slowed_until()
    assert until is not None
    assert before + 29 < until < time.time() + 31


async def test_create_slots_are_capped_and_come_back(hub: RedisHub, other: RedisHub) -> None:
    """At most `limit` slots across processes; a slot whose lease ran out is free again."""
    first = await hub.slots.acquire(limit=2, ttl=30)
    crashed = await other.slots.acquire(limit=2, ttl=0.1)
    assert first is not None
    assert crashed is not None
    assert await hub.slots.acquire(limit=2, ttl=30) is None
    await asyncio.sleep(0.3)  # the crashed process's lease runs out
    assert await other.slots.renew(crashed, ttl=30) is False
    again = await hub.slots.acquire(limit=2, ttl=30)
    assert again is not None
    assert await hub.slots.renew(again, ttl=30) is True
    await hub.slots.release(first)
    assert 1 == await hub.slots.held()


# --- packaging -----------------------------------------------------------------------------


def test_import_akool_async_does_not_import_redis() -> None:
    """`import akool_async` works without loading redis."""
    code = "import sys, akool_async; print('redis' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert "False" == out.stdout.strip()


def test_import_without_redis_says_how_to_install() -> None:
    """Without the redis package, importing akool_async.redis names the extra to install."""
    code = (
        "import sys; sys.modules['redis'] = None\n"
        "try:\n    import akool_async.redis\n"
        "except ImportError as exc:\n    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert "pip install 'akool-async[redis]'" in out.stdout
