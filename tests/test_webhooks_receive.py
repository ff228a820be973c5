"""Receiving webhooks: ``client.webhooks.receive``, the aiohttp and ASGI receivers, end to end.

Everything talks HTTP over loopback: the fake AKOOL server delivers real, encrypted webhooks to
real receivers (an aiohttp app, a FastAPI app and the bare ASGI app served by uvicorn). The
clients poll webhook videos at most once an hour (``WEBHOOK_POLL``), so a handle that resolves
with no results call was resolved by its webhook, not by polling.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import importlib.util
import json
import logging
import random
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import attrs
import pytest
import uvicorn
from aiohttp import web
from conftest import CREATE_ARGS, FAST_POLL
from fastapi import FastAPI
from starlette.routing import Route

from akool_async import (
    AkoolClient,
    AkoolValueError,
    PollPolicy,
    RetryPolicy,
    TaskHandle,
    VideoFailedError,
    VideoStatus,
    WebhookVerificationError,
)
from akool_async import webhooks as webhooks_module
from akool_async.testing import FakeAkoolServer, sign_webhook
from akool_async.webhooks import (
    DEFAULT_MAX_WEBHOOK_BODY,
    aiohttp_handler,
    asgi_app,
)

#: Webhook videos are first polled after an hour: only a webhook can resolve them in a test.
WEBHOOK_POLL = attrs.evolve(FAST_POLL, webhook_interval=3600.0)
#: Webhook videos polled as often as any other: polling is the backstop for lost deliveries.
BACKSTOP_POLL = attrs.evolve(FAST_POLL, webhook_interval=0.05)
#: Where deliveries would go in tests that drop them all (never contacted).
UNUSED_HOOK = "http://127.0.0.1:9/akool/webhook"
HOOK_PATH = "/akool/webhook"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
OTHER_SECRET = "another-secret-0123456789abcdefg"  # 32 bytes, like the fake's key


def make_client(
    server: FakeAkoolServer, poll: PollPolicy = WEBHOOK_POLL, **kwargs: Any
) -> AkoolClient:
    """A client for ``server`` that can verify its webhooks."""
    options: dict[str, Any] = {
        "client_id": server.client_id,
        "base_url": server.url,
        "poll": poll,
        "retry": RetryPolicy.fast(),
        "wait_timeout": 30.0,
        **kwargs,
    }
    return AkoolClient(server.api_key, **options)


@pytest.fixture
async def hook_client(server: FakeAkoolServer) -> AsyncIterator[AkoolClient]:
    """A client with ``client_id`` whose webhook videos are never polled within a test."""
    async with make_client(server) as akool:
        yield akool


def drop_all(video_id: str, status: int) -> bool:
    """A ``webhook_drop`` knob that drops every delivery."""
    return True


def envelope(server: FakeAkoolServer, video_id: str, status: int, **kwargs: Any) -> bytes:
    """A body AKOOL would POST about ``video_id``, signed with ``server``'s credentials."""
    url = kwargs.pop("url", server.video_url(video_id) if status == 3 else "")
    event = {"_id": video_id, "status": status, "type": "image2video", "url": url}
    signed = sign_webhook(
        event, client_id=server.client_id, client_secret=server.client_secret, **kwargs
    )
    return json.dumps(signed).encode()


async def create(
    client: AkoolClient, count: int = 1, webhook_url: str = UNUSED_HOOK
) -> tuple[TaskHandle, ...]:
    """Start ``count`` videos with a webhook URL; their handles."""
    batch = await client.image_to_video.create_batch(
        **CREATE_ARGS, count=count, webhook_url=webhook_url
    )
    return batch.handles


def result_ids(server: FakeAkoolServer) -> list[str]:
    """Every id asked for in a results call, in order."""
    return [i for r in server.calls("results") for i in r.body["_ids"].split(",")]


# -- client.webhooks.receive -----------------------------------------------------------------


