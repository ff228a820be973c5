"""A FastAPI backend run as several worker processes that share one pool of videos via Redis.

Every worker opens one ``AkoolClient`` with a ``RedisHub``. AKOOL's webhook reaches one random
worker; the hub announces the news to all of them, so a request waiting in any worker returns
at once. One worker at a time polls (the backstop for lost webhooks) for the whole cluster, and
``max_credits`` is one budget for every worker.

Run it where AKOOL can reach ``PUBLIC_URL`` (a public host or a tunnel)::

    pip install 'akool-async[redis]' fastapi uvicorn
    AKOOL_API_KEY=... AKOOL_CLIENT_ID=... REDIS_URL=redis://localhost:6379/0 \\
    PUBLIC_URL=https://my-host.example \\
        uvicorn fastapi_cluster:app --app-dir examples --workers 4 --port 8000
    curl -X POST 'localhost:8000/videos?wait=60' -H 'content-type: application/json' \\
        -d '{"image_url": "https://example.com/cat.png", "prompt": "the cat waves"}'
    curl 'localhost:8000/videos/<id>?wait=30'    # any worker can answer for any video

Settings (environment variables): ``AKOOL_API_KEY``, ``AKOOL_CLIENT_ID`` (webhook
verification needs it), ``REDIS_URL``, ``PUBLIC_URL``; optional ``AKOOL_BASE_URL`` (e.g. an
``akool-async fake-server``), ``REDIS_NAMESPACE`` (default ``akool``), ``AKOOL_MAX_CREDITS``
(one cap for all workers) and ``AKOOL_POLL_SECONDS`` (how often the backstop polls).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

from fastapi import FastAPI, HTTPException, Query, Request
from pydantic import BaseModel
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from akool_async import AkoolClient, AkoolError, PollPolicy, TaskHandle, VideoFailedError
from akool_async.redis import RedisHub
from akool_async.webhooks import asgi_app

WEBHOOK_PATH = "/akool/webhook"


class VideoIn(BaseModel):
    """What to generate."""

    image_url: str
    prompt: str
    resolution: str = "720p"
    video_length: int = 5


class VideoOut(BaseModel):
    """Where one video stands, and which worker process answered."""

    id: str
    status: str | None
    done: bool
    video_url: str | None = None
    error: str | None = None
    worker: int


def make_client() -> AkoolClient:
    """This worker's client, from the environment."""
    poll = PollPolicy()
    if seconds := os.environ.get("AKOOL_POLL_SECONDS"):
        every = float(seconds)
        poll = PollPolicy(
            initial_delay=every,
            interval=every,
            max_interval=max(every, poll.max_interval),
            webhook_interval=every,
        )
    max_credits = os.environ.get("AKOOL_MAX_CREDITS")
    return AkoolClient(
        os.environ["AKOOL_API_KEY"],
        client_id=os.environ["AKOOL_CLIENT_ID"],
        base_url=os.environ.get("AKOOL_BASE_URL", "https://openapi.akool.com"),
        poll=poll,
        max_credits=float(max_credits) if max_credits else None,
        # Opened and closed with the client; every worker of a deployment uses the same
        # namespace.
        hub=RedisHub(os.environ["REDIS_URL"], namespace=os.environ.get("REDIS_NAMESPACE", "akool")),
    )


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # One client per worker process, opened at startup and closed at shutdown.
    async with make_client() as client:
        app.state.akool = client
        app.state.webhooks = asgi_app(client)
        yield


app = FastAPI(lifespan=lifespan)


class WebhookReceiver:
    """AKOOL's webhook, verified, then shared with every worker through the hub."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await scope["app"].state.webhooks(scope, receive, send)


# A Route rather than app.mount(): a mount answers the exact path with a 307 redirect.
app.router.routes.append(Route(WEBHOOK_PATH, WebhookReceiver(), methods=["POST"]))


@app.get("/healthz")
async def healthz() -> dict[str, int]:
    """For load balancers and readiness probes."""
    return {"worker": os.getpid()}


@app.post("/videos")
async def start_video(
    spec: VideoIn, request: Request, wait: float = Query(default=0, ge=0, le=300)
) -> VideoOut:
    """Start one video; with ``?wait=N`` answer once it is done (or after N seconds)."""
    client: AkoolClient = request.app.state.akool
    webhook_url = os.environ["PUBLIC_URL"].rstrip("/") + WEBHOOK_PATH
    try:
        batch = await client.image_to_video.create_batch(
            image_url=spec.image_url,
            prompt=spec.prompt,
            resolution=spec.resolution,
            video_length=spec.video_length,
            webhook_url=webhook_url,
        )
    except ValueError as exc:  # AkoolValueError: rejected before anything was spent
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    except AkoolError as exc:  # AKOOL refused, or BudgetExceededError
        raise HTTPException(status_code=502, detail=str(exc)) from exc
    return await report(batch.handles[0], wait)


@app.get("/videos/{video_id}")
async def get_video(
    video_id: str, request: Request, wait: float = Query(default=0, ge=0, le=300)
) -> VideoOut:
    """Any worker can answer for any video: the handle re-attaches through Redis."""
    client: AkoolClient = request.app.state.akool
    try:
        handle = client.image_to_video.handle(video_id)
    except ValueError as exc:  # not an AKOOL video id
        raise HTTPException(status_code=404, detail=str(exc)) from exc
    return await report(handle, wait)


async def report(handle: TaskHandle, wait: float) -> VideoOut:
    """The handle's state after waiting up to ``wait`` seconds for it to finish."""
    if wait and not handle.done():
        with contextlib.suppress(AkoolError):  # AkoolTimeoutError included
            await handle.wait(timeout=wait)
    worker = os.getpid()
    status = handle.status.name if handle.status is not None else None
    if not handle.done():
        return VideoOut(id=handle.id, status=status, done=False, worker=worker)
    try:
        video = handle.result_nowait()
    except VideoFailedError:
        return VideoOut(
            id=handle.id, status="FAILED", done=True, error="generation failed", worker=worker
        )
    except AkoolError as exc:  # e.g. NotFoundError, ClientClosedError
        return VideoOut(id=handle.id, status=status, done=True, error=str(exc), worker=worker)
    return VideoOut(
        id=handle.id,
        status=video.status.name,
        done=True,
        video_url=video.video_url,
        worker=worker,
    )
