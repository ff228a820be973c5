"""max_credits shared through a Redis hub: one cap for every process of a namespace.

Each "process" is an ``AkoolClient`` with its own ``RedisHub`` (its own connection) on one
namespace of a real redis-server, creating against the fake server. The shared budget is read
back through a third hub, as an operator's tool would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from _redis_server import RedisServer, free_port
from conftest import CREATE_ARGS, FAST_POLL

from akool_async import (
    AkoolClient,
    BudgetExceededError,
    CreateOutcomeUnknownError,
    InsufficientCreditsError,
    RetryPolicy,
)
from akool_async._client import client_core
from akool_async.redis import HubUnavailableError, RedisHub
from akool_async.testing import FakeAkoolServer, FaultKind

#: AKOOL's own model at 720p, 5 s: estimated from the docs' table at 20, charged 20 by the fake.
PRICE = 20.0
#: A third-party model: estimated at the fallback 60 before any answer, charged 20 by the fake.
THIRD_PARTY_ARGS: dict[str, Any] = {**CREATE_ARGS, "model_name": "seedance-1-0-lite-i2v-250428"}
FALLBACK = 60.0
#: A single (older endpoint) create: estimated from the docs' table at 20, charged 20.
SINGLE_ARGS: dict[str, Any] = {
    **CREATE_ARGS,
    "prompt": "the cat runs",
    "negative_prompt": "",
    "audio_type": 3,
}


@contextlib.asynccontextmanager
async def process(
    server: FakeAkoolServer,
    redis_url: str,
    namespace: str,
    max_credits: float | None,
    **hub_options: Any,
) -> AsyncIterator[AkoolClient]:
    """One process's client, sharing ``namespace``'s budget; closed (and settled) on exit."""
    hub = RedisHub(redis_url, namespace=namespace, **{"leader_ttl": 5.0, **hub_options})
    async with AkoolClient(
        server.api_key,
        base_url=server.url,
        poll=FAST_POLL,
        retry=RetryPolicy.fast(),
        max_credits=max_credits,
        hub=hub,
    ) as client:
        yield client


async def snapshot(redis_url: str, namespace: str) -> tuple[float, float]:
    """(charged, reserved) of the namespace's shared budget."""
    async with RedisHub(redis_url, namespace=namespace) as hub:
        budget = await hub.budget.snapshot()
    return budget.charged, budget.reserved


async def test_two_processes_never_pass_the_cap_together(
    server: FakeAkoolServer, redis_url: str, redis_namespace: str
) -> None:
    """Ten creates from two processes against a 60-credit cap: only three are ever sent (the
    cap counts both processes' holds), the rest are refused once those three settled."""
    with server.holding("create_batch"):
        async with (
            process(server, redis_url, redis_namespace, 3 * PRICE) as one,
            process(server, redis_url, redis_namespace, 3 * PRICE) as two,
        ):
            creates = [
                asyncio.create_task(client.image_to_video.create_batch(**CREATE_ARGS))
                for client in (one, two)
                for _ in range(5)
            ]
            # Three creates hold the whole cap while their answers are held.
            await server.wait_for_calls("create_batch", 3)
            server.release("create_batch")
            results = await asyncio.gather(*creates, return_exceptions=True)
            charged = one.credits_charged + two.credits_charged

    refused = [r for r in results if isinstance(r, BudgetExceededError)]
    assert (3, 7, 3) == (server.call_count("create_batch"), len(refused), server.created_count)
    assert 3 * PRICE == charged
    assert (3 * PRICE, 0.0) == await snapshot(redis_url, redis_namespace)
    assert {3 * PRICE} == {error.max_credits for error in refused}


async def test_a_create_refused_by_akool_releases_its_hold(
    server: FakeAkoolServer, redis_url: str, redis_namespace: str
) -> None:
    """A create AKOOL refuses costs nothing: its hold is given back, so a create of the whole
    cap fits afterwards."""
    async with process(server, redis_url, redis_namespace, PRICE) as client:
        server.credit = 0
        with pytest.raises(InsufficientCreditsError):
            await client.image_to_video.create_batch(**CREATE_ARGS)
        server.credit = 1000
        await client.image_to_video.create_batch(**CREATE_ARGS)  # estimate 20 == cap
        charged = client.credits_charged

    assert (PRICE, 1) == (charged, server.created_count)
    assert (PRICE, 0.0) == await snapshot(redis_url, redis_namespace)


