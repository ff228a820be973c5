"""Tests of AkoolClient.download / download_many against the fake server's file endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CREATE_ARGS, FAST_POLL

from akool_async import (
    AkoolClient,
    AkoolValueError,
    DownloadError,
    RetryPolicy,
    Video,
    VideoStatus,
)
from akool_async.testing import FakeAkoolServer, Fault, FaultKind, video_bytes


async def finished(client: AkoolClient, count: int) -> list[Video]:
    """Create ``count`` videos and wait for all of them."""
    batch = await client.image_to_video.create_batch(**CREATE_ARGS, count=count)
    return list(await asyncio.gather(*batch.handles))


def listing(directory: Path) -> list[str]:
    """The names in ``directory``, sorted."""
    return sorted(p.name for p in directory.iterdir())


def leftovers(directory: Path) -> list[str]:
    """Hidden temporary files in ``directory``."""
    return [name for name in listing(directory) if name.startswith(".")]


async def test_download_writes_the_whole_file(
    client: AkoolClient, server: FakeAkoolServer, tmp_path: Path
) -> None:
    """download() saves exactly the served bytes at the given path and leaves nothing else."""
    (video,) = await finished(client, 1)
    target = tmp_path / "cat.mp4"

    path = await client.download(video, target)

    assert target == path
    assert video_bytes(video.id) == target.read_bytes()
    assert ["cat.mp4"] == listing(tmp_path)


async def test_download_into_a_directory_names_the_file_by_id(
    client: AkoolClient, tmp_path: Path
) -> None:
    """An existing directory as path gets <video id>.mp4 inside it."""
    (video,) = await finished(client, 1)

    path = await client.download(video, tmp_path)

    assert tmp_path / f"{video.id}.mp4" == path
    assert video_bytes(video.id) == path.read_bytes()


async def test_download_does_not_send_the_api_key_to_the_file_host(
    client: AkoolClient, server: FakeAkoolServer, tmp_path: Path
) -> None:
    """The file GET carries no x-api-key or Authorization header."""
    (video,) = await finished(client, 1)

    await client.download(video, tmp_path / "v.mp4")

    (call,) = server.calls("download")
    assert set() == {"x-api-key", "authorization"} & set(call.headers)


async def test_a_truncated_download_is_retried(
    client: AkoolClient, server: FakeAkoolServer, tmp_path: Path
) -> None:
    """A body cut short of Content-Length is fetched again, and the file ends up whole."""
    (video,) = await finished(client, 1)
    server.inject("download", FaultKind.TRUNCATED)

    path = await client.download(video, tmp_path / "v.mp4")

    assert video_bytes(video.id) == path.read_bytes()
    assert 2 == server.call_count("download")
    assert [] == leftovers(tmp_path)


async def test_a_download_that_stays_truncated_raises_and_leaves_no_file(
    client: AkoolClient, server: FakeAkoolServer, tmp_path: Path
) -> None:
    """When every attempt is cut short: DownloadError, no target, no temporary file."""
    (video,) = await finished(client, 1)
    server.inject("download", *[FaultKind.TRUNCATED] * 10)

    with pytest.raises(DownloadError) as caught:
        await client.download(video, tmp_path / "v.mp4")

    assert video.id == caught.value.video_id
    assert [] == listing(tmp_path)
    assert 4 == server.call_count("download")  # RetryPolicy.fast(): 4 attempts


async def test_a_missing_file_is_not_retried(
    client: AkoolClient, server: FakeAkoolServer, tmp_path: Path
) -> None:
    """HTTP 404 (a deleted or expired video) raises DownloadError at once."""
    (video,) = await finished(client, 1)
    await client.image_to_video.delete([video.id])

    with pytest.raises(DownloadError) as caught:
        await client.download(video, tmp_path / "v.mp4")

    assert 404 == caught.value.http_status
    assert 1 == server.call_count("download")
    assert [] == listing(tmp_path)


async def test_a_file_that_cannot_be_written_is_a_download_error(
    client: AkoolClient, server: FakeAkoolServer, tmp_path: Path
) -> None:
    """A disk-side failure (here: a file where a directory should be) raises DownloadError."""
    (video,) = await finished(client, 1)
    (tmp_path / "not-a-dir").write_bytes(b"")

    with pytest.raises(DownloadError, match="cannot write"):
        await client.download(video, tmp_path / "not-a-dir" / "v.mp4")


async def test_an_unfinished_video_cannot_be_downloaded(
    client: AkoolClient, server: FakeAkoolServer, tmp_path: Path
) -> None:
    """A video without video_url raises AkoolValueError before any request."""
    pending = Video(id="0" * 24, status=VideoStatus.PROCESSING)

    with pytest.raises(AkoolValueError):
        await client.download(pending, tmp_path / "v.mp4")

    assert 0 == server.call_count("download")


async def test_overwrite_false_keeps_an_existing_file(
    client: AkoolClient, server: FakeAkoolServer, tmp_path: Path
) -> None:
    """With overwrite=False an existing target is returned untouched and not fetched."""
    (video,) = await finished(client, 1)
    target = tmp_path / "v.mp4"
    target.write_bytes(b"already here")

    await client.download(video, target, overwrite=False)

    assert b"already here" == target.read_bytes()
    assert 0 == server.call_count("download")


async def test_cancelling_a_download_leaves_no_partial_file(
    client: AkoolClient, server: FakeAkoolServer, tmp_path: Path
) -> None:
    """A download cancelled mid-flight removes its temporary file."""
    (video,) = await finished(client, 1)
    server.inject("download", Fault(FaultKind.SLOW, delay=5.0))
    task = asyncio.create_task(client.download(video, tmp_path / "v.mp4"))
    await server.wait_for_calls("download")

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert [] == listing(tmp_path)


async def test_download_many_saves_every_file_within_the_concurrency_bound(
    client: AkoolClient, server: FakeAkoolServer, tmp_path: Path
) -> None:
    """download_many writes <id>.mp4 for each video with at most `concurrency` in flight."""
    videos = await finished(client, 6)
    server.inject_random("download", rate=1.0, kinds=[Fault(FaultKind.SLOW, delay=0.05)], seed=1)

    paths = await client.download_many(videos, tmp_path / "out", concurrency=2)

    assert [tmp_path / "out" / f"{v.id}.mp4" for v in videos] == paths
    assert [video_bytes(v.id) for v in videos] == [p.read_bytes() for p in paths]
    assert server.max_in_flight("download") <= 2


async def test_download_many_fetches_only_missing_files(
    client: AkoolClient, server: FakeAkoolServer, tmp_path: Path
) -> None:
    """Files already present are kept, so a re-run fetches only what is missing."""
    videos = await finished(client, 3)
    (tmp_path / f"{videos[0].id}.mp4").write_bytes(b"kept")

    await client.download_many(videos, tmp_path)

    assert b"kept" == (tmp_path / f"{videos[0].id}.mp4").read_bytes()
    assert 2 == server.call_count("download")


async def test_download_many_can_return_failures_in_place(
    client: AkoolClient, server: FakeAkoolServer, tmp_path: Path
) -> None:
    """return_exceptions=True puts a failed video's DownloadError in its slot."""
    videos = await finished(client, 3)
    await client.image_to_video.delete([videos[1].id])

    results = await client.download_many(videos, tmp_path, return_exceptions=True)

    assert isinstance(results[1], DownloadError)
    assert [tmp_path / f"{videos[0].id}.mp4", tmp_path / f"{videos[2].id}.mp4"] == [
        results[0],
        results[2],
    ]


