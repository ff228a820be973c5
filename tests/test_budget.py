"""Tests of the max_credits budget guard (akool_async._budget) through AkoolClient creates."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from conftest import CREATE_ARGS, FAST_POLL

from akool_async import (
    AkoolClient,
    AkoolValueError,
    BudgetExceededError,
    CreateOutcomeUnknownError,
    RetryPolicy,
    ValidationError,
)
from akool_async._budget import CreditBudget, price_key
from akool_async._requests import VideoRequest
from akool_async.testing import FakeAkoolServer, FaultKind

#: AKOOL's table (and the fake) price a 5 s 720p video at 20 credits; before any answer the
#: budget estimates it from that table. A third-party model's first estimate is the fallback.
PRICE_720P_5S = 20.0
FALLBACK_5S = 60.0
SEEDANCE = "seedance-1-0-lite-i2v-250428"


def capped(server: FakeAkoolServer, max_credits: float | None) -> AkoolClient:
    """A fast client for ``server`` with a credit cap."""
    return AkoolClient(
        server.api_key,
        base_url=server.url,
        poll=FAST_POLL,
        retry=RetryPolicy.fast(),
        max_credits=max_credits,
    )


@pytest.fixture
async def client100(server: FakeAkoolServer) -> AsyncIterator[AkoolClient]:
    """A client capped at 100 credits."""
    async with capped(server, 100) as akool:
        yield akool


async def test_creates_stop_before_the_cap_is_passed(
    client100: AkoolClient, server: FakeAkoolServer
) -> None:
    """Creates go through while they fit; the one that would pass the cap is not sent."""
    await client100.image_to_video.create_batch(**CREATE_ARGS, count=1)  # 20
    await client100.image_to_video.create_batch(**CREATE_ARGS, count=3)  # 80

    with pytest.raises(BudgetExceededError) as caught:
        await client100.image_to_video.create_batch(**CREATE_ARGS, count=2)  # 120 > 100

    assert 4 == server.created_count
    assert 2 == server.call_count("create_batch")
    assert 80.0 == client100.credits_charged
    assert (100.0, 80.0, 2 * PRICE_720P_5S) == (
        caught.value.max_credits,
        caught.value.charged,
        caught.value.estimate,
    )


async def test_the_first_create_is_refused_before_it_is_sent(server: FakeAkoolServer) -> None:
    """Before any answer, the estimate is AKOOL's table (20 for 5 s of 720p): a cap of 15
    refuses the create without sending it."""
    async with capped(server, 15) as client:
        with pytest.raises(BudgetExceededError) as caught:
            await client.image_to_video.create_batch(**CREATE_ARGS)

    assert PRICE_720P_5S == caught.value.estimate
    assert (0, 0) == (server.call_count("create_batch"), server.created_count)


async def test_a_third_party_model_is_estimated_conservatively(server: FakeAkoolServer) -> None:
    """The table does not cover third-party models: their first create is estimated at the
    fallback (60 per 5 s) and refused under a cap of 50; nothing is sent."""
    async with capped(server, 50) as client:
        with pytest.raises(BudgetExceededError) as caught:
            await client.image_to_video.create_batch(**CREATE_ARGS, model_name=SEEDANCE)

    assert FALLBACK_5S == caught.value.estimate
    assert (0, 0) == (server.call_count("create_batch"), server.created_count)


async def test_an_observed_price_replaces_the_first_estimate(server: FakeAkoolServer) -> None:
    """Once AKOOL charged a third-party video (20), the next create of that kind is estimated
    at what it was charged, so it fits where the fallback would not."""
    async with capped(server, 80) as client:
        await client.image_to_video.create_batch(**CREATE_ARGS, model_name=SEEDANCE)  # est. 60
        await client.image_to_video.create_batch(**CREATE_ARGS, model_name=SEEDANCE, count=3)
        charged = client.credits_charged

    assert (2, 4 * PRICE_720P_5S) == (server.call_count("create_batch"), charged)


async def test_concurrent_creates_do_not_overshoot_the_cap(server: FakeAkoolServer) -> None:
    """Ten concurrent one-video creates under a 130-credit cap make exactly six videos."""
    async with capped(server, 130) as client:
        outcomes = await asyncio.gather(
            *(client.image_to_video.create_batch(**CREATE_ARGS) for _ in range(10)),
            return_exceptions=True,
        )
        charged = client.credits_charged

    refused = [o for o in outcomes if isinstance(o, BudgetExceededError)]
    assert (6, 4) == (server.created_count, len(refused))
    assert 6 * PRICE_720P_5S == charged


async def test_an_unknown_outcome_is_counted_as_charged(server: FakeAkoolServer) -> None:
    """A create whose answer was lost costs its estimate: the budget never hands it out twice."""
    server.inject("create_batch", FaultKind.RESET_AFTER)
    async with capped(server, 1000) as client:
        with pytest.raises(CreateOutcomeUnknownError):
            await client.image_to_video.create_batch(**CREATE_ARGS, count=2)
        charged = client.credits_charged

    assert 2 * PRICE_720P_5S == charged


async def test_cancelling_a_create_costs_only_if_it_was_sent(server: FakeAkoolServer) -> None:
    """A create cancelled mid-request is charged its estimate; one still queued costs nothing."""
    server.create_latency = 0.3
    async with AkoolClient(
        server.api_key, base_url=server.url, max_concurrent_creates=1, max_credits=1000
    ) as client:
        in_flight = asyncio.create_task(client.image_to_video.create_batch(**CREATE_ARGS))
        queued = asyncio.create_task(client.image_to_video.create_batch(**CREATE_ARGS))
        await server.wait_for_calls("create_batch")
        for task in (queued, in_flight):
            task.cancel()
        await asyncio.gather(queued, in_flight, return_exceptions=True)
        charged = client.credits_charged

    assert 1 == server.call_count("create_batch")
    assert PRICE_720P_5S == charged


async def test_a_refused_create_costs_nothing(server: FakeAkoolServer) -> None:
    """A create AKOOL refused (code 1003) releases its reservation."""
    async with capped(server, 30) as client:
        with pytest.raises(ValidationError):  # estimated at 30: it fits, AKOOL refuses it
            await client.image_to_video.create_batch(**{**CREATE_ARGS, "resolution": "4k"})
        await client.image_to_video.create_batch(**CREATE_ARGS)  # fits the 30 again
        charged = client.credits_charged

    assert PRICE_720P_5S == charged


async def test_the_single_create_is_guarded_too(server: FakeAkoolServer) -> None:
    """The older single-create endpoint reserves and is refused past the cap."""
    async with capped(server, 50) as client:
        await client.image_to_video.create(
            image_url=CREATE_ARGS["image_url"],
            prompt="wave",
            negative_prompt="",
            audio_type=3,
            resolution="720p",
            video_length=5,
        )
        with pytest.raises(BudgetExceededError):
            await client.image_to_video.create(
                image_url=CREATE_ARGS["image_url"],
                prompt="wave",
                negative_prompt="",
                audio_type=3,
                resolution="720p",
                video_length=10,
            )
        charged = client.credits_charged

    assert (1, PRICE_720P_5S) == (server.call_count("create"), charged)


async def test_credits_are_counted_without_a_cap(client: AkoolClient) -> None:
    """credits_charged sums deduction_credit even when max_credits is None."""
    await client.image_to_video.create_batch(**CREATE_ARGS, count=3)

    assert (None, 3 * PRICE_720P_5S) == (client.max_credits, client.credits_charged)


def test_a_negative_cap_is_rejected() -> None:
    """max_credits must be a number >= 0 or None."""
    with pytest.raises(AkoolValueError):
        AkoolClient("k", base_url="http://127.0.0.1:9", max_credits=-1)


async def test_replacing_audio_is_charged_and_capped(server: FakeAkoolServer) -> None:
    """replace_audio counts in credits_charged, and is refused when its estimate (the
    table's 5 credits per 5 s, for an assumed 10 s video) does not fit under max_credits."""
    async with capped(server, 30) as client:
        (handle,) = (await client.image_to_video.create_batch(**CREATE_ARGS)).handles
        video = await handle
        await client.image_to_video.replace_audio(
            video_id=video.id, audio_url="https://audio.example/a.mp3"
        )
        charged = client.credits_charged
        with pytest.raises(BudgetExceededError):
            await client.image_to_video.replace_audio(
                video_id=video.id, audio_url="https://audio.example/a.mp3", audio_type=1
            )

    # New audio for a 5 s video: 5 credits (the table); the second (est. 10) would pass 30.
    assert (1, PRICE_720P_5S + 5.0) == (server.call_count("update_audio"), charged)


async def test_a_local_error_before_the_request_is_written_costs_nothing() -> None:
    """A TypeError or ValueError from building or encoding a create costs nothing; a
    cancellation mid-request costs the estimate."""
    budget = CreditBudget(None)
    key = price_key(VideoRequest(**CREATE_ARGS))

    async def sent_then(error: BaseException) -> None:
        async with budget.spend(key, 1) as spend:
            spend.sent = True  # the create pipeline marks it right before the write
            raise error

    for local in (TypeError("Object of type object is not JSON serializable"), ValueError("x")):
        with pytest.raises(type(local)):
            await sent_then(local)
    local_charge = budget.charged
    with pytest.raises(asyncio.CancelledError):
        await sent_then(asyncio.CancelledError())

    assert (0.0, PRICE_720P_5S, 0.0) == (local_charge, budget.charged, budget.reserved)
