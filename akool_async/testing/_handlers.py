"""One handler per endpoint: each checks a request like AKOOL and says what to answer.

A handler gets the server's ``Context`` and the request (its body already parsed into
``record.body``); dispatch (``_app``) handles auth, faults, latency and holds around it. The fake
grows by adding a handler here and a path in ``ENDPOINT_PATHS``.
"""

from __future__ import annotations

import math
import time
import types
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from aiohttp import web

from .._models import VideoStatus
from ._catalog import (
    AUDIO_CREDITS_PER_5S,
    CREDITS_PER_5S,
    DEFAULT_MODEL,
    EFFECTS,
    MAX_COUNT,
    video_bytes,
)
from ._context import Context
from ._state import FakeVideo, RecordedRequest
from ._validation import Invalid, bool_field, ids_field, int_field, str_field
from ._wire import SUCCESS, Answer, epoch_ms, error, ok

Handler = Callable[[Context, web.Request, RecordedRequest], Awaitable[Answer]]

#: What the older single create accepts as ``resolution``.
SINGLE_RESOLUTIONS: Final = frozenset(CREDITS_PER_5S)
#: The price of a resolution the price table does not list (a custom model's): its top row.
_UNLISTED_PRICE: Final = max(CREDITS_PER_5S.values())

FAKE_UID: Final = 100001
FAKE_TEAM_ID: Final = "fake-team-0001"


async def token(fake: Context, request: web.Request, record: RecordedRequest) -> Answer:
    body = record.body
    if not isinstance(body, dict):
        return error(1003, "clientId and clientSecret are required")
    if (
        body.get("clientId") != fake.knobs.client_id
        or body.get("clientSecret") != fake.knobs.api_key
    ):
        return error(1101, "invalid clientId or clientSecret")
    # getToken is the one answer without "data" (akool-api.md §1).
    return Answer(envelope={"code": SUCCESS, "token": fake.state.issue_token()})


async def credits(fake: Context, request: web.Request, record: RecordedRequest) -> Answer:
    return ok({"credit": fake.knobs.credit})


async def models(fake: Context, request: web.Request, record: RecordedRequest) -> Answer:
    raw_types = request.query.getall("types[]", []) + request.query.getall("types", [])
    wanted: set[int] = set()
    for raw in raw_types:
        try:
            wanted.add(int(raw))
        except ValueError:
            return error(1003, "types must be integers")
    models = [m for m in fake.knobs.models if not wanted or m.get("type", 1501) in wanted]
    return ok(models)


async def effects(fake: Context, request: web.Request, record: RecordedRequest) -> Answer:
    return ok({"result": [dict(e) for e in EFFECTS], "count": len(EFFECTS)})