async def test_a_create_with_unknown_outcome_keeps_its_estimate_charged(
    server: FakeAkoolServer, redis_url: str, redis_namespace: str
) -> None:
    """A create whose answer was lost may have been billed: the shared budget keeps its
    estimate charged, and another process's create no longer fits."""
    server.inject("create_batch", FaultKind.RESET_AFTER)
    async with (
        process(server, redis_url, redis_namespace, 100) as one,
        process(server, redis_url, redis_namespace, 100) as two,
    ):
        with pytest.raises(CreateOutcomeUnknownError):
            await one.image_to_video.create_batch(**THIRD_PARTY_ARGS)
        await one.aclose()  # waits until the create has settled in Redis
        assert (FALLBACK, 0.0) == await snapshot(redis_url, redis_namespace)
        with pytest.raises(BudgetExceededError) as caught:
            await two.image_to_video.create_batch(**THIRD_PARTY_ARGS)

    error = caught.value
    assert (100.0, FALLBACK, 0.0, FALLBACK) == (
        error.max_credits,
        error.charged,
        error.reserved,
        error.estimate,
    )
    assert str(error).endswith("shared by every process (60 charged so far); not sent")
    assert (1, 1) == (server.call_count("create_batch"), server.created_count)


async def test_a_create_settles_at_what_akool_charged(
    server: FakeAkoolServer, redis_url: str, redis_namespace: str
) -> None:
    """A create holds its estimate (60) and settles at its deduction_credit (20): the rest of
    the cap is free again for another process."""
    async with (
        process(server, redis_url, redis_namespace, 100) as one,
        process(server, redis_url, redis_namespace, 100) as two,
    ):
        await one.image_to_video.create_batch(**THIRD_PARTY_ARGS)
        await one.aclose()  # waits until the create has settled in Redis
        assert (PRICE, 0.0) == await snapshot(redis_url, redis_namespace)
        await two.image_to_video.create_batch(**THIRD_PARTY_ARGS)  # 20 + 60 fits under 100

    assert (2, (2 * PRICE, 0.0)) == (
        server.created_count,
        await snapshot(redis_url, redis_namespace),
    )


@pytest.mark.parametrize("max_credits", [100.0, 0.0])
async def test_unreachable_redis_with_a_cap_sends_nothing(
    server: FakeAkoolServer, max_credits: float
) -> None:
    """With max_credits set, a create the shared budget cannot hold is not sent: it raises
    HubUnavailableError (never an unbudgeted create)."""
    hub = RedisHub(f"redis://127.0.0.1:{free_port()}/0", namespace="away", timeout=0.5)
    async with AkoolClient(
        server.api_key,
        base_url=server.url,
        retry=RetryPolicy.fast(),
        max_credits=max_credits,
        hub=hub,
    ) as client:
        with pytest.raises(HubUnavailableError):
            await client.image_to_video.create_batch(**CREATE_ARGS)
        charged = client.credits_charged

    assert (0, 0.0) == (server.call_count("create_batch"), charged)


async def test_unreachable_redis_without_a_cap_still_creates(server: FakeAkoolServer) -> None:
    """Without max_credits the budget needs no Redis: the create goes out (the process works
    alone), which is what the capped case above must not do."""
    hub = RedisHub(f"redis://127.0.0.1:{free_port()}/0", namespace="away", timeout=0.5)
    async with AkoolClient(
        server.api_key, base_url=server.url, retry=RetryPolicy.fast(), hub=hub
    ) as client:
        await client.image_to_video.create_batch(**CREATE_ARGS)

    assert 1 == server.call_count("create_batch")