async def test_receive_completed_resolves_waiting_handle(
    server: FakeAkoolServer, hook_client: AkoolClient
) -> None:
    """A verified status-3 event resolves the handle with a Video carrying the url."""
    server.webhook_drop = drop_all
    (handle,) = await create(hook_client)
    event = await hook_client.webhooks.receive(envelope(server, handle.id, 3, url="https://v/1"))
    assert (handle.id, VideoStatus.COMPLETED) == (event.id, event.status)
    assert handle.done()
    video = await handle
    assert (VideoStatus.COMPLETED, "https://v/1") == (video.status, video.video_url)
    assert dict(event.raw) == dict(video.raw)
    assert [] == hook_client.poller.pending_ids()
    assert 0 == server.call_count("results")


async def test_receive_failed_fails_waiting_handle(
    server: FakeAkoolServer, hook_client: AkoolClient
) -> None:
    """A verified status-4 event fails the handle with VideoFailedError carrying the event."""
    server.webhook_drop = drop_all
    (handle,) = await create(hook_client)
    await hook_client.webhooks.receive(envelope(server, handle.id, 4))
    with pytest.raises(VideoFailedError) as failure:
        await handle
    assert (handle.id, 4) == (failure.value.video.id, failure.value.video.raw["status"])
    assert [] == hook_client.poller.pending_ids()


async def test_receive_processing_updates_status_only(
    server: FakeAkoolServer, hook_client: AkoolClient
) -> None:
    """A status-2 event moves the handle's status on and leaves it waiting."""
    server.webhook_drop = drop_all
    (handle,) = await create(hook_client)
    await hook_client.webhooks.receive(envelope(server, handle.id, 2))
    assert (VideoStatus.PROCESSING, False) == (handle.status, handle.done())
    assert [handle.id] == hook_client.poller.pending_ids()


async def test_receive_repeats_and_late_events_never_go_backwards(
    server: FakeAkoolServer, hook_client: AkoolClient
) -> None:
    """After status 3, a late status 2 and a repeated 3 with another url change nothing."""
    server.webhook_drop = drop_all
    (handle,) = await create(hook_client)
    first = envelope(server, handle.id, 3, url="https://v/first")
    await hook_client.webhooks.receive(first)
    await hook_client.webhooks.receive(envelope(server, handle.id, 2))
    await hook_client.webhooks.receive(envelope(server, handle.id, 3, url="https://v/second"))
    await hook_client.webhooks.receive(first)
    assert VideoStatus.COMPLETED == handle.status
    assert "https://v/first" == (await handle).video_url


async def test_receive_unknown_id_is_verified_and_ignored(
    server: FakeAkoolServer, hook_client: AkoolClient
) -> None:
    """An event about an id nobody waits for is returned and tracks nothing."""
    event = await hook_client.webhooks.receive(envelope(server, "a" * 24, 3))
    assert ("a" * 24, VideoStatus.COMPLETED) == (event.id, event.status)
    assert [] == hook_client.poller.pending_ids()


async def test_receive_completed_without_url_leaves_handle_to_polling(
    server: FakeAkoolServer, hook_client: AkoolClient
) -> None:
    """A status-3 event without a url does not resolve the handle with a url-less video."""
    server.webhook_drop = drop_all
    (handle,) = await create(hook_client)
    await hook_client.webhooks.receive(envelope(server, handle.id, 3, url=""))
    assert (False, [handle.id]) == (handle.done(), hook_client.poller.pending_ids())


async def test_receive_accepts_str_and_parsed_bodies(
    server: FakeAkoolServer, hook_client: AkoolClient
) -> None:
    """The body may be bytes, str or the already parsed JSON object."""
    body = envelope(server, "b" * 24, 2)
    from_str = await hook_client.webhooks.receive(body.decode())
    from_mapping = await hook_client.webhooks.receive(json.loads(body))
    assert from_str == from_mapping


async def test_resolved_ids_leave_the_poll(server: FakeAkoolServer) -> None:
    """An id resolved by webhook is never asked for again; the others still are."""
    server.webhook_drop = drop_all
    async with make_client(server, poll=BACKSTOP_POLL) as client:
        by_hook, by_poll = await create(client, count=2)
        await client.webhooks.receive(envelope(server, by_hook.id, 3))
        assert server.video_url(by_poll.id) == (await by_poll).video_url
    assert by_poll.id in result_ids(server)
    assert by_hook.id not in result_ids(server)


