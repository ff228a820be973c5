"""Tests of akool_async's models: JSON mapping (cattrs) and request validation (attrs).

Answers come from FakeAkoolServer over HTTP where the fake can produce them; shapes the fake
never sends (bad types, odd keys) go through the module's one converter directly.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
import pytest
from aiohttp import web
from conftest import CREATE_ARGS, serve_app
from hypothesis import given, settings
from hypothesis import strategies as st

from akool_async import (
    AIModel,
    AkoolClient,
    AkoolResponseError,
    AkoolValueError,
    Effect,
    Resolution,
    Video,
    VideoRequest,
    VideoStatus,
)
from akool_async._convert import _structure_video, _video_hook, structure
from akool_async._models import is_video_id
from akool_async.testing import FakeAkoolServer

VIDEO_ID = "65f1c2b3d4e5f6a7b8c9d0e1"
RESULT_ITEM: dict[str, Any] = {
    "_id": VIDEO_ID,
    "status": 3,
    "video_url": "https://cdn.example/v.mp4",
    "video_duration": 5.041667,
    "create_time": 1_700_000_000_000,
    "update_time": 1_700_000_060_000,
    "deduction_credit": 30,
    "file_name": "cat.png",
    "image_url": "https://images.example/cat.png",
    "prompt": "the cat waves",
    "resolution": "720p",
    "webhookUrl": "https://hooks.example/akool",
    "only_add_audio": False,
    "sub_type": 1,
}


def test_video_maps_wire_names() -> None:
    """``_id`` becomes ``id`` and ``webhookUrl`` becomes ``webhook_url``; documented fields map."""
    video = structure(RESULT_ITEM, Video, where="test")
    assert VIDEO_ID == video.id
    assert VideoStatus.COMPLETED is video.status
    assert "https://hooks.example/akool" == video.webhook_url
    assert ("https://cdn.example/v.mp4", 5.041667, 30.0) == (
        video.video_url,
        video.video_duration,
        video.deduction_credit,
    )
    assert (1_700_000_000_000, 1_700_000_060_000) == (video.create_time, video.update_time)
    assert False is video.only_add_audio


def test_video_keeps_whole_item_in_raw() -> None:
    """The raw item, unknown keys included, stays reachable on ``Video.raw``."""
    item = {**RESULT_ITEM, "brand_new_field": {"nested": [1, 2]}}
    video = structure(item, Video, where="test")
    assert item == dict(video.raw)
    assert {"nested": [1, 2]} == video.raw["brand_new_field"]


def test_video_minimal_item() -> None:
    """Only ``_id`` and ``status`` are required; the rest defaults to None."""
    video = structure({"_id": VIDEO_ID, "status": 1}, Video, where="test")
    assert (VideoStatus.QUEUEING, None, None) == (video.status, video.video_url, video.create_time)


def test_video_times() -> None:
    """``created_at`` is the epoch-ms create_time in UTC; ``expires_at`` seven days later."""
    video = structure(RESULT_ITEM, Video, where="test")
    created = dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.UTC)
    assert created == video.created_at
    assert created + dt.timedelta(days=7) == video.expires_at


def test_video_raw_does_not_affect_equality() -> None:
    """Two videos with the same fields are equal whatever extra keys their raw items had."""
    one = structure(RESULT_ITEM, Video, where="test")
    two = structure({**RESULT_ITEM, "extra": 1}, Video, where="test")
    assert one == two


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"status": 1}, "required field missing @ $.id"),
        ({"_id": VIDEO_ID}, "required field missing @ $.status"),
        ({"_id": VIDEO_ID, "status": 9}, "@ $.status"),
        ({"_id": VIDEO_ID, "status": "done"}, "@ $.status"),
        ({"_id": VIDEO_ID, "status": 5}, "@ $.status"),
        ({"_id": None, "status": 1}, "@ $.id"),
        ({"_id": 123, "status": 1}, "@ $.id"),
        ({"_id": "a,b", "status": 1}, "@ $.id"),
        ({"_id": VIDEO_ID, "status": True}, "@ $.status"),
        ({"_id": VIDEO_ID, "status": 3.0}, "@ $.status"),
    ],
)
def test_bad_video_raises_response_error(item: dict[str, Any], message: str) -> None:
    """An item that does not fit Video raises AkoolResponseError with cattrs' located messages."""
    with pytest.raises(AkoolResponseError) as info:
        structure(item, Video, where="/api/open/v4/image2Video/resultsByIds")
    assert message in str(info.value)
    assert str(info.value).startswith(
        "unexpected answer from /api/open/v4/image2Video/resultsByIds: "
    )
    assert "/api/open/v4/image2Video/resultsByIds" == info.value.path


