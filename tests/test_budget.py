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

#: The fake charges 30 credits per 5 s of 720p video; the fallback estimate is 60.
PRICE_720P_5S = 30.0
FALLBACK_5S = 60.0


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
    await client100.image_to_video.create_batch(**CREATE_ARGS, count=1)  # 30
    await client100.image_to_video.create_batch(**CREATE_ARGS, count=2)  # 90

    with pytest.raises(BudgetExceededError) as caught:
        await client100.image_to_video.create_batch(**CREATE_ARGS, count=1)  # 120 > 100

    assert 3 == server.created_count
    assert 2 == server.call_count("create_batch")
    assert 90.0 == client100.credits_charged
    assert (100.0, 90.0, PRICE_720P_5S) == (
        caught.value.max_credits,
        caught.value.charged,
        caught.value.estimate,
    )


async def test_the_first_create_of_a_kind_is_estimated_conservatively(
    server: FakeAkoolServer,
) -> None:
    """Before any answer, a 5 s video is assumed to cost 60 credits, so a cap of 50 refuses."""
    async with capped(server, 50) as client:
        with pytest.raises(BudgetExceededError) as caught:
            await client.image_to_video.create_batch(**CREATE_ARGS)

    assert FALLBACK_5S == caught.value.estimate
    assert 0 == server.call_count("create_batch")


async def test_concurrent_creates_do_not_overshoot_the_cap(server: FakeAkoolServer) -> None:
    """Ten concurrent one-video creates under a 200-credit cap make exactly six videos."""
    async with capped(server, 200) as client:
        outcomes = await asyncio.gather(
            *(client.image_to_video.create_batch(**CREATE_ARGS) for _ in range(10)),
            return_exceptions=True,
        )
        charged = client.credits_charged

    refused = [o for o in outcomes if isinstance(o, BudgetExceededError)]
    assert (6, 4) == (server.created_count, len(refused))
    assert 180.0 == charged


async def test_an_unknown_outcome_is_counted_as_charged(server: FakeAkoolServer) -> None:
    """A create whose answer was lost costs its estimate: the budget never hands it out twice."""
    server.inject("create_batch", FaultKind.RESET_AFTER)
    async with capped(server, 1000) as client:
        with pytest.raises(CreateOutcomeUnknownError):
            await client.image_to_video.create_batch(**CREATE_ARGS, count=2)
        charged = client.credits_charged

    assert 2 * FALLBACK_5S == charged


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
    assert FALLBACK_5S == charged


async def test_a_refused_create_costs_nothing(server: FakeAkoolServer) -> None:
    """A create AKOOL refused (code 1003) releases its reservation."""
    async with capped(server, 60) as client:
        with pytest.raises(ValidationError):
            await client.image_to_video.create_batch(**{**CREATE_ARGS, "resolution": "4k"})
        await client.image_to_video.create_batch(**CREATE_ARGS)  # fits the 60 again
        charged = client.credits_charged

    assert PRICE_720P_5S == charged


async def test_the_single_create_is_guarded_too(server: FakeAkoolServer) -> None:
    """The older single-create endpoint reserves and is refused past the cap."""
    async with capped(server, 70) as client:
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
    """replace_audio counts in credits_charged, and is refused when its estimate (a 5 s
    video's, before any price is known) does not fit under max_credits."""
    async with capped(server, 100) as client:
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

    # The fake charges 1 credit per second of video for new audio.
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

    assert (0.0, FALLBACK_5S, 0.0) == (local_charge, budget.charged, budget.reserved)
