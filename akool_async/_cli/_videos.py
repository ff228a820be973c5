"""``create``, ``wait`` and ``download``: one batch, or videos named by id."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Sequence
from typing import Any

from .._errors import AkoolError, VideoFailedError
from .._models import Video
from .._requests import VideoRequest
from ._connection import make_client
from ._exit_codes import UPSTREAM, exit_code_for, worst
from ._output import Output


async def cmd_create(args: argparse.Namespace, output: Output) -> int:
    """Create one batch; with ``--wait``, also wait for its videos and print them."""
    request = VideoRequest(
        image_url=args.image_url,
        prompt=args.prompt,
        resolution=args.resolution,
        video_length=args.video_length,
        model_name=args.model_name,
        negative_prompt=args.negative_prompt,
        extend_prompt=args.extend_prompt,
        last_image_url=args.last_image_url,
        generate_audio=args.generate_audio,
        count=args.count,
        webhook_url=args.webhook_url,
    )
    request.batch_body(request.count)  # 1-10: one batch, checked before anything is sent
    async with make_client(args, max_credits=args.max_credits) as client:
        batch = await client.image_to_video.create_from(request)
        if not args.json:
            output.note(
                f"created {len(batch.videos)} video(s) for {batch.deduction_credit:g} credits"
            )
        for item in batch.errors:
            output.note(f"not created: {json.dumps(dict(item), default=str)}")
        codes = [UPSTREAM] if batch.errors else []
        videos: list[Video] = list(batch.videos)
        failures: list[tuple[str, AkoolError]] = []
        if args.wait:
            outcomes = await asyncio.gather(
                *(h.wait(timeout=args.timeout) for h in batch.handles), return_exceptions=True
            )
            videos, failures = _split(batch.ids, outcomes)
    if args.json:
        output.json(
            {
                "batch_id": batch.batch_id,
                "deduction_credit": batch.deduction_credit,
                "videos": [_video_json(v) for v in videos],
                "errors": [dict(e) for e in batch.errors],
                "failures": [{"_id": i, "error": str(e)} for i, e in failures],
            }
        )
    else:
        for video in videos:
            output.line(_video_line(video))
        for video_id, error in failures:
            output.line(f"{video_id}  error  {error}")
    codes += [exit_code_for(e) for _, e in failures]
    return worst(codes)


async def cmd_wait(args: argparse.Namespace, output: Output) -> int:
    """Wait for videos by id and print them (a failed video is printed, not an error line)."""
    ids = list(dict.fromkeys(args.ids))
    async with make_client(args) as client:
        handles = [client.image_to_video.handle(i) for i in ids]
        outcomes = await asyncio.gather(
            *(h.wait(timeout=args.timeout) for h in handles), return_exceptions=True
        )
    videos, failures = _split(ids, outcomes)
    failed = {i for i, e in failures if isinstance(e, VideoFailedError)}
    if args.json:
        output.json(
            {
                "videos": [_video_json(v) for v in videos],
                "errors": [{"_id": i, "error": str(e)} for i, e in failures if i not in failed],
            }
        )
    else:
        for video in videos:
            output.line(_video_line(video))
        for video_id, error in failures:
            if video_id not in failed:
                output.line(f"{video_id}  error  {error}")
    return worst([exit_code_for(e) for _, e in failures])


async def cmd_download(args: argparse.Namespace, output: Output) -> int:
    """Wait for videos by id, then save the finished ones into ``--out``."""
    ids = list(dict.fromkeys(args.ids))
    async with make_client(args) as client:
        handles = [client.image_to_video.handle(i) for i in ids]
        outcomes = await asyncio.gather(
            *(h.wait(timeout=args.timeout) for h in handles), return_exceptions=True
        )
        videos, failures = _split(ids, outcomes)
        ready = [v for v in videos if v.video_url]
        saved = await client.download_many(
            ready,
            args.out,
            concurrency=args.concurrency,
            overwrite=args.overwrite,
            return_exceptions=True,
        )
    files: list[dict[str, Any]] = []
    for video, result in zip(ready, saved, strict=True):
        if isinstance(result, AkoolError):
            failures.append((video.id, result))
        elif isinstance(result, BaseException):
            raise result
        else:
            files.append({"_id": video.id, "path": str(result)})
    if args.json:
        output.json({"files": files, "errors": [{"_id": i, "error": str(e)} for i, e in failures]})
    else:
        for item in files:
            output.line(f"{item['_id']}  {item['path']}")
        for video_id, error in failures:
            output.line(f"{video_id}  error  {error}")
    return worst([exit_code_for(e) for _, e in failures])


def _split(
    ids: Sequence[str], outcomes: Sequence[Video | BaseException]
) -> tuple[list[Video], list[tuple[str, AkoolError]]]:
    videos: list[Video] = []
    failures: list[tuple[str, AkoolError]] = []
    for video_id, outcome in zip(ids, outcomes, strict=True):
        if isinstance(outcome, VideoFailedError):
            videos.append(outcome.video)
            failures.append((video_id, outcome))
        elif isinstance(outcome, AkoolError):
            failures.append((video_id, outcome))
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            videos.append(outcome)
    return videos, failures


def _video_json(video: Video) -> dict[str, Any]:
    item = dict(video.raw)
    item.setdefault("_id", video.id)
    item["status"] = int(video.status)
    return item


def _video_line(video: Video) -> str:
    parts = [video.id, video.status.name.lower()]
    if video.video_url:
        parts.append(video.video_url)
    return "  ".join(parts)
