"""Shared fixtures: a FakeAkoolServer on loopback and a client pointed at it with fast timings."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import attrs
import pytest

# The real redis-server of the session, private servers, and a namespace per test.
from _redis_server import make_redis_server, redis_namespace, redis_url  # noqa: F401
from aiohttp import web

from akool_async import AkoolClient, PollPolicy, RetryPolicy
from akool_async.testing import FakeAkoolServer

#: Poll quickly: the fake finishes a video in about a quarter of a second. Time runs 250x
#: faster than the defaults (5 s interval, 2 calls per second), the budget too.
FAST_POLL = PollPolicy(
    initial_delay=0.02,
    interval=0.02,
    max_interval=0.1,
    jitter=0.0,
    max_requests_per_second=500,
    budget_window=0.004,
)

#: 2 results calls per 0.05 s window and a 0.05 s interval: 2 calls (100 ids) per tick.
BUDGET_POLL = PollPolicy(
    initial_delay=0.05,
    interval=0.05,
    max_interval=0.2,
    jitter=0.0,
    max_requests_per_second=40,
    budget_window=0.05,
)
BUDGET_CALLS_PER_TICK = 2


@pytest.fixture
async def server() -> AsyncIterator[FakeAkoolServer]:
    """A fake AKOOL server: queueing 50 ms, processing 200 ms."""
    async with FakeAkoolServer(queue_seconds=0.05, process_seconds=0.2) as fake:
        yield fake


@pytest.fixture
async def client(server: FakeAkoolServer) -> AsyncIterator[AkoolClient]:
    """A client for ``server`` with fast polling and near-zero retry waits."""
    async with AkoolClient(
        server.api_key,
        base_url=server.url,
        poll=FAST_POLL,
        retry=RetryPolicy.fast(),
        wait_timeout=30.0,
    ) as akool:
        yield akool


CREATE_ARGS = {
    "image_url": "https://images.example/cat.png",
    "prompt": "the cat waves",
    "resolution": "720p",
    "video_length": 5,
}


async def queued_ids(server: FakeAkoolServer, n: int) -> list[str]:
    """``n`` videos on ``server``, created by a client that never polls them."""
    poll = PollPolicy(initial_delay=3600)
    async with AkoolClient(server.api_key, base_url=server.url, poll=poll) as creator:
        batches = await asyncio.gather(
            *(creator.image_to_video.create_batch(**CREATE_ARGS, count=10) for _ in range(n // 10))
        )
    return [i for batch in batches for i in batch.ids]


@contextlib.asynccontextmanager
async def serve_app(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 (a free port); yield its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@attrs.define
class Proxy:
    """A loopback proxy in front of a fake; ``mangle`` rewrites batch-create answers,
    ``mangle_single`` single-create ones."""

    url: str = ""
    mangle: Callable[[dict[str, Any]], None] | None = None
    mangle_single: Callable[[dict[str, Any]], None] | None = None


@pytest.fixture
async def proxy(server: FakeAkoolServer) -> AsyncIterator[Proxy]:
    """A proxy to ``server`` that passes everything through until ``mangle`` is set."""
    state = Proxy()
    async with aiohttp.ClientSession() as session:

        async def forward(request: web.Request) -> web.Response:
            headers = {k: v for k, v in request.headers.items() if k.lower() == "x-api-key"}
            headers["Content-Type"] = "application/json"
            async with session.request(
                request.method,
                server.url + request.path_qs,
                data=await request.read(),
                headers=headers,
            ) as upstream:
                status, raw = upstream.status, await upstream.read()
            mangle = state.mangle if request.path.endswith("/batch") else None
            if request.path.endswith("/createBySourcePrompt"):
                mangle = state.mangle_single
            if mangle is not None:
                envelope = json.loads(raw)
                mangle(envelope)
                raw = json.dumps(envelope).encode()
            return web.Response(body=raw, status=status, content_type="application/json")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", forward)
        async with serve_app(app) as state.url:
            yield state