async def test_receive_rejects_tampering_without_touching_handles(
    server: FakeAkoolServer, hook_client: AkoolClient
) -> None:
    """A tampered envelope raises WebhookVerificationError and changes no handle."""
    server.webhook_drop = drop_all
    (handle,) = await create(hook_client)
    signed = json.loads(envelope(server, handle.id, 3))
    signed["signature"] = "0" * 40
    with pytest.raises(WebhookVerificationError, match="signature"):
        await hook_client.webhooks.receive(signed)
    assert (VideoStatus.QUEUEING, False) == (handle.status, handle.done())


async def test_receive_rejects_other_credentials(
    server: FakeAkoolServer, hook_client: AkoolClient
) -> None:
    """An envelope encrypted with another secret fails verification."""
    event = {"_id": "c" * 24, "status": 3, "type": "image2video", "url": "https://v/1"}
    forged = sign_webhook(event, client_id=server.client_id, client_secret=OTHER_SECRET)
    with pytest.raises(WebhookVerificationError):
        await hook_client.webhooks.receive(forged)


DAY_MS = 86_400_000


async def test_receive_tolerance(server: FakeAkoolServer, hook_client: AkoolClient) -> None:
    """A retry a day late passes; an envelope older than any video lives (7 days) does not."""
    now_ms = int(time.time() * 1000)
    late_retry = envelope(server, "d" * 24, 2, timestamp=now_ms - DAY_MS)
    assert "d" * 24 == (await hook_client.webhooks.receive(late_retry)).id
    stale = envelope(server, "d" * 24, 2, timestamp=now_ms - 8 * DAY_MS)
    with pytest.raises(WebhookVerificationError, match="timestamp"):
        await hook_client.webhooks.receive(stale)
    assert "d" * 24 == (await hook_client.webhooks.receive(stale, tolerance=None)).id


async def test_replayed_genuine_deliveries_do_no_harm(
    server: FakeAkoolServer,
    hook_client: AkoolClient,
    hook_url: str,
    http: aiohttp.ClientSession,
) -> None:
    """Genuine deliveries replayed later, in any order, are answered 200 and change nothing.

    The wide default window accepts them, so dedupe and "a status never goes back" carry the
    safety: the handle keeps the first completion, and an old "processing" cannot reopen it.
    """
    server.webhook_drop = drop_all
    (handle,) = await create(hook_client)
    hour_ago = int(time.time() * 1000) - 3_600_000
    processing = envelope(server, handle.id, 2, timestamp=hour_ago)
    completed = envelope(server, handle.id, 3, url="https://v/first", timestamp=hour_ago + 1)
    assert 200 == (await post(http, hook_url, processing))[0]
    assert 200 == (await post(http, hook_url, completed))[0]
    first = await handle

    other_url = envelope(server, handle.id, 3, url="https://v/second")
    failed = envelope(server, handle.id, 4)
    for replay in (processing, completed, other_url, failed, processing):
        assert 200 == (await post(http, hook_url, replay))[0]

    assert handle.video is not None
    assert (VideoStatus.COMPLETED, "https://v/first") == (handle.status, handle.video.video_url)
    assert first is await handle
    assert [] == server.calls("results")  # webhook videos: only deliveries moved this handle


async def test_receive_needs_client_id(server: FakeAkoolServer) -> None:
    """Without client_id, receive raises AkoolValueError (and names no secret)."""
    async with AkoolClient(server.api_key, base_url=server.url) as client:
        with pytest.raises(AkoolValueError, match="client_id") as error:
            await client.webhooks.receive(envelope(server, "e" * 24, 2))
    assert server.api_key not in str(error.value)