async def test_a_settlement_redis_missed_is_logged_with_its_cost(
    server: FakeAkoolServer,
    make_redis_server: Callable[..., RedisServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Redis gone between a create's hold and its answer: the create still succeeds, and the
    settlement that could not be written is logged with what the create cost."""
    redis_server = make_redis_server()
    with server.holding("create_batch"):
        async with process(server, redis_server.url, "lost", 100) as client:
            create = asyncio.create_task(client.image_to_video.create_batch(**CREATE_ARGS))
            await server.wait_for_calls("create_batch")
            redis_server.kill()
            server.release("create_batch")
            await create

    settle = [r.getMessage() for r in caplog.records if "could not settle" in r.getMessage()]
    assert 1 == len(settle), settle
    assert re.fullmatch(
        r"could not settle 20 credits in the shared budget: Redis hub .* failed: .+", settle[0]
    ), settle[0]


async def budget_becomes(
    redis_url: str, namespace: str, expected: tuple[float, float]
) -> tuple[float, float]:
    """The shared budget once it reads ``expected`` (settlements run in tasks), else its last
    reading after a few seconds."""
    reading = await snapshot(redis_url, namespace)
    for _ in range(250):
        if reading == expected:
            break
        await asyncio.sleep(0.02)
        reading = await snapshot(redis_url, namespace)
    return reading


async def pause_writes(admin: aioredis.Redis) -> None:
    """Make redis-server hold every write (scripts included) until ``client_unpause``; reads
    still answer."""
    await admin.execute_command("CLIENT", "PAUSE", "60000", "WRITE")


async def wait_for_a_held_script(admin: aioredis.Redis) -> None:
    """Return once a client's script (a reservation) waits in the paused server."""
    for _ in range(500):
        clients = (await admin.execute_command("CLIENT", "LIST")).decode().splitlines()
        if any(" flags=b " in c and " cmd=evalsha " in c for c in clients):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("no command reached the paused redis-server")


async def cancel_a_create_held_in_redis(client: AkoolClient, admin: aioredis.Redis) -> None:
    """Start a create, wait until its reservation waits in the paused server, cancel it."""
    create = asyncio.create_task(client.image_to_video.create_batch(**CREATE_ARGS))
    await wait_for_a_held_script(admin)
    create.cancel()
    with pytest.raises(asyncio.CancelledError):
        await create


async def test_a_create_cancelled_while_redis_takes_its_hold_gives_the_hold_back(
    server: FakeAkoolServer, make_redis_server: Callable[..., RedisServer]
) -> None:
    """A create cancelled while its reservation waits in Redis: the hold Redis takes once it
    goes on is given back (nothing is charged for it), and nothing is sent to AKOOL."""
    redis_server = make_redis_server()
    admin = aioredis.Redis.from_url(redis_server.url)
    # Long leases: no heartbeat is a write that waits in the paused server instead.
    options = {"leader_ttl": 60.0, "heartbeat_ttl": 60.0}
    try:
        async with process(server, redis_server.url, "cancel", 100, **options) as client:
            # Joins the cluster and loads the scripts, so the next write is the reservation.
            await client.image_to_video.create_batch(**CREATE_ARGS)
            assert (PRICE, 0.0) == await budget_becomes(redis_server.url, "cancel", (PRICE, 0.0))
            await pause_writes(admin)
            try:
                await cancel_a_create_held_in_redis(client, admin)
            finally:
                await admin.client_unpause()
            budget = await budget_becomes(redis_server.url, "cancel", (PRICE, 0.0))
    finally:
        await admin.aclose()

    assert ((PRICE, 0.0), 1) == (budget, server.call_count("create_batch"))


async def test_a_cancelled_create_whose_reservation_fails_ends_quietly(
    server: FakeAkoolServer,
    make_redis_server: Callable[..., RedisServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A create cancelled while its reservation waits in Redis, and Redis then refuses that
    reservation (out of memory): there is no hold to give back, the failure ends quietly (no
    error escapes into the event loop), and nothing is sent or charged."""
    redis_server = make_redis_server()
    admin = aioredis.Redis.from_url(redis_server.url)
    hub = RedisHub(redis_server.url, namespace="refused", leader_ttl=60.0, heartbeat_ttl=60.0)
    # Reads still answer out of memory: the one failing command is the reservation's write.
    reservation_failed = asyncio.Event()
    hub.watch_availability(lambda available: None if available else reservation_failed.set())
    try:
        async with AkoolClient(
            server.api_key,
            base_url=server.url,
            poll=FAST_POLL,
            retry=RetryPolicy.fast(),
            max_credits=100,
            hub=hub,
        ) as client:
            # Joins the cluster and loads the scripts, so the next write is the reservation.
            await client.image_to_video.create_batch(**CREATE_ARGS)
            assert (PRICE, 0.0) == await budget_becomes(redis_server.url, "refused", (PRICE, 0.0))
            await pause_writes(admin)
            try:
                await cancel_a_create_held_in_redis(client, admin)
                await admin.config_set("maxmemory", 1)
            finally:
                await admin.client_unpause()
            try:
                async with asyncio.timeout(30):
                    await reservation_failed.wait()
            finally:
                await admin.config_set("maxmemory", 0)
            budget = await snapshot(redis_server.url, "refused")
    finally:
        await admin.aclose()

    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert ([], (PRICE, 0.0), 1) == (errors, budget, server.call_count("create_batch"))


@contextlib.asynccontextmanager
async def a_missed_settlement(
    server: FakeAkoolServer, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[AkoolClient]:
    """A client (cap 70) whose first create (held at 60, charged 20) could not settle because
    Redis held its writes past the hub's timeout; Redis answers writes again on entry."""
    admin = aioredis.Redis.from_url(redis_server.url)
    options = {"leader_ttl": 60.0, "heartbeat_ttl": 60.0, "timeout": 1.0, "stream_block": 0.1}
    try:
        async with (
            # Opened before the pause: opening a hub writes, reading the budget does not.
            RedisHub(redis_server.url, namespace="missed") as observer,
            process(server, redis_server.url, "missed", 70, **options) as client,
        ):
            # A create that is refused waits on the open hold at most this long.
            client_core(client).budget.stale_after = 5.0
            with server.holding("create_batch"):
                create = asyncio.create_task(client.image_to_video.create_batch(**THIRD_PARTY_ARGS))
                await server.wait_for_calls("create_batch")
                await pause_writes(admin)
            try:
                await create
                for _ in range(500):
                    if any("could not settle" in r.getMessage() for r in caplog.records):
                        break
                    await asyncio.sleep(0.02)
                # The hold stays counted while the settlement is missing.
                budget = await observer.budget.snapshot()
                assert (0.0, FALLBACK) == (budget.charged, budget.reserved)
            finally:
                await admin.client_unpause()
            yield client
    finally:
        await admin.aclose()


async def test_a_missed_settlement_is_retried_at_the_next_create(
    server: FakeAkoolServer,
    make_redis_server: Callable[..., RedisServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The next create settles what Redis missed first: without that the 60 still held would
    leave no room for it (20 now that AKOOL's price is known) under the cap of 70."""
    redis_server = make_redis_server()
    async with a_missed_settlement(server, redis_server, caplog) as client:
        await client.image_to_video.create_batch(**THIRD_PARTY_ARGS)

    assert (2, (2 * PRICE, 0.0)) == (
        server.created_count,
        await snapshot(redis_server.url, "missed"),
    )


async def test_a_missed_settlement_is_retried_at_close(
    server: FakeAkoolServer,
    make_redis_server: Callable[..., RedisServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Closing the client settles what Redis missed: the real charge, no open hold."""
    redis_server = make_redis_server()
    async with a_missed_settlement(server, redis_server, caplog):
        pass

    assert (PRICE, 0.0) == await snapshot(redis_server.url, "missed")


async def test_a_hold_that_never_settles_refuses_a_create_after_stale_after(
    server: FakeAkoolServer, redis_url: str, redis_namespace: str
) -> None:
    """Another process's hold that never settles (it crashed): a create that does not fit
    waits ``stale_after`` for it to move, then is refused instead of waiting forever."""
    async with RedisHub(redis_url, namespace=redis_namespace) as crashed:
        assert await crashed.budget.reserve(90, 100) is not None
        async with process(server, redis_url, redis_namespace, 100) as client:
            client_core(client).budget.stale_after = 0.3
            started = asyncio.get_running_loop().time()
            with pytest.raises(BudgetExceededError) as caught:
                await client.image_to_video.create_batch(**CREATE_ARGS)
            waited = asyncio.get_running_loop().time() - started

    error = caught.value
    assert (100.0, 0.0, 90.0, PRICE) == (
        error.max_credits,
        error.charged,
        error.reserved,
        error.estimate,
    )
    assert waited >= 0.3
    assert 0 == server.call_count("create_batch")


async def test_holds_that_keep_settling_are_waited_for_past_stale_after(
    server: FakeAkoolServer, redis_url: str, redis_namespace: str
) -> None:
    """Holds elsewhere that settle one by one, each within ``stale_after`` of the last: the
    create waits through them all (longer than ``stale_after``) and goes out once it fits."""
    async with RedisHub(redis_url, namespace=redis_namespace) as other:
        first = await other.budget.reserve(30, 100)
        second = await other.budget.reserve(30, 100)
        assert await other.budget.reserve(40, 100) is not None  # never settles
        assert first is not None
        assert second is not None
        async with process(server, redis_url, redis_namespace, 100) as client:
            client_core(client).budget.stale_after = 2.0
            create = asyncio.create_task(client.image_to_video.create_batch(**CREATE_ARGS))
            await asyncio.sleep(1.0)
            assert await other.budget.settle(first, 30)  # 30 + 40 + 20 still too much
            await asyncio.sleep(1.0)
            assert await other.budget.release(second)  # 30 + 40 + 20 fits
            await create

    assert (1, (30 + PRICE, 40.0)) == (
        server.created_count,
        await snapshot(redis_url, redis_namespace),
    )


async def test_a_process_with_holds_of_its_own_waits_past_stale_after(
    server: FakeAkoolServer, redis_url: str, redis_namespace: str
) -> None:
    """Holds that do not move are not stale while this process holds one of them (its create
    is in flight and will settle): the next create waits for it, then fits."""
    with server.holding("create_batch"):
        async with process(server, redis_url, redis_namespace, 100) as client:
            client_core(client).budget.stale_after = 0.2
            first = asyncio.create_task(client.image_to_video.create_batch(**THIRD_PARTY_ARGS))
            await server.wait_for_calls("create_batch")
            second = asyncio.create_task(client.image_to_video.create_batch(**THIRD_PARTY_ARGS))
            await asyncio.sleep(0.6)  # well past stale_after: 60 + 60 does not fit meanwhile
            server.release("create_batch")
            await asyncio.gather(first, second)

    assert (2, (2 * PRICE, 0.0)) == (
        server.created_count,
        await snapshot(redis_url, redis_namespace),
    )


async def test_a_process_waits_for_its_own_hold_after_another_of_its_creates_settled(
    server: FakeAkoolServer, redis_url: str, redis_namespace: str
) -> None:
    """Two creates of one process in flight (holding 60 and 20 of a cap of 80), the second
    answered first: the first still holds its 60 here, so a create that does not fit waits
    for it (with ``stale_after`` 0, a hold of nobody's would be refused at once), then fits."""
    with server.holding("create_batch"), server.holding("create"):
        async with process(server, redis_url, redis_namespace, FALLBACK + PRICE) as client:
            client_core(client).budget.stale_after = 0.0
            first = asyncio.create_task(client.image_to_video.create_batch(**THIRD_PARTY_ARGS))
            await server.wait_for_calls("create_batch")
            second = asyncio.create_task(client.image_to_video.create(**SINGLE_ARGS))
            await server.wait_for_calls("create")
            server.release("create")
            await second  # 20 charged, 60 held by the first: 20 more does not fit
            late = asyncio.create_task(client.image_to_video.create_batch(**CREATE_ARGS))
            # Many looks at the unmoved holds, each past stale_after: the late create waits.
            await asyncio.wait({late}, timeout=1.0)
            server.release("create_batch")
            await asyncio.gather(first, late)

    assert (3, (3 * PRICE, 0.0)) == (
        server.created_count,
        await snapshot(redis_url, redis_namespace),
    )
