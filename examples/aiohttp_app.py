"""An aiohttp backend that starts AKOOL videos in a route and learns they finished by webhook.

``POST /videos`` starts generations with a ``webhook_url`` pointing back at this app;
``GET /videos/{id}`` reports them, and ``?wait=30`` waits up to 30 s for the result. AKOOL's
webhook resolves the video's handle the moment it arrives; polling only backs it up.

Run it where AKOOL can reach ``PUBLIC_URL`` (a public host or a tunnel)::

    AKOOL_API_KEY=... AKOOL_CLIENT_ID=... PUBLIC_URL=https://my-host.example \\
        python examples/aiohttp_app.py
    curl -X POST localhost:8000/videos -H 'content-type: application/json' \\
        -d '{"image_url": "https://example.com/cat.png", "prompt": "the cat waves"}'

Set ``AKOOL_BASE_URL`` to try it against ``akool_async.testing.FakeAkoolServer``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from akool_async import AkoolClient, AkoolError, TaskHandle, VideoFailedError
from akool_async.webhooks import aiohttp_handler

WEBHOOK_PATH = "/akool/webhook"


def create_app(client: AkoolClient, public_url: str) -> web.Application:
    """The app; ``public_url`` is where AKOOL reaches it (the webhook URL is built from it)."""
    webhook_url = public_url.rstrip("/") + WEBHOOK_PATH
    # In memory for the example; a real service would store the ids (handles re-attach with
    # client.image_to_video.handle(id) after a restart).
    handles: dict[str, TaskHandle] = {}

    async def start_videos(request: web.Request) -> web.Response:
        try:
            spec = await request.json()
            batch = await client.image_to_video.create_batch(
                image_url=spec["image_url"],
                prompt=spec["prompt"],
                resolution=spec.get("resolution", "720p"),
                video_length=spec.get("video_length", 5),
                count=spec.get("count", 1),
                webhook_url=webhook_url,
            )
        # ValueError covers bad JSON and AkoolValueError (rejected before anything was spent).
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return web.json_response({"error": f"bad request: {exc}"}, status=400)
        except AkoolError as exc:  # AKOOL refused, e.g. InsufficientCreditsError
            return web.json_response({"error": str(exc)}, status=502)
        for handle in batch.handles:
            handles[handle.id] = handle
        return web.json_response([describe(handle) for handle in batch.handles])

    async def get_video(request: web.Request) -> web.Response:
        handle = handles.get(request.match_info["video_id"])
        if handle is None:
            return web.json_response({"error": "unknown video id"}, status=404)
        try:
            wait = min(float(request.query.get("wait", "0")), 60.0)
        except ValueError:
            return web.json_response({"error": "wait: must be a number of seconds"}, status=400)
        if wait > 0 and not handle.done():
            # The webhook resolves the handle; describe() reports errors as well as videos.
            with contextlib.suppress(AkoolError):  # AkoolTimeoutError included
                await handle.wait(timeout=wait)
        return web.json_response(describe(handle))

    async def client_context(app: web.Application) -> AsyncIterator[None]:
        async with client:  # closes the session and stops the poller at shutdown
            yield

    app = web.Application()
    app.router.add_post(WEBHOOK_PATH, aiohttp_handler(client))
    app.router.add_post("/videos", start_videos)
    app.router.add_get("/videos/{video_id}", get_video)
    app.cleanup_ctx.append(client_context)
    return app


def describe(handle: TaskHandle) -> dict[str, Any]:
    """A handle's state as JSON, without waiting."""
    status = handle.status.name if handle.status is not None else None
    out: dict[str, Any] = {"id": handle.id, "status": status, "done": handle.done()}
    if handle.done():
        try:
            video = handle.result_nowait()
        except VideoFailedError:
            out.update(status="FAILED", error="generation failed")
        except AkoolError as exc:  # e.g. NotFoundError, ClientClosedError
            out["error"] = str(exc)
        else:
            out.update(status=video.status.name, video_url=video.video_url)
    return out


def main() -> None:
    """Serve the example on ``$PORT`` (8000); the API key comes from ``$AKOOL_API_KEY``."""
    client = AkoolClient(
        client_id=os.environ["AKOOL_CLIENT_ID"],
        base_url=os.environ.get("AKOOL_BASE_URL", "https://openapi.akool.com"),
    )
    web.run_app(
        create_app(client, os.environ["PUBLIC_URL"]), port=int(os.environ.get("PORT", "8000"))
    )


if __name__ == "__main__":
    main()
