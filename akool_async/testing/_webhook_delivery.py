"""Delivering signed webhooks as videos change status, with drop, duplicate and reorder knobs."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from typing import Any, Protocol

import aiohttp
import attrs

from .._models import VideoStatus
from .._webhook_crypto import build_envelope
from ._state import FakeVideo
from ._wire import WEBHOOK_EVENT_TYPE


@attrs.define(kw_only=True, eq=False)
class WebhookDelivery:
    """One webhook attempt (or a deliberately dropped delivery, ``dropped=True``, attempt 0).

    ``http_status`` is the receiver's answer; ``error`` describes a transport failure.
    """

    video_id: str
    url: str
    payload: dict[str, Any]
    envelope: dict[str, Any] | None
    attempt: int
    http_status: int | None = None
    error: str | None = None
    dropped: bool = False
    sent_at: float = attrs.Factory(time.monotonic)


class WebhookKnobs(Protocol):
    """The server settings delivery reads (``FakeAkoolServer`` documents them)."""

    api_key: str
    client_id: str
    webhook_drop: Callable[[str, int], bool] | None
    webhook_drop_rate: float
    webhook_duplicate: bool
    webhook_reorder: bool
    webhook_max_attempts: int
    webhook_retry_delay: float
    webhook_timeout: float

    def video_url(self, video_id: str) -> str: ...


class WebhookDeliverer:
    """One task per webhook video: POST status 2, then 3 or 4, as the video reaches them."""

    def __init__(self, knobs: WebhookKnobs, *, seed: int) -> None:
        self._knobs = knobs
        #: Every webhook attempt (and deliberate drop), in order.
        self.deliveries: list[WebhookDelivery] = []
        #: Exceptions that ended a delivery task.
        self.errors: list[BaseException] = []
        self._rng = random.Random(seed)
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed: dict[str, asyncio.Event] = {}
        self._session: aiohttp.ClientSession | None = None

    @property
    def pending(self) -> int:
        return len(self._tasks)

    def watch(self, video: FakeVideo) -> None:
        """Start delivering ``video``'s status changes to its ``webhook_url``."""
        self._changed[video.id] = asyncio.Event()
        task = asyncio.create_task(self._loop(video))
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def poke(self, video_id: str) -> None:
        """The video changed outside its timeline (forced status, deleted): look again now."""
        changed = self._changed.get(video_id)
        if changed is not None:
            changed.set()

    async def wait(self) -> None:
        while self._tasks:
            # asyncio.wait, not gather: a caller's timeout must not cancel the deliveries.
            await asyncio.wait(set(self._tasks))

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        # Kept rather than left unretrieved, where asyncio would only log them at exit.
        if not task.cancelled() and (exc := task.exception()) is not None:
            self.errors.append(exc)

    async def _loop(self, video: FakeVideo) -> None:
        """Deliver status 2, then 3 or 4, as the video reaches them."""
        changed = self._changed[video.id]
        sent: set[VideoStatus] = set()
        held_processing = False
        while not video.deleted:
            changed.clear()
            now = time.monotonic()
            status = video.status_at(now)
            if status is VideoStatus.PROCESSING and status not in sent:
                sent.add(status)
                if self._knobs.webhook_reorder:
                    held_processing = True
                else:
                    await self._deliver(video, status)
            elif status.is_terminal:
                await self._deliver(video, status)
                if held_processing:
                    await self._deliver(video, VideoStatus.PROCESSING)
                return
            wait = video.next_change_in(time.monotonic())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await changed.wait()

    async def _deliver(self, video: FakeVideo, status: VideoStatus) -> None:
        url = video.webhook_url
        if not url:
            return
        knobs = self._knobs
        payload = {
            "_id": video.id,
            "status": int(status),
            "type": WEBHOOK_EVENT_TYPE,
            "url": knobs.video_url(video.id) if status is VideoStatus.COMPLETED else "",
        }
        drop = knobs.webhook_drop is not None and knobs.webhook_drop(video.id, int(status))
        if drop or (knobs.webhook_drop_rate > 0 and self._rng.random() < knobs.webhook_drop_rate):
            self.deliveries.append(
                WebhookDelivery(
                    video_id=video.id,
                    url=url,
                    payload=payload,
                    envelope=None,
                    attempt=0,
                    dropped=True,
                )
            )
            return
        for _ in range(2 if knobs.webhook_duplicate else 1):
            await self._post(video.id, url, payload)

    async def _post(self, video_id: str, url: str, payload: dict[str, Any]) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        session = self._session
        knobs = self._knobs
        # One envelope per delivery: retries resend the same signed message.
        envelope = build_envelope(payload, client_id=knobs.client_id, client_secret=knobs.api_key)
        attempts = max(1, knobs.webhook_max_attempts)
        for attempt in range(1, attempts + 1):
            delivery = WebhookDelivery(
                video_id=video_id, url=url, payload=payload, envelope=envelope, attempt=attempt
            )
            self.deliveries.append(delivery)
            try:
                async with session.post(
                    url, json=envelope, timeout=aiohttp.ClientTimeout(total=knobs.webhook_timeout)
                ) as response:
                    await response.read()
                    delivery.http_status = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                delivery.error = f"{type(exc).__name__}: {exc}"
            # AKOOL retries unless the receiver answers exactly HTTP 200 (§8).
            if delivery.http_status == 200:
                return
            if attempt < attempts:
                await asyncio.sleep(knobs.webhook_retry_delay * 2 ** (attempt - 1))