async def test_download_many_raises_the_first_failure_without_partial_files(
    client: AkoolClient, server: FakeAkoolServer, tmp_path: Path
) -> None:
    """Without return_exceptions a failure is raised as itself and no temporary file stays."""
    videos = await finished(client, 3)
    await client.image_to_video.delete([videos[0].id])

    with pytest.raises(DownloadError):
        await client.download_many(videos, tmp_path, concurrency=1)

    assert [] == leftovers(tmp_path)
    assert not (tmp_path / f"{videos[0].id}.mp4").exists()


@pytest.mark.parametrize("bad_id", ["../escape", "a/b", "..", "a\\b", ".hidden"])
async def test_an_id_unfit_for_a_file_name_is_refused_before_any_fetch(
    client: AkoolClient, server: FakeAkoolServer, tmp_path: Path, bad_id: str
) -> None:
    """download_many and download into a directory refuse an id that is no plain file name."""
    video = Video(id=bad_id, status=VideoStatus.COMPLETED, video_url=server.video_url("0" * 24))

    with pytest.raises(AkoolValueError, match="file name"):
        await client.download_many([video], tmp_path / "out")
    with pytest.raises(AkoolValueError, match="file name"):
        await client.download(video, tmp_path)

    assert 0 == server.call_count("download")
    assert [] == listing(tmp_path)


async def test_a_retry_after_longer_than_allowed_gives_up_at_once(
    server: FakeAkoolServer, tmp_path: Path
) -> None:
    """A file host's Retry-After past max_retry_after ends the download at the first answer."""
    policy = RetryPolicy(initial_wait=0.001, max_wait=0.01, max_retry_after=1.0)
    async with AkoolClient(
        server.api_key, base_url=server.url, poll=FAST_POLL, retry=policy
    ) as client:
        (video,) = await finished(client, 1)
        server.inject("download", Fault(FaultKind.HTTP_429, retry_after=30.0))
        with pytest.raises(DownloadError) as caught:
            await client.download(video, tmp_path / "v.mp4")

    assert (429, 1) == (caught.value.http_status, server.call_count("download"))
    assert [] == listing(tmp_path)


@contextlib.contextmanager
def unanswered_port() -> Iterator[int]:
    """A loopback port whose accept queue is full: new connections are never completed."""
    listener = socket.socket()
    fillers: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            fillers.append(filler)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
        yield port
    finally:
        for sock in [*fillers, listener]:
            sock.close()


async def test_a_download_keeps_the_client_connect_timeout(
    server: FakeAkoolServer, tmp_path: Path
) -> None:
    """A file host that never completes the connection fails the download (connect_timeout);
    it does not hang."""
    async with AkoolClient(
        server.api_key,
        base_url=server.url,
        connect_timeout=0.1,
        retry=RetryPolicy.fast(max_attempts=2),
    ) as client:
        with unanswered_port() as port:
            video = Video(
                id="0" * 24,
                status=VideoStatus.COMPLETED,
                video_url=f"http://127.0.0.1:{port}/v.mp4",
            )
            # Only a guard against hanging the suite when the timeout is lost, not a speed check.
            async with asyncio.timeout(20):
                with pytest.raises(DownloadError, match="Timeout"):
                    await client.download(video, tmp_path / "v.mp4")

    assert [] == listing(tmp_path)
