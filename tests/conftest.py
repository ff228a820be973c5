"""Shared fixtures: a FakeAkoolServer on loopback and a client pointed at it with fast timings."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from akool_async import AkoolClient, PollPolicy, RetryPolicy
from akool_async.testing import FakeAkoolServer

#: Poll quickly: the fake finishes a video in about a quarter of a second.
FAST_POLL = PollPolicy(initial_delay=0.02, interval=0.02, max_interval=0.1, jitter=0.0)


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
