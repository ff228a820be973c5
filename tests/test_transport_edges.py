"""The HTTP boundary's smaller promises that mutation testing found unpinned (issue 15): the
backoff schedule, the retry budget's edges, request details and error context."""

from __future__ import annotations

import json
import logging
import re
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from conftest import CREATE_ARGS, FAST_POLL, serve_app

from akool_async import (
    AkoolClient,
    AkoolConnectionError,
    ClientClosedError,
    CreateOutcomeUnknownError,
    RetryPolicy,
    UpstreamError,
)
from akool_async.testing import ENDPOINT_PATHS, FakeAkoolServer, Fault, FaultKind

WAIT_LOG = re.compile(r"retrying .* waiting (?P<wait>[\d.]+)s\)")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
async def answers() -> AsyncIterator[tuple[str, list[tuple[dict[str, Any], dict[str, str]]]]]:
    """A loopback app answering HTTP 200 with the queued (envelope, headers), then success."""
    queue: list[tuple[dict[str, Any], dict[str, str]]] = []

    async def answer(request: web.Request) -> web.Response:
        envelope, headers = queue.pop(0) if queue else ({"code": 1000, "data": {"credit": 1}}, {})
        return web.Response(body=json.dumps(envelope), headers=headers, status=200)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    async with serve_app(app) as url:
        yield url, queue


def test_the_fast_policy_for_tests() -> None:
    """RetryPolicy.fast(): 4 attempts (or as given), 1 ms doubling to 10 ms, within 30 s."""
    fast = RetryPolicy.fast()
    assert (4, 0.001, 0.01, 30.0) == (
        fast.max_attempts,
        fast.initial_wait,
        fast.max_wait,
        fast.max_time,
    )
    assert 2 == RetryPolicy.fast(2).max_attempts


