"""The create-resend rule and Retry-After, at the edges mutation testing found unpinned (issue 15).

A scripted loopback app plays answers the fake server does not make (redirects, Retry-After as
an HTTP date, Retry-After on a code-1005 answer, absurd Retry-After values); the fake serves
the rest. Everything goes through ``AkoolClient``.
"""

from __future__ import annotations

import email.utils
import json
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
from aiohttp import web
from conftest import CREATE_ARGS, serve_app

from akool_async import (
    AkoolAPIError,
    AkoolClient,
    AkoolConnectionError,
    CreateOutcomeUnknownError,
    RateLimitError,
    RetryPolicy,
)
from akool_async.testing import ENDPOINT_PATHS, FakeAkoolServer, FaultKind

CREDITS_OK = {"code": 1000, "msg": "ok", "data": {"credit": 5.0}}
RATE_LIMITED = {"code": 1005, "msg": "requests too frequent", "data": None}


@attrs.define
class Answer:
    status: int = 200
    headers: dict[str, str] = attrs.Factory(dict)
    body: dict[str, Any] = attrs.Factory(lambda: dict(CREDITS_OK))


@attrs.define
class Scripted:
    """A loopback app answering each request with the next scripted answer."""

    url: str = ""
    answers: list[Answer] = attrs.Factory(list)
    #: (time.time() on arrival, method, path) of every request.
    seen: list[tuple[float, str, str]] = attrs.Factory(list)


@pytest.fixture
async def scripted() -> AsyncIterator[Scripted]:
    state = Scripted()

    async def answer(request: web.Request) -> web.Response:
        state.seen.append((time.time(), request.method, request.path))
        reply = state.answers.pop(0) if state.answers else Answer()
        return web.Response(
            status=reply.status,
            headers=reply.headers,
            body=json.dumps(reply.body).encode(),
            content_type="application/json",
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    async with serve_app(app) as state.url:
        yield state


def client_for(url: str, retry: RetryPolicy) -> AkoolClient:
    return AkoolClient("k" * 16, base_url=url, retry=retry, timeout=5.0)


def http_date(epoch: float) -> str:
    return email.utils.formatdate(epoch, usegmt=True)


async def refused_retry_after(scripted: Scripted, answer: Answer) -> float | None:
    """The retry_after of the RateLimitError raised for ``answer`` (no retries)."""
    scripted.answers = [answer]
    async with client_for(scripted.url, RetryPolicy.disabled()) as client:
        with pytest.raises(RateLimitError) as caught:
            await client.account.credits()
    return caught.value.retry_after


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", 7.0),
        ("0.25", 0.25),
        ("-5", 0.0),  # a negative delay means "now"
        ("inf", None),  # parses as a float, but is no delay a server can mean
        ("nan", None),
        ("1e400", None),  # overflows to inf
        ("soon", None),
        ("", None),
        (http_date(0), 0.0),  # a date in the past means "now"
    ],
)
async def test_retry_after_values(scripted: Scripted, value: str, expected: float | None) -> None:
    """Seconds are taken as given (never below 0); absurd or unreadable values are ignored."""
    answer = Answer(429, {"Retry-After": value}, {"code": 1005, "msg": "slow down"})
    assert expected == await refused_retry_after(scripted, answer)


async def test_retry_after_as_an_http_date(scripted: Scripted) -> None:
    """An HTTP date is a wait until that moment."""
    ahead = 100.0
    answer = Answer(429, {"Retry-After": http_date(time.time() + ahead)}, {})
    retry_after = await refused_retry_after(scripted, answer)
    assert retry_after is not None
    # The date has whole seconds, and the clock moved while the request ran.
    assert ahead - 2 < retry_after <= ahead


async def test_a_retry_waits_until_an_http_date(scripted: Scripted) -> None:
    """The next attempt starts no sooner than the date the server named."""
    when = math.floor(time.time()) + 2
    scripted.answers = [Answer(429, {"Retry-After": http_date(when)}, {})]
    async with client_for(scripted.url, RetryPolicy.fast()) as client:
        assert 5.0 == await client.account.credits()
    arrivals = [arrived for arrived, _, _ in scripted.seen]
    assert 2 == len(arrivals)
    assert arrivals[1] >= when - 0.01  # 10 ms for the two clocks' resolution


async def test_retry_after_on_a_code_1005_answer(scripted: Scripted) -> None:
    """HTTP 200 with code 1005 carries Retry-After too, and the retry honours it."""
    answer = Answer(200, {"Retry-After": "7"}, RATE_LIMITED)
    assert 7.0 == await refused_retry_after(scripted, answer)

    scripted.seen.clear()
    scripted.answers = [Answer(200, {"Retry-After": "0.3"}, RATE_LIMITED)]
    async with client_for(scripted.url, RetryPolicy.fast()) as client:
        assert 5.0 == await client.account.credits()
    (first, *_), (second, *_) = scripted.seen
    assert second - first >= 0.3 - 0.01


async def test_an_infinite_retry_after_is_ignored_not_obeyed(scripted: Scripted) -> None:
    """Retry-After: inf is not "never": the request is retried on the normal schedule."""
    scripted.answers = [Answer(429, {"Retry-After": "inf"}, {})]
    async with client_for(scripted.url, RetryPolicy.fast()) as client:
        assert 5.0 == await client.account.credits()
    assert 2 == len(scripted.seen)


async def test_a_huge_retry_after_is_not_waited(scripted: Scripted) -> None:
    """A finite but huge Retry-After raises at once with the value, instead of sleeping."""
    scripted.answers = [Answer(429, {"Retry-After": "1e300"}, {})]
    async with client_for(scripted.url, RetryPolicy.fast()) as client:
        with pytest.raises(RateLimitError) as caught:
            await client.account.credits()
    assert (1e300, 1) == (caught.value.retry_after, len(scripted.seen))


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_a_redirect_to_a_create_is_never_followed(
    scripted: Scripted, server: FakeAkoolServer, status: int
) -> None:
    """A redirect answer to a create raises; the create is not re-POSTed to the target (which
    would risk a second charge and carry x-api-key to another origin)."""
    path = ENDPOINT_PATHS["create_batch"][1]
    scripted.answers = [Answer(status, {"Location": server.url + path}, {})]
    async with client_for(scripted.url, RetryPolicy.fast()) as client:
        with pytest.raises(AkoolAPIError) as caught:
            await client.image_to_video.create_batch(**CREATE_ARGS)
    assert not isinstance(caught.value, CreateOutcomeUnknownError)
    assert (status, 1) == (caught.value.http_status, len(scripted.seen))
    assert ([], 0) == (server.requests, server.created_count)


async def test_a_lost_token_fetch_is_not_multiplied_by_create_retries(
    server: FakeAkoolServer,
) -> None:
    """A create's token fetch that keeps losing its connection is retried by the token read's
    own policy only: the create is never sent and not retried on top (no 3 x 3 attempts)."""
    server.inject("token", *[FaultKind.RESET_BEFORE] * 20)
    async with AkoolClient(
        client_id=server.client_id,
        client_secret=server.client_secret,
        base_url=server.url,
        retry=RetryPolicy.fast(max_attempts=3),
    ) as client:
        with pytest.raises(AkoolConnectionError) as caught:
            await client.image_to_video.create_batch(**CREATE_ARGS)
    assert not isinstance(caught.value, CreateOutcomeUnknownError)
    assert (3, 0) == (server.call_count("token"), server.call_count("create_batch"))
