"""The fake's memory: its videos, issued tokens and request log, and waiting on that log."""

from __future__ import annotations

import asyncio
import collections
import itertools
import random
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from .._models import VideoStatus

if TYPE_CHECKING:
    from ._faults import FaultKind

# Global so two servers in one process never hand out the same _id.
_ID_COUNTER = itertools.count(secrets.randbelow(1 << 20))


@attrs.define(kw_only=True, eq=False)
class RecordedRequest:
    """One request the fake received, faulted or not.

    ``headers`` has lowercased names; ``query_string`` is the raw query, undecoded. ``body``
    is the parsed JSON body, or ``None``. ``code`` is
    the envelope code sent back (``None`` when no envelope was sent). ``created_ids`` lists
    every video this request created, even when the answer was then lost to a fault.
    ``unknown_fields`` holds the body fields AKOOL does not document for the endpoint: the
    fake accepts and ignores them, as AKOOL does, and records them here so a test can see
    that extra fields reached the wire.
    """

    endpoint: str
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str] = attrs.field(repr=False)
    body: Any
    started_at: float
    unknown_fields: dict[str, Any] = attrs.Factory(dict)
    finished_at: float | None = None
    http_status: int | None = None
    code: int | None = None
    created_ids: list[str] = attrs.Factory(list)
    fault: FaultKind | None = None
    #: The query string exactly as it arrived (``query`` is decoded).
    query_string: str = ""


@attrs.define(kw_only=True, eq=False)
class FakeVideo:
    """One video the fake created. Its status is derived from the clock on demand.

    ``request`` is the create body as sent. ``created_at`` is ``time.monotonic()``;
    ``create_time`` is epoch milliseconds. ``queue_seconds``/``process_seconds`` are this
    video's own durations (jitter applied, fixed at creation). ``final_status`` is where it ends
    when left alone; ``forced_status`` (set by ``complete``/``fail``/``set_status``) wins.
    """

    id: str
    endpoint: str
    request: dict[str, Any]
    created_at: float
    create_time: int
    queue_seconds: float
    process_seconds: float
    final_status: VideoStatus
    deduction_credit: float
    model_name: str
    resolution: str
    video_length: int
    image_url: str
    prompt: str
    webhook_url: str | None = None
    batch_id: str | None = None
    batch_count: int | None = None
    only_add_audio: bool = False
    pre_video_id: str | None = None
    #: Fields results answers carry for this video instead of the computed ones (answer_with).
    answer_fields: dict[str, Any] = attrs.Factory(dict)
    forced_status: VideoStatus | None = None
    forced_time: int | None = None
    forgotten: bool = False
    deleted: bool = False

    def status_at(self, now: float) -> VideoStatus:
        """The status at monotonic time ``now``."""
        if self.forced_status is not None:
            return self.forced_status
        elapsed = now - self.created_at
        if elapsed < self.queue_seconds:
            return VideoStatus.QUEUEING
        if elapsed < self.queue_seconds + self.process_seconds:
            return VideoStatus.PROCESSING
        return self.final_status

    def update_time_at(self, now: float) -> int:
        """Epoch ms of the last status change as of monotonic time ``now``."""
        if self.forced_time is not None:
            return self.forced_time
        elapsed = now - self.created_at
        if elapsed < self.queue_seconds:
            return self.create_time
        if elapsed < self.queue_seconds + self.process_seconds:
            return self.create_time + round(self.queue_seconds * 1000)
        return self.create_time + round((self.queue_seconds + self.process_seconds) * 1000)

    def next_change_in(self, now: float) -> float | None:
        """Seconds until the status changes by itself, or ``None`` if it never will."""
        if self.forced_status is not None:
            return None
        elapsed = now - self.created_at
        if elapsed < self.queue_seconds:
            return self.queue_seconds - elapsed
        if elapsed < self.queue_seconds + self.process_seconds:
            return self.queue_seconds + self.process_seconds - elapsed
        return None


class FakeState:
    """Videos, tokens and the request log of one server, with waits on the log."""

    def __init__(self, seed: int) -> None:
        self.videos: dict[str, FakeVideo] = {}
        self.tokens: set[str] = set()
        self.requests: list[RecordedRequest] = []
        self.in_flight: collections.Counter[str] = collections.Counter()
        self.peak_in_flight: collections.Counter[str] = collections.Counter()
        #: Seeds timing jitter and the results order (one sequence, shared).
        self.rng = random.Random(seed)
        self._id_salt = f"{random.Random(seed + 2).getrandbits(40):010x}"
        # Replaced on every change: a waiter holds the event of the state it last saw.
        self._changed = asyncio.Event()

    # -- ids and tokens ----------------------------------------------------------------------

    def new_id(self) -> str:
        # ObjectId layout: 4 bytes of seconds, 5 bytes per server, a 3-byte counter.
        counter = next(_ID_COUNTER) & 0xFFFFFF
        return f"{int(time.time()) & 0xFFFFFFFF:08x}{self._id_salt}{counter:06x}"

    def jittered(self, seconds: float, jitter: float) -> float:
        if jitter <= 0 or seconds <= 0:
            return seconds
        factor = 1 + self.rng.uniform(-jitter, jitter)
        return max(0.0, seconds * factor)

    def issue_token(self) -> str:
        token = secrets.token_hex(24)
        self.tokens.add(token)
        return token

    # -- the request log ---------------------------------------------------------------------

    def arrived(self, record: RecordedRequest) -> None:
        self.requests.append(record)
        endpoint = record.endpoint
        self.in_flight[endpoint] += 1
        self.peak_in_flight[endpoint] = max(self.peak_in_flight[endpoint], self.in_flight[endpoint])
        self._notify()

    def finished(self, record: RecordedRequest) -> None:
        self.in_flight[record.endpoint] -= 1
        record.finished_at = time.monotonic()
        self._notify()

    def reset_log(self) -> None:
        self.requests.clear()
        self.peak_in_flight = collections.Counter(self.in_flight)
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_until(
        self, predicate: Callable[[], bool], *, timeout: float | None, what: Callable[[], str]
    ) -> None:
        """Return once ``predicate()`` holds, checked after every log change.

        Raises:
            TimeoutError: not within ``timeout`` seconds; the message is ``what()``.
        """
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(f"{what()} (gave up after {timeout:g} s)") from None