def test_non_object_item_raises_response_error() -> None:
    """A result item that is not a JSON object raises AkoolResponseError."""
    with pytest.raises(AkoolResponseError, match="expected a JSON object, got str"):
        structure("not-an-item", Video, where="test")


@pytest.mark.parametrize(
    ("wire", "read"),
    [("false", None), ("true", None), (2, None), ([], None), ({}, None), (0, False), (1, True)],
)
def test_non_bool_flag_is_never_silently_truthy(wire: object, read: bool | None) -> None:
    """A flag that is not a JSON boolean reads as None (0 and 1 as False and True), never fails."""
    video = structure({"_id": VIDEO_ID, "status": 1, "only_add_audio": wire}, Video, where="test")
    assert read is video.only_add_audio


def test_wrong_typed_optional_fields_read_as_none() -> None:
    """Optional fields that do not read are None; the rest are set; the whole item stays in raw."""
    item = {
        **RESULT_ITEM,
        "video_duration": "long",
        "deduction_credit": "30",
        "create_time": "yesterday",
        "update_time": 1_700_000_060_000.0,
        "prompt": 7,
        "only_add_audio": "no",
        "webhookUrl": None,
        "batch_count": "three",
        "resolution": {"value": "720p"},
        "an_unknown_key": [1, 2],
    }
    video = structure(item, Video, where="test")
    assert (VIDEO_ID, VideoStatus.COMPLETED, "https://cdn.example/v.mp4") == (
        video.id,
        video.status,
        video.video_url,
    )
    assert (None, 30.0, None, 1_700_000_060_000) == (
        video.video_duration,
        video.deduction_credit,
        video.create_time,
        video.update_time,
    )
    assert [None] * 6 == [
        video.prompt,
        video.only_add_audio,
        video.webhook_url,
        video.batch_count,
        video.resolution,
        video.model_name,
    ]
    assert ("cat.png", "https://images.example/cat.png") == (video.file_name, video.image_url)
    assert item == dict(video.raw)


def test_video_maps_create_fields() -> None:
    """The successList fields model_name, batch_id, batch_count, ... are typed Video fields."""
    item = {
        "_id": VIDEO_ID,
        "status": "1",
        "model_name": "AkoolImage2VideoHDV1",
        "batch_id": "b-1",
        "batch_count": 3,
        "negative_prompt": "blur",
        "last_image_url": "https://images.example/last.png",
        "effect_name": "Squish",
        "effect_code": "squish_1",
    }
    video = structure(item, Video, where="test")
    assert (
        Video(
            id=VIDEO_ID,
            status=VideoStatus.QUEUEING,
            model_name="AkoolImage2VideoHDV1",
            batch_id="b-1",
            batch_count=3,
            negative_prompt="blur",
            last_image_url="https://images.example/last.png",
            effect_name="Squish",
            effect_code="squish_1",
        )
        == video
    )


async def test_models_list_maps_fields(client: AkoolClient, server: FakeAkoolServer) -> None:
    """The model list maps resolutionList, durationList, maxCount and the support flags."""
    models = {m.value: m for m in await client.models.list()}
    assert ["AkoolImage2VideoFastV1", "AkoolImage2VideoHDV1", "seedance-1-0-lite-i2v-250428"] == (
        sorted(models)
    )
    hd = models["AkoolImage2VideoHDV1"]
    assert (
        Resolution(value="720p", label="720p", width=1280, height=720, unit_credit=6.0),
        Resolution(value="1080p", label="1080p", width=1920, height=1080, unit_credit=10.0),
        Resolution(value="4k", label="4k", width=3840, height=2160, unit_credit=16.0),
    ) == hd.resolutions
    assert ("720p", "1080p", "4k") == hd.resolution_values
    assert (True, 1.5) == (hd.supports_audio, hd.audio_credit_multiplier)
    assert (5, 10) == hd.durations
    assert (10, True, True, True, True) == (
        hd.max_count,
        hd.supports_last_frame,
        hd.supports_extend_prompt,
        hd.is_pro,
        hd.requires_pay,
    )
    assert ("Akool Image2Video HD V1", "akool") == (hd.label, hd.provider)


