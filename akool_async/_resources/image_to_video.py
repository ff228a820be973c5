"""Image-to-video endpoints: create, results, effects, audio replacement, delete."""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable, Mapping
from typing import Any, Final, Unpack

from .._budget import audio_price_key, single_price_key
from .._convert import structure
from .._core import ClientCore
from .._creates import Batch
from .._errors import (
    AkoolResponseError,
    AkoolValueError,
    ClientClosedError,
)
from .._generate import Generation, ProgressCallback
from .._models import DeleteResult, Effect, Video, is_int, is_video_id
from .._polling import RESULTS_PATH, TaskHandle, result_items
from .._pricing import CreditEstimate, price_key
from .._requests import VideoRequest, require_text, require_url
from .._settings import CallOptions, RequestOptions

_BASE: Final = "/api/open/v4/image2Video"
CREATE_PATH: Final = f"{_BASE}/createBySourcePrompt"
EFFECTS_PATH: Final = f"{_BASE}/effects"
AUDIO_PATH: Final = f"{_BASE}/updateVideoAudio"
DELETE_PATH: Final = f"{_BASE}/delbyids"

_AUDIO_TYPES: Final = {1: "AI", 2: "upload", 3: "none"}


def check_ids(ids: Iterable[str] | str) -> list[str]:
    """Validate and de-duplicate video ids (order kept)."""
    if isinstance(ids, str):
        ids = [ids]
    out: dict[str, None] = {}
    for video_id in ids:
        # Ids travel as one comma-separated string: a comma or space inside one would split it.
        if not is_video_id(video_id):
            raise AkoolValueError(
                f"video id: must be a non-empty string without commas, got {video_id!r:.80}"
            )
        out[video_id] = None
    if not out:
        raise AkoolValueError("ids: at least one video id is required")
    return list(out)


