"""Tests of credit estimates (akool_async._pricing) through ``client.image_to_video``."""

from __future__ import annotations

import pytest
from conftest import CREATE_ARGS

from akool_async import AkoolClient, AkoolValueError, CreditEstimate, PriceSource
from akool_async.testing import FakeAkoolServer

HD = "AkoolImage2VideoHDV1"
SEEDANCE = "seedance-1-0-lite-i2v-250428"


@pytest.mark.parametrize(
    ("resolution", "video_length", "per_video"),
    [
        # AKOOL's Image-to-Video table: 720p 20, 1080p 25, 4k 30 credits for 5 s; twice for 10 s.
        ("720p", 5, 20.0),
        ("1080p", 5, 25.0),
        ("4k", 5, 30.0),
        ("720p", 10, 40.0),
        ("1080p", 10, 50.0),
        ("4k", 10, 60.0),
    ],
)
async def test_estimates_match_the_documented_prices(
    client: AkoolClient, resolution: str, video_length: int, per_video: float
) -> None:
    """Before any create, an AKOOL model is priced from the docs' table, times the count."""
    estimate = client.image_to_video.estimate_credits(
        model_name=HD, resolution=resolution, video_length=video_length, count=3
    )

    assert CreditEstimate(
        credits=3 * per_video, per_video=per_video, count=3, source=PriceSource.TABLE
    ) == (estimate)


async def test_the_fake_charges_what_the_table_says(
    client: AkoolClient, server: FakeAkoolServer
) -> None:
    """Every resolution the HD model offers is charged what the estimate said, and the next
    estimate of each is what AKOOL charged (``observed``)."""
    for resolution in ("720p", "1080p", "4k"):
        args = {"resolution": resolution, "video_length": 10, "model_name": HD}
        before = client.image_to_video.estimate_credits(**args)
        batch = await client.image_to_video.create_batch(**{**CREATE_ARGS, **args})
        after = client.image_to_video.estimate_credits(**args)

        assert (before.per_video, PriceSource.TABLE) == (batch.deduction_credit, before.source)
        assert (before.per_video, PriceSource.OBSERVED) == (after.per_video, after.source)


@pytest.mark.parametrize(
    ("resolution", "per_video", "source"),
    [
        # Below the table's lowest row: priced like that row, the cheapest published.
        ("480p", 20.0, PriceSource.TABLE),
        ("540p", 20.0, PriceSource.TABLE),
        # Between rows: the next row up.
        ("1440p", 30.0, PriceSource.TABLE),
        # Above the table, or unreadable: the fallback.
        ("4320p", 60.0, PriceSource.FALLBACK),
        ("8k", 60.0, PriceSource.FALLBACK),
        ("square", 60.0, PriceSource.FALLBACK),
    ],
)
async def test_resolutions_the_table_does_not_list(
    client: AkoolClient, resolution: str, per_video: float, source: PriceSource
) -> None:
    """Resolutions missing from the table are priced so the estimate errs high."""
    estimate = client.image_to_video.estimate_credits(resolution=resolution, video_length=5)

    assert (per_video, source) == (estimate.per_video, estimate.source)


async def test_a_started_5_second_step_counts_whole(client: AkoolClient) -> None:
    """The table prices per 5 s: a 6 s video is estimated as two steps."""
    estimate = client.image_to_video.estimate_credits(resolution="720p", video_length=6)

    assert 40.0 == estimate.per_video


async def test_a_third_party_model_starts_at_the_fallback(
    client: AkoolClient, server: FakeAkoolServer
) -> None:
    """Third-party models are not in the table: 60 per 5 s until AKOOL charged one."""
    args = {"model_name": SEEDANCE, "resolution": "720p", "video_length": 10}
    before = client.image_to_video.estimate_credits(**args, count=2)
    await client.image_to_video.create_batch(**{**CREATE_ARGS, **args})
    after = client.image_to_video.estimate_credits(**args, count=2)

    assert (240.0, PriceSource.FALLBACK) == (before.credits, before.source)
    assert (80.0, PriceSource.OBSERVED) == (after.credits, after.source)


async def test_generate_audio_uses_the_models_multiplier_once_known(
    client: AkoolClient, server: FakeAkoolServer
) -> None:
    """With generate_audio the price is multiplied by the model list's
    extra_credit_multiplier (1.5 on the fake's HD model) after ``models.list()``; before,
    by a conservative 2 (``fallback``). The fake charges the multiplied price."""
    args = {"model_name": HD, "resolution": "1080p", "video_length": 5, "generate_audio": True}
    unknown = client.image_to_video.estimate_credits(**args)
    await client.models.list()
    known = client.image_to_video.estimate_credits(**args)
    batch = await client.image_to_video.create_batch(**{**CREATE_ARGS, **args})

    assert (50.0, PriceSource.FALLBACK) == (unknown.per_video, unknown.source)
    assert (37.5, PriceSource.TABLE) == (known.per_video, known.source)
    assert 37.5 == batch.deduction_credit


async def test_an_estimate_sends_no_request(client: AkoolClient, server: FakeAkoolServer) -> None:
    """estimate_credits is local: the fake sees no request at all."""
    client.image_to_video.estimate_credits(resolution="720p", video_length=5, count=25)

    assert [] == server.requests


@pytest.mark.parametrize(
    "bad",
    [
        {"resolution": ""},
        {"video_length": 0},
        {"video_length": True},
        {"count": 0},
        {"count": 1.5},
        {"generate_audio": "yes"},
        {"model_name": ""},
    ],
)
async def test_bad_input_is_rejected(client: AkoolClient, bad: dict[str, object]) -> None:
    """Arguments a create would refuse are refused by the estimate too."""
    args: dict[str, object] = {"resolution": "720p", "video_length": 5, **bad}
    with pytest.raises(AkoolValueError):
        client.image_to_video.estimate_credits(**args)  # type: ignore[arg-type]


async def test_an_unknown_model_is_rejected_once_the_list_is_known(client: AkoolClient) -> None:
    """After ``models.list()``, a model not on it is an error, as for a create."""
    await client.models.list()
    with pytest.raises(AkoolValueError, match="nope"):
        client.image_to_video.estimate_credits(model_name="nope", resolution="720p", video_length=5)
