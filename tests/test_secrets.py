"""Secret hygiene: the API key, client secret and token never show in logs, errors or reprs.

One full session runs at DEBUG logging for every logger: x-api-key and token auth, token
refresh, retries, refused and ambiguous creates, failed videos, timeouts, webhook deliveries
and forged ones. Then every log record, every exception (with its chain and attributes) and
the repr of every public object is searched for the secrets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import traceback
from collections.abc import Awaitable, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from conftest import CREATE_ARGS, FAST_POLL, serve_app

import akool_async
from akool_async import (
    AkoolClient,
    AkoolError,
    AuthenticationError,
    CreateOutcomeUnknownError,
    RetryPolicy,
    VideoRequest,
    verify_webhook,
)
from akool_async.testing import FakeAkoolServer, Fault, FaultKind, sign_webhook
from akool_async.webhooks import aiohttp_handler

#: The console API key, which is also the legacy clientSecret (32 bytes: a valid AES key).
API_KEY = "sk-SECRET-api-key-0123456789abcd"
#: A key that AKOOL refuses: still a secret of whoever typed it.
WRONG_KEY = "sk-SECRET-wrong-key-9876543210zy"
CLIENT_ID = "client-id-is-not-secret"
HOOK_PATH = "/akool/webhook"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def texts_of(value: object, depth: int = 0) -> Iterator[str]:
    """What ``value`` shows: its str and repr, and those of what it holds, a few levels deep.

    Exceptions show their traceback, chain, args and attributes; containers their items.
    Other objects show the reprs of the objects they hold, but not their plain string
    attributes: a client must hold its key, it only must not show it.
    """
    yield repr(value)
    yield str(value)
    if depth >= 3:
        return
    children: list[object] = []
    if isinstance(value, BaseException):
        yield "".join(traceback.format_exception(value))
        children += [value.__cause__, value.__context__, *value.args, *vars(value).values()]
    elif isinstance(value, dict):
        children += list(value.keys()) + list(value.values())
    elif isinstance(value, (list, tuple, set, frozenset)):
        children += list(value)
    else:
        with contextlib.suppress(TypeError):
            children += [v for v in vars(value).values() if not isinstance(v, (str, bytes))]
    for child in children:
        if isinstance(child, str):
            yield child
        elif child is not None:
            yield from texts_of(child, depth + 1)


class Session:
    """Collects every exception and object the session produces."""

    def __init__(self) -> None:
        self.errors: list[BaseException] = []
        self.objects: list[object] = []

    async def expect(self, error: type[AkoolError], call: Awaitable[object]) -> None:
        """Await ``call``; it must raise ``error`` (kept for the search)."""
        with pytest.raises(error) as caught:
            await call
        self.errors.append(caught.value)

    async def keep(self, call: Awaitable[Any]) -> Any:
        """Await ``call`` and keep its result for the search."""
        result = await call
        self.objects.append(result)
        return result


async def run_session(session: Session, server: FakeAkoolServer) -> None:
    """Exercise every path that could leak a secret."""
    retry = RetryPolicy.fast(max_attempts=3)
    options: dict[str, Any] = {
        "base_url": server.url,
        "retry": retry,
        "poll": FAST_POLL,
        "wait_timeout": 10.0,
        "timeout": 0.5,
    }
    keep, expect = session.keep, session.expect

    # x-api-key, with a webhook receiver the fake delivers to, and one forged delivery.
    async with AkoolClient(API_KEY, client_id=CLIENT_ID, **options) as client:
        app = web.Application()
        app.router.add_post(HOOK_PATH, aiohttp_handler(client))
        async with serve_app(app) as hook_base, aiohttp.ClientSession() as http:
            session.objects += [client, client.poller, client.models, client.image_to_video]
            await keep(client.models.list())
            await keep(client.account.credits())
            await keep(client.image_to_video.effects())

            # Retries on create (429 with Retry-After, 1005) and on results (5xx, resets).
            server.inject("create_batch", Fault(FaultKind.HTTP_429, retry_after=0.01))
            server.inject("create_batch", FaultKind.CODE_1005)
            server.inject("results", FaultKind.HTTP_503, FaultKind.RESET_BEFORE)
            server.fail_when = lambda body: body.get("prompt") == "this one fails"
            batch = await keep(
                client.image_to_video.create_batch(
                    **CREATE_ARGS, count=2, webhook_url=hook_base + HOOK_PATH
                )
            )
            session.objects += [*batch.handles, *await asyncio.gather(*batch.handles)]
            failing = await keep(
                client.image_to_video.create_batch(**{**CREATE_ARGS, "prompt": "this one fails"})
            )
            await expect(akool_async.VideoFailedError, failing.handles[0].wait())
            async with asyncio.timeout(5):
                await server.wait_webhooks()

            # A forged delivery to the receiver, and verify_webhook failures called directly.
            envelope = sign_webhook(
                {"_id": batch.ids[0], "status": 3, "type": "x", "url": "https://v.example/a"},
                client_id=CLIENT_ID,
                client_secret=API_KEY,
            )
            session.objects.append(
                verify_webhook(envelope, client_id=CLIENT_ID, client_secret=API_KEY)
            )
            forged = {**envelope, "dataEncrypt": envelope["dataEncrypt"][::-1]}
            async with http.post(hook_base + HOOK_PATH, json=forged) as response:
                assert 400 == response.status
                session.objects.append(await response.text())
            for body, secret in ((forged, API_KEY), (envelope, WRONG_KEY), (envelope, "short")):
                with pytest.raises(AkoolError) as caught:
                    verify_webhook(body, client_id=CLIENT_ID, client_secret=secret)
                session.errors.append(caught.value)

        # Ambiguous creates, refusals, exhausted retries, timeouts.
        for kind in (FaultKind.RESET_AFTER, FaultKind.HTTP_500, FaultKind.MALFORMED_JSON):
            server.inject("create_batch", kind)
            await expect(
                CreateOutcomeUnknownError, client.image_to_video.create_batch(**CREATE_ARGS)
            )
        server.inject("create_batch", Fault(FaultKind.SLOW, delay=1.0))
        await expect(CreateOutcomeUnknownError, client.image_to_video.create_batch(**CREATE_ARGS))
        await expect(
            akool_async.ValidationError,
            client.image_to_video.create_batch(**{**CREATE_ARGS, "resolution": "4k"}),
        )
        server.credit, credit = 0.0, server.credit
        await expect(
            akool_async.InsufficientCreditsError,
            client.image_to_video.create_batch(**CREATE_ARGS),
        )
        server.credit = credit
        server.inject("credits", *[FaultKind.HTTP_502] * 3)
        await expect(akool_async.UpstreamError, client.account.credits())
        server.inject("credits", FaultKind.MISSING_DATA)
        await expect(akool_async.AkoolResponseError, client.account.credits())
        server.queue_seconds = 30.0
        slow = await keep(client.image_to_video.create_batch(**CREATE_ARGS))
        await expect(akool_async.WaitTimeoutError, slow.handles[0].wait(timeout=0.01))
        server.queue_seconds = 0.05
        await expect(
            akool_async.AkoolValueError,
            client.image_to_video.create_batch(**{**CREATE_ARGS, "prompt": " "}),
        )
        session.objects += [client.poller.statistics(), client.models.known]
    await expect(akool_async.ClientClosedError, client.account.credits())
    session.objects.append(client)

    # Token auth: fetch, refresh after 1101, then a refresh getToken refuses.
    async with AkoolClient(client_id=CLIENT_ID, client_secret=API_KEY, **options) as client:
        session.objects.append(client)
        await keep(client.account.credits())
        server.expire_tokens()
        await keep(client.image_to_video.create_batch(**CREATE_ARGS))
        server.expire_tokens()
        server.client_id = "someone-else"
        await expect(AuthenticationError, client.account.credits())
        server.client_id = CLIENT_ID
        handle = await keep(client.image_to_video.create_batch(**CREATE_ARGS))
        server.api_key = WRONG_KEY  # getToken refuses our secret, pending handles fail
        server.expire_tokens()
        await expect(AuthenticationError, handle.handles[0].wait())
        server.api_key = API_KEY
        session.objects.append(client.poller.statistics())

    # A refused key, and a server that is not listening.
    async with AkoolClient(WRONG_KEY, **options) as client:
        session.objects.append(client)
        await expect(AuthenticationError, client.account.credits())
    async with AkoolClient(
        API_KEY, base_url=f"http://127.0.0.1:{closed_port()}", retry=retry
    ) as client:
        await expect(akool_async.AkoolConnectionError, client.account.credits())
        await expect(
            akool_async.AkoolConnectionError, client.image_to_video.create_batch(**CREATE_ARGS)
        )
    session.objects += [retry, FAST_POLL, VideoRequest(**CREATE_ARGS)]


async def test_no_secret_in_logs_errors_or_reprs(caplog: pytest.LogCaptureFixture) -> None:
    """After a full DEBUG session, no log line, error or repr contains a key, secret or token."""
    caplog.set_level(logging.DEBUG)
    session = Session()
    async with FakeAkoolServer(
        api_key=API_KEY, client_id=CLIENT_ID, queue_seconds=0.05, process_seconds=0.1
    ) as server:
        await run_session(session, server)
        await server.wait_idle(timeout=5)
        tokens = {
            r.headers["authorization"].removeprefix("Bearer ")
            for r in server.requests
            if r.headers.get("authorization", "").startswith("Bearer ")
        }
        sent_keys = {r.headers.get("x-api-key") for r in server.requests}

    # The secrets really travelled: the search below looks for something that existed.
    assert len(tokens) >= 3
    assert {API_KEY, WRONG_KEY} <= sent_keys
    secrets = {API_KEY, WRONG_KEY, *tokens}

    records = caplog.records
    assert any(r.levelno == logging.DEBUG and r.name == "akool_async" for r in records)
    assert any(r.getMessage().startswith("retrying ") for r in records)
    assert any(r.name == "akool_async.webhooks" and r.levelno >= logging.WARNING for r in records)
    log_texts = [caplog.text]
    for record in records:
        log_texts += [record.getMessage(), repr(record.args), repr(vars(record))]
        if record.exc_info and record.exc_info[1] is not None:
            log_texts += list(texts_of(record.exc_info[1]))
    error_texts = [t for e in session.errors for t in texts_of(e)]
    object_texts = [t for o in session.objects for t in texts_of(o)]
    assert {
        CreateOutcomeUnknownError,
        AuthenticationError,
        akool_async.WebhookVerificationError,
        akool_async.VideoFailedError,
    } <= {type(e) for e in session.errors}

    for where, texts in (("log", log_texts), ("error", error_texts), ("repr", object_texts)):
        leaks = [(s[:6], t[:200]) for t in texts for s in secrets if s in t]
        assert [] == leaks, f"secret in {where}: {leaks[:3]}"


def test_search_finds_a_planted_secret() -> None:
    """The search reaches exception chains and attributes (so the test above can fail)."""

    def leaky() -> None:
        try:
            raise ValueError(f"inner {API_KEY}")
        except ValueError as inner:
            raise AkoolError("outer") from inner

    with pytest.raises(AkoolError) as caught:
        leaky()
    assert any(API_KEY in t for t in texts_of(caught.value))
    holder = type("Holder", (), {})()
    holder.body = {"x": [API_KEY]}
    assert any(API_KEY in t for t in texts_of(holder))


async def test_redirects_are_not_followed_with_the_key() -> None:
    """A 307 to another origin is not followed: the key is not sent there, nothing is re-POSTed."""
    elsewhere: list[dict[str, str]] = []

    async def other_origin(request: web.Request) -> web.Response:
        elsewhere.append(dict(request.headers))
        return web.json_response({"code": 1000, "msg": "ok", "data": {"credit": 1}})

    other = web.Application()
    other.router.add_route("*", "/{tail:.*}", other_origin)
    async with serve_app(other) as other_url:

        async def redirect(request: web.Request) -> web.Response:
            raise web.HTTPTemporaryRedirect(other_url + request.path)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", redirect)
        async with (
            serve_app(app) as url,
            AkoolClient(API_KEY, base_url=url, retry=RetryPolicy.fast()) as client,
        ):
            with pytest.raises(akool_async.AkoolAPIError) as read_error:
                await client.account.credits()
            with pytest.raises(akool_async.AkoolAPIError) as create_error:
                await client.image_to_video.create_batch(**CREATE_ARGS)
    assert [] == elsewhere
    assert (307, 307) == (read_error.value.http_status, create_error.value.http_status)
    assert API_KEY not in str(read_error.value) + json.dumps(str(create_error.value))
