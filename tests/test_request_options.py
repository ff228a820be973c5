"""Per-call ``extra_headers`` / ``extra_query`` / ``extra_body`` / ``timeout``, and
``AkoolClient.with_options()``, against the fake server on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from conftest import CREATE_ARGS, FAST_POLL

from akool_async import (
    USE_CLIENT_DEFAULT,
    AkoolClient,
    AkoolTimeoutError,
    AkoolValueError,
    BudgetExceededError,
    PollPolicy,
    RetryPolicy,
    VideoRequest,
    WaitTimeoutError,
)
from akool_async.testing import FakeAkoolServer, sign_webhook

EXTRAS: dict[str, Any] = {
    "extra_headers": {"X-Trace": "t-1"},
    "extra_query": {"probe": "1"},
    "extra_body": {"multi_prompt": True},
}
VIDEO_ID = "65f1c2b3d4e5f6a7b8c9d0e1"

Call = Callable[[AkoolClient], Awaitable[object]]

#: (fake endpoint, a call sending one request there with EXTRAS); GETs carry no JSON body.
CALLS: list[tuple[str, bool, Call]] = [
    ("credits", False, lambda c: c.account.credits(**EXTRAS)),
    ("models", False, lambda c: c.models.list(**EXTRAS)),
    ("effects", False, lambda c: c.image_to_video.effects(**EXTRAS)),
    ("create_batch", True, lambda c: c.image_to_video.create_batch(**CREATE_ARGS, **EXTRAS)),
    (
        "create",
        True,
        lambda c: c.image_to_video.create(
            image_url=CREATE_ARGS["image_url"],
            prompt="wave",
            negative_prompt="",
            audio_type=3,
            resolution="720p",
            video_length=5,
            **EXTRAS,
        ),
    ),
    ("results", True, lambda c: c.image_to_video.results([VIDEO_ID], **EXTRAS)),
    ("delete", True, lambda c: c.image_to_video.delete([VIDEO_ID], **EXTRAS)),
]


def make_client(server: FakeAkoolServer, **kwargs: Any) -> AkoolClient:
    kwargs.setdefault("retry", RetryPolicy.fast())
    return AkoolClient(server.api_key, base_url=server.url, poll=FAST_POLL, **kwargs)


@pytest.mark.parametrize(("endpoint", "has_body", "call"), CALLS, ids=[c[0] for c in CALLS])
async def test_extras_reach_the_wire(
    server: FakeAkoolServer, endpoint: str, has_body: bool, call: Call
) -> None:
    """Every request-sending method passes extra headers, query and body fields on unchanged."""
    async with make_client(server) as client:
        await call(client)
    (record,) = server.calls(endpoint)
    assert "t-1" == record.headers["x-trace"]
    assert ["1"] == record.query["probe"]
    if has_body:
        assert True is record.body["multi_prompt"]
    assert server.api_key == record.headers["x-api-key"]


async def test_extras_ride_along_in_generate_many_and_video_request(
    server: FakeAkoolServer,
) -> None:
    """``VideoRequest.extra_body`` and generate_many's options reach every batch call."""
    request = VideoRequest(**CREATE_ARGS, count=12, extra_body={"effect_code": "squish"})
    async with make_client(server) as client:
        await client.image_to_video.generate_many([request], extra_headers={"X-Job": "j"})
    calls = server.calls("create_batch")
    assert 2 == len(calls)
    assert all("squish" == c.body["effect_code"] for c in calls)
    assert all("j" == c.headers["x-job"] for c in calls)


async def test_extra_body_wins_over_the_sdk_fields(server: FakeAkoolServer) -> None:
    """A field AKOOL changed can be sent as the caller says, before the SDK knows it."""
    async with make_client(server) as client:
        await client.image_to_video.create_batch(**CREATE_ARGS, extra_body={"prompt": "raw"})
    (call,) = server.calls("create_batch")
    assert "raw" == call.body["prompt"]


@pytest.mark.parametrize("name", ["x-api-key", "Authorization", "X-API-KEY"])
async def test_extra_headers_never_replace_the_credentials(
    server: FakeAkoolServer, name: str
) -> None:
    """Credentials come from the client only: setting them per call is refused, unsent."""
    async with make_client(server) as client:
        with pytest.raises(AkoolValueError, match="extra_headers"):
            await client.account.credits(extra_headers={name: "stolen"})
    assert [] == server.requests


@pytest.mark.parametrize(
    "options",
    [
        {"extra_headers": {"X": 1}},
        {"extra_query": ["probe"]},
        {"extra_body": "x"},
        {"timeout": 0},
        {"timeout": True},
        {"timeout": float("nan")},
    ],
)
async def test_bad_options_are_refused_before_sending(
    server: FakeAkoolServer, options: dict[str, Any]
) -> None:
    """Bad per-call options raise AkoolValueError; nothing is sent."""
    async with make_client(server) as client:
        with pytest.raises(AkoolValueError):
            await client.account.credits(**options)
    assert [] == server.requests