class ImageToVideo:
    """``client.image_to_video``: create videos and follow them to completion."""

    def __init__(self, core: ClientCore) -> None:
        self._core = core

    async def create_batch(
        self,
        *,
        image_url: str,
        prompt: str,
        resolution: str,
        video_length: int,
        model_name: str | None = None,
        negative_prompt: str | None = None,
        extend_prompt: bool | None = None,
        last_image_url: str | None = None,
        generate_audio: bool | None = None,
        count: int = 1,
        webhook_url: str | None = None,
        **options: Unpack[CallOptions],
    ) -> Batch:
        """Start 1-10 videos from one image and prompt.

        Args:
            image_url: the image to animate (PNG/JPEG, absolute http(s) URL).
            prompt: how to animate it.
            resolution: one of the model's resolutions, e.g. ``"720p"``.
            video_length: seconds, one of the model's durations.
            count: videos to make, 1-10 (at most the model's ``max_count``).
            webhook_url: where AKOOL should POST status changes.
            options: ``extra_headers``, ``extra_query``, ``extra_body``, ``timeout`` for this
                call (see ``CallOptions``).

        Returns:
            A ``Batch``; ``await`` its handles for the finished videos. A batch can partly
            succeed: failed items are in ``Batch.errors``.

        Raises:
            AkoolValueError: bad input, before any request; when ``models.list()`` was
                called, also values the model does not offer.
            CreateOutcomeUnknownError: the request was sent but no answer came back; it is
                not resent (it may have created and charged for videos).
            AkoolAPIError: AKOOL refused the create (e.g. InsufficientCreditsError).
        """
        request = VideoRequest(
            image_url=image_url,
            prompt=prompt,
            resolution=resolution,
            video_length=video_length,
            model_name=model_name,
            negative_prompt=negative_prompt,
            extend_prompt=extend_prompt,
            last_image_url=last_image_url,
            generate_audio=generate_audio,
            count=count,
            webhook_url=webhook_url,
        )
        return await self.create_from(request, **options)

    def estimate_credits(
        self,
        *,
        model_name: str | None = None,
        resolution: str,
        video_length: int,
        count: int = 1,
        generate_audio: bool | None = None,
    ) -> CreditEstimate:
        """What ``count`` videos of this kind are expected to cost; sends no request.

        The same estimate ``max_credits`` reserves before a create is sent. Its ``source``
        says where it comes from: ``observed`` (the highest ``deduction_credit`` AKOOL
        charged this client for the same model, resolution, length and audio), ``table``
        (AKOOL's published prices: 720p 20, 1080p 25, 4k 30 credits per 5 s) or
        ``fallback`` (a conservative 60 per 5 s, e.g. for third-party models). With
        ``generate_audio``, the model's ``extra_credit_multiplier`` is used once
        ``client.models.list()`` was called; before, a conservative factor of 2 (``fallback``).

        Raises:
            AkoolValueError: bad input; when ``models.list()`` was called, also an unknown
                ``model_name``.
        """
        if model_name is not None:
            require_text("model_name", model_name)
        require_text("resolution", resolution)
        for name, number in (("video_length", video_length), ("count", count)):
            if not is_int(number) or number < 1:
                raise AkoolValueError(f"{name}: must be a positive integer, got {number!r:.40}")
        if generate_audio is not None and not isinstance(generate_audio, bool):
            raise AkoolValueError(
                f"generate_audio: must be True, False or None, got {generate_audio!r:.40}"
            )
        self._core.catalog.check(model_name)
        key = price_key(model_name, resolution, video_length, generate_audio)
        return self._core.budget.quote(key, count)

    def generate_many(
        self,
        requests: Iterable[VideoRequest] | AsyncIterable[VideoRequest],
        *,
        on_progress: ProgressCallback | None = None,
        **options: Unpack[CallOptions],
    ) -> Generation:
        """Create many videos: any count per request, split into batch calls of at most 10.

        Batch calls run concurrently under the client's ``max_concurrent_creates``. Iterate
        the result (``async for handle in ...``) to get each handle as soon as it exists, or
        ``await`` it for all handles. Failed creates are kept in ``Generation.failures``; after
        an authentication, permission or credit error the remaining requests are recorded
        there without being sent.

        Args:
            requests: ``VideoRequest`` objects (an iterable or an async iterable).
            on_progress: called with a ``Progress`` after creates and status changes.
            options: ``extra_headers``, ``extra_query``, ``extra_body``, ``timeout`` for this
                call (see ``CallOptions``).
        """
        return Generation(self._core, requests, on_progress, RequestOptions(**options))

    async def create_from(
        self, request: VideoRequest, count: int | None = None, **options: Unpack[CallOptions]
    ) -> Batch:
        """Send one batch create for ``request`` (``count`` overrides ``request.count``).

        Raises:
            BudgetExceededError: the create would take the credits charged past the
                client's ``max_credits``; nothing was sent.
            CreateOutcomeUnknownError: the request was sent but no answer came back.
        """
        return await self._core.creates.create_batch(request, count, RequestOptions(**options))

    async def create(
        self,
        *,
        image_url: str,
        prompt: str,
        negative_prompt: str,
        audio_type: int,
        resolution: str,
        video_length: int,
        extend_prompt: bool | None = None,
        audio_url: str | None = None,
        is_premium_model: bool | None = None,
        effect_code: str | None = None,
        webhook_url: str | None = None,
        **options: Unpack[CallOptions],
    ) -> TaskHandle:
        """Start one video with the older single-create endpoint.

        Args:
            audio_type: 1 AI audio, 2 uploaded (``audio_url``), 3 none.
            resolution, video_length: required by this endpoint (akool-api.md §4).
            effect_code: an effect from ``effects()``; AKOOL ignores ``prompt`` when set.
            options: ``extra_headers``, ``extra_query``, ``extra_body``, ``timeout`` for this
                call (see ``CallOptions``).

        Returns:
            A ``TaskHandle`` for the new video.
        """
        # bool and float pass "in (1, 2, 3)" (True == 1.0 == 1) but AKOOL wants an integer.
        if not is_int(audio_type) or audio_type not in _AUDIO_TYPES:
            raise AkoolValueError(
                f"audio_type: must be 1 (AI), 2 (upload) or 3 (none), got {audio_type!r}"
            )
        if audio_type == 2 and not audio_url:
            raise AkoolValueError("audio_url: required when audio_type is 2 (upload)")
        if not isinstance(negative_prompt, str):
            raise AkoolValueError(
                "negative_prompt: must be a string (the single endpoint requires it)"
            )
        if webhook_url is not None:
            require_url("webhook_url", webhook_url)
        require_text("resolution", resolution)
        if not is_int(video_length) or video_length < 1:
            raise AkoolValueError(f"video_length: must be a positive integer, got {video_length!r}")
        for name, flag in (
            ("extend_prompt", extend_prompt),
            ("is_premium_model", is_premium_model),
        ):
            if flag is not None and not isinstance(flag, bool):
                raise AkoolValueError(f"{name}: must be True, False or None, got {flag!r:.40}")
        if effect_code is not None:
            require_text("effect_code", effect_code)
        if audio_url is not None:
            require_url("audio_url", audio_url)
        body: dict[str, Any] = {
            "image_url": require_url("image_url", image_url),
            "prompt": require_text("prompt", prompt),
            "negative_prompt": negative_prompt,
            "audio_type": audio_type,
            "resolution": resolution,
            "video_length": video_length,
        }
        optional = {
            "extend_prompt": extend_prompt,
            "audio_url": audio_url,
            "is_premium_model": is_premium_model,
            "effect_code": effect_code,
            "webhookurl": webhook_url,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        return await self._core.creates.create_one(
            CREATE_PATH,
            body,
            single_price_key(body),
            webhook=webhook_url is not None,
            options=RequestOptions(**options),
        )

    async def replace_audio(
        self,
        *,
        video_id: str,
        audio_url: str,
        audio_type: int = 2,
        **options: Unpack[CallOptions],
    ) -> TaskHandle:
        """Give a finished video new audio. AKOOL makes a NEW task: the returned handle.

        Args:
            video_id: the finished video (``pre_video_id``).
            audio_url: the audio to use.
            audio_type: 1 AI, 2 uploaded.
            options: ``extra_headers``, ``extra_query``, ``extra_body``, ``timeout`` for this
                call (see ``CallOptions``).

        Raises:
            BudgetExceededError: it would take the credits charged past the client's
                ``max_credits`` (its price is unpublished: until AKOOL has charged one, it is
                estimated like a new 5 s video); nothing was sent.
            CreateOutcomeUnknownError: the request was sent but no answer came back.
        """

        (video_id,) = check_ids([video_id])
        if not is_int(audio_type) or audio_type not in (1, 2):
            raise AkoolValueError(f"audio_type: must be 1 (AI) or 2 (upload), got {audio_type!r}")
        body = {
            "pre_video_id": video_id,
            "audio_url": require_url("audio_url", audio_url),
            "audio_type": audio_type,
        }
        # The new task is a new, billed video: max_credits and credits_charged cover it.
        return await self._core.creates.create_one(
            AUDIO_PATH,
            body,
            audio_price_key(audio_type),
            webhook=False,
            options=RequestOptions(**options),
        )

    async def results(
        self, ids: Iterable[str] | str, **options: Unpack[CallOptions]
    ) -> list[Video]:
        """The current state of the given videos, in the order asked.

        Ids are sent in chunks of the poll policy's ``max_ids_per_request``; ids AKOOL does
        not know are left out of the answer. ``options`` apply to each chunk's request (see
        ``CallOptions``).
        """
        call = RequestOptions(**options)
        wanted = check_ids(ids)
        size = self._core.poll_policy.max_ids_per_request
        found: dict[str, Video] = {}
        for start in range(0, len(wanted), size):
            chunk = wanted[start : start + size]
            envelope = await self._core.request(
                "POST", RESULTS_PATH, json={"_ids": ",".join(chunk)}, options=call
            )
            for video in structure(result_items(envelope), list[Video], where=RESULTS_PATH):
                found[video.id] = video
        return [found[i] for i in wanted if i in found]

    def handle(self, video_id: str) -> TaskHandle:
        """A handle for a video created earlier (re-attach after a restart).

        Must be called inside a running event loop. Handles for one id share one poll.
        """
        (video_id,) = check_ids([video_id])
        if self._core.closed:
            raise ClientClosedError("the client is closed")
        return self._core.track(video_id)

    async def effects(self, **options: Unpack[CallOptions]) -> list[Effect]:
        """The effects the single create accepts as ``effect_code``.

        Args:
            options: ``extra_headers``, ``extra_query``, ``extra_body``, ``timeout`` for this
                call (see ``CallOptions``).
        """
        envelope = await self._core.request("GET", EFFECTS_PATH, options=RequestOptions(**options))
        data = envelope.get("data")
        # The documentation does not show the shape: accept a list or {"result": [...]}.
        items = data.get("result") if isinstance(data, Mapping) else data
        if not isinstance(items, list):
            raise AkoolResponseError(
                "effects answered without a list", method="GET", path=EFFECTS_PATH
            )
        return structure(items, list[Effect], where=EFFECTS_PATH)

    async def delete(
        self, ids: Iterable[str] | str, **options: Unpack[CallOptions]
    ) -> DeleteResult:
        """Delete videos. A video still processing (status 2) cannot be deleted: see ``refused``.

        Args:
            options: ``extra_headers``, ``extra_query``, ``extra_body``, ``timeout`` for this
                call (see ``CallOptions``).
        """
        wanted = check_ids(ids)
        envelope = await self._core.request(
            "POST",
            DELETE_PATH,
            json={"_ids": ",".join(wanted)},
            options=RequestOptions(**options),
        )
        data = envelope.get("data")
        if not isinstance(data, Mapping):
            raise AkoolResponseError(
                "delbyids answered without data", method="POST", path=DELETE_PATH
            )
        deleted = data.get("successIds") or []
        refused = data.get("noPermissionItems") or []
        if not isinstance(deleted, list) or not isinstance(refused, list):
            raise AkoolResponseError(
                "delbyids answer has an unexpected shape", method="POST", path=DELETE_PATH
            )
        return DeleteResult(
            deleted=tuple(str(i) for i in deleted),
            refused=tuple(r if isinstance(r, Mapping) else {"item": r} for r in refused),
        )
