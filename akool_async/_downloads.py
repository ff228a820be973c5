"""Saving finished videos to disk: streamed, size-checked, atomic, bounded.

A download streams into a temporary file in the target's directory, checks the byte count
against ``Content-Length``, fsyncs, and renames it over the target with ``os.replace``. The
target name therefore only ever holds a whole file: a failed or cancelled download removes its
temporary file, and one killed outright leaves at most a hidden ``.<name>.<random>.part`` file
(``remove_stale_parts`` clears those). Transient failures (connection errors, HTTP 5xx/429, a
short body) are retried with the client's retry policy, as API reads are: backoff capped by
attempts and time, a ``Retry-After`` waited in full; every other failure raises
``DownloadError``.

The file host gets a plain GET: authentication headers are added per API request by the
transport, never to the shared session, so the API key is not sent to wherever ``video_url``
points.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any, Final
from urllib.parse import urlsplit

from ._errors import AkoolConnectionError, AkoolValueError, DownloadError
from ._models import Video, VideoStatus
from ._transport import BodyCutShortError, Transport

logger = logging.getLogger("akool_async")

#: Bytes read from the socket per chunk, and buffered before each write to disk.
CHUNK_SIZE: Final = 256 * 1024
WRITE_BUFFER: Final = 4 * 1024 * 1024
#: Downloads in flight at once in ``download_many`` unless told otherwise.
DEFAULT_DOWNLOAD_CONCURRENCY: Final = 4
#: Seconds without a byte before a download is abandoned (no total limit: files can be big).
DEFAULT_READ_TIMEOUT: Final = 60.0
PART_SUFFIX: Final = ".part"
#: What a video id may look like to become a file name (AKOOL's ids are hex).
_SAFE_ID: Final = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


class _Retryable(DownloadError):
    """A failure worth another attempt (connection lost, 5xx, 429, short body)."""

    def __init__(self, message: str, *, retry_after: float | None = None, **context: Any) -> None:
        super().__init__(message, **context)
        #: Seconds the file host asked us to wait (``Retry-After``), if any.
        self.retry_after = retry_after


def safe_url(url: str) -> str:
    """``url`` without its query or fragment: presigned links carry signatures there."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def default_path(video: Video, directory: Path) -> Path:
    """Where ``download_many`` saves a video: ``<directory>/<video id>.mp4``.

    Raises:
        AkoolValueError: the id cannot be a file name in ``directory`` (a path separator,
            ``..``, or another character outside letters, digits, ``._-``).
    """
    # The id comes from the server: it must not steer the file outside the directory.
    if not _SAFE_ID.fullmatch(video.id) or ".." in video.id:
        raise AkoolValueError(f"video id {video.id!r:.80} cannot be used as a file name")
    return directory / f"{video.id}.mp4"


def _check_downloadable(video: Video) -> str:
    if not isinstance(video, Video):
        raise AkoolValueError(f"video: expected a Video, got {type(video).__name__}")
    if video.status is not VideoStatus.COMPLETED or not video.video_url:
        raise AkoolValueError(
            f"video {video.id} has no file to download yet (status {video.status.name})"
        )
    return video.video_url


def remove_stale_parts(target: Path) -> int:
    """Delete temporary files a killed download of ``target`` left behind; return how many.

    Only safe when no other download of ``target`` is running.
    """
    removed = 0
    if not target.parent.is_dir():
        return 0
    for part in target.parent.glob(f".{target.name}.*{PART_SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
            removed += 1
    return removed


def _resolve_target(video: Video, path: Path) -> tuple[Path, bool]:
    target = default_path(video, path) if path.is_dir() else path
    return target, target.exists()


def _write(handle: IO[bytes], data: bytes) -> None:
    handle.write(data)


def _commit(handle: IO[bytes], tmp: Path, target: Path) -> None:
    """Make the bytes durable, then give them the target name in one atomic step."""
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()
    os.replace(tmp, target)
    # Persist the rename itself; directories cannot be opened for fsync on every platform.
    with contextlib.suppress(OSError):
        fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _discard(handle: IO[bytes], tmp: Path) -> None:
    with contextlib.suppress(OSError):
        handle.close()
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()


def _open_temp(target: Path) -> tuple[IO[bytes], Path]:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=PART_SUFFIX)
    return os.fdopen(fd, "wb"), Path(name)


