"""max_credits shared through a Redis hub: one cap for every process of a namespace.

Each "process" is an ``AkoolClient`` with its own ``RedisHub`` (its own connection) on one
namespace of a real redis-server, creating against the fake server. The shared budget is read
back through a third hub, as an operator's tool would.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from _redis_server import RedisServer, free_port
from conftest import CREATE_ARGS, FAST_POLL

from akool_async import (
    AkoolClient,
    BudgetExceededError,
    CreateOutcomeUnknownError,
    InsufficientCreditsError,
    RetryPolicy,
)
from akool_async.redis import HubUnavailableError, RedisHub
from akool_async.testing import FakeAkoolServer, FaultKind

#: AKOOL's own model at 720p, 5 s: estimated from the docs' table at 20, charged 20 by the fake.
PRICE = 20.0
#: A third-party model: estimated at the fallback 60 before any answer, charged 20 by the fake.
THIRD_PARTY_ARGS: dict[str, Any] = {**CREATE_ARGS, "model_name": "seedance-1-0-lite-i2v-250428"}
FALLBACK = 60.0


@contextlib.asynccontextmanager
async def process(
    server: FakeAkoolServer, redis_url: str, namespace: str, max_credits: float | None
) -> AsyncIterator[AkoolClient]:
    """One process's client, sharing ``namespace``'s budget; closed (and settled) on exit."""
    hub = RedisHub(redis_url, namespace=namespace, leader_ttl=5.0)
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
