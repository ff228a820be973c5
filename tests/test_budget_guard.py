"""max_credits edge cases that mutation testing found unpinned (issue 15).

Every test goes through ``AkoolClient`` and the fake server. The estimate a create was given
is read from the ``BudgetExceededError`` it raises, so a cap is chosen to refuse exactly the
create under test. Where a test needs an estimate that differs from what the fake charges, it
uses a third-party model: the SDK estimates those at the fallback price (60 per 5 s) while the
fake charges the docs' table (20 per 5 s at 720p).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from conftest import CREATE_ARGS, FAST_POLL, Proxy

from akool_async import (
    AkoolClient,
    AkoolValueError,
    BudgetExceededError,
    CreateOutcomeUnknownError,
    RetryPolicy,
    VideoRequest,
)
from akool_async.testing import FakeAkoolServer

#: The docs' table (and the fake): 20 credits per 5 s of 720p, 25 for 1080p; an estimate for
#: a third-party model before any answer: 60 per 5 s (x2 with generate_audio).
PRICE_720P_5S = 20.0
PRICE_1080P_5S = 25.0
FALLBACK_5S = 60.0
THIRD_PARTY = "seedance-1-0-lite-i2v-250428"  # the fake's third-party model (generate_audio x2)
OTHER_THIRD_PARTY = "kling-v2-1-i2v"  # never sent: only its estimate is read
#: A 5 s 720p create of a third-party model: estimated 60, charged 20 by the fake.
THIRD_PARTY_ARGS: dict[str, Any] = {**CREATE_ARGS, "model_name": THIRD_PARTY}
VIDEO_ID = "0123456789abcdef01234567"
SINGLE_ARGS: dict[str, Any] = {
    "image_url": CREATE_ARGS["image_url"],
    "prompt": "wave",
    "negative_prompt": "",
    "audio_type": 3,
    "resolution": "720p",
    "video_length": 5,
}


def capped(url: str, api_key: str, max_credits: Any) -> AkoolClient:
    """A fast client for the server at ``url`` with a credit cap."""
    return AkoolClient(
        api_key, base_url=url, poll=FAST_POLL, retry=RetryPolicy.fast(), max_credits=max_credits
    )


@pytest.fixture
async def broke(server: FakeAkoolServer) -> AsyncIterator[AkoolClient]:
    """A client with max_credits=0: every create is refused, and says what it estimated."""
    async with capped(server.url, server.api_key, 0) as client:
        yield client


def set_credits(*credits: float | None) -> Any:
    """A proxy mangle giving the answer's videos these deduction_credit values (None: absent)."""

    def mangle(envelope: dict[str, Any]) -> None:
        items = envelope["data"]["successList"]
        for item, credit in zip(items, credits, strict=True):
            if credit is None:
                del item["deduction_credit"]
            else:
                item["deduction_credit"] = credit

    return mangle