async def test_models_keep_raw(client: AkoolClient, server: FakeAkoolServer) -> None:
    """``sort``, ``group`` and ``maxImageCount`` are mapped; the whole item stays in raw."""
    wire = {**server.models[0], "brand_new": {"x": 1}}
    server.models = [wire]
    (model,) = await client.models.list()
    assert wire == dict(model.raw)
    assert (wire["sort"], wire["group"], wire["maxImageCount"]) == (
        model.sort,
        model.group,
        model.max_image_count,
    )


async def test_models_ordered_by_sort_highest_first(
    client: AkoolClient, server: FakeAkoolServer
) -> None:
    """``list()`` orders by AKOOL's ``sort``, highest first; equal or missing sorts keep order."""
    sorts = {"a": 1, "b": 5, "c": None, "d": "3", "e": 5, "f": "high"}
    server.models = [{"value": name, "sort": sort} for name, sort in sorts.items()]
    assert ["b", "e", "d", "a", "c", "f"] == [m.value for m in await client.models.list()]


async def test_resolution_unit_credit(client: AkoolClient, server: FakeAkoolServer) -> None:
    """Each resolution's ``unit_credit`` is exposed as a number (its unit is undocumented)."""
    server.models = [
        {
            "value": "m",
            "resolutionList": [
                {"value": "720p", "unit_credit": 20},
                {"value": "1080p", "unit_credit": "2.5", "width": "1920"},
                {"value": "4k", "unit_credit": "lots"},
            ],
        }
    ]
    (model,) = await client.models.list()
    assert [("720p", 20.0, None), ("1080p", 2.5, 1920), ("4k", None, None)] == [
        (r.value, r.unit_credit, r.width) for r in model.resolutions
    ]
    assert {"value": "4k", "unit_credit": "lots"} == dict(model.resolutions[2].raw)


async def test_supports_audio_follows_generate_audio_not_null(
    client: AkoolClient, server: FakeAkoolServer
) -> None:
    """``supports_audio`` is true whenever the wire ``generate_audio`` is not null, any type."""
    base = dict(server.models[0])
    server.models = [
        {**base, "value": "null-audio", "generate_audio": None},
        {**base, "value": "false-audio", "generate_audio": False},
        {**base, "value": "true-audio", "generate_audio": True},
        {**base, "value": "object-audio", "generate_audio": {"default": False, "price": 2}},
        {k: v for k, v in base.items() if k != "generate_audio"} | {"value": "absent-audio"},
    ]
    support = {m.value: m.supports_audio for m in await client.models.list()}
    assert {
        "null-audio": False,
        "false-audio": True,
        "true-audio": True,
        "object-audio": True,
        "absent-audio": False,
    } == support


async def test_model_nulls_fall_back_to_defaults(
    client: AkoolClient, server: FakeAkoolServer
) -> None:
    """Null optional model fields read as their defaults, not as errors."""
    server.models = [{"value": "bare", "maxCount": None, "resolutionList": None, "isPro": None}]
    (bare,) = await client.models.list()
    assert AIModel(value="bare") == bare


async def test_surprising_model_fields_are_read_as_far_as_they_go(
    client: AkoolClient, server: FakeAkoolServer
) -> None:
    """Wrong-typed model fields read as their defaults; the model is kept and list() succeeds."""
    wire = {
        "value": "m",
        "label": 5,
        "isPro": 1,
        "requiresPay": "yes",
        "maxCount": "lots",
        "maxImageCount": 2.0,
        "supportedLastFrame": "false",
        "supportedExtendPrompt": 0,
        "durationList": ["five", 5, 10.0, True],
        "resolutionList": [{"label": "no value"}, {"value": "720p"}, "4k"],
        "sort": [1],
    }
    server.models = [wire]
    (model,) = await client.models.list()
    assert (
        AIModel(
            value="m",
            is_pro=True,
            max_image_count=2,
            durations=(5, 10),
            resolutions=(Resolution(value="720p"),),
        )
        == model
    )
    assert wire == dict(model.raw)


