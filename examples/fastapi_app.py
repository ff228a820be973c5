"""A FastAPI backend that starts AKOOL videos in a route and learns they finished by webhook.

``POST /videos`` starts generations with a ``webhook_url`` pointing back at this app;
``GET /videos/{id}`` reports them, and ``?wait=30`` waits up to 30 s for the result. AKOOL's
webhook resolves the video's handle the moment it arrives; polling only backs it up (every
``PollPolicy.webhook_interval`` seconds) in case a delivery is lost.

Run it where AKOOL can reach ``PUBLIC_URL`` (a public host or a tunnel)::

    pip install fastapi uvicorn
    AKOOL_API_KEY=... AKOOL_CLIENT_ID=... PUBLIC_URL=https://my-host.example \\
        python examples/fastapi_app.py
    curl -X POST localhost:8000/videos -H 'content-type: application/json' \\
        -d '{"image_url": "https://example.com/cat.png", "prompt": "the cat waves"}'

Webhook verification needs the account's clientId as well as the API key (the API key is the
clientSecret). Set ``AKOOL_BASE_URL`` to try it against ``akool_async.testing.FakeAkoolServer``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

import uvicorn
from fastapi import FastAPI, HTTPException, Query
from pydantic import BaseModel, Field
from starlette.routing import Route

from akool_async import AkoolClient, AkoolError, TaskHandle, VideoFailedError
from akool_async.webhooks import asgi_app

WEBHOOK_PATH = "/akool/webhook"


class VideoIn(BaseModel):
    """What to generate."""

    image_url: str
    prompt: str
    resolution: str = "720p"
    video_length: int = 5
    count: int = Field(default=1, ge=1, le=10)


class VideoOut(BaseModel):
    """Where one video stands."""

    id: str
    status: str | None
    done: bool
    video_url: str | None = None
    error: str | None = None


def create_app(client: AkoolClient, public_url: str) -> FastAPI:
    """The app; ``public_url`` is where AKOOL reaches it (the webhook URL is built from it)."""
    webhook_url = public_url.rstrip("/") + WEBHOOK_PATH
    # In memory for the example; a real service would store the ids (handles re-attach with
    # client.image_to_video.handle(id) after a restart).
    handles: dict[str, TaskHandle] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with client:  # closes the session and stops the poller at shutdown
            yield

    app = FastAPI(lifespan=lifespan)
    # A Route rather than app.mount(): a mount answers the exact path with a 307 redirect.
    app.router.routes.append(Route(WEBHOOK_PATH, asgi_app(client), methods=["POST"]))

    @app.post("/videos")
    async def start_videos(spec: VideoIn) -> list[VideoOut]:
        try:
            batch = await client.image_to_video.create_batch(
                image_url=spec.image_url,
                prompt=spec.prompt,
                resolution=spec.resolution,
                video_length=spec.video_length,
                count=spec.count,
                webhook_url=webhook_url,
            )
        except ValueError as exc:  # AkoolValueError: rejected before anything was spent
            raise HTTPException(status_code=422, detail=str(exc)) from exc
        except AkoolError as exc:  # AKOOL refused, e.g. InsufficientCreditsError
            raise HTTPException(status_code=502, detail=str(exc)) from exc
        for handle in batch.handles:
            handles[handle.id] = handle
        return [describe(handle) for handle in batch.handles]

    @app.get("/videos/{video_id}")
    async def get_video(video_id: str, wait: float = Query(default=0, ge=0, le=60)) -> VideoOut:
        handle = handles.get(video_id)
        if handle is None:
            raise HTTPException(status_code=404, detail="unknown video id")
        if wait and not handle.done():
            # The webhook resolves the handle; describe() reports errors as well as videos.
            with contextlib.suppress(AkoolError):  # AkoolTimeoutError included
                await handle.wait(timeout=wait)
        return describe(handle)

    return app


def describe(handle: TaskHandle) -> VideoOut:
    """A handle's state, without waiting."""
    status = handle.status.name if handle.status is not None else None
    if not handle.done():
        return VideoOut(id=handle.id, status=status, done=False)
    try:
        video = handle.result_nowait()
    except VideoFailedError:
        return VideoOut(id=handle.id, status="FAILED", done=True, error="generation failed")
    except AkoolError as exc:  # e.g. NotFoundError, ClientClosedError
        return VideoOut(id=handle.id, status=status, done=True, error=str(exc))
    return VideoOut(id=handle.id, status=video.status.name, done=True, video_url=video.video_url)


def main() -> None:
    """Serve the example on ``$PORT`` (8000); the API key comes from ``$AKOOL_API_KEY``."""
    client = AkoolClient(
        client_id=os.environ["AKOOL_CLIENT_ID"],
        base_url=os.environ.get("AKOOL_BASE_URL", "https://openapi.akool.com"),
    )
    app = create_app(client, os.environ["PUBLIC_URL"])
    uvicorn.run(app, host="0.0.0.0", port=int(os.environ.get("PORT", "8000")))


if __name__ == "__main__":
    main()