async def _attempt(
    transport: Transport,
    url: str,
    target: Path,
    video_id: str,
    read_timeout: float,
) -> int:
    """One download attempt; returns the bytes written. Never leaves a temporary file."""
    where = safe_url(url)
    try:
        handle, tmp = await asyncio.to_thread(_open_temp, target)
    except OSError as exc:
        raise _disk_error(video_id, target, exc) from exc
    try:
        received = 0
        expected: int | None = None
        try:
            async with transport.stream(url, read_timeout=read_timeout) as resp:
                if resp.status != 200:
                    message = f"download of video {video_id} answered HTTP {resp.status} ({where})"
                    if resp.status == 429 or resp.status >= 500:
                        raise _Retryable(
                            message,
                            video_id=video_id,
                            path=str(target),
                            http_status=resp.status,
                            retry_after=resp.retry_after,
                        )
                    raise DownloadError(
                        message, video_id=video_id, path=str(target), http_status=resp.status
                    )
                expected = resp.content_length
                buffer = bytearray()
                async for chunk in resp.iter_chunks(CHUNK_SIZE):
                    buffer += chunk
                    received += len(chunk)
                    if len(buffer) >= WRITE_BUFFER:
                        await asyncio.to_thread(_write, handle, bytes(buffer))
                        buffer.clear()
                if buffer:
                    await asyncio.to_thread(_write, handle, bytes(buffer))
        except BodyCutShortError as exc:
            raise _Retryable(
                f"download of video {video_id} was cut short after {received} bytes ({where})",
                video_id=video_id,
                path=str(target),
                http_status=200,
                expected=expected,
                received=received,
            ) from exc
        except AkoolConnectionError as exc:
            raise _Retryable(
                f"download of video {video_id} failed: {type(exc.__cause__ or exc).__name__} "
                f"({where})",
                video_id=video_id,
                path=str(target),
                received=received,
            ) from exc
        if (expected is not None and received != expected) or received == 0:
            raise _Retryable(
                f"download of video {video_id} got {received} bytes, expected "
                f"{expected if expected is not None else 'some'} ({where})",
                video_id=video_id,
                path=str(target),
                http_status=200,
                expected=expected,
                received=received,
            )
        await asyncio.to_thread(_commit, handle, tmp, target)
        return received
    except OSError as exc:
        # Writing failed (disk full, permissions): not worth retrying, and not a crash.
        _discard(handle, tmp)
        raise _disk_error(video_id, target, exc) from exc
    except BaseException:
        # Synchronous on purpose: it must also run when this task is being cancelled.
        _discard(handle, tmp)
        raise


def _disk_error(video_id: str, target: Path, exc: OSError) -> DownloadError:
    return DownloadError(
        f"cannot write video {video_id} to {target}: {exc.strerror or exc}",
        video_id=video_id,
        path=str(target),
    )


async def download_url(
    transport: Transport,
    url: str,
    target: Path,
    *,
    video_id: str,
    read_timeout: float = DEFAULT_READ_TIMEOUT,
) -> int:
    """Save ``url`` at ``target`` atomically, retrying transient failures; return its size.

    Retries follow the client's retry policy like API reads do: exponential backoff with
    full jitter, at most ``max_attempts`` attempts, none started after ``max_time``; a
    ``Retry-After`` is waited
    in full, or the download gives up at once when it is longer than ``max_retry_after`` or
    the time left.

    Raises:
        DownloadError: the file could not be saved whole; ``target`` is untouched.
    """
    attempts = 0

    async def attempt() -> int:
        nonlocal attempts
        attempts += 1
        return await _attempt(transport, url, target, video_id, read_timeout)

    try:
        # Untimed: a large file may take longer than max_time to arrive, and still deserves
        # a retry.
        return await transport.with_retries(
            attempt, retry_on=_Retryable, what=f"download of video {video_id}", timed=False
        )
    except _Retryable as exc:
        raise DownloadError(
            f"{exc} (gave up after {attempts} attempt{'s' if attempts > 1 else ''})",
            video_id=exc.video_id,
            path=exc.path,
            http_status=exc.http_status,
            expected=exc.expected,
            received=exc.received,
        ) from exc


async def download_video(
    transport: Transport,
    video: Video,
    path: Path,
    *,
    overwrite: bool,
    read_timeout: float = DEFAULT_READ_TIMEOUT,
) -> Path:
    """Save a completed ``video`` at ``path`` (a directory gets ``<id>.mp4`` inside it)."""
    url = _check_downloadable(video)
    target, exists = await asyncio.to_thread(_resolve_target, video, path)
    if exists and not overwrite:
        # Targets are only ever written by os.replace, so an existing one is whole.
        return target
    await download_url(transport, url, target, video_id=video.id, read_timeout=read_timeout)
    return target


async def download_videos(
    transport: Transport,
    videos: Iterable[Video],
    directory: Path,
    *,
    concurrency: int,
    overwrite: bool,
    return_exceptions: bool,
) -> list[Path | BaseException]:
    """Save many videos under ``directory``, at most ``concurrency`` at a time, in order."""
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise AkoolValueError(f"concurrency: must be a positive integer, got {concurrency!r}")
    items = list(videos)
    for video in items:
        _check_downloadable(video)
        default_path(video, directory)  # an id unfit for a file name fails before any fetch
    try:
        await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create {directory}: {exc.strerror or exc}") from exc
    limit = asyncio.Semaphore(concurrency)

    async def one(video: Video) -> Path | BaseException:
        async with limit:
            try:
                return await download_video(
                    transport, video, default_path(video, directory), overwrite=overwrite
                )
            except Exception as exc:
                if return_exceptions:
                    return exc
                raise

    # A repeated id is fetched once and its outcome shared.
    unique: dict[str, Video] = {v.id: v for v in items}
    tasks: dict[str, asyncio.Task[Path | BaseException]] = {}
    try:
        async with asyncio.TaskGroup() as group:
            for video_id, video in unique.items():
                tasks[video_id] = group.create_task(one(video))
    except BaseExceptionGroup as group_error:
        # Without return_exceptions the first failure cancels the rest (their temporary
        # files are removed) and is raised as itself, not wrapped in a group.
        first = group_error.exceptions[0]
        raise first from first.__cause__
    return [tasks[v.id].result() for v in items]