@pytest.mark.parametrize("bad", [True, False, "10", [10], float("nan"), -0.5])
def test_max_credits_must_be_a_number_at_least_zero(bad: object) -> None:
    """A bool is no amount (True is not 1 credit), a string is refused as a value error,
    and NaN, which compares False with everything, is no cap."""
    with pytest.raises(AkoolValueError, match="max_credits"):
        AkoolClient("k", base_url="http://127.0.0.1:9", max_credits=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(("cap", "expected"), [(0, 0.0), (0.5, 0.5), (10, 10.0)])
def test_small_caps_are_accepted(cap: float, expected: float) -> None:
    """Zero and fractions are valid caps (zero refuses every create)."""
    client = AkoolClient("k", base_url="http://127.0.0.1:9", max_credits=cap)
    assert expected == client.max_credits
    assert isinstance(client.max_credits, float)


async def test_a_refusal_reports_the_cap_and_sends_nothing(
    broke: AkoolClient, server: FakeAkoolServer
) -> None:
    """The error names the cap, the charge so far, the estimate, and nothing reserved."""
    with pytest.raises(BudgetExceededError) as caught:
        await broke.image_to_video.create_batch(**CREATE_ARGS, count=3)

    error = caught.value
    assert (0.0, 0.0, 0.0, 3 * PRICE_720P_5S) == (
        error.max_credits,
        error.charged,
        error.reserved,
        error.estimate,
    )
    assert "max_credits=0" in str(error)
    assert "3 more video(s)" in str(error)
    assert 0 == len(server.requests)


async def refused_estimate(create: Any) -> float:
    """The estimate of a create that the cap refuses."""
    with pytest.raises(BudgetExceededError) as caught:
        await create
    return caught.value.estimate


async def test_estimates_follow_model_resolution_length_and_audio(broke: AkoolClient) -> None:
    """Before any price is known: the docs' table per started 5 s for AKOOL's own models, the
    fallback (60 per 5 s, x2 with generate_audio) for third-party ones, for the batch, the
    single-create (AI audio free, premium unpriced) and the replace-audio endpoints."""
    i2v = broke.image_to_video
    single = {k: v for k, v in SINGLE_ARGS.items() if k != "video_length"}
    audio_url = "https://audio.example/a.mp3"
    estimates = [
        await refused_estimate(i2v.create_batch(**{**CREATE_ARGS, "video_length": 10})),
        await refused_estimate(i2v.create_batch(**{**CREATE_ARGS, "resolution": "1080p"})),
        await refused_estimate(i2v.create_batch(**THIRD_PARTY_ARGS)),
        await refused_estimate(i2v.create_batch(**THIRD_PARTY_ARGS, generate_audio=True)),
        await refused_estimate(i2v.create(**single, video_length=1)),
        await refused_estimate(i2v.create(**single, video_length=10)),
        await refused_estimate(i2v.create(**{**single, "audio_type": 1, "video_length": 5})),
        await refused_estimate(
            i2v.create(**{**single, "audio_type": 2, "audio_url": audio_url, "video_length": 5})
        ),
        await refused_estimate(i2v.create(**single, video_length=5, is_premium_model=True)),
        await refused_estimate(i2v.replace_audio(video_id=VIDEO_ID, audio_url=audio_url)),
    ]

    assert [40.0, 25.0, 60.0, 120.0, 20.0, 40.0, 20.0, 20.0, 60.0, 10.0] == estimates


async def test_a_create_landing_exactly_on_the_cap_is_sent(server: FakeAkoolServer) -> None:
    """charged + estimate == max_credits fits; one credit more does not."""
    async with capped(server.url, server.api_key, FALLBACK_5S) as client:
        i2v = client.image_to_video
        await i2v.create_batch(**THIRD_PARTY_ARGS)  # estimate 60 == cap; costs 20
        await i2v.create_batch(**THIRD_PARTY_ARGS)  # 20 + 20 < cap
        await i2v.create_batch(**THIRD_PARTY_ARGS)  # 40 + 20 == cap
        with pytest.raises(BudgetExceededError):
            await i2v.create_batch(**THIRD_PARTY_ARGS)
        charged = client.credits_charged

    assert (3, 3 * PRICE_720P_5S) == (server.created_count, charged)


async def test_videos_without_deduction_credit_are_charged_their_estimate(
    server: FakeAkoolServer, proxy: Proxy
) -> None:
    """An answer that omits deduction_credit never makes a video free: each is charged the
    fallback before any price is known, the highest price known before the answer after."""
    async with capped(proxy.url, server.api_key, None) as client:
        proxy.mangle = set_credits(None, None)
        await client.image_to_video.create_batch(**THIRD_PARTY_ARGS, count=2)
        unpriced = client.credits_charged
        proxy.mangle = None
        await client.image_to_video.create_batch(**THIRD_PARTY_ARGS)  # learns 20
        proxy.mangle = set_credits(None, 25.0, None)
        await client.image_to_video.create_batch(**THIRD_PARTY_ARGS, count=3)
        total = client.credits_charged

    assert 2 * FALLBACK_5S == unpriced
    assert unpriced + PRICE_720P_5S + 25.0 + 2 * PRICE_720P_5S == total


async def test_negative_or_nan_deduction_credit_is_no_price(
    server: FakeAkoolServer, proxy: Proxy
) -> None:
    """A negative or NaN deduction_credit neither refunds credits nor lowers the estimate:
    the video is charged as if it had none."""
    async with capped(proxy.url, server.api_key, 200) as client:
        proxy.mangle = set_credits(-30.0, float("nan"))
        await client.image_to_video.create_batch(**THIRD_PARTY_ARGS, count=2)
        charged = client.credits_charged
        proxy.mangle = None
        # 120 charged: the next 5 s video is still estimated at 60, so two do not fit.
        estimate = await refused_estimate(
            client.image_to_video.create_batch(**THIRD_PARTY_ARGS, count=2)
        )

    assert (2 * FALLBACK_5S, 2 * FALLBACK_5S) == (charged, estimate)


async def test_free_and_fractional_videos_cost_what_akool_says(
    server: FakeAkoolServer, proxy: Proxy
) -> None:
    """0 and 0.5 credits are real prices, charged as given (only absent, negative or NaN
    ones fall back to the estimate)."""
    async with capped(proxy.url, server.api_key, None) as client:
        proxy.mangle = set_credits(0.0, 0.5)
        await client.image_to_video.create_batch(**CREATE_ARGS, count=2)
        charged = client.credits_charged

    assert 0.5 == charged


async def test_the_estimate_is_the_highest_price_seen(
    server: FakeAkoolServer, proxy: Proxy
) -> None:
    """One cheaper answer does not lower later estimates."""
    async with capped(proxy.url, server.api_key, 105) as client:
        proxy.mangle = set_credits(40.0)
        await client.image_to_video.create_batch(**CREATE_ARGS)  # estimate 20 (the table), costs 40
        proxy.mangle = set_credits(30.0)
        await client.image_to_video.create_batch(**CREATE_ARGS)  # estimate 40, costs 30
        # 70 charged: at 40 the next one passes 105; at the latest price (30) it would fit.
        estimate = await refused_estimate(client.image_to_video.create_batch(**CREATE_ARGS))

    assert (40.0, 2) == (estimate, server.created_count)


async def test_a_known_price_is_kept_to_its_model_and_audio(server: FakeAkoolServer) -> None:
    """A price learned for one model, or without audio, does not estimate another model or
    a create with generate_audio (which costs more)."""
    async with capped(server.url, server.api_key, 70) as client:
        i2v = client.image_to_video
        await i2v.create_batch(**THIRD_PARTY_ARGS)  # learns 20; 20 charged
        other_model = await refused_estimate(
            i2v.create_batch(**CREATE_ARGS, model_name=OTHER_THIRD_PARTY)
        )
        with_audio = await refused_estimate(
            i2v.create_batch(**THIRD_PARTY_ARGS, generate_audio=True)
        )
        await i2v.create_batch(**THIRD_PARTY_ARGS)  # 20 more fits under 70

    assert (FALLBACK_5S, 2 * FALLBACK_5S) == (other_model, with_audio)
    assert 2 == server.created_count


async def test_a_single_create_price_is_kept_to_its_premium_flag_resolution_length_and_audio(
    server: FakeAkoolServer, proxy: Proxy
) -> None:
    """The single endpoint's price key: premium flag, resolution, length and audio type."""

    def cheap(envelope: dict[str, Any]) -> None:
        envelope["data"]["deduction_credit"] = 5.0

    proxy.mangle_single = cheap
    async with capped(proxy.url, server.api_key, 20) as client:
        i2v = client.image_to_video
        await i2v.create(**SINGLE_ARGS)  # estimate 20 == cap; learns 5 for 720p, 5 s, no audio
        others = [
            await refused_estimate(i2v.create(**SINGLE_ARGS, is_premium_model=True)),
            await refused_estimate(i2v.create(**{**SINGLE_ARGS, "resolution": "1080p"})),
            await refused_estimate(i2v.create(**{**SINGLE_ARGS, "video_length": 10})),
            await refused_estimate(i2v.create(**{**SINGLE_ARGS, "audio_type": 1})),
        ]
        await i2v.create(**SINGLE_ARGS, is_premium_model=False)  # the same key: 5 fits
        charged = client.credits_charged

    assert [FALLBACK_5S, PRICE_1080P_5S, 2 * PRICE_720P_5S, PRICE_720P_5S] == others
    assert (2, 10.0) == (server.call_count("create"), charged)


async def test_a_create_failing_after_its_answer_named_videos_is_charged(
    server: FakeAkoolServer, proxy: Proxy
) -> None:
    """An answer naming its videos but unreadable raises outcome-unknown; the videos exist,
    so the create is charged (its estimate) and the cap counts it."""

    def unreadable(envelope: dict[str, Any]) -> None:
        items = envelope["data"]["successList"]
        items[0] = {**items[0], "status": "later"}

    proxy.mangle = unreadable
    async with capped(proxy.url, server.api_key, 150) as client:
        with pytest.raises(CreateOutcomeUnknownError) as caught:
            await client.image_to_video.create_batch(**THIRD_PARTY_ARGS, count=2)
        charged = client.credits_charged
        proxy.mangle = None
        # 120 charged: a 60-credit estimate no longer fits under 150.
        with pytest.raises(BudgetExceededError):
            await client.image_to_video.create_batch(**THIRD_PARTY_ARGS)

    assert sorted(caught.value.video_ids) == sorted(server.videos)
    assert 2 * FALLBACK_5S == charged


async def test_a_create_held_back_after_its_run_stopped_costs_nothing(
    server: FakeAkoolServer,
) -> None:
    """generate_many: the second create waits for budget while the first is in flight; AKOOL
    refuses the first for lack of credit, which stops the run, so the second never leaves.
    Neither costs anything."""
    server.credit = 0
    async with capped(server.url, server.api_key, 100) as client:
        # Each estimated 60: the second fits only once the first has settled.
        requests = [VideoRequest(**THIRD_PARTY_ARGS) for _ in range(2)]
        generation = client.image_to_video.generate_many(requests)
        await generation
        charged = client.credits_charged

    assert (0.0, 1, 2) == (charged, server.call_count("create_batch"), len(generation.failures))


async def test_generate_audio_is_priced_with_the_model_list_multiplier(broke: AkoolClient) -> None:
    """Once the model list is known, the cap's estimate of generate_audio uses the model's own
    multiplier (x1.5 for AkoolImage2VideoHDV1), not the fallback x2."""
    i2v = broke.image_to_video
    args = {**CREATE_ARGS, "model_name": "AkoolImage2VideoHDV1", "generate_audio": True}
    before = await refused_estimate(i2v.create_batch(**args))
    await broke.models.list()
    after = await refused_estimate(i2v.create_batch(**args))

    assert (2 * PRICE_720P_5S, 1.5 * PRICE_720P_5S) == (before, after)