async def test_unusable_model_items_are_left_out_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An item without a string ``value`` (nothing to create with) is skipped, never fatal."""
    items = [{"label": "no value"}, "not-a-model", {"value": 7}, None, {"value": "ok"}]

    async def model_list(request: web.Request) -> web.Response:
        return web.json_response({"code": 1000, "msg": "OK", "data": items})

    app = web.Application()
    app.router.add_get("/api/open/v4/aigModel/list", model_list)
    async with serve_app(app) as url, AkoolClient("k" * 32, base_url=url) as client:
        with caplog.at_level("WARNING", logger="akool_async"):
            models = await client.models.list()
    assert [AIModel(value="ok")] == models
    assert 4 == sum("left out" in r.getMessage() for r in caplog.records)


def test_non_object_model_raises_response_error() -> None:
    """Structured directly, a model that is not a JSON object raises AkoolResponseError."""
    with pytest.raises(AkoolResponseError, match=r"@ \$\[0\]"):
        structure(["not-a-model"], list[AIModel], where="test")


async def test_results_item_unknown_keys_kept(client: AkoolClient, server: FakeAkoolServer) -> None:
    """A results item from the wire keeps keys outside the documented list (``sub_type``)."""
    batch = await client.image_to_video.create_batch(**CREATE_ARGS)
    (video,) = await client.image_to_video.results(batch.ids)
    assert 1 == video.raw["sub_type"]
    assert batch.ids[0] == video.raw["_id"] == video.id


async def test_effects_map_effect_code(client: AkoolClient) -> None:
    """Effects map ``effect_code`` to ``code`` and keep the raw item."""
    effects = await client.image_to_video.effects()
    assert Effect(code="squish_89244231312", name="Squish") == effects[0]
    assert "https://static.example.invalid/effects/squish.png" == effects[0].raw["logo"]


def test_video_status_values() -> None:
    """VideoStatus is an IntEnum with AKOOL's numbers; only 3 and 4 are terminal."""
    assert [1, 2, 3, 4] == [s.value for s in VideoStatus]
    assert ["QUEUEING", "PROCESSING", "COMPLETED", "FAILED"] == [s.name for s in VideoStatus]
    assert [False, False, True, True] == [s.is_terminal for s in VideoStatus]
    assert 3 == VideoStatus.COMPLETED


# --- VideoRequest -----------------------------------------------------------------------------

GOOD: dict[str, Any] = {
    "image_url": "https://images.example/cat.png",
    "prompt": "the cat waves",
    "resolution": "720p",
    "video_length": 5,
}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("image_url", ""),
        ("image_url", "cat.png"),
        ("image_url", "ftp://images.example/cat.png"),
        ("image_url", "https://"),
        ("image_url", None),
        ("prompt", ""),
        ("prompt", "   "),
        ("prompt", 5),
        ("resolution", ""),
        ("resolution", None),
        ("video_length", 0),
        ("video_length", -5),
        ("video_length", 5.0),
        ("video_length", "5"),
        ("video_length", True),
        ("count", 0),
        ("count", -1),
        ("count", 2.0),
        ("count", True),
        ("count", False),
        ("model_name", 5),
        ("negative_prompt", b"bytes"),
        ("extend_prompt", 1),
        ("extend_prompt", "yes"),
        ("generate_audio", 0),
        ("last_image_url", "last.png"),
        ("webhook_url", "not a url"),
        ("webhook_url", ""),
    ],
)
def test_video_request_rejects(field: str, value: object) -> None:
    """Bad request fields raise AkoolValueError (also a ValueError) naming the field."""
    with pytest.raises(AkoolValueError) as info:
        VideoRequest(**{**GOOD, field: value})
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith(f"{field}: ")


def test_video_request_accepts_full_input() -> None:
    """Every optional field is accepted with a valid value."""
    request = VideoRequest(
        **GOOD,
        model_name="AkoolImage2VideoHDV1",
        negative_prompt="",
        extend_prompt=True,
        last_image_url="https://images.example/last.png",
        generate_audio=False,
        count=10,
        webhook_url="https://hooks.example/akool",
    )
    assert 10 == request.count


