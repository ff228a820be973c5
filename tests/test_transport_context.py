"""What every failed request tells its caller, and the timeouts it runs under (issue 15).

A scripted loopback app answers exactly what each case needs (status, body, headers, delay);
lost connections and slow answers come from the fake server's faults.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from aiohttp import web
from conftest import CREATE_ARGS, FAST_POLL, serve_app
from test_downloads import finished, unanswered_port

from akool_async import (
    AkoolAPIError,
    AkoolClient,
    AkoolConnectionError,
    AkoolResponseError,
    AkoolTimeoutError,
    ClientClosedError,
    CreateOutcomeUnknownError,
    DownloadError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RetryPolicy,
)
from akool_async.testing import ENDPOINT_PATHS, FakeAkoolServer, Fault, FaultKind, video_bytes

CREDITS = ENDPOINT_PATHS["credits"][1]
BATCH = ENDPOINT_PATHS["create_batch"][1]
RESULTS = ENDPOINT_PATHS["results"][1]
VIDEO_ID = "0123456789abcdef01234567"
OK = {"code": 1000, "data": {"credit": 1}}


@attrs.define
class Scripted:
    """A loopback app: ``answers`` are served in order, then success; ``seen`` records
    ``(method, path, body)`` of every request."""

    url: str = ""
    answers: list[tuple[int, bytes, dict[str, str]]] = attrs.Factory(list)
    seen: list[tuple[str, str, bytes]] = attrs.Factory(list)
    delay: float = 0.0


@pytest.fixture
async def scripted() -> AsyncIterator[Scripted]:
    state = Scripted()

    async def answer(request: web.Request) -> web.Response:
        state.seen.append((request.method, request.path, await request.read()))
        await asyncio.sleep(state.delay)
        status, body, headers = (
            state.answers.pop(0) if state.answers else (200, json.dumps(OK).encode(), {})
        )
        return web.Response(body=body, status=status, headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    async with serve_app(app) as state.url:
        yield state


def once(url: str, api_key: str = "k", **kwargs: Any) -> AkoolClient:
    """A client that never retries."""
    return AkoolClient(api_key, base_url=url, retry=RetryPolicy.fast(1), **kwargs)


def envelope(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


#: (status, body, headers) -> error class, code, msg, body attribute, request_id, retry_after.
NON_2XX: list[tuple[Any, ...]] = [
    (
        (400, envelope(code=1003, msg="bad field"), {"X-Request-Id": "r-1"}),
        (AkoolAPIError, 1003, "bad field", {"code": 1003, "msg": "bad field"}, "r-1", None),
    ),
    (
        (404, b"404: Not Found", {"x-request-id": "r-2"}),
        (NotFoundError, None, "HTTP 404", None, "r-2", None),
    ),
    (
        (403, envelope(code="x", msg=""), {}),
        (PermissionDeniedError, None, "HTTP 403", {"code": "x", "msg": ""}, None, None),
    ),
    (
        (429, envelope(code=1005, msg="slow down"), {"Retry-After": "7"}),
        (RateLimitError, 1005, "slow down", {"code": 1005, "msg": "slow down"}, None, 7.0),
    ),
    (
        (300, envelope(**OK), {}),
        (AkoolAPIError, 1000, "HTTP 300", OK, None, None),
    ),
]


@pytest.mark.parametrize(("answer", "expected"), NON_2XX)
async def test_a_non_2xx_answer_carries_its_context(
    scripted: Scripted, answer: tuple[int, bytes, dict[str, str]], expected: tuple[Any, ...]
) -> None:
    """Class, code, msg, HTTP status, method, path, request id, Retry-After and body; a 3xx
    (never followed) is an error too, even with a success envelope."""
    scripted.answers.append(answer)
    async with once(scripted.url) as client:
        with pytest.raises(AkoolAPIError) as caught:
            await client.account.credits()

    error = caught.value
    cls, code, msg, body, request_id, retry_after = expected
    assert cls is type(error)
    assert (code, msg, answer[0], "GET", CREDITS, request_id, retry_after, body) == (
        error.code,
        error.msg,
        error.http_status,
        error.method,
        error.path,
        error.request_id,
        error.retry_after,
        error.body,
    )


async def test_a_business_error_without_a_message_says_so(scripted: Scripted) -> None:
    """A 200 answer with a non-1000 code and no msg: 'no message', with the request id."""
    scripted.answers.append((200, envelope(code=1003), {"X-Request-Id": "r-3"}))
    async with once(scripted.url) as client:
        with pytest.raises(AkoolAPIError) as caught:
            await client.account.credits()

    error = caught.value
    assert ("no message", 1003, 200, "r-3", {"code": 1003}) == (
        error.msg,
        error.code,
        error.http_status,
        error.request_id,
        error.body,
    )
    assert f"[1003] no message (GET {CREDITS}) request_id=r-3" == str(error)


async def test_an_answer_that_is_no_envelope_keeps_its_first_200_bytes(
    scripted: Scripted,
) -> None:
    """A read answered with something other than a JSON envelope: AkoolResponseError naming the
    request, with the first 200 bytes of the body (undecodable bytes replaced)."""
    raw = b"<html>\xff" + b"x" * 300
    scripted.answers.append((200, raw, {}))
    async with once(scripted.url) as client:
        with pytest.raises(AkoolResponseError) as caught:
            await client.account.credits()

    error = caught.value
    assert f"the answer was not a JSON envelope (GET {CREDITS})" == str(error)
    assert ("GET", CREDITS, 200) == (error.method, error.path, error.http_status)
    assert raw[:200].decode("utf-8", "replace") == error.body


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ((502, b"bad gateway", {}), "HTTP 502"),
        ((200, b"<html>", {}), "the answer was not a JSON envelope"),
    ],
)
async def test_a_create_with_an_unreadable_answer_says_why(
    scripted: Scripted, answer: tuple[int, bytes, dict[str, str]], why: str
) -> None:
    """A create answered 5xx or with no envelope: outcome unknown, and the reason is named."""
    scripted.answers.append(answer)
    async with once(scripted.url) as client:
        with pytest.raises(CreateOutcomeUnknownError) as caught:
            await client.image_to_video.create_batch(**CREATE_ARGS)

    assert str(caught.value).startswith(f"create outcome unknown ({why}); ")
    assert str(caught.value).endswith(f"(POST {BATCH})")
    assert BATCH == caught.value.path


async def test_lost_answers_name_their_request(server: FakeAkoolServer) -> None:
    """A read whose answer timed out or whose connection dropped: a typed error with method
    and path; a create in the same spot: outcome unknown, saying which of the two it was."""
    server.inject("results", FaultKind.RESET_BEFORE)
    server.inject("credits", Fault(FaultKind.SLOW, delay=2.0))
    server.inject("create_batch", Fault(FaultKind.SLOW, delay=2.0), FaultKind.RESET_AFTER)
    # The dropped read is a POST: aiohttp itself resends an idempotent GET once when the
    # connection closes without an answer.
    async with once(server.url, server.api_key, timeout=0.3) as client:
        with pytest.raises(AkoolConnectionError) as dropped:
            await client.image_to_video.results([VIDEO_ID])
        with pytest.raises(AkoolTimeoutError) as timed_out:
            await client.account.credits()
        with pytest.raises(CreateOutcomeUnknownError) as create_timed_out:
            await client.image_to_video.create_batch(**CREATE_ARGS)
        with pytest.raises(CreateOutcomeUnknownError) as create_dropped:
            await client.image_to_video.create_batch(**CREATE_ARGS)
    await server.wait_idle()

    assert f"timed out (GET {CREDITS})" == str(timed_out.value)
    assert ("GET", CREDITS) == (timed_out.value.method, timed_out.value.path)
    assert not isinstance(dropped.value, AkoolTimeoutError)
    assert re.fullmatch(
        rf"connection failed: [A-Z]\w+Error: .* \(POST {re.escape(RESULTS)}\)", str(dropped.value)
    ), str(dropped.value)
    assert ("POST", RESULTS) == (dropped.value.method, dropped.value.path)
    assert "(timed out waiting for the answer)" in str(create_timed_out.value)
    assert re.search(r"\(connection lost: [A-Z]\w+Error\)", str(create_dropped.value))
    assert "NoneType" not in str(create_dropped.value)


async def test_each_answer_is_logged_with_its_duration(
    scripted: Scripted, caplog: pytest.LogCaptureFixture
) -> None:
    """DEBUG: method, path, status and milliseconds of every answer."""
    caplog.set_level(logging.DEBUG, logger="akool_async")
    scripted.delay = 0.05
    async with once(scripted.url) as client:
        await client.account.credits()

    lines = [r.getMessage() for r in caplog.records if r.name == "akool_async"]
    found = [
        m for line in lines if (m := re.fullmatch(r"GET (\S+) -> HTTP 200 in ([\d.]+) ms", line))
    ]
    assert [CREDITS] == [m[1] for m in found], lines
    # At least the app's 50 ms delay, and not some clock reading.
    assert 45.0 <= float(found[0][2]) < 60_000.0


async def test_a_read_sends_a_body_only_with_extra_body(scripted: Scripted) -> None:
    """A GET carries no body, unless the caller asked for extra body fields."""
    async with once(scripted.url) as client:
        await client.account.credits()
        await client.account.credits(extra_body={"probe": 1})

    assert [b"", b'{"probe": 1}'] == [body for _, _, body in scripted.seen]


async def test_a_base_url_ending_in_x_keeps_its_path(scripted: Scripted) -> None:
    """Only trailing slashes are cut from base_url."""
    async with once(scripted.url + "/gatewayX/") as client:
        await client.account.credits()

    assert [f"/gatewayX{CREDITS}"] == [path for _, path, _ in scripted.seen]


async def test_a_300_answer_is_not_a_success(scripted: Scripted) -> None:
    """2xx only: a 300 with a success envelope is still an error."""
    scripted.answers.append((300, envelope(**OK), {}))
    async with once(scripted.url) as client:
        with pytest.raises(AkoolAPIError) as caught:
            await client.account.credits()
    assert 300 == caught.value.http_status


async def test_a_closed_client_says_the_client_is_closed(scripted: Scripted) -> None:
    client = once(scripted.url)
    await client.aclose()
    with pytest.raises(ClientClosedError, match=r"^the client is closed$"):
        await client.account.credits()


async def test_with_options_keeps_the_client_timeout(server: FakeAkoolServer) -> None:
    """A derived client without its own timeout times out like its parent."""
    server.inject("credits", Fault(FaultKind.SLOW, delay=3.0))
    async with once(server.url, server.api_key, timeout=0.3) as client:
        derived = client.with_options(retry=RetryPolicy.fast(1))
        async with asyncio.timeout(2.5):
            with pytest.raises(AkoolTimeoutError):
                await derived.account.credits()
    await server.wait_idle()


async def test_requests_keep_the_client_connect_timeout() -> None:
    """An API host that never completes the connection fails after connect_timeout, for the
    client and a client derived from it, well before the request timeout."""
    with unanswered_port() as port:
        async with AkoolClient(
            "k",
            base_url=f"http://127.0.0.1:{port}",
            connect_timeout=0.1,
            timeout=60.0,
            retry=RetryPolicy.fast(1),
        ) as client:
            for one in (client, client.with_options(retry=RetryPolicy.fast(1))):
                async with asyncio.timeout(20):
                    with pytest.raises(AkoolConnectionError):
                        await one.account.credits()


async def test_a_retry_after_past_what_is_left_of_max_time_gives_up(
    server: FakeAkoolServer,
) -> None:
    """A 1.5 s Retry-After fits the first time (up to 2.5 s left) but not the second (at most
    1 s left): the read gives up after two attempts instead of waiting past max_time."""
    server.inject("credits", *[Fault(FaultKind.HTTP_429, retry_after=1.5)] * 3)
    policy = RetryPolicy(max_attempts=5, initial_wait=0.001, max_wait=0.01, max_time=2.5)
    async with AkoolClient(server.api_key, base_url=server.url, retry=policy) as client:
        with pytest.raises(RateLimitError):
            await client.account.credits()

    assert 2 == server.call_count("credits")


async def test_a_download_is_not_bound_by_max_time(
    server: FakeAkoolServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Downloads retry by max_attempts only: a Retry-After longer than max_time is waited.
    Each retry is logged naming the video."""
    policy = RetryPolicy(max_attempts=3, initial_wait=0.001, max_wait=0.01, max_time=0.05)
    async with AkoolClient(
        server.api_key, base_url=server.url, poll=FAST_POLL, retry=policy
    ) as client:
        (video,) = await finished(client, 1)
        server.inject(
            "download", Fault(FaultKind.HTTP_503), Fault(FaultKind.HTTP_429, retry_after=0.3)
        )
        path = await client.download(video, tmp_path / "v.mp4")

    assert video_bytes(video.id) == path.read_bytes()
    assert 3 == server.call_count("download")
    retries = [r.getMessage() for r in caplog.records if r.getMessage().startswith("retrying")]
    assert 2 == len(retries), retries
    assert all(m.startswith(f"retrying download of video {video.id} (") for m in retries)


async def test_a_truncated_download_reports_the_announced_length(
    client: AkoolClient, server: FakeAkoolServer, tmp_path: Path
) -> None:
    """The DownloadError of a body cut short says how long it should have been."""
    (video,) = await finished(client, 1)
    server.inject("download", *[FaultKind.TRUNCATED] * 4)
    with pytest.raises(DownloadError) as caught:
        await client.download(video, tmp_path / "v.mp4")

    size = len(video_bytes(video.id))
    assert size == caught.value.expected
    assert caught.value.received is not None
    assert 0 <= caught.value.received < size
