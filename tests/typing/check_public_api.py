"""Pins the public API's static types: type-checked by tests/test_public_api.py, never run."""

from __future__ import annotations

import asyncio
from typing import assert_type

from akool_async import (
    AIModel,
    AkoolClient,
    Batch,
    DeleteResult,
    Effect,
    PollerStatistics,
    TaskHandle,
    Video,
    VideoStatus,
)


async def main() -> None:
    async with AkoolClient(api_key="key") as client:
        assert_type(await client.models.list(), list[AIModel])
        batch = await client.image_to_video.create_batch(
            image_url="https://images.example/cat.png",
            prompt="the cat waves",
            resolution="720p",
            video_length=5,
            count=2,
        )
        assert_type(batch, Batch)
        handle = batch.handles[0]
        assert_type(handle, TaskHandle)
        assert_type(await handle, Video)
        assert_type(await handle.wait(timeout=1.0), Video)
        assert_type(await handle.wait(timeout=None), Video)
        assert_type(handle.status, VideoStatus | None)
        assert_type(handle.done(), bool)
        assert_type(await asyncio.gather(*batch.handles), list[Video])
        assert_type(client.image_to_video.handle(handle.id), TaskHandle)
        assert_type(await client.image_to_video.results([handle.id]), list[Video])
        assert_type(await client.image_to_video.delete([handle.id]), DeleteResult)
        assert_type(await client.image_to_video.effects(), list[Effect])
        assert_type(await client.account.credits(), float)
        assert_type(client.poller.statistics(), PollerStatistics)