async def test_backoff_steps_double_from_initial_wait(
    server: FakeAkoolServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Retry n waits at most initial_wait * 2**(n-1) (full jitter), so the steps keep growing;
    nothing is logged by backoff's own logger."""
    caplog.set_level(logging.DEBUG)
    server.inject("credits", *[FaultKind.HTTP_503] * 10)
    policy = RetryPolicy(max_attempts=11, initial_wait=0.001, max_wait=10.0, max_time=60.0)
    async with AkoolClient(server.api_key, base_url=server.url, retry=policy) as client:
        await client.account.credits()

    waits = [float(m["wait"]) for r in caplog.records if (m := WAIT_LOG.match(r.getMessage()))]
    assert 10 == len(waits)
    # The log shows 2 decimals: allow 5 ms of rounding on each bound.
    assert all(wait <= 0.001 * 2**n + 0.005 for n, wait in enumerate(waits)), waits
    # Ten draws under steps of up to 512 ms: all below 25 ms has odds under 1e-5.
    assert max(waits) > 0.025, waits
    assert [] == [r for r in caplog.records if r.name == "backoff"]


async def test_a_retry_wait_is_cut_to_max_time(server: FakeAkoolServer) -> None:
    """However long the backoff step, the next attempt starts by max_time."""
    server.inject("credits", FaultKind.HTTP_503)
    policy = RetryPolicy(max_attempts=3, initial_wait=1000.0, max_wait=1000.0, max_time=0.3)
    async with AkoolClient(server.api_key, base_url=server.url, retry=policy) as client:
        started = time.monotonic()
        await client.account.credits()
        elapsed = time.monotonic() - started
    assert 2 == server.call_count("credits")
    assert elapsed < 5.0


async def test_a_retry_after_equal_to_the_limit_is_waited(
    answers: tuple[str, list[tuple[dict[str, Any], dict[str, str]]]],
) -> None:
    """max_retry_after is the longest wait sat through, inclusive."""
    url, queue = answers
    queue.append(({"code": 1005, "msg": "slow down"}, {"Retry-After": "0.2"}))
    policy = RetryPolicy(max_attempts=2, initial_wait=0.001, max_wait=0.01, max_retry_after=0.2)
    async with AkoolClient("k" * 16, base_url=url, retry=policy) as client:
        assert 1.0 == await client.account.credits()
    assert [] == queue


async def test_a_business_error_answered_200_is_not_retried(
    answers: tuple[str, list[tuple[dict[str, Any], dict[str, str]]]],
) -> None:
    """Code 1015 with HTTP 200 is AKOOL's verdict, not a transient failure: a read raises it."""
    url, queue = answers
    queue.append(({"code": 1015, "msg": "create video error"}, {}))
    async with AkoolClient("k" * 16, base_url=url, retry=RetryPolicy.fast()) as client:
        with pytest.raises(UpstreamError) as caught:
            await client.account.credits()
        assert 1.0 == await client.account.credits()  # the next call got the next answer
    assert (1015, 200) == (caught.value.code, caught.value.http_status)


async def test_requests_carry_the_user_agent_and_tolerate_a_trailing_slash(
    server: FakeAkoolServer,
) -> None:
    async with AkoolClient(server.api_key, base_url=server.url + "/") as client:
        await client.account.credits()
    (call,) = server.calls("credits")
    assert ENDPOINT_PATHS["credits"][1] == call.path
    assert re.fullmatch(r"akool-async/[\d.]+", call.headers["user-agent"])


async def test_query_parameters_are_sent_with_either_credential(server: FakeAkoolServer) -> None:
    """The model list's types[] goes out with an API key, and again on the token client's
    resend after a refused (1101) token."""
    async with AkoolClient(server.api_key, base_url=server.url) as client:
        await client.models.list()
    async with AkoolClient(
        client_id=server.client_id, client_secret=server.client_secret, base_url=server.url
    ) as client:
        await client.models.list()
        server.expire_tokens()
        await client.models.list()
    queries = [call.query for call in server.calls("models")]
    assert 4 == len(queries)  # the token client's second list was sent twice
    assert all(q.get("types[]") == ["1501"] for q in queries), queries


async def test_a_create_resent_after_a_refused_token_is_still_a_create(
    server: FakeAkoolServer,
) -> None:
    """After a 1101 and a new token, a lost create answer is outcome-unknown, never a plain
    connection error that a caller might retry."""
    async with AkoolClient(
        client_id=server.client_id,
        client_secret=server.client_secret,
        base_url=server.url,
        retry=RetryPolicy.fast(),
    ) as client:
        await client.account.credits()  # fetches the first token
        server.expire_tokens()
        # The first create is refused (1101); its resend acts, then loses the connection.
        server.inject("create_batch", Fault(FaultKind.SLOW, delay=0.0), FaultKind.RESET_AFTER)
        with pytest.raises(CreateOutcomeUnknownError):
            await client.image_to_video.create_batch(**CREATE_ARGS)
    assert 2 == server.call_count("create_batch")


async def test_a_refused_connection_names_the_request() -> None:
    async with AkoolClient(
        "k" * 16, base_url=f"http://127.0.0.1:{closed_port()}", retry=RetryPolicy.disabled()
    ) as client:
        with pytest.raises(AkoolConnectionError) as caught:
            await client.account.credits()
    error = caught.value
    method, path = ENDPOINT_PATHS["credits"]
    assert (method, path) == (error.method, error.path)
    assert str(error).startswith("could not connect: ClientConnectorError")


async def test_a_closed_client_says_so() -> None:
    client = AkoolClient("k" * 16, base_url="http://127.0.0.1:9")
    await client.aclose()
    with pytest.raises(ClientClosedError, match="closed"):
        await client.account.credits()


async def test_rate_limited_results_retries_slow_the_poller(server: FakeAkoolServer) -> None:
    """Each retried 429 / 1005 on a results call reaches the poller, which counts it."""
    async with AkoolClient(
        server.api_key, base_url=server.url, poll=FAST_POLL, retry=RetryPolicy.fast(5)
    ) as client:
        server.inject("results", FaultKind.HTTP_429, FaultKind.CODE_1005)
        (handle,) = (await client.image_to_video.create_batch(**CREATE_ARGS)).handles
        await handle
        rate_limited = client.poller.statistics().rate_limited
    assert 2 == rate_limited