def test_batch_body_uses_wire_names() -> None:
    """The batch body spells ``webhookurl`` in lowercase and leaves unset fields out."""
    request = VideoRequest(**GOOD, webhook_url="https://hooks.example/akool", extend_prompt=False)
    assert {
        "image_url": "https://images.example/cat.png",
        "prompt": "the cat waves",
        "resolution": "720p",
        "video_length": 5,
        "count": 3,
        "extend_prompt": False,
        "webhookurl": "https://hooks.example/akool",
    } == request.batch_body(3)


@pytest.mark.parametrize("count", [0, 11, "3", True, 2.0])
def test_batch_body_count_bounds(count: int) -> None:
    """One batch makes 1 to 10 videos, counted by an int."""
    with pytest.raises(AkoolValueError, match="count: must be an integer between 1 and 10"):
        VideoRequest(**GOOD).batch_body(count)


HD = AIModel(
    value="hd",
    resolutions=(Resolution(value="720p"), Resolution(value="1080p")),
    durations=(5, 10),
    max_count=10,
)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"resolution": "480p"}, "resolution: '480p' not offered by hd: ('720p', '1080p')"),
        ({"video_length": 7}, "video_length: 7 not offered by hd: (5, 10)"),
        (
            {"last_image_url": "https://images.example/l.png"},
            "last_image_url: hd does not support a last frame",
        ),
        ({"generate_audio": True}, "generate_audio: hd cannot generate audio"),
    ],
)
def test_check_model_names_allowed_values(changes: dict[str, Any], message: str) -> None:
    """A value the model does not offer is rejected with the values it does offer."""
    with pytest.raises(AkoolValueError) as info:
        VideoRequest(**{**GOOD, **changes}).check_model(HD)
    assert message == str(info.value)


def test_check_model_accepts_offered_values() -> None:
    """Offered values pass; ``generate_audio=False`` is fine on a model without audio."""
    VideoRequest(**{**GOOD, "resolution": "1080p", "video_length": 10}).check_model(HD)
    VideoRequest(**GOOD, generate_audio=False).check_model(HD)


_NOISE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
)
_TEXT = st.text(max_size=8)
_NUMBER = st.one_of(st.integers(0, 10**6), st.floats(0, 1e6))
#: Each optional Video key with mostly well-typed values (so the fast path really runs).
_VIDEO_ITEM = st.fixed_dictionaries(
    {},
    optional={
        "video_url": st.one_of(_TEXT, _NOISE),
        "video_duration": st.one_of(_NUMBER, _NUMBER, _NOISE),
        "deduction_credit": st.one_of(_NUMBER, _NOISE),
        "create_time": st.one_of(st.integers(0, 2**42), _NOISE),
        "update_time": st.integers(0, 2**42),
        "file_name": _TEXT,
        "image_url": _TEXT,
        "prompt": st.one_of(_TEXT, _NOISE),
        "resolution": _TEXT,
        "webhookUrl": _TEXT,
        "only_add_audio": st.one_of(st.booleans(), _NOISE),
        "model_name": st.one_of(_TEXT, _NOISE),
        "batch_count": st.one_of(st.integers(1, 10), _NOISE),
        "effect_code": _TEXT,
        "sub_type": _NOISE,
    },
)


@settings(max_examples=400, deadline=None)
@given(
    _VIDEO_ITEM,
    st.sampled_from(["6b06a05adcf4bea9730c9d9d"] * 4 + ["", "a,b", None, 7]),
    st.sampled_from([1, 2, 3, 4] * 2 + [5, True, 3.0, "3", "x", None]),
)
def test_video_fast_path_matches_cattrs(item: dict[str, Any], video_id: Any, status: Any) -> None:
    """The hand-written hot path for Video builds exactly what the cattrs hook builds.

    Both refuse only an unusable ``_id`` or status; any optional field reads or is None.
    """
    item = {**item, "_id": video_id, "status": status}

    def build(hook: Any) -> Any:
        try:
            video = hook(item, Video)
        except Exception as exc:
            return type(exc)
        return (attrs.asdict(video, recurse=False), type(video.video_duration))

    fast, generated = build(_structure_video), build(_video_hook)
    assert generated == fast
    readable_status = status == "3" or (type(status) is int and 1 <= status <= 4)
    assert isinstance(generated, tuple) == (is_video_id(video_id) and readable_status)
