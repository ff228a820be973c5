"""The client against the fake's surprising-but-plausible answers (its knobs for users' tests)."""

from __future__ import annotations

from conftest import CREATE_ARGS

from akool_async import AkoolClient, VideoStatus
from akool_async.testing import FakeAkoolServer


async def test_wrong_typed_optional_fields_never_fail_a_video(
    client: AkoolClient, server: FakeAkoolServer
) -> None:
    """With ``wrong_typed_fields`` every handle still resolves with its URL; readable
    fields are read, and the whole item stays in ``raw``."""
    server.wrong_typed_fields = True
    batch = await client.image_to_video.create_batch(**CREATE_ARGS, count=2)
    videos = [await handle for handle in batch.handles]

    for video in videos:
        assert (VideoStatus.COMPLETED, server.video_url(video.id)) == (
            video.status,
            video.video_url,
        )
        assert {"queue": "default", "retries": "0"} == video.raw["task_meta"]


async def test_an_unknown_status_keeps_the_video_pending(
    client: AkoolClient, server: FakeAkoolServer
) -> None:
    """A video answered with status 5 stays pending across polls; once answered normally
    its handle resolves."""
    server.queue_seconds = 60.0
    (handle,) = (await client.image_to_video.create_batch(**CREATE_ARGS)).handles
    server.answer_with(handle.id, status=5)
    server.complete(handle.id)
    seen = server.call_count("results")
    await server.wait_for_calls("results", seen + 3, answered=True)
    pending = not handle.done()
    server.answer_with(handle.id)
    video = await handle

    assert (True, VideoStatus.COMPLETED) == (pending, video.status)


async def test_a_completed_video_without_a_url_stays_pending(
    client: AkoolClient, server: FakeAkoolServer
) -> None:
    """``video_url: ""`` on a completed video keeps its handle waiting until a URL comes."""
    server.queue_seconds = 60.0
    (handle,) = (await client.image_to_video.create_batch(**CREATE_ARGS)).handles
    server.answer_with(handle.id, video_url="")
    server.complete(handle.id)
    seen = server.call_count("results")
    await server.wait_for_calls("results", seen + 3, answered=True)
    pending = not handle.done()
    server.answer_with(handle.id)
    video = await handle

    assert (True, server.video_url(handle.id)) == (pending, video.video_url)