async def test_receive_needs_an_aes_sized_secret(server: FakeAkoolServer) -> None:
    """An API key that is not 16, 24 or 32 bytes cannot decrypt: AkoolValueError, unnamed."""
    key = "seventeen-bytes!!"
    async with AkoolClient(key, client_id="cid", base_url=server.url) as client:
        with pytest.raises(AkoolValueError, match="16, 24 or 32") as error:
            await client.webhooks.receive(envelope(server, "e" * 24, 2))
    assert key not in str(error.value)


# -- receivers over HTTP ---------------------------------------------------------------------


def loopback_socket() -> socket.socket:
    """A listening-ready socket on a free loopback port (so the URL is known up front)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit it: without it, each uvicorn answer (start and body are two
    # writes) waited ~40 ms for a delayed ACK and the suite ran seconds slower.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class StartupEventServer(uvicorn.Server):
    """uvicorn's Server with an event for "startup is over" (uvicorn offers only a flag)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.startup_done = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            self.startup_done.set()


@contextlib.asynccontextmanager
async def serve_uvicorn(make_app: Callable[[str], Any]) -> AsyncIterator[str]:
    """Serve ``make_app(base_url)`` with uvicorn on loopback; yield the base URL."""
    with loopback_socket() as sock:
        base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(
            make_app(base_url),
            lifespan="on",
            ws="none",
            log_config=None,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
        )
        server = StartupEventServer(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            startup = asyncio.create_task(server.startup_done.wait())
            try:
                # serve() ends early when it cannot start at all: wait for whichever comes first.
                await asyncio.wait({task, startup}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
            finally:
                startup.cancel()
            assert server.started, "uvicorn did not start (lifespan startup failed?)"
            yield base_url
        finally:
            server.should_exit = True
            await task


@contextlib.asynccontextmanager
async def serve_aiohttp(make_app: Callable[[str], web.Application]) -> AsyncIterator[str]:
    """Serve ``make_app(base_url)`` with aiohttp on loopback; yield the base URL."""
    with loopback_socket() as sock:
        base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        runner = web.AppRunner(make_app(base_url), access_log=None)
        await runner.setup()
        try:
            await web.SockSite(runner, sock).start()
            yield base_url
        finally:
            await runner.cleanup()


def aiohttp_receiver(client: AkoolClient, **options: Any) -> web.Application:
    """An aiohttp app with the receiver on every method, so it answers 405 itself."""
    app = web.Application()
    app.router.add_route("*", HOOK_PATH, aiohttp_handler(client, **options))
    return app


def fastapi_receiver(client: AkoolClient, **options: Any) -> FastAPI:
    """A FastAPI app with the ASGI receiver as a route, the way the docs say."""
    app = FastAPI()
    app.router.routes.append(Route(HOOK_PATH, asgi_app(client, **options), methods=["POST"]))
    return app


@contextlib.asynccontextmanager
async def serve_receiver(kind: str, client: AkoolClient, **options: Any) -> AsyncIterator[str]:
    """Serve a receiver for ``client``; yield its webhook URL.

    ``kind``: ``"aiohttp"`` (aiohttp_handler), ``"asgi"`` (asgi_app alone under uvicorn) or
    ``"fastapi"`` (asgi_app as a FastAPI route under uvicorn).
    """
    if kind == "aiohttp":
        serving = serve_aiohttp(lambda _: aiohttp_receiver(client, **options))
    elif kind == "asgi":
        serving = serve_uvicorn(lambda _: asgi_app(client, **options))
    else:
        serving = serve_uvicorn(lambda _: fastapi_receiver(client, **options))
    async with serving as base_url:
        yield base_url + HOOK_PATH


@pytest.fixture(params=["aiohttp", "asgi"])
async def hook_url(request: pytest.FixtureRequest, hook_client: AkoolClient) -> AsyncIterator[str]:
    """The webhook URL of a receiver for ``hook_client``, aiohttp's or the bare ASGI app."""
    async with serve_receiver(request.param, hook_client) as url:
        yield url


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain HTTP client for posting to receivers."""
    async with aiohttp.ClientSession() as session:
        yield session


async def post(
    http: aiohttp.ClientSession, url: str, data: Any, method: str = "POST"
) -> tuple[int, bytes]:
    """Send ``data``; the answer's status and body."""
    async with http.request(method, url, data=data) as response:
        return response.status, await response.read()


async def test_receiver_answers_200_and_resolves(
    server: FakeAkoolServer,
    hook_client: AkoolClient,
    hook_url: str,
    http: aiohttp.ClientSession,
) -> None:
    """A valid delivery is answered 200 and resolves the waiting handle."""
    server.webhook_drop = drop_all
    (handle,) = await create(hook_client)
    assert (200, b'{"ok":true}') == await post(http, hook_url, envelope(server, handle.id, 3))
    assert server.video_url(handle.id) == handle.result_nowait().video_url


async def test_receiver_answers_200_for_unknown_ids(
    server: FakeAkoolServer, hook_url: str, http: aiohttp.ClientSession
) -> None:
    """A verified delivery about a video nobody waits for still gets 200 (no retries)."""
    assert 200 == (await post(http, hook_url, envelope(server, "f" * 24, 3)))[0]


def _signed_raw(server: FakeAkoolServer, data_encrypt: str) -> bytes:
    """A correctly signed envelope around arbitrary ``dataEncrypt`` (signature per §8)."""
    timestamp, nonce = str(int(time.time() * 1000)), "12345"
    parts = sorted([server.client_id, timestamp, nonce, data_encrypt])
    signature = hashlib.sha1("".join(parts).encode()).hexdigest()
    return json.dumps(
        {
            "signature": signature,
            "dataEncrypt": data_encrypt,
            "timestamp": timestamp,
            "nonce": nonce,
        }
    ).encode()


def bad_bodies(server: FakeAkoolServer) -> dict[str, bytes]:
    """Bodies failing each kind of check, by name."""
    good = json.loads(envelope(server, "g" * 24, 3))
    event = {"_id": "g" * 24, "status": 3, "type": "image2video", "url": "https://v/1"}
    other_key = sign_webhook(event, client_id=server.client_id, client_secret=OTHER_SECRET)
    return {
        "empty": b"",
        "not json": b"\xff not json",
        "json array": b"[]",
        "missing fields": b"{}",
        "bad signature": json.dumps({**good, "signature": "f" * 40}).encode(),
        "stale": envelope(server, "g" * 24, 3, timestamp=1_000_000_000_000),
        "not base64": _signed_raw(server, "%%%not-base64%%%"),
        "partial block": _signed_raw(server, base64.b64encode(b"x" * 20).decode()),
        # Signed correctly but encrypted with another key: bad padding or garbage plaintext,
        # exactly what a padding-oracle attacker sends.
        "other key": json.dumps(other_key).encode(),
    }


async def test_receiver_rejects_every_failure_identically(
    server: FakeAkoolServer,
    hook_url: str,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every verification failure gets the same 400 body; the reason goes to a WARNING log."""
    caplog.set_level(logging.WARNING, logger="akool_async.webhooks")
    bodies = bad_bodies(server)
    answers = {name: await post(http, hook_url, body) for name, body in bodies.items()}
    expected = (400, b'{"ok":false,"error":"invalid webhook"}')
    assert dict.fromkeys(bodies, expected) == answers
    rejections = [r for r in caplog.records if r.name == "akool_async.webhooks"]
    assert len(bodies) * ["WARNING"] == [r.levelname for r in rejections]
    assert any("signature mismatch" in r.getMessage() for r in rejections)


async def test_receiver_logs_no_secret_or_payload(
    server: FakeAkoolServer,
    hook_url: str,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Rejection logs name the check, never the API key, the ciphertext or the plaintext."""
    caplog.set_level(logging.DEBUG, logger="akool_async")
    event = {"_id": "h" * 24, "status": 3, "type": "image2video", "url": "https://v/plain"}
    other_key = sign_webhook(event, client_id=server.client_id, client_secret=OTHER_SECRET)
    assert 400 == (await post(http, hook_url, json.dumps(other_key).encode()))[0]
    tampered = {**json.loads(envelope(server, "h" * 24, 3)), "signature": "0" * 40}
    assert 400 == (await post(http, hook_url, json.dumps(tampered).encode()))[0]
    text = caplog.text
    assert "rejected an AKOOL webhook" in text
    for secret in (server.api_key, other_key["dataEncrypt"], tampered["dataEncrypt"], "plain"):
        assert secret not in text


async def test_receiver_fuzzed_bodies_never_500(
    server: FakeAkoolServer, hook_url: str, http: aiohttp.ClientSession
) -> None:
    """Randomly corrupted envelopes are answered 400 (or 200 if still valid), never 500."""
    rng = random.Random(5)
    good = envelope(server, "i" * 24, 2)
    statuses = set()
    for _ in range(60):
        body = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            position = rng.randrange(len(body))
            action = rng.choice(["flip", "cut", "insert"])
            if action == "flip":
                body[position] = rng.randrange(256)
            elif action == "cut":
                del body[position:]
                if not body:
                    break
            else:
                body[position:position] = rng.randbytes(rng.randint(1, 8))
        statuses.add((await post(http, hook_url, bytes(body)))[0])
    assert statuses <= {200, 400}
    assert 400 in statuses


async def test_receiver_refuses_other_methods(hook_url: str, http: aiohttp.ClientSession) -> None:
    """GET is answered 405 with Allow: POST."""
    async with http.get(hook_url) as response:
        assert (405, "POST") == (response.status, response.headers.get("Allow"))


async def test_receiver_caps_the_body(
    hook_client: AkoolClient, http: aiohttp.ClientSession
) -> None:
    """Bodies over max_body_size get 413, declared or streamed; a body at the cap is read."""
    for kind in ("aiohttp", "asgi"):
        async with serve_receiver(kind, hook_client, max_body_size=1024) as url:
            assert 413 == (await post(http, url, b"x" * 1025))[0]

            async def stream() -> AsyncIterator[bytes]:
                for _ in range(8):
                    yield b"y" * 200  # chunked: no Content-Length to refuse up front

            assert 413 == (await post(http, url, stream()))[0]
            assert 400 == (await post(http, url, b" " * 1024))[0]


async def test_receiver_reads_a_chunked_body(
    server: FakeAkoolServer, hook_url: str, http: aiohttp.ClientSession
) -> None:
    """A valid body sent in several chunks is reassembled and accepted."""
    body = envelope(server, "j" * 24, 2)

    async def stream() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 50):
            yield body[start : start + 50]

    assert 200 == (await post(http, hook_url, stream()))[0]


async def test_receivers_check_setup_up_front(server: FakeAkoolServer) -> None:
    """A client that cannot verify, or bad options, fail when the receiver is built."""
    async with AkoolClient(server.api_key, base_url=server.url) as no_id:
        for factory in (aiohttp_handler, asgi_app):
            with pytest.raises(AkoolValueError, match="client_id"):
                factory(no_id)
    async with make_client(server) as client:
        for factory in (aiohttp_handler, asgi_app):
            with pytest.raises(AkoolValueError, match="tolerance"):
                factory(client, tolerance=-1)
            with pytest.raises(AkoolValueError, match="max_body_size"):
                factory(client, max_body_size=0)


async def test_public_module_surface() -> None:
    """akool_async.webhooks exports the receivers and re-exports the verification API."""
    import akool_async

    assert akool_async.verify_webhook is webhooks_module.verify_webhook
    assert akool_async.WebhookEvent is webhooks_module.WebhookEvent
    assert akool_async.WebhookVerificationError is webhooks_module.WebhookVerificationError
    assert 64 * 1024 == DEFAULT_MAX_WEBHOOK_BODY
    assert [] == [n for n in webhooks_module.__all__ if not hasattr(webhooks_module, n)]


# -- the ASGI protocol, spoken directly ------------------------------------------------------


class Channel:
    """Both ends of one ASGI call: scripted incoming messages, recorded outgoing ones."""

    def __init__(self, *incoming: dict[str, Any]) -> None:
        self.incoming = list(incoming)
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        return self.incoming.pop(0)

    async def send(self, message: Any) -> None:
        self.sent.append(dict(message))


async def test_asgi_lifespan_is_acknowledged(hook_client: AkoolClient) -> None:
    """lifespan.startup and .shutdown are answered with .complete, and the call returns."""
    channel = Channel({"type": "lifespan.startup"}, {"type": "lifespan.shutdown"})
    await asgi_app(hook_client)({"type": "lifespan"}, channel.receive, channel.send)
    expected = ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert expected == [m["type"] for m in channel.sent]


async def test_asgi_refuses_websockets(hook_client: AkoolClient) -> None:
    """A websocket connection is closed before being accepted."""
    channel = Channel({"type": "websocket.connect"})
    await asgi_app(hook_client)({"type": "websocket"}, channel.receive, channel.send)
    assert [{"type": "websocket.close", "code": 1008}] == channel.sent


async def test_asgi_rejects_unknown_scope_types(hook_client: AkoolClient) -> None:
    """An unknown scope type raises, as the ASGI spec asks."""
    channel = Channel()
    with pytest.raises(ValueError, match="telepathy"):
        await asgi_app(hook_client)({"type": "telepathy"}, channel.receive, channel.send)


async def test_asgi_disconnect_mid_body_sends_nothing(
    server: FakeAkoolServer, hook_client: AkoolClient
) -> None:
    """A sender that disconnects mid-body gets no answer and applies no event."""
    server.webhook_drop = drop_all
    (handle,) = await create(hook_client)
    body = envelope(server, handle.id, 3)
    channel = Channel(
        {"type": "http.request", "body": body[:10], "more_body": True},
        {"type": "http.disconnect"},
    )
    scope = {"type": "http", "method": "POST", "headers": []}
    await asgi_app(hook_client)(scope, channel.receive, channel.send)
    assert ([], False) == (channel.sent, handle.done())


# -- end to end: the fake server delivering to real apps -------------------------------------


RECEIVER_KINDS = ["fastapi", "aiohttp"]


@pytest.mark.parametrize("kind", RECEIVER_KINDS)
async def test_webhooks_resolve_handles_before_any_poll(
    server: FakeAkoolServer, hook_client: AkoolClient, kind: str
) -> None:
    """Deliveries resolve every handle; no results call was needed."""
    async with serve_receiver(kind, hook_client) as url:
        handles = await create(hook_client, count=5, webhook_url=url)
        async with asyncio.timeout(10):
            videos = await asyncio.gather(*handles)
            await server.wait_webhooks()
    assert [server.video_url(h.id) for h in handles] == [v.video_url for v in videos]
    assert 0 == server.call_count("results")
    assert 10 * [200] == [d.http_status for d in server.webhook_deliveries]


@pytest.mark.parametrize("kind", RECEIVER_KINDS)
async def test_webhooks_fail_handles_of_failed_videos(
    server: FakeAkoolServer, hook_client: AkoolClient, kind: str
) -> None:
    """A status-4 delivery fails the handle with VideoFailedError, without polling."""
    server.fail_when = lambda body: True
    async with serve_receiver(kind, hook_client) as url:
        (handle,) = await create(hook_client, webhook_url=url)
        async with asyncio.timeout(10):
            with pytest.raises(VideoFailedError):
                await handle
    assert 0 == server.call_count("results")


@pytest.mark.parametrize("kind", RECEIVER_KINDS)
async def test_dropped_deliveries_resolve_by_polling(server: FakeAkoolServer, kind: str) -> None:
    """When the final deliveries are lost, polling (the backstop) still resolves the handles."""
    server.webhook_drop = lambda video_id, status: status >= 3
    async with (
        make_client(server, poll=BACKSTOP_POLL) as client,
        serve_receiver(kind, client) as url,
    ):
        handles = await create(client, count=3, webhook_url=url)
        async with asyncio.timeout(10):
            videos = await asyncio.gather(*handles)
            await server.wait_webhooks()
    assert [server.video_url(h.id) for h in handles] == [v.video_url for v in videos]
    dropped = {d.video_id for d in server.webhook_deliveries if d.dropped}
    assert {h.id for h in handles} == dropped
    assert {h.id for h in handles} <= set(result_ids(server))


@pytest.mark.parametrize("kind", RECEIVER_KINDS)
async def test_duplicate_and_reordered_deliveries_are_harmless(
    server: FakeAkoolServer, hook_client: AkoolClient, kind: str
) -> None:
    """Every delivery twice, status 2 after status 3: all answered 200, results unchanged."""
    server.webhook_duplicate = True
    server.webhook_reorder = True
    async with serve_receiver(kind, hook_client) as url:
        handles = await create(hook_client, count=3, webhook_url=url)
        async with asyncio.timeout(10):
            videos = await asyncio.gather(*handles)
            await server.wait_webhooks()
    assert 12 * [200] == [d.http_status for d in server.webhook_deliveries]
    late = [d.payload["status"] for d in server.webhook_deliveries[-2:]]
    assert [2, 2] == late  # the reordered status-2 deliveries really came last
    assert 3 * [VideoStatus.COMPLETED] == [h.status for h in handles]
    assert list(videos) == [h.result_nowait() for h in handles]
    assert 0 == server.call_count("results")


# -- the examples ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def examples() -> Iterator[dict[str, ModuleType]]:
    """examples/fastapi_app.py and examples/aiohttp_app.py, imported."""
    modules = {}
    for name in ("fastapi_app", "aiohttp_app"):
        spec = importlib.util.spec_from_file_location(f"_example_{name}", EXAMPLES / f"{name}.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # pydantic resolves annotations through sys.modules
        spec.loader.exec_module(module)
        modules[name] = module
    yield modules
    for module in modules.values():
        sys.modules.pop(module.__name__, None)


@pytest.mark.parametrize("name", ["fastapi_app", "aiohttp_app"])
async def test_example_app_end_to_end(
    server: FakeAkoolServer,
    hook_client: AkoolClient,
    http: aiohttp.ClientSession,
    examples: dict[str, ModuleType],
    name: str,
) -> None:
    """The example starts videos in a route and reports them finished by webhook alone."""
    create_app = examples[name].create_app
    serve = serve_uvicorn if name == "fastapi_app" else serve_aiohttp
    async with serve(lambda base_url: create_app(hook_client, base_url)) as base_url:
        request = {**CREATE_ARGS, "count": 2}
        async with http.post(f"{base_url}/videos", json=request) as response:
            assert 200 == response.status
            started = await response.json()
        ids = [item["id"] for item in started]
        reports = []
        for video_id in ids:
            async with http.get(f"{base_url}/videos/{video_id}", params={"wait": "10"}) as answer:
                reports.append(await answer.json())
        async with http.get(f"{base_url}/videos/{'0' * 24}") as missing:
            assert 404 == missing.status
    expected = [("COMPLETED", True, server.video_url(i)) for i in ids]
    assert expected == [(r["status"], r["done"], r["video_url"]) for r in reports]
    assert 0 == server.call_count("results")


async def test_webhook_before_the_handle_exists_is_applied_on_track(
    server: FakeAkoolServer, hook_client: AkoolClient
) -> None:
    """A delivery that beats the create's answer still resolves the handle made afterwards."""
    server.webhook_drop = drop_all
    (handle,) = await create(hook_client)
    server.complete(handle.id)
    await hook_client.webhooks.receive(envelope(server, handle.id, 3))
    # A second id AKOOL reports before the SDK tracks it (e.g. a re-attach after a restart).
    batch = await hook_client.image_to_video.create_batch(**CREATE_ARGS, webhook_url=UNUSED_HOOK)
    early_id = batch.ids[0]
    await hook_client.aclose()
    async with make_client(server) as fresh:
        await fresh.webhooks.receive(envelope(server, early_id, 3, url="https://v/early"))
        reattached = fresh.image_to_video.handle(early_id)
        assert reattached.done()
        assert "https://v/early" == (await reattached).video_url
    assert 0 == server.call_count("results")