async def test_model_types_are_sent_with_literal_brackets(server: FakeAkoolServer) -> None:
    """``types[]=1501`` goes out as AKOOL's docs and demo write it, brackets unencoded."""
    async with make_client(server) as client:
        await client.models.list()
    (call,) = server.calls("models")
    assert "types[]=1501" == call.query_string


async def test_per_call_timeout_bounds_one_request(server: FakeAkoolServer) -> None:
    """``timeout=`` limits that request only; the same client's other calls keep theirs."""
    async with make_client(server, retry=RetryPolicy.disabled()) as client:
        with server.holding("credits"), pytest.raises(AkoolTimeoutError):
            await client.account.credits(timeout=0.2)
        assert 100_000.0 == await client.account.credits(timeout=USE_CLIENT_DEFAULT)


async def test_with_options_shares_session_budget_and_poller(server: FakeAkoolServer) -> None:
    """A derived client shares the budget and the poller, and closing it leaves both open."""
    async with make_client(server, max_credits=60) as client:
        fast = client.with_options(timeout=5.0, retry=RetryPolicy.disabled())
        batch = await fast.image_to_video.create_batch(**CREATE_ARGS)
        assert fast.poller is client.poller
        charged = batch.deduction_credit
        assert 0 < charged == client.credits_charged == fast.credits_charged
        # 3 more at the price just seen would pass the cap both clients share.
        with pytest.raises(BudgetExceededError):
            await client.image_to_video.create_batch(**CREATE_ARGS, count=3)
        await fast.aclose()
        assert not client.closed
        await batch.handles[0]
        assert 100_000.0 - charged == await client.account.credits()
    assert fast.closed


async def test_with_options_wait_timeout_applies_to_its_handles(server: FakeAkoolServer) -> None:
    """``with_options(wait_timeout=...)`` is the default wait of the derived client's handles."""
    server.queue_seconds = 3600.0
    async with make_client(server) as client:
        impatient = client.with_options(wait_timeout=0.05)
        batch = await impatient.image_to_video.create_batch(**CREATE_ARGS)
        with pytest.raises(WaitTimeoutError):
            await batch.handles[0]
        assert not batch.handles[0].done()
        # The original client's handles keep its own (long) default wait.
        with pytest.raises(TimeoutError) as caught:
            await asyncio.wait_for(client.image_to_video.handle(batch.ids[0]).wait(), 0.3)
        assert not isinstance(caught.value, WaitTimeoutError)


async def test_with_options_poll_gets_its_own_poller(server: FakeAkoolServer) -> None:
    """``poll=`` gives the derived client its own poller; closing the original closes it."""
    client = make_client(server)
    own = client.with_options(poll=PollPolicy(initial_delay=0.01, interval=0.01, jitter=0.0))
    try:
        batch = await own.image_to_video.create_batch(**CREATE_ARGS)
        assert own.poller is not client.poller
        video = await batch.handles[0]
        assert video.video_url
        assert 0 == client.poller.statistics().requests
    finally:
        await client.aclose()
    assert own.closed


def test_with_options_checks_its_settings() -> None:
    """Bad derived settings raise AkoolValueError at once."""
    client = AkoolClient("k" * 32)
    for bad in ({"timeout": -1}, {"wait_timeout": 0}):
        with pytest.raises(AkoolValueError):
            client.with_options(**bad)


@pytest.mark.parametrize("field", ["count", "resolution", "video_length", "model_name"])
async def test_extra_body_cannot_change_what_a_create_costs(
    server: FakeAkoolServer, field: str
) -> None:
    """A priced field in extra_body is refused: max_credits checked the method's own
    arguments, so the body AKOOL gets must not ask for more."""
    async with make_client(server, max_credits=25) as client:
        with pytest.raises(AkoolValueError, match="price"):
            await client.image_to_video.create_batch(**CREATE_ARGS, extra_body={field: 5})
        with pytest.raises(AkoolValueError, match="price"):
            VideoRequest(**CREATE_ARGS, extra_body={field: 5})
    assert 0 == server.call_count("create_batch")


async def test_webhook_news_reaches_a_derived_clients_own_poller(server: FakeAkoolServer) -> None:
    """A webhook the original client receives resolves a handle of ``with_options(poll=)``."""
    slow = PollPolicy(initial_delay=600, interval=600, webhook_interval=600)
    async with AkoolClient(
        server.api_key, client_id=server.client_id, base_url=server.url, poll=slow
    ) as client:
        own = client.with_options(poll=slow)
        batch = await own.image_to_video.create_batch(
            **CREATE_ARGS, webhook_url="https://hooks.example/akool"
        )
        (video_id,) = batch.ids
        server.complete(video_id)
        body = sign_webhook(
            {"_id": video_id, "status": 3, "url": server.video_url(video_id)},
            client_id=server.client_id,
            client_secret=server.api_key,
        )
        await client.webhooks.receive(body)
        video = await batch.handles[0].wait(timeout=5)
    assert server.video_url(video_id) == video.video_url
