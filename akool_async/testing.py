"""A fake AKOOL server for tests, demos and benchmarks: ``FakeAkoolServer`` and ``sign_webhook``.

``FakeAkoolServer`` is a real ``aiohttp.web`` app on loopback that speaks AKOOL's documented wire
format (envelopes, field names and casing, business codes) for every Image-to-Video endpoint.
It never imports the SDK client, so it can test any client, in-process or in another process::

    async with FakeAkoolServer(queue_seconds=0.01, process_seconds=0.05) as server:
        client = AkoolClient(api_key=server.api_key, base_url=server.url)
        ...
        assert server.call_count("results") == 1

Video status is computed lazily from timestamps, so a server holding 10,000 videos does no work
per video until someone asks about it. Each request is recorded (``requests``), and faults can be
injected per endpoint (``inject``, ``inject_random``).

Endpoint names, used by every method that takes ``endpoint``: ``"token"``, ``"credits"``,
``"models"``, ``"create_batch"``, ``"create"``, ``"results"``, ``"effects"``,
``"update_audio"``, ``"delete"`` and ``"download"`` (the fake's own video files).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import copy
import enum
import hashlib
import itertools
import json
import math
import random
import secrets
import time
import types
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, Protocol

import aiohttp
import attrs
from aiohttp import web

from ._models import VideoStatus
from ._webhook_crypto import build_envelope

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_MODELS",
    "ENDPOINT_PATHS",
    "WEBHOOK_EVENT_TYPE",
    "FakeAkoolServer",
    "FakeVideo",
    "Fault",
    "FaultKind",
    "RecordedRequest",
    "WebhookDelivery",
    "serve_forever",
    "sign_webhook",
    "video_bytes",
]

#: The fake's API key. 32 ASCII characters, because it doubles as the clientSecret, which is
#: the AES key of webhook envelopes (16, 24 or 32 bytes).
DEFAULT_API_KEY: Final = "fake-akool-api-key-0123456789abc"
DEFAULT_CLIENT_ID: Final = "fake-client-id"

#: Endpoint name -> (method, path). The download path serves ``/files/<video id>.mp4``.
ENDPOINT_PATHS: Final[Mapping[str, tuple[str, str]]] = types.MappingProxyType(
    {
        "token": ("POST", "/api/open/v3/getToken"),
        "credits": ("GET", "/api/open/v3/faceswap/quota/info"),
        "models": ("GET", "/api/open/v4/aigModel/list"),
        "create_batch": ("POST", "/api/open/v4/image2Video/createBySourcePrompt/batch"),
        "create": ("POST", "/api/open/v4/image2Video/createBySourcePrompt"),
        "results": ("POST", "/api/open/v4/image2Video/resultsByIds"),
        "effects": ("GET", "/api/open/v4/image2Video/effects"),
        "update_audio": ("POST", "/api/open/v4/image2Video/updateVideoAudio"),
        "delete": ("POST", "/api/open/v4/image2Video/delbyids"),
        "download": ("GET", "/files/{name}"),
    }
)

_SUCCESS: Final = 1000
_IMAGE_TO_VIDEO_TYPE: Final = 1501
_DEFAULT_MODEL: Final = "AkoolImage2VideoFastV1"
_MAX_COUNT: Final = 10
#: Credits per 5 seconds of video, by resolution (AKOOL's older price table, §9).
_CREDITS_PER_5S: Final[Mapping[str, float]] = types.MappingProxyType(
    {"480p": 20.0, "720p": 30.0, "1080p": 45.0, "4k": 60.0}
)
_GENERATE_AUDIO_FACTOR: Final = 1.5
#: Replacing audio costs 1 credit per second of video (AKOOL's "video to audio" price).
_AUDIO_CREDITS_PER_SECOND: Final = 1.0
#: The webhook ``type`` is undocumented (§8); receivers must route by ``_id``.
WEBHOOK_EVENT_TYPE: Final = "image2video"
_FAKE_UID: Final = 100001
_FAKE_TEAM_ID: Final = "fake-team-0001"
# How long close() lets in-flight handlers finish before aiohttp cancels them.
_SHUTDOWN_TIMEOUT: Final = 0.5
# Global so two servers in one process never hand out the same _id.
_ID_COUNTER = itertools.count(secrets.randbelow(1 << 20))


def _resolution(label: str, width: int, height: int) -> dict[str, Any]:
    return {"label": label, "value": label, "width": width, "height": height}


_R480 = _resolution("480p", 854, 480)
_R720 = _resolution("720p", 1280, 720)
_R1080 = _resolution("1080p", 1920, 1080)

#: The models ``GET /api/open/v4/aigModel/list?types[]=1501`` answers by default (§6 fields).
DEFAULT_MODELS: Final[tuple[Mapping[str, Any], ...]] = (
    {
        "value": "AkoolImage2VideoFastV1",
        "label": "Akool Image2Video Fast V1",
        "provider": "akool",
        "description": "Fast image-to-video generation.",
        "sort": 1,
        "group": "akool",
        "type": _IMAGE_TO_VIDEO_TYPE,
        "resolutionList": [_R480, _R720],
        "durationList": [5, 10],
        "isPro": False,
        "requiresPay": False,
        "supportedLastFrame": False,
        "supportedExtendPrompt": True,
        "maxImageCount": 1,
        "maxCount": _MAX_COUNT,
        "generate_audio": None,
    },
    {
        "value": "AkoolImage2VideoHDV1",
        "label": "Akool Image2Video HD V1",
        "provider": "akool",
        "description": "High-definition image-to-video generation.",
        "sort": 2,
        "group": "akool",
        "type": _IMAGE_TO_VIDEO_TYPE,
        "resolutionList": [_R720, _R1080],
        "durationList": [5, 10],
        "isPro": True,
        "requiresPay": True,
        "supportedLastFrame": True,
        "supportedExtendPrompt": True,
        "maxImageCount": 2,
        "maxCount": _MAX_COUNT,
        "generate_audio": False,
    },
    {
        "value": "seedance-1-0-lite-i2v-250428",
        "label": "Seedance 1.0 Lite",
        "provider": "bytedance",
        "description": "Seedance lite image-to-video.",
        "sort": 3,
        "group": "seedance",
        "type": _IMAGE_TO_VIDEO_TYPE,
        "resolutionList": [_R480, _R720, _R1080],
        "durationList": [5, 10],
        "isPro": True,
        "requiresPay": True,
        "supportedLastFrame": True,
        "supportedExtendPrompt": False,
        "maxImageCount": 2,
        "maxCount": _MAX_COUNT,
        "generate_audio": {"default": False},
    },
)

_EFFECTS: Final[tuple[Mapping[str, Any], ...]] = (
    {
        "_id": "66a0f1c2b3d4e5f6a7b8c901",
        "effect_code": "squish_89244231312",
        "name": "Squish",
        "logo": "https://static.example.invalid/effects/squish.png",
        "video_url": "https://static.example.invalid/effects/squish.mp4",
        "create_time": 1721800000000,
    },
    {
        "_id": "66a0f1c2b3d4e5f6a7b8c902",
        "effect_code": "inflate_35567128890",
        "name": "Inflate",
        "logo": "https://static.example.invalid/effects/inflate.png",
        "video_url": "https://static.example.invalid/effects/inflate.mp4",
        "create_time": 1721800000000,
    },
    {
        "_id": "66a0f1c2b3d4e5f6a7b8c903",
        "effect_code": "hug_10993847561",
        "name": "Hug",
        "logo": "https://static.example.invalid/effects/hug.png",
        "video_url": "https://static.example.invalid/effects/hug.mp4",
        "create_time": 1721800000000,
    },
)


class FaultKind(enum.Enum):
    """What an injected fault does to one request.

    Kinds that fail WITHOUT acting (nothing created, no credit charged): ``HTTP_500``,
    ``HTTP_502``, ``HTTP_503``, ``HTTP_429`` (``Retry-After`` when the fault sets
    ``retry_after``), ``CODE_1005`` (HTTP 200, code 1005) and ``RESET_BEFORE`` (the connection
    is closed without an answer).

    Kinds that ACT first (a create really creates and charges; ``created_ids`` records it):
    ``RESET_AFTER`` (connection closed without an answer: the ambiguous case), ``SLOW`` (answers
    normally after ``delay``), ``MALFORMED_JSON`` (HTTP 200, body not JSON), ``MISSING_DATA``
    (HTTP 200 ``{"code": 1000, "msg": "ok"}`` without ``data``) and ``TRUNCATED`` (the full
    ``Content-Length`` is announced, about half the body is sent, then the connection closes;
    meant for ``"download"`` but works on any endpoint).
    """

    HTTP_500 = "http_500"
    HTTP_502 = "http_502"
    HTTP_503 = "http_503"
    HTTP_429 = "http_429"
    CODE_1005 = "code_1005"
    RESET_BEFORE = "reset_before"
    RESET_AFTER = "reset_after"
    SLOW = "slow"
    MALFORMED_JSON = "malformed_json"
    MISSING_DATA = "missing_data"
    TRUNCATED = "truncated"

    @property
    def acts(self) -> bool:
        """True when the request is carried out before the fault hits (see the class doc)."""
        return self in _ACTING_KINDS


_ACTING_KINDS: Final = frozenset(
    {
        FaultKind.RESET_AFTER,
        FaultKind.SLOW,
        FaultKind.MALFORMED_JSON,
        FaultKind.MISSING_DATA,
        FaultKind.TRUNCATED,
    }
)
_HTTP_FAULTS: Final[Mapping[FaultKind, tuple[int, str]]] = types.MappingProxyType(
    {
        FaultKind.HTTP_500: (500, "500 Internal Server Error"),
        FaultKind.HTTP_502: (502, "502 Bad Gateway"),
        FaultKind.HTTP_503: (503, "503 Service Unavailable"),
        FaultKind.HTTP_429: (429, "429 Too Many Requests"),
    }
)


@attrs.frozen
class Fault:
    """One injected fault.

    Args:
        kind: what happens (see ``FaultKind``).
        retry_after: for ``HTTP_429``, the ``Retry-After`` header value in seconds.
        delay: seconds to wait before the fault hits (any kind; the point of ``SLOW``).
    """

    kind: FaultKind
    retry_after: float | None = None
    delay: float = 0.0


@attrs.define(kw_only=True, eq=False)
class RecordedRequest:
    """One request the fake received, faulted or not.

    ``headers`` has lowercased names. ``body`` is the parsed JSON body, or ``None``. ``code`` is
    the envelope code sent back (``None`` when no envelope was sent). ``created_ids`` lists
    every video this request created, even when the answer was then lost to a fault.
    """

    endpoint: str
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str] = attrs.field(repr=False)
    body: Any
    started_at: float
    finished_at: float | None = None
    http_status: int | None = None
    code: int | None = None
    created_ids: list[str] = attrs.Factory(list)
    fault: FaultKind | None = None


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
    forced_status: VideoStatus | None = None
    forced_time: int | None = None
    forgotten: bool = False
    deleted: bool = False
    _changed: asyncio.Event | None = attrs.field(default=None, repr=False, init=False)

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


class _WebhookEventLike(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def status(self) -> int: ...


@attrs.define(kw_only=True)
class _Answer:
    """What a handler wants sent; faults may replace it."""

    status: int = 200
    envelope: dict[str, Any] | None = None
    raw: bytes | None = None
    content_type: str = "application/json"
    headers: dict[str, str] = attrs.Factory(dict)

    def body(self) -> bytes:
        if self.raw is not None:
            return self.raw
        return json.dumps(self.envelope).encode("utf-8")

    @property
    def code(self) -> int | None:
        if self.envelope is None:
            return None
        code = self.envelope.get("code")
        return code if isinstance(code, int) else None


_Handler = Callable[[web.Request, RecordedRequest], Awaitable[_Answer]]


def _ok(data: Any) -> _Answer:
    return _Answer(envelope={"code": _SUCCESS, "msg": "OK", "data": data})


def _error(code: int, msg: str) -> _Answer:
    return _Answer(envelope={"code": code, "msg": msg, "data": None})


class _Invalid(Exception):
    """A request field failed validation: answered with ``code``."""

    def __init__(self, msg: str, code: int = 1003) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


def _str_field(body: Mapping[str, Any], name: str, *, required: bool) -> str:
    value = body.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise _Invalid(f"{name} is required and must be a non-empty string")
    return value


def _int_field(body: Mapping[str, Any], name: str, *, default: int | None = None) -> int:
    value = body.get(name, default)
    # bool is an int subclass; AKOOL would not take true as a length or a count.
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(f"{name} is required and must be an integer")
    return value


def _bool_field(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise _Invalid(f"{name} must be a boolean")
    return value


def _ids_field(body: Any) -> list[str]:
    if not isinstance(body, dict):
        raise _Invalid("body must be a JSON object")
    raw = body.get("_ids")
    # resultsByIds/delbyids take ONE comma-separated string, not a list (akool-api.md §3).
    if not isinstance(raw, str):
        raise _Invalid("_ids must be a comma-separated string")
    ids = list(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))
    if not ids:
        raise _Invalid("_ids is empty")
    return ids


def video_bytes(video_id: str) -> bytes:
    """The deterministic bytes the fake serves for a video (a few KiB, MP4-looking)."""
    seed = hashlib.sha256(video_id.encode("utf-8")).digest()
    size = 4096 + int.from_bytes(seed[:2], "big") % 2048
    # An ftyp box first, so file sniffers see an MP4.
    out = bytearray(b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom")
    block = seed
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:size])


class FakeAkoolServer:
    """A fake AKOOL Image-to-Video server on loopback (see the module docstring).

    Args:
        api_key: the key accepted in ``x-api-key``; also the clientSecret for getToken and
            webhook encryption, so it must be 16, 24 or 32 bytes for webhooks to work.
        client_id: the clientId accepted by getToken and used to sign webhooks.
        host, port: where to listen; port 0 picks a free port (read ``url`` after start).
        queue_seconds, process_seconds: how long a new video stays in status 1, then 2.
        timing_jitter: a fraction; each video's durations are scaled by a seeded random factor
            in ``[1 - jitter, 1 + jitter]``.
        max_ids_per_results: more ids than this in one results request answers 1003.
        credit: the starting credit balance.
        models: the model list (defaults to ``DEFAULT_MODELS``); creates are validated
            against it.
        seed: seeds timing jitter, results order, random faults and webhook drops.
        create_latency: seconds every create (batch, single, update_audio) waits before acting.
        results_latency: seconds every results request waits before answering.

    The timing, limit, credit and latency arguments are also plain attributes that tests may
    change at run time; timing changes apply to videos created afterwards.
    """

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        client_id: str = DEFAULT_CLIENT_ID,
        host: str = "127.0.0.1",
        port: int = 0,
        queue_seconds: float = 0.05,
        process_seconds: float = 0.2,
        timing_jitter: float = 0.0,
        max_ids_per_results: int = 100,
        credit: float = 100_000.0,
        models: list[dict[str, Any]] | None = None,
        seed: int = 0,
        create_latency: float = 0.0,
        results_latency: float = 0.0,
    ) -> None:
        self.api_key = api_key
        self.client_id = client_id
        self.host = host
        self.port = port
        self.queue_seconds = queue_seconds
        self.process_seconds = process_seconds
        self.timing_jitter = timing_jitter
        self.max_ids_per_results = max_ids_per_results
        self.credit = float(credit)
        # Deep copies: a test editing its server's models must not change another server's.
        self.models: list[dict[str, Any]] = copy.deepcopy(
            [dict(m) for m in DEFAULT_MODELS] if models is None else models
        )
        self.create_latency = create_latency
        self.results_latency = results_latency

        #: Predicate on a create body; True makes every video of that create end in status 4.
        self.fail_when: Callable[[Mapping[str, Any]], bool] | None = None
        #: The next batch create reports this many of its videos in errorList; then resets.
        self.next_batch_errors = 0

        #: Every request received, in arrival order.
        self.requests: list[RecordedRequest] = []
        #: Every fault served, in order, as ``(endpoint, kind)``.
        self.faults_served: list[tuple[str, FaultKind]] = []

        #: Webhook knobs: drop a delivery when this returns True for ``(video_id, status)``.
        self.webhook_drop: Callable[[str, int], bool] | None = None
        #: Fraction of deliveries dropped at random (seeded).
        self.webhook_drop_rate = 0.0
        #: Send every delivery twice.
        self.webhook_duplicate = False
        #: Hold the status-2 delivery and send it after the terminal one.
        self.webhook_reorder = False
        #: Attempts per delivery while the receiver does not answer HTTP 200.
        self.webhook_max_attempts = 4
        #: First retry delay in seconds; doubles on every further attempt.
        self.webhook_retry_delay = 0.05
        #: Per-attempt timeout in seconds.
        self.webhook_timeout = 5.0
        #: Every webhook attempt (and deliberate drop), in order.
        self.webhook_deliveries: list[WebhookDelivery] = []
        #: Exceptions that ended a delivery task (e.g. an api_key unusable as an AES key).
        self.webhook_errors: list[BaseException] = []

        self._rng = random.Random(seed)
        self._webhook_rng = random.Random(seed + 1)
        self._id_salt = f"{random.Random(seed + 2).getrandbits(40):010x}"
        self._videos: dict[str, FakeVideo] = {}
        self._tokens: set[str] = set()
        self._scripted: dict[str, collections.deque[Fault]] = {}
        self._random_faults: dict[
            str, tuple[float, tuple[FaultKind | Fault, ...], random.Random, Fault]
        ] = {}
        self._in_flight: collections.Counter[str] = collections.Counter()
        self._peak_in_flight: collections.Counter[str] = collections.Counter()
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        self._closed = False
        self._webhook_tasks: set[asyncio.Task[None]] = set()
        self._webhook_session: aiohttp.ClientSession | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def client_secret(self) -> str:
        """AKOOL's clientSecret: the same value as the console API key (§2)."""
        return self.api_key

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:<port>``.

        Raises:
            RuntimeError: the server is not started.
        """
        if self._url is None:
            raise RuntimeError("FakeAkoolServer is not started: call start() or use async with")
        return self._url

    async def start(self) -> None:
        """Start listening.

        Raises:
            RuntimeError: already started, or closed.
        """
        if self._closed:
            raise RuntimeError("FakeAkoolServer is closed and cannot be restarted")
        if self._runner is not None:
            raise RuntimeError("FakeAkoolServer is already started")
        app = web.Application()
        handlers: dict[str, _Handler] = {
            "token": self._handle_token,
            "credits": self._handle_credits,
            "models": self._handle_models,
            "create_batch": self._handle_create_batch,
            "create": self._handle_create,
            "results": self._handle_results,
            "effects": self._handle_effects,
            "update_audio": self._handle_update_audio,
            "delete": self._handle_delete,
            "download": self._handle_download,
        }
        for endpoint, (method, path) in ENDPOINT_PATHS.items():
            app.router.add_route(method, path, self._endpoint(endpoint, handlers[endpoint]))
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        port = runner.addresses[0][1]
        # A wildcard bind is still reached over loopback.
        host = "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host
        if ":" in host:
            host = f"[{host}]"
        self._url = f"http://{host}:{port}"

    async def close(self) -> None:
        """Stop webhook deliveries and the server. Idempotent."""
        self._closed = True
        tasks = list(self._webhook_tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._webhook_session is not None:
            await self._webhook_session.close()
            self._webhook_session = None
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> FakeAkoolServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- videos ------------------------------------------------------------------------------

    @property
    def videos(self) -> Mapping[str, FakeVideo]:
        """Every video created, by id (deleted and forgotten ones included)."""
        return types.MappingProxyType(self._videos)

    @property
    def created_count(self) -> int:
        """How many videos were created in total."""
        return len(self._videos)

    def status_of(self, video_id: str) -> VideoStatus:
        """The video's status now. Raises ``KeyError`` for an unknown id."""
        return self._videos[video_id].status_at(time.monotonic())

    def complete(self, video_id: str) -> None:
        """Force the video to status 3 now (and fire its webhooks)."""
        self.set_status(video_id, VideoStatus.COMPLETED)

    def fail(self, video_id: str) -> None:
        """Force the video to status 4 now (and fire its webhooks)."""
        self.set_status(video_id, VideoStatus.FAILED)

    def set_status(self, video_id: str, status: int) -> None:
        """Pin the video to ``status`` (1-4) from now on (and fire its webhooks)."""
        video = self._videos[video_id]
        video.forced_status = VideoStatus(status)
        video.forced_time = _epoch_ms()
        if video._changed is not None:
            video._changed.set()

    def forget(self, video_id: str) -> None:
        """Make results stop reporting the video (it is omitted from ``data.result``)."""
        self._videos[video_id].forgotten = True

    def video_url(self, video_id: str) -> str:
        """Where the fake serves the video's bytes (the ``"download"`` endpoint)."""
        return f"{self.url}/files/{video_id}.mp4"

    # -- auth --------------------------------------------------------------------------------

    def expire_tokens(self) -> None:
        """Make every Bearer token issued so far answer code 1101."""
        self._tokens.clear()

    def issue_token(self) -> str:
        """A valid Bearer token, as getToken would return it."""
        token = secrets.token_hex(24)
        self._tokens.add(token)
        return token

    # -- request log -------------------------------------------------------------------------

    def calls(self, endpoint: str) -> list[RecordedRequest]:
        """The recorded requests to ``endpoint``, in arrival order."""
        _check_endpoint(endpoint)
        return [r for r in self.requests if r.endpoint == endpoint]

    def call_count(self, endpoint: str) -> int:
        """How many requests ``endpoint`` received."""
        return len(self.calls(endpoint))

    def max_in_flight(self, endpoint: str) -> int:
        """The peak number of concurrent requests to ``endpoint``."""
        _check_endpoint(endpoint)
        return self._peak_in_flight[endpoint]

    def reset_log(self) -> None:
        """Clear ``requests``, ``faults_served``, ``webhook_deliveries`` and in-flight peaks."""
        self.requests.clear()
        self.faults_served.clear()
        self.webhook_deliveries.clear()
        self._peak_in_flight = collections.Counter(self._in_flight)

    # -- fault injection ---------------------------------------------------------------------

    def inject(self, endpoint: str, *faults: Fault | FaultKind) -> None:
        """Queue faults for ``endpoint``: each following request consumes one, FIFO."""
        _check_endpoint(endpoint)
        queue = self._scripted.setdefault(endpoint, collections.deque())
        queue.extend(f if isinstance(f, Fault) else Fault(f) for f in faults)

    def inject_random(
        self,
        endpoint: str,
        *,
        rate: float,
        kinds: Sequence[FaultKind | Fault],
        seed: int = 0,
        retry_after: float | None = None,
        delay: float = 0.0,
    ) -> None:
        """Fault each request to ``endpoint`` with probability ``rate`` (seeded), kind at random.

        Scripted faults (``inject``) are served first. ``rate=0`` turns random faults off.
        ``retry_after`` and ``delay`` apply to the bare ``FaultKind`` entries of ``kinds``; a
        ``Fault`` entry keeps its own, e.g. ``Fault(FaultKind.SLOW, delay=1.0)`` so that only
        slow answers outlast the client timeout.
        """
        _check_endpoint(endpoint)
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be within [0, 1]")
        if rate == 0.0 or not kinds:
            self._random_faults.pop(endpoint, None)
            return
        template = Fault(FaultKind.SLOW, retry_after=retry_after, delay=delay)
        self._random_faults[endpoint] = (rate, tuple(kinds), random.Random(seed), template)

    def clear_faults(self, endpoint: str | None = None) -> None:
        """Drop pending scripted and random faults (for one endpoint, or all)."""
        if endpoint is None:
            self._scripted.clear()
            self._random_faults.clear()
            return
        _check_endpoint(endpoint)
        self._scripted.pop(endpoint, None)
        self._random_faults.pop(endpoint, None)

    def _next_fault(self, endpoint: str) -> Fault | None:
        queue = self._scripted.get(endpoint)
        if queue:
            return queue.popleft()
        spec = self._random_faults.get(endpoint)
        if spec is None:
            return None
        rate, kinds, rng, template = spec
        if rng.random() >= rate:
            return None
        choice = rng.choice(kinds)
        return choice if isinstance(choice, Fault) else attrs.evolve(template, kind=choice)

    # -- webhooks ----------------------------------------------------------------------------

    @property
    def webhooks_pending(self) -> int:
        """How many webhook videos still have deliveries to make."""
        return len(self._webhook_tasks)

    async def wait_webhooks(self) -> None:
        """Wait until every webhook delivery under way has finished (wrap in a timeout)."""
        while self._webhook_tasks:
            # asyncio.wait, not gather: a caller's timeout must not cancel the deliveries.
            await asyncio.wait(set(self._webhook_tasks))

    # -- dispatch ----------------------------------------------------------------------------

    def _endpoint(
        self, endpoint: str, handler: _Handler
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def serve(request: web.Request) -> web.StreamResponse:
            record = RecordedRequest(
                endpoint=endpoint,
                method=request.method,
                path=request.path,
                query={k: request.query.getall(k) for k in dict.fromkeys(request.query)},
                headers={k.lower(): v for k, v in request.headers.items()},
                body=None,
                started_at=time.monotonic(),
            )
            self.requests.append(record)
            self._in_flight[endpoint] += 1
            self._peak_in_flight[endpoint] = max(
                self._peak_in_flight[endpoint], self._in_flight[endpoint]
            )
            try:
                return await self._serve(request, record, handler)
            finally:
                self._in_flight[endpoint] -= 1
                record.finished_at = time.monotonic()

        return serve

    async def _serve(
        self, request: web.Request, record: RecordedRequest, handler: _Handler
    ) -> web.StreamResponse:
        raw = await request.read()
        if raw:
            with contextlib.suppress(ValueError):
                record.body = json.loads(raw)

        fault = self._next_fault(record.endpoint)
        if fault is not None:
            record.fault = fault.kind
            self.faults_served.append((record.endpoint, fault.kind))
            if fault.delay > 0:
                await asyncio.sleep(fault.delay)
        latency = self._latency(record.endpoint)
        if latency > 0:
            await asyncio.sleep(latency)

        if fault is not None and not fault.kind.acts:
            return self._fail_without_acting(request, record, fault)

        if record.endpoint in ("token", "download"):
            answer = await handler(request, record)
        else:
            answer = self._check_auth(request) or await handler(request, record)

        if fault is not None:
            if fault.kind is FaultKind.RESET_AFTER:
                return _drop(request)
            if fault.kind is FaultKind.TRUNCATED:
                return await self._truncate(request, record, answer)
            if fault.kind is FaultKind.MALFORMED_JSON:
                answer = _Answer(raw=b'{"code": 1000, "msg": "OK", "data": {"resu')
            elif fault.kind is FaultKind.MISSING_DATA:
                answer = _Answer(envelope={"code": _SUCCESS, "msg": "ok"})
        record.http_status = answer.status
        record.code = answer.code
        return web.Response(
            status=answer.status,
            body=answer.body(),
            content_type=answer.content_type,
            headers=answer.headers,
        )

    def _latency(self, endpoint: str) -> float:
        if endpoint in ("create", "create_batch", "update_audio"):
            return self.create_latency
        if endpoint == "results":
            return self.results_latency
        return 0.0

    def _fail_without_acting(
        self, request: web.Request, record: RecordedRequest, fault: Fault
    ) -> web.StreamResponse:
        if fault.kind is FaultKind.RESET_BEFORE:
            return _drop(request)
        if fault.kind is FaultKind.CODE_1005:
            record.http_status, record.code = 200, 1005
            return web.json_response({"code": 1005, "msg": "requests too frequent", "data": None})
        status, text = _HTTP_FAULTS[fault.kind]
        headers = {}
        if fault.kind is FaultKind.HTTP_429 and fault.retry_after is not None:
            headers["Retry-After"] = f"{fault.retry_after:g}"
        record.http_status = status
        return web.Response(status=status, text=text, headers=headers)

    async def _truncate(
        self, request: web.Request, record: RecordedRequest, answer: _Answer
    ) -> web.StreamResponse:
        body = answer.body()
        response = web.StreamResponse(status=answer.status, headers=answer.headers)
        response.content_type = answer.content_type
        response.content_length = len(body)
        await response.prepare(request)
        await response.write(body[: len(body) // 2])
        record.http_status, record.code = answer.status, answer.code
        return _drop(request, response)

    def _check_auth(self, request: web.Request) -> _Answer | None:
        # Authorization wins over x-api-key when both are sent (akool-api.md §2).
        authorization = request.headers.get("Authorization", "").strip()
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() == "bearer" and token.strip() in self._tokens:
                return None
            return _error(1101, "invalid or expired token")
        api_key = request.headers.get("x-api-key", "")
        if api_key:
            return None if api_key == self.api_key else _error(1101, "invalid api key")
        return _error(1102, "authorization is empty")

    # -- handlers ----------------------------------------------------------------------------

    async def _handle_token(self, request: web.Request, record: RecordedRequest) -> _Answer:
        body = record.body
        if not isinstance(body, dict):
            return _error(1003, "clientId and clientSecret are required")
        if body.get("clientId") != self.client_id or body.get("clientSecret") != self.api_key:
            return _error(1101, "invalid clientId or clientSecret")
        # getToken is the one answer without "data" (akool-api.md §1).
        return _Answer(envelope={"code": _SUCCESS, "token": self.issue_token()})

    async def _handle_credits(self, request: web.Request, record: RecordedRequest) -> _Answer:
        return _ok({"credit": self.credit})

    async def _handle_models(self, request: web.Request, record: RecordedRequest) -> _Answer:
        raw_types = request.query.getall("types[]", []) + request.query.getall("types", [])
        wanted: set[int] = set()
        for raw in raw_types:
            try:
                wanted.add(int(raw))
            except ValueError:
                return _error(1003, "types must be integers")
        models = [m for m in self.models if not wanted or m.get("type", 1501) in wanted]
        return _ok(models)

    async def _handle_effects(self, request: web.Request, record: RecordedRequest) -> _Answer:
        return _ok({"result": [dict(e) for e in _EFFECTS], "count": len(_EFFECTS)})

    async def _handle_create_batch(self, request: web.Request, record: RecordedRequest) -> _Answer:
        body = record.body
        try:
            if not isinstance(body, dict):
                raise _Invalid("body must be a JSON object")
            image_url = _str_field(body, "image_url", required=True)
            prompt = _str_field(body, "prompt", required=True)
            resolution = _str_field(body, "resolution", required=True)
            video_length = _int_field(body, "video_length")
            model_name = body.get("model_name") or _DEFAULT_MODEL
            model = self._model(model_name)
            if resolution not in [r.get("value") for r in model.get("resolutionList", [])]:
                raise _Invalid(f"resolution {resolution!r} is not offered by {model_name}")
            if video_length not in model.get("durationList", []):
                raise _Invalid(f"video_length {video_length} is not offered by {model_name}")
            count = _int_field(body, "count", default=1)
            max_count = min(_MAX_COUNT, int(model.get("maxCount", _MAX_COUNT)))
            if not 1 <= count <= max_count:
                raise _Invalid(f"count must be between 1 and {max_count}")
            if _str_field(body, "last_image_url", required=False) and not model.get(
                "supportedLastFrame"
            ):
                raise _Invalid(f"{model_name} does not support last_image_url")
            generate_audio = _bool_field(body, "generate_audio")
            if generate_audio and model.get("generate_audio") is None:
                raise _Invalid(f"{model_name} does not support generate_audio")
            _bool_field(body, "extend_prompt")
            _str_field(body, "negative_prompt", required=False)
            webhook_url = _str_field(body, "webhookurl", required=False) or None
        except _Invalid as exc:
            return _error(exc.code, exc.msg)

        failed = min(self.next_batch_errors, count)
        unit = _CREDITS_PER_5S[resolution] * video_length / 5
        if generate_audio:
            unit *= _GENERATE_AUDIO_FACTOR
        if unit * (count - failed) > self.credit:
            return _error(1006, "insufficient credit")
        self.next_batch_errors = 0
        self.credit -= unit * (count - failed)

        fails = self._fails(body)
        batch_id = self._new_id()
        videos = [
            self._add_video(
                record,
                body,
                deduction_credit=unit,
                model_name=model_name,
                resolution=resolution,
                video_length=video_length,
                image_url=image_url,
                prompt=prompt,
                webhook_url=webhook_url,
                fails=fails,
                batch_id=batch_id,
                batch_count=count,
            )
            for _ in range(count - failed)
        ]
        error_list = [
            {"index": index, "code": 1015, "msg": "create video error, please try again later"}
            for index in range(count - failed, count)
        ]
        return _ok(
            {"successList": [self._item(v, created=True) for v in videos], "errorList": error_list}
        )

    async def _handle_create(self, request: web.Request, record: RecordedRequest) -> _Answer:
        body = record.body
        try:
            if not isinstance(body, dict):
                raise _Invalid("body must be a JSON object")
            image_url = _str_field(body, "image_url", required=True)
            effect_code = _str_field(body, "effect_code", required=False)
            if effect_code and effect_code not in {e["effect_code"] for e in _EFFECTS}:
                raise _Invalid(f"unknown effect_code {effect_code!r}")
            # The prompt is ignored when an effect is chosen (akool-api.md §4).
            prompt = _str_field(body, "prompt", required=not effect_code)
            if not isinstance(body.get("negative_prompt"), str):
                raise _Invalid("negative_prompt is required")
            resolution = _str_field(body, "resolution", required=True)
            if resolution not in _CREDITS_PER_5S:
                raise _Invalid(f"unknown resolution {resolution!r}")
            audio_type = _int_field(body, "audio_type")
            if audio_type not in (1, 2, 3):
                raise _Invalid("audio_type must be 1, 2 or 3")
            if audio_type == 2:
                _str_field(body, "audio_url", required=True)
            video_length = _int_field(body, "video_length", default=5)
            if video_length not in (5, 10):
                raise _Invalid("video_length must be 5 or 10")
            premium = _bool_field(body, "is_premium_model")
            _bool_field(body, "extend_prompt")
            webhook_url = _str_field(body, "webhookurl", required=False) or None
        except _Invalid as exc:
            return _error(exc.code, exc.msg)

        unit = _CREDITS_PER_5S[resolution] * video_length / 5
        if unit > self.credit:
            return _error(1006, "insufficient credit")
        self.credit -= unit
        video = self._add_video(
            record,
            body,
            deduction_credit=unit,
            model_name="AkoolImage2VideoHDV1" if premium else _DEFAULT_MODEL,
            resolution=resolution,
            video_length=video_length,
            image_url=image_url,
            prompt=prompt,
            webhook_url=webhook_url,
            fails=self._fails(body),
        )
        return _ok(self._item(video, created=True))

    async def _handle_update_audio(self, request: web.Request, record: RecordedRequest) -> _Answer:
        body = record.body
        try:
            if not isinstance(body, dict):
                raise _Invalid("body must be a JSON object")
            pre_video_id = _str_field(body, "pre_video_id", required=True)
            audio_type = _int_field(body, "audio_type")
            if audio_type not in (1, 2):
                raise _Invalid("audio_type must be 1 or 2")
            if audio_type == 2:
                _str_field(body, "audio_url", required=True)
            webhook_url = _str_field(body, "webhookurl", required=False) or None
            pre = self._videos.get(pre_video_id)
            if pre is None or pre.deleted:
                raise _Invalid("pre_video_id does not exist", code=1008)
            if pre.status_at(time.monotonic()) is not VideoStatus.COMPLETED:
                raise _Invalid("the video is not completed yet")
        except _Invalid as exc:
            return _error(exc.code, exc.msg)

        unit = _AUDIO_CREDITS_PER_SECOND * pre.video_length
        if unit > self.credit:
            return _error(1006, "insufficient credit")
        self.credit -= unit
        video = self._add_video(
            record,
            body,
            deduction_credit=unit,
            model_name=pre.model_name,
            resolution=pre.resolution,
            video_length=pre.video_length,
            image_url=pre.image_url,
            prompt=pre.prompt,
            webhook_url=webhook_url,
            fails=self._fails(body),
            only_add_audio=True,
            pre_video_id=pre.id,
        )
        return _ok(self._item(video, created=True))

    async def _handle_results(self, request: web.Request, record: RecordedRequest) -> _Answer:
        try:
            ids = _ids_field(record.body)
            if len(ids) > self.max_ids_per_results:
                raise _Invalid(f"at most {self.max_ids_per_results} ids per request")
        except _Invalid as exc:
            return _error(exc.code, exc.msg)
        now = time.monotonic()
        items = []
        for video_id in ids:
            video = self._videos.get(video_id)
            if video is not None and not video.forgotten and not video.deleted:
                items.append(self._item(video, now=now))
        # AKOOL does not document the order; a shuffle keeps clients matching on _id.
        self._rng.shuffle(items)
        return _ok({"result": items})

    async def _handle_delete(self, request: web.Request, record: RecordedRequest) -> _Answer:
        try:
            ids = _ids_field(record.body)
        except _Invalid as exc:
            return _error(exc.code, exc.msg)
        now = time.monotonic()
        success: list[str] = []
        refused: list[dict[str, str]] = []
        for video_id in ids:
            video = self._videos.get(video_id)
            if video is None or video.deleted or video.forgotten:
                refused.append({"_id": video_id, "msg": "video not found"})
            elif video.status_at(now) is VideoStatus.PROCESSING:
                refused.append({"_id": video_id, "msg": "video is processing"})
            else:
                video.deleted = True
                if video._changed is not None:
                    video._changed.set()
                success.append(video_id)
        return _ok({"successIds": success, "noPermissionItems": refused})

    async def _handle_download(self, request: web.Request, record: RecordedRequest) -> _Answer:
        name = request.match_info["name"]
        video_id = name.removesuffix(".mp4")
        video = self._videos.get(video_id)
        if not name.endswith(".mp4") or video is None or video.deleted:
            return _Answer(status=404, raw=b"404: Not Found", content_type="text/plain")
        return _Answer(raw=video_bytes(video_id), content_type="video/mp4")

    # -- helpers -----------------------------------------------------------------------------

    def _model(self, name: object) -> Mapping[str, Any]:
        if isinstance(name, str):
            for model in self.models:
                if model.get("value") == name:
                    return model
        raise _Invalid(f"unknown model_name {name!r}")

    def _fails(self, body: Mapping[str, Any]) -> bool:
        return self.fail_when is not None and bool(self.fail_when(body))

    def _new_id(self) -> str:
        # ObjectId layout: 4 bytes of seconds, 5 bytes per server, a 3-byte counter.
        counter = next(_ID_COUNTER) & 0xFFFFFF
        return f"{int(time.time()) & 0xFFFFFFFF:08x}{self._id_salt}{counter:06x}"

    def _jittered(self, seconds: float) -> float:
        if self.timing_jitter <= 0 or seconds <= 0:
            return seconds
        factor = 1 + self._rng.uniform(-self.timing_jitter, self.timing_jitter)
        return max(0.0, seconds * factor)

    def _add_video(
        self,
        record: RecordedRequest,
        body: dict[str, Any],
        *,
        deduction_credit: float,
        model_name: str,
        resolution: str,
        video_length: int,
        image_url: str,
        prompt: str,
        webhook_url: str | None,
        fails: bool,
        batch_id: str | None = None,
        batch_count: int | None = None,
        only_add_audio: bool = False,
        pre_video_id: str | None = None,
    ) -> FakeVideo:
        video = FakeVideo(
            id=self._new_id(),
            endpoint=record.endpoint,
            request=body,
            created_at=time.monotonic(),
            create_time=_epoch_ms(),
            queue_seconds=self._jittered(self.queue_seconds),
            process_seconds=self._jittered(self.process_seconds),
            final_status=VideoStatus.FAILED if fails else VideoStatus.COMPLETED,
            deduction_credit=deduction_credit,
            model_name=model_name,
            resolution=resolution,
            video_length=video_length,
            image_url=image_url,
            prompt=prompt,
            webhook_url=webhook_url,
            batch_id=batch_id,
            batch_count=batch_count,
            only_add_audio=only_add_audio,
            pre_video_id=pre_video_id,
        )
        self._videos[video.id] = video
        record.created_ids.append(video.id)
        if webhook_url:
            video._changed = asyncio.Event()
            task = asyncio.create_task(self._webhook_loop(video))
            self._webhook_tasks.add(task)
            task.add_done_callback(self._webhook_task_done)
        return video

    def _item(
        self, video: FakeVideo, *, now: float | None = None, created: bool = False
    ) -> dict[str, Any]:
        body = video.request
        if created:
            # AKOOL answers a create with status 1, however fast the fake is set to run.
            status, update_time = VideoStatus.QUEUEING, video.create_time
        else:
            now = time.monotonic() if now is None else now
            status, update_time = video.status_at(now), video.update_time_at(now)
        item: dict[str, Any] = {
            "_id": video.id,
            "create_time": video.create_time,
            "update_time": update_time,
            "uid": _FAKE_UID,
            "team_id": _FAKE_TEAM_ID,
            "status": int(status),
            "webhookUrl": video.webhook_url or "",
            "resolution": video.resolution,
            "video_length": video.video_length,
            "file_name": video.image_url.rsplit("/", 1)[-1],
            "effect_name": body.get("effect_code") or "",
            "image_url": video.image_url,
            "prompt": video.prompt,
            "negative_prompt": body.get("negative_prompt") or "",
            "extend_prompt": bool(body.get("extend_prompt", False)),
            "last_image_url": body.get("last_image_url") or "",
            "generate_audio": bool(body.get("generate_audio", False)),
            "deduction_credit": video.deduction_credit,
            "model_name": video.model_name,
            "only_add_audio": video.only_add_audio,
        }
        if video.batch_id is not None:
            item["batch_id"] = video.batch_id
            item["batch_count"] = video.batch_count
        if video.pre_video_id is not None:
            item["pre_video_id"] = video.pre_video_id
        if not created:
            # Not in the documented field list: clients must tolerate unknown keys (§5).
            item["sub_type"] = 1
        if status is VideoStatus.COMPLETED:
            item["video_url"] = self.video_url(video.id)
            item["video_duration"] = video.video_length + 0.041667
        return item

    # -- webhook delivery --------------------------------------------------------------------

    def _webhook_task_done(self, task: asyncio.Task[None]) -> None:
        self._webhook_tasks.discard(task)
        # Kept rather than left unretrieved, where asyncio would only log them at exit.
        if not task.cancelled() and (exc := task.exception()) is not None:
            self.webhook_errors.append(exc)

    async def _webhook_loop(self, video: FakeVideo) -> None:
        """Deliver status 2, then 3 or 4, as the video reaches them."""
        changed = video._changed
        if changed is None:  # only webhook videos get an event
            return
        sent: set[VideoStatus] = set()
        held_processing = False
        while not video.deleted:
            changed.clear()
            now = time.monotonic()
            status = video.status_at(now)
            if status is VideoStatus.PROCESSING and status not in sent:
                sent.add(status)
                if self.webhook_reorder:
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
        payload = {
            "_id": video.id,
            "status": int(status),
            "type": WEBHOOK_EVENT_TYPE,
            "url": self.video_url(video.id) if status is VideoStatus.COMPLETED else "",
        }
        drop = self.webhook_drop is not None and self.webhook_drop(video.id, int(status))
        if drop or (
            self.webhook_drop_rate > 0 and self._webhook_rng.random() < self.webhook_drop_rate
        ):
            self.webhook_deliveries.append(
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
        for _ in range(2 if self.webhook_duplicate else 1):
            await self._post_webhook(video.id, url, payload)

    async def _post_webhook(self, video_id: str, url: str, payload: dict[str, Any]) -> None:
        if self._webhook_session is None:
            self._webhook_session = aiohttp.ClientSession()
        session = self._webhook_session
        # One envelope per delivery: retries resend the same signed message.
        envelope = build_envelope(payload, client_id=self.client_id, client_secret=self.api_key)
        attempts = max(1, self.webhook_max_attempts)
        for attempt in range(1, attempts + 1):
            delivery = WebhookDelivery(
                video_id=video_id, url=url, payload=payload, envelope=envelope, attempt=attempt
            )
            self.webhook_deliveries.append(delivery)
            try:
                async with session.post(
                    url, json=envelope, timeout=aiohttp.ClientTimeout(total=self.webhook_timeout)
                ) as response:
                    await response.read()
                    delivery.http_status = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                delivery.error = f"{type(exc).__name__}: {exc}"
            # AKOOL retries unless the receiver answers exactly HTTP 200 (§8).
            if delivery.http_status == 200:
                return
            if attempt < attempts:
                await asyncio.sleep(self.webhook_retry_delay * 2 ** (attempt - 1))


def _drop(request: web.Request, response: web.StreamResponse | None = None) -> web.StreamResponse:
    """Close the connection without (finishing) an answer; the client sees a disconnect."""
    if request.transport is not None:
        request.transport.close()
    # aiohttp discards whatever is returned once the transport is closed.
    return response if response is not None else web.Response(status=500)


def _check_endpoint(endpoint: str) -> None:
    if endpoint not in ENDPOINT_PATHS:
        raise ValueError(f"unknown endpoint {endpoint!r}; expected one of {sorted(ENDPOINT_PATHS)}")


def _epoch_ms() -> int:
    return math.floor(time.time() * 1000)


def sign_webhook(
    event: Mapping[str, Any] | _WebhookEventLike,
    *,
    client_id: str,
    client_secret: str,
    timestamp: int | None = None,
    nonce: str | int | None = None,
) -> dict[str, Any]:
    """Build a signed, encrypted webhook envelope, as AKOOL would POST it.

    Args:
        event: the plaintext ``{"_id", "status", "type", "url"}``, or an object with ``id``,
            ``status`` and optional ``type``/``url`` attributes (e.g. a ``WebhookEvent``).
        client_id, client_secret: the credentials the receiver verifies with.
        timestamp: epoch milliseconds; defaults to now.
        nonce: a string or an int; defaults to a random one.

    Returns:
        ``{"signature", "dataEncrypt", "timestamp", "nonce"}``.
    """
    if isinstance(event, Mapping):
        payload = dict(event)
    else:
        payload = {
            "_id": event.id,
            "status": int(event.status),
            "type": getattr(event, "type", None) or WEBHOOK_EVENT_TYPE,
            "url": getattr(event, "url", None) or "",
        }
    return build_envelope(
        payload,
        client_id=client_id,
        client_secret=client_secret,
        timestamp=timestamp,
        nonce=nonce,
    )


async def serve_forever(
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    ready: Callable[[FakeAkoolServer], object] | None = None,
    **options: Any,
) -> None:
    """Run a ``FakeAkoolServer`` until cancelled (for ``akool-async fake-server``).

    Args:
        host, port: where to listen.
        ready: called with the started server, e.g. to print its URL and key.
        options: any other ``FakeAkoolServer`` keyword argument.
    """
    async with FakeAkoolServer(host=host, port=port, **options) as server:
        if ready is not None:
            ready(server)
        await asyncio.Event().wait()