async def create_batch(fake: Context, request: web.Request, record: RecordedRequest) -> Answer:
    body = record.body
    try:
        if not isinstance(body, dict):
            raise Invalid("body must be a JSON object")
        image_url = str_field(body, "image_url", required=True)
        prompt = str_field(body, "prompt", required=True)
        resolution = str_field(body, "resolution", required=True)
        video_length = int_field(body, "video_length")
        model_name = body.get("model_name") or DEFAULT_MODEL
        model = _model(fake, model_name)
        if resolution not in [r.get("value") for r in model.get("resolutionList", [])]:
            raise Invalid(f"resolution {resolution!r} is not offered by {model_name}")
        if video_length not in model.get("durationList", []):
            raise Invalid(f"video_length {video_length} is not offered by {model_name}")
        count = int_field(body, "count", default=1)
        max_count = min(MAX_COUNT, int(model.get("maxCount", MAX_COUNT)))
        if not 1 <= count <= max_count:
            raise Invalid(f"count must be between 1 and {max_count}")
        if str_field(body, "last_image_url", required=False) and not model.get(
            "supportedLastFrame"
        ):
            raise Invalid(f"{model_name} does not support last_image_url")
        generate_audio = bool_field(body, "generate_audio")
        if generate_audio and model.get("generate_audio") is None:
            raise Invalid(f"{model_name} does not support generate_audio")
        bool_field(body, "extend_prompt")
        str_field(body, "negative_prompt", required=False)
        webhook_url = str_field(body, "webhookurl", required=False) or None
    except Invalid as exc:
        return error(exc.code, exc.msg)

    failed = min(fake.knobs.next_batch_errors, count)
    unit = _price(resolution, video_length)
    if generate_audio:
        unit *= _audio_multiplier(model)
    if unit * (count - failed) > fake.knobs.credit:
        return error(1006, "insufficient credit")
    fake.knobs.next_batch_errors = 0
    fake.knobs.credit -= unit * (count - failed)

    fails = _fails(fake, body)
    batch_id = fake.state.new_id()
    videos = [
        _add_video(
            fake,
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
    return ok(
        {"successList": [_item(fake, v, created=True) for v in videos], "errorList": error_list}
    )


async def create(fake: Context, request: web.Request, record: RecordedRequest) -> Answer:
    body = record.body
    try:
        if not isinstance(body, dict):
            raise Invalid("body must be a JSON object")
        image_url = str_field(body, "image_url", required=True)
        effect_code = str_field(body, "effect_code", required=False)
        if effect_code and effect_code not in {e["effect_code"] for e in EFFECTS}:
            raise Invalid(f"unknown effect_code {effect_code!r}")
        # The prompt is ignored when an effect is chosen (akool-api.md §4).
        prompt = str_field(body, "prompt", required=not effect_code)
        if not isinstance(body.get("negative_prompt"), str):
            raise Invalid("negative_prompt is required")
        resolution = str_field(body, "resolution", required=True)
        if resolution not in SINGLE_RESOLUTIONS:
            raise Invalid(f"unknown resolution {resolution!r}")
        audio_type = int_field(body, "audio_type")
        if audio_type not in (1, 2, 3):
            raise Invalid("audio_type must be 1, 2 or 3")
        if audio_type == 2:
            str_field(body, "audio_url", required=True)
        video_length = int_field(body, "video_length", default=5)
        if video_length not in (5, 10):
            raise Invalid("video_length must be 5 or 10")
        premium = bool_field(body, "is_premium_model")
        bool_field(body, "extend_prompt")
        webhook_url = str_field(body, "webhookurl", required=False) or None
    except Invalid as exc:
        return error(exc.code, exc.msg)

    # Audio made by the create itself is free (§9): only the resolution and length count.
    unit = _price(resolution, video_length)
    if unit > fake.knobs.credit:
        return error(1006, "insufficient credit")
    fake.knobs.credit -= unit
    video = _add_video(
        fake,
        record,
        body,
        deduction_credit=unit,
        model_name="AkoolImage2VideoHDV1" if premium else DEFAULT_MODEL,
        resolution=resolution,
        video_length=video_length,
        image_url=image_url,
        prompt=prompt,
        webhook_url=webhook_url,
        fails=_fails(fake, body),
    )
    return ok(_item(fake, video, created=True))


async def update_audio(fake: Context, request: web.Request, record: RecordedRequest) -> Answer:
    body = record.body
    try:
        if not isinstance(body, dict):
            raise Invalid("body must be a JSON object")
        pre_video_id = str_field(body, "pre_video_id", required=True)
        audio_type = int_field(body, "audio_type")
        if audio_type not in (1, 2):
            raise Invalid("audio_type must be 1 or 2")
        if audio_type == 2:
            str_field(body, "audio_url", required=True)
        webhook_url = str_field(body, "webhookurl", required=False) or None
        pre = fake.state.videos.get(pre_video_id)
        if pre is None or pre.deleted:
            raise Invalid("pre_video_id does not exist", code=1008)
        if pre.status_at(time.monotonic()) is not VideoStatus.COMPLETED:
            raise Invalid("the video is not completed yet")
    except Invalid as exc:
        return error(exc.code, exc.msg)

    unit = AUDIO_CREDITS_PER_5S * _steps(pre.video_length)
    if unit > fake.knobs.credit:
        return error(1006, "insufficient credit")
    fake.knobs.credit -= unit
    video = _add_video(
        fake,
        record,
        body,
        deduction_credit=unit,
        model_name=pre.model_name,
        resolution=pre.resolution,
        video_length=pre.video_length,
        image_url=pre.image_url,
        prompt=pre.prompt,
        webhook_url=webhook_url,
        fails=_fails(fake, body),
        only_add_audio=True,
        pre_video_id=pre.id,
    )
    return ok(_item(fake, video, created=True))


async def results(fake: Context, request: web.Request, record: RecordedRequest) -> Answer:
    try:
        ids = ids_field(record.body)
        if len(ids) > fake.knobs.max_ids_per_results:
            raise Invalid(f"at most {fake.knobs.max_ids_per_results} ids per request")
    except Invalid as exc:
        return error(exc.code, exc.msg)
    now = time.monotonic()
    items = []
    for video_id in ids:
        video = fake.state.videos.get(video_id)
        if video is not None and not video.forgotten and not video.deleted:
            items.append(_item(fake, video, now=now))
    # AKOOL does not document the order; a shuffle keeps clients matching on _id.
    fake.state.rng.shuffle(items)
    return ok({"result": items})


async def delete(fake: Context, request: web.Request, record: RecordedRequest) -> Answer:
    try:
        ids = ids_field(record.body)
    except Invalid as exc:
        return error(exc.code, exc.msg)
    now = time.monotonic()
    success: list[str] = []
    refused: list[dict[str, str]] = []
    for video_id in ids:
        video = fake.state.videos.get(video_id)
        if video is None or video.deleted or video.forgotten:
            refused.append({"_id": video_id, "msg": "video not found"})
        elif video.status_at(now) is VideoStatus.PROCESSING:
            refused.append({"_id": video_id, "msg": "video is processing"})
        else:
            video.deleted = True
            fake.webhooks.poke(video_id)
            success.append(video_id)
    return ok({"successIds": success, "noPermissionItems": refused})


async def download(fake: Context, request: web.Request, record: RecordedRequest) -> Answer:
    name = request.match_info["name"]
    video_id = name.removesuffix(".mp4")
    video = fake.state.videos.get(video_id)
    if not name.endswith(".mp4") or video is None or video.deleted:
        return Answer(status=404, raw=b"404: Not Found", content_type="text/plain")
    return Answer(raw=video_bytes(video_id), content_type="video/mp4")


def _steps(seconds: int) -> int:
    """5-second steps, a started one counting whole: the table prices per 5 s."""
    return max(1, math.ceil(seconds / 5))


def _price(resolution: str, video_length: int) -> float:
    """Credits for one video, from the docs' table."""
    return CREDITS_PER_5S.get(resolution, _UNLISTED_PRICE) * _steps(video_length)


def _audio_multiplier(model: Mapping[str, Any]) -> float:
    """What ``generate_audio`` multiplies a video's price by: the model's own factor."""
    audio = model.get("generate_audio")
    factor = audio.get("extra_credit_multiplier") if isinstance(audio, Mapping) else None
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or factor < 1:
        return 1.0
    return float(factor)


def _model(fake: Context, name: object) -> Mapping[str, Any]:
    if isinstance(name, str):
        for model in fake.knobs.models:
            if model.get("value") == name:
                return model
    raise Invalid(f"unknown model_name {name!r}")


def _fails(fake: Context, body: Mapping[str, Any]) -> bool:
    return fake.knobs.fail_when is not None and bool(fake.knobs.fail_when(body))


def _add_video(
    fake: Context,
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
        id=fake.state.new_id(),
        endpoint=record.endpoint,
        request=body,
        created_at=time.monotonic(),
        create_time=epoch_ms(),
        queue_seconds=fake.state.jittered(fake.knobs.queue_seconds, fake.knobs.timing_jitter),
        process_seconds=fake.state.jittered(fake.knobs.process_seconds, fake.knobs.timing_jitter),
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
    fake.state.videos[video.id] = video
    record.created_ids.append(video.id)
    if webhook_url:
        fake.webhooks.watch(video)
    return video


def _item(
    fake: Context, video: FakeVideo, *, now: float | None = None, created: bool = False
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
        "uid": FAKE_UID,
        "team_id": FAKE_TEAM_ID,
        "status": int(status),
        "webhookUrl": video.webhook_url or "",
        "resolution": video.resolution,
        "video_length": video.video_length,
        "file_name": video.image_url.rsplit("/", 1)[-1],
        # Only the single create takes an effect; other endpoints ignore the field (§4).
        "effect_name": (body.get("effect_code") or "") if video.endpoint == "create" else "",
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
        item["video_url"] = fake.knobs.video_url(video.id)
        item["video_duration"] = video.video_length + 0.041667
    if fake.knobs.wrong_typed_fields:
        _mistype(item)
    if not created:
        item.update(video.answer_fields)
    return item


def _mistype(item: dict[str, Any]) -> None:
    """Give the item's optional fields plausible wrong types, and an unknown key."""
    for name in ("video_duration", "deduction_credit", "create_time", "batch_count"):
        if name in item:
            item[name] = str(item[name])
    item["only_add_audio"] = int(item["only_add_audio"])
    item["extend_prompt"] = "true" if item["extend_prompt"] else "false"
    item["negative_prompt"] = None
    item["task_meta"] = {"queue": "default", "retries": "0"}


#: Endpoint name -> its handler (the keys of ``ENDPOINT_PATHS``).
HANDLERS: Final[Mapping[str, Handler]] = types.MappingProxyType(
    {
        "token": token,
        "credits": credits,
        "models": models,
        "create_batch": create_batch,
        "create": create,
        "results": results,
        "effects": effects,
        "update_audio": update_audio,
        "delete": delete,
        "download": download,
    }
)
