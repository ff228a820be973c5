"""Retry policy against the fake's injected faults: reads retry, creates never risk a double charge.

Every fault kind is run against every endpoint class. Reads (results, models, effects, credits,
token) retry and succeed. A create is resent only when AKOOL certainly did not act (connection
refused, HTTP 429, code 1005); every other failure after sending raises
``CreateOutcomeUnknownError`` and the fake shows exactly one create request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from conftest import CREATE_ARGS, FAST_POLL

from akool_async import (
    AkoolClient,
    AkoolConnectionError,
    AkoolResponseError,
    CreateOutcomeUnknownError,
    RateLimitError,
    RetryPolicy,
    UpstreamError,
    VideoStatus,
)
from akool_async.testing import (
    DEFAULT_API_KEY,
    ENDPOINT_PATHS,
    FakeAkoolServer,
    Fault,
    FaultKind,
)

#: Client request timeout in these tests; SLOW faults outlast it.
TIMEOUT = 0.3
SLOW = Fault(FaultKind.SLOW, delay=TIMEOUT * 2)

#: Faults after which a read is retried and then succeeds.
READ_RETRIED = [k for k in FaultKind if k not in (FaultKind.MALFORMED_JSON, FaultKind.MISSING_DATA)]
#: Faults that prove AKOOL did not act: the only ones after which a create is resent.
CREATE_RETRIED = [FaultKind.HTTP_429, FaultKind.CODE_1005]
#: Every other fault: the create may have reached AKOOL, so its outcome is unknown.
CREATE_AMBIGUOUS = [k for k in FaultKind if k not in CREATE_RETRIED]

RETRY_LOG = re.compile(
    r"retrying (?P<method>\w+) (?P<path>\S+) \(attempt (?P<attempt>\d+) failed, "
    r"waiting (?P<wait>[\d.]+)s\): (?P<cause>.+)"
)


def fault(kind: FaultKind) -> Fault:
    """The fault of ``kind``; a slow answer outlasts the client timeout."""
    return SLOW if kind is FaultKind.SLOW else Fault(kind)


@contextlib.asynccontextmanager
async def akool(
    server: FakeAkoolServer,
    *,
    retry: RetryPolicy | None = None,
    token: bool = False,
    base_url: str | None = None,
) -> AsyncIterator[AkoolClient]:
    """A client for ``server`` with a short request timeout and near-zero retry waits."""
    credentials: dict[str, Any] = (
        {"client_id": server.client_id, "client_secret": server.client_secret}
        if token
        else {"api_key": server.api_key}
    )
    async with AkoolClient(
        **credentials,
        base_url=base_url or server.url,
        timeout=TIMEOUT,
        poll=FAST_POLL,
        retry=retry or RetryPolicy.fast(),
        wait_timeout=10.0,
    ) as client:
        yield client


async def settled(server: FakeAkoolServer) -> None:
    """Wait until the fake has finished every request (a slow one acts after the client left)."""
    await server.wait_idle(timeout=5)


def retry_logs(caplog: pytest.LogCaptureFixture) -> list[re.Match[str]]:
    """The retry records on the ``akool_async`` logger, parsed."""
    matches = []
    for record in caplog.records:
        if record.name == "akool_async" and record.getMessage().startswith("retrying "):
            match = RETRY_LOG.fullmatch(record.getMessage())
            assert match is not None, record.getMessage()
            assert logging.WARNING == record.levelno
            matches.append(match)
    return matches


def closed_port() -> int:
    """A loopback port nothing listens on (connections to it are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- reads -----------------------------------------------------------------------------------

READS: dict[str, Callable[[AkoolClient], Awaitable[object]]] = {
    "results": lambda c: c.image_to_video.results(["0" * 24]),
    "models": lambda c: c.models.list(),
    "effects": lambda c: c.image_to_video.effects(),
    "credits": lambda c: c.account.credits(),
    # getToken runs on the first request of a token client.
    "token": lambda c: c.account.credits(),
}


@pytest.mark.parametrize("endpoint", list(READS))
@pytest.mark.parametrize("kind", READ_RETRIED, ids=lambda k: k.value)
async def test_read_retries_and_succeeds(
    server: FakeAkoolServer,
    caplog: pytest.LogCaptureFixture,
    endpoint: str,
    kind: FaultKind,
) -> None:
    """A read hit by a transient fault is retried once, logged, and returns the answer."""
    caplog.set_level(logging.WARNING, logger="akool_async")
    server.inject(endpoint, fault(kind))
    async with akool(server, token=endpoint == "token") as client:
        answer = await READS[endpoint](client)
    assert answer is not None
    calls = server.calls(endpoint)
    assert [kind, None] == [r.fault for r in calls]
    method, path = ENDPOINT_PATHS[endpoint]
    if method == "GET" and kind in (FaultKind.RESET_BEFORE, FaultKind.RESET_AFTER):
        # aiohttp itself resends an idempotent GET once when the connection drops, before
        # our policy sees an error: that retry is aiohttp's and is not logged by the SDK.
        assert [] == retry_logs(caplog)
    else:
        (log,) = retry_logs(caplog)
        assert (path, "1") == (log["path"], log["attempt"])


@pytest.mark.parametrize("endpoint", list(READS))
@pytest.mark.parametrize(
    "kind", [FaultKind.MALFORMED_JSON, FaultKind.MISSING_DATA], ids=lambda k: k.value
)
async def test_read_unreadable_answer_raises_response_error(
    server: FakeAkoolServer, endpoint: str, kind: FaultKind
) -> None:
    """An answer that is not the documented envelope raises AkoolResponseError, unretried."""
    server.inject(endpoint, kind)
    async with akool(server, token=endpoint == "token") as client:
        with pytest.raises(AkoolResponseError) as caught:
            await READS[endpoint](client)
    assert 1 == server.call_count(endpoint)
    assert DEFAULT_API_KEY not in str(caught.value)


# -- creates ---------------------------------------------------------------------------------


async def create_batch(client: AkoolClient, server: FakeAkoolServer) -> tuple[str, ...]:
    batch = await client.image_to_video.create_batch(**CREATE_ARGS, count=2)
    return batch.ids


async def create_single(client: AkoolClient, server: FakeAkoolServer) -> tuple[str, ...]:
    handle = await client.image_to_video.create(
        image_url=CREATE_ARGS["image_url"],
        prompt=CREATE_ARGS["prompt"],
        negative_prompt="blur",
        audio_type=3,
        resolution="720p",
        video_length=5,
    )
    return (handle.id,)


async def replace_audio(client: AkoolClient, server: FakeAkoolServer) -> tuple[str, ...]:
    handle = await client.image_to_video.replace_audio(
        video_id=next(iter(server.videos)), audio_url="https://audio.example/a.mp3"
    )
    return (handle.id,)


CREATES: dict[str, Callable[[AkoolClient, FakeAkoolServer], Awaitable[tuple[str, ...]]]] = {
    "create_batch": create_batch,
    "create": create_single,
    "update_audio": replace_audio,
}


async def prepare(server: FakeAkoolServer, endpoint: str) -> None:
    """replace_audio needs a finished video to start from; make one outside the test's log."""
    if endpoint == "update_audio":
        async with akool(server) as client:
            (video_id,) = (await client.image_to_video.create_batch(**CREATE_ARGS)).ids
        server.complete(video_id)
        server.reset_log()


@pytest.mark.parametrize("endpoint", list(CREATES))
@pytest.mark.parametrize("kind", CREATE_RETRIED, ids=lambda k: k.value)
async def test_create_retries_when_server_did_not_act(
    server: FakeAkoolServer,
    caplog: pytest.LogCaptureFixture,
    endpoint: str,
    kind: FaultKind,
) -> None:
    """A create answered 429 or 1005 is resent; the videos are created once and handed out."""
    await prepare(server, endpoint)
    caplog.set_level(logging.WARNING, logger="akool_async")
    before = set(server.videos)
    server.inject(endpoint, kind)
    async with akool(server) as client:
        ids = await CREATES[endpoint](client, server)
    first, second = server.calls(endpoint)
    assert (kind, [], None) == (first.fault, first.created_ids, second.fault)
    assert first.body == second.body
    assert set(ids) == set(second.created_ids) == set(server.videos) - before
    (log,) = retry_logs(caplog)
    assert "1" == log["attempt"]
    assert ("1005" if kind is FaultKind.CODE_1005 else "HTTP 429") in log["cause"]


@pytest.mark.parametrize("endpoint", list(CREATES))
@pytest.mark.parametrize("kind", CREATE_AMBIGUOUS, ids=lambda k: k.value)
async def test_ambiguous_create_raises_outcome_unknown_and_is_not_resent(
    server: FakeAkoolServer,
    caplog: pytest.LogCaptureFixture,
    endpoint: str,
    kind: FaultKind,
) -> None:
    """A create that may have reached AKOOL raises CreateOutcomeUnknownError, sent exactly once."""
    await prepare(server, endpoint)
    caplog.set_level(logging.DEBUG, logger="akool_async")
    before = set(server.videos)
    server.inject(endpoint, fault(kind))
    async with akool(server) as client:
        with pytest.raises(CreateOutcomeUnknownError) as caught:
            await CREATES[endpoint](client, server)
    await settled(server)
    (record,) = server.calls(endpoint)
    error = caught.value
    assert (ENDPOINT_PATHS[endpoint][1], record.body) == (error.path, error.request)
    assert "NOT resent" in str(error) or "cannot name" in str(error)
    assert DEFAULT_API_KEY not in str(error) + repr(error.request)
    # The fake tells whether the request really acted: the ambiguity is real for these kinds.
    assert kind.acts == bool(record.created_ids)
    assert set(record.created_ids) == set(server.videos) - before
    assert [] == retry_logs(caplog)


async def test_create_retries_after_connection_refused_then_succeeds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A create refused before sending is retried until the server listens; created once."""
    caplog.set_level(logging.WARNING, logger="akool_async")
    port = closed_port()
    first_retry = asyncio.Event()

    class Signal(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("retrying "):
                first_retry.set()

    signal = Signal()
    logging.getLogger("akool_async").addHandler(signal)
    server = FakeAkoolServer(port=port)
    policy = RetryPolicy(max_attempts=1000, initial_wait=0.01, max_wait=0.02, max_time=20.0)
    try:
        async with AkoolClient(
            server.api_key, base_url=f"http://127.0.0.1:{port}", retry=policy, poll=FAST_POLL
        ) as client:
            task = asyncio.create_task(client.image_to_video.create_batch(**CREATE_ARGS, count=3))
            async with asyncio.timeout(10):
                await first_retry.wait()
                assert not task.done()
                await server.start()
                batch = await task
    finally:
        logging.getLogger("akool_async").removeHandler(signal)
        await server.close()
    (record,) = server.calls("create_batch")
    assert set(batch.ids) == set(record.created_ids) == set(server.videos)
    assert 3 == server.created_count
    logs = retry_logs(caplog)
    assert logs
    assert all("could not connect" in log["cause"] for log in logs)
    assert [str(n) for n in range(1, len(logs) + 1)] == [log["attempt"] for log in logs]


@pytest.mark.parametrize("operation", ["create", "read"])
async def test_refused_connection_gives_up_after_max_attempts(
    caplog: pytest.LogCaptureFixture, operation: str
) -> None:
    """Nothing listening: max_attempts tries, then AkoolConnectionError (never outcome-unknown)."""
    caplog.set_level(logging.WARNING, logger="akool_async")
    async with AkoolClient(
        DEFAULT_API_KEY,
        base_url=f"http://127.0.0.1:{closed_port()}",
        retry=RetryPolicy.fast(max_attempts=3),
    ) as client:
        call = (
            client.image_to_video.create_batch(**CREATE_ARGS)
            if operation == "create"
            else client.account.credits()
        )
        with pytest.raises(AkoolConnectionError) as caught:
            await call
    assert not isinstance(caught.value, CreateOutcomeUnknownError)
    assert ["1", "2"] == [log["attempt"] for log in retry_logs(caplog)]


# -- Retry-After and caps --------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["results", "create_batch"])
async def test_retry_after_is_honoured(server: FakeAkoolServer, endpoint: str) -> None:
    """After a 429 with Retry-After, the next attempt starts no sooner than asked."""
    retry_after = 0.3
    server.inject(endpoint, Fault(FaultKind.HTTP_429, retry_after=retry_after))
    async with akool(server) as client:
        if endpoint == "results":
            await client.image_to_video.results(["0" * 24])
        else:
            await client.image_to_video.create_batch(**CREATE_ARGS)
    first, second = server.calls(endpoint)
    assert first.finished_at is not None
    # The fake's clock is time.monotonic(); 1 ms of slack covers timer granularity.
    assert second.started_at - first.finished_at >= retry_after - 0.001


async def test_retry_after_longer_than_max_retry_after_is_not_waited(
    server: FakeAkoolServer,
) -> None:
    """A Retry-After beyond max_retry_after raises RateLimitError at once, retry_after set."""
    server.inject("credits", Fault(FaultKind.HTTP_429, retry_after=30))
    async with akool(server, retry=RetryPolicy(max_retry_after=1.0)) as client:
        with pytest.raises(RateLimitError) as caught:
            await client.account.credits()
    assert (30.0, 429) == (caught.value.retry_after, caught.value.http_status)
    assert 1 == server.call_count("credits")


async def test_retry_after_beyond_max_time_is_not_cut_short(server: FakeAkoolServer) -> None:
    """A Retry-After past the time budget gives up instead of retrying before the server allows."""
    server.inject("credits", Fault(FaultKind.HTTP_429, retry_after=5))
    async with akool(server, retry=RetryPolicy(max_time=0.5, max_retry_after=60.0)) as client:
        with pytest.raises(RateLimitError) as caught:
            await client.account.credits()
    assert 5.0 == caught.value.retry_after
    assert 1 == server.call_count("credits")


async def test_max_attempts_caps_read_retries(
    server: FakeAkoolServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A read failing every time is tried max_attempts times, then its error is raised."""
    caplog.set_level(logging.WARNING, logger="akool_async")
    server.inject("credits", *[FaultKind.HTTP_503] * 10)
    async with akool(server, retry=RetryPolicy.fast(max_attempts=3)) as client:
        with pytest.raises(UpstreamError) as caught:
            await client.account.credits()
    assert 503 == caught.value.http_status
    assert 3 == server.call_count("credits")
    logs = retry_logs(caplog)
    assert ["1", "2"] == [log["attempt"] for log in logs]
    assert all("HTTP 503" in log["cause"] for log in logs)
    assert all(float(log["wait"]) <= RetryPolicy.fast().max_wait for log in logs)


async def test_max_attempts_caps_create_retries(server: FakeAkoolServer) -> None:
    """A create rate limited every time is sent max_attempts times, creates nothing, and raises."""
    server.inject("create_batch", *[FaultKind.CODE_1005] * 10)
    async with akool(server, retry=RetryPolicy.fast(max_attempts=3)) as client:
        with pytest.raises(RateLimitError) as caught:
            await client.image_to_video.create_batch(**CREATE_ARGS)
    assert 1005 == caught.value.code
    assert 3 == server.call_count("create_batch")
    assert 0 == server.created_count


async def test_max_time_caps_retries(server: FakeAkoolServer) -> None:
    """With attempts to spare, retries stop once max_time has passed."""
    server.inject("credits", *[FaultKind.HTTP_502] * 1000)
    policy = RetryPolicy(max_attempts=1000, max_time=0.3, initial_wait=0.02, max_wait=0.05)
    async with akool(server, retry=policy) as client:
        with pytest.raises(UpstreamError):
            await client.account.credits()
    assert 1 < server.call_count("credits") < 1000


async def test_disabled_policy_never_retries(server: FakeAkoolServer) -> None:
    """RetryPolicy.disabled() sends each request once."""
    server.inject("credits", FaultKind.HTTP_503)
    async with akool(server, retry=RetryPolicy.disabled()) as client:
        with pytest.raises(UpstreamError):
            await client.account.credits()
        assert 1 == server.call_count("credits")
        assert 100_000.0 == await client.account.credits()


# -- the poller --------------------------------------------------------------------------------


async def test_poller_survives_failing_results_calls(server: FakeAkoolServer) -> None:
    """Results calls failing past the retry budget leave every handle pending, then completing."""
    async with akool(server, retry=RetryPolicy.fast(max_attempts=2)) as client:
        server.inject("results", *[Fault(k) for k in READ_RETRIED if k is not FaultKind.SLOW])
        server.inject("results", FaultKind.MALFORMED_JSON, FaultKind.MISSING_DATA, SLOW)
        batch = await client.image_to_video.create_batch(**CREATE_ARGS, count=5)
        videos = await asyncio.gather(*batch.handles)
        stats = client.poller.statistics()
    assert [VideoStatus.COMPLETED] * 5 == [v.status for v in videos]
    assert stats.failed_requests >= 3
    assert len(READ_RETRIED) + 2 == len(server.faults_served)


async def test_poller_slows_down_on_rate_limits(server: FakeAkoolServer) -> None:
    """Rate-limited results calls are counted and raise the poller's slowdown; handles complete."""
    async with akool(server, retry=RetryPolicy.fast(max_attempts=2)) as client:
        server.inject("results", *[FaultKind.HTTP_429, FaultKind.CODE_1005] * 2)
        batch = await client.image_to_video.create_batch(**CREATE_ARGS, count=2)
        await asyncio.gather(*batch.handles)
        stats = client.poller.statistics()
    assert stats.rate_limited >= 2
    assert 4 == len(server.faults_served)


def test_default_policy_values() -> None:
    """The default policy: 4 attempts within 60 s, waits from 0.5 s doubling to 8 s."""
    policy = RetryPolicy()
    assert (4, 60.0, 0.5, 8.0, 120.0) == (
        policy.max_attempts,
        policy.max_time,
        policy.initial_wait,
        policy.max_wait,
        policy.max_retry_after,
    )
    assert 1 == RetryPolicy.disabled().max_attempts


@pytest.mark.parametrize(
    "bad", [{"max_attempts": 0}, {"max_time": 0}, {"initial_wait": -1}, {"max_wait": -1}]
)
def test_policy_rejects_nonsense(bad: dict[str, float]) -> None:
    """RetryPolicy refuses values that could never retry sensibly."""
    with pytest.raises(ValueError, match=next(iter(bad))):
        RetryPolicy(**bad)  # type: ignore[arg-type]


def test_policy_is_frozen() -> None:
    """RetryPolicy is an immutable value."""
    policy = RetryPolicy()
    with pytest.raises(AttributeError):
        policy.max_attempts = 10  # type: ignore[misc]
