"""Reading AKOOL's JSON answers into the records of ``_models`` (one private cattrs converter)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

import cattrs
from cattrs.gen import make_dict_structure_fn, override

from ._errors import AkoolResponseError
from ._models import (
    STATUS_BY_VALUE,
    AIModel,
    Effect,
    Resolution,
    Video,
    VideoStatus,
    is_int,
    is_video_id,
)

_T = TypeVar("_T")

#
# Liberal in what we read (akool-api.md §10): only what identifies a thing (a video's ``_id``
# and ``status``, a model's ``value``) must be readable. Every other field goes through a
# lenient reader that returns None for a value it cannot read, so one surprising field never
# costs a user a finished, paid-for video; ``raw`` keeps the value as sent.

_converter = cattrs.Converter(detailed_validation=True)
_RAW = "__raw"
_DIGITS: Final = re.compile(r"[0-9]{1,19}")


def read_str(value: object) -> str | None:
    """``value`` if it is a string, else None."""
    return value if isinstance(value, str) else None


def read_float(value: object) -> float | None:
    """A finite number, or a string holding one, as a float; else None."""
    if type(value) is float:
        return value
    if is_int(value):
        try:
            return float(value)
        except OverflowError:
            return None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def read_int(value: object) -> int | None:
    """An int, a whole float, or a string of ASCII digits as an int; else None."""
    if is_int(value):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        return int(value)
    return None


def read_bool(value: object) -> bool | None:
    """A JSON boolean, or 0/1 as one; else None (the string "false" is never True)."""
    if isinstance(value, bool):
        return value
    if is_int(value) and value in (0, 1):
        return bool(value)
    return None


def read_status(value: object) -> VideoStatus | None:
    """The VideoStatus of an int 1-4 or a string of those digits; None for anything else."""
    if type(value) is int:
        return STATUS_BY_VALUE.get(value)
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return STATUS_BY_VALUE.get(int(value))
    return None


def _strict_status(value: object, _: object) -> VideoStatus:
    # VideoStatus(True) would be QUEUEING, and VideoStatus(3.0) COMPLETED: only 1-4 as an int
    # or a string of digits.
    status = read_status(value)
    if status is None:
        raise ValueError(f"expected a status 1-4, got {value!r:.40}")
    return status


def _keep_raw(cls: type[_T], /, **overrides: Any) -> Callable[[Any, Any], _T]:
    """A structure hook that maps the wire names and stores the whole item in ``raw``."""
    base = make_dict_structure_fn(cls, _converter, raw=override(rename=_RAW), **overrides)

    def hook(item: Any, _: Any) -> _T:
        if not isinstance(item, Mapping):
            raise TypeError(f"expected a JSON object, got {type(item).__name__}")
        return base({**item, _RAW: dict(item)}, cls)

    return hook


def _video_id(value: object, _: object) -> str:
    # cattrs' str hook would turn null into "None" and 5 into "5": a handle for an id AKOOL
    # never gave. An id must also survive resultsByIds' comma-separated list.
    if not is_video_id(value):
        raise ValueError(f"not a video id: {value!r:.40}")
    return value


#: (wire key, attribute, the JSON type taken as is, the lenient reader) per optional field.
_VIDEO_FIELDS: Final[tuple[tuple[str, str, type, Callable[[object], Any]], ...]] = (
    ("video_url", "video_url", str, read_str),
    ("video_duration", "video_duration", float, read_float),
    ("deduction_credit", "deduction_credit", float, read_float),
    ("create_time", "create_time", int, read_int),
    ("update_time", "update_time", int, read_int),
    ("file_name", "file_name", str, read_str),
    ("image_url", "image_url", str, read_str),
    ("prompt", "prompt", str, read_str),
    ("resolution", "resolution", str, read_str),
    ("webhookUrl", "webhook_url", str, read_str),
    ("only_add_audio", "only_add_audio", bool, read_bool),
    ("model_name", "model_name", str, read_str),
    ("batch_id", "batch_id", str, read_str),
    ("batch_count", "batch_count", int, read_int),
    ("negative_prompt", "negative_prompt", str, read_str),
    ("last_image_url", "last_image_url", str, read_str),
    ("effect_name", "effect_name", str, read_str),
    ("effect_code", "effect_code", str, read_str),
)


def _lenient(read: Callable[[object], Any]) -> Callable[[object, object], Any]:
    return lambda value, _: read(value)


_video_hook = _keep_raw(
    Video,
    id=override(rename="_id", struct_hook=_video_id),
    status=override(struct_hook=_strict_status),
    **{
        name: override(rename=None if wire == name else wire, struct_hook=_lenient(read))
        for wire, name, _, read in _VIDEO_FIELDS
    },
)


def _structure_video(item: Any, cls: Any) -> Video:
    # The poller's hot path: every finished video passes here. A dict with a usable id and
    # an int status is built directly (twice as fast); anything else takes the generated
    # cattrs hook, which says exactly what is wrong. Both paths give the same Video.
    if type(item) is dict and type(item.get("status")) is int:
        status = STATUS_BY_VALUE.get(item["status"])
        video_id = item.get("_id")
        if status is not None and is_video_id(video_id):
            fields: dict[str, Any] = {}
            for wire, name, kind, read in _VIDEO_FIELDS:
                value = item.get(wire)
                if value is None:
                    continue
                if type(value) is not kind:  # type(): True must not pass as an int
                    value = read(value)
                    if value is None:
                        continue
                fields[name] = value
            return Video(id=video_id, status=status, raw=dict(item), **fields)
    return _video_hook(item, cls)


_converter.register_structure_hook(Video, _structure_video)


def _read_tuple(value: object, read: Callable[[object], _T | None]) -> tuple[_T, ...]:
    """The readable items of a list (unreadable ones left out); () when it is no list."""
    if not isinstance(value, list):
        return ()
    return tuple(x for x in map(read, value) if x is not None)


def read_resolution(item: object) -> Resolution | None:
    """A ``resolutionList`` item, or None when it has no string ``value``."""
    if not isinstance(item, Mapping) or not isinstance(item.get("value"), str):
        return None
    return Resolution(
        value=item["value"],
        label=read_str(item.get("label")),
        width=read_int(item.get("width")),
        height=read_int(item.get("height")),
        unit_credit=read_float(item.get("unit_credit")),
        raw=dict(item),
    )


def _flag(item: Mapping[str, Any], key: str) -> bool:
    return read_bool(item.get(key)) or False


def _audio_multiplier(generate_audio: object) -> float | None:
    # The docs and AKOOL's demo show {required, type, default, extra_credit_multiplier}.
    if not isinstance(generate_audio, Mapping):
        return None
    factor = read_float(generate_audio.get("extra_credit_multiplier"))
    return factor if factor is not None and factor > 0 else None


def read_model(item: object) -> AIModel | None:
    """A model-list item read as far as it goes; None when it has no string ``value``."""
    if not isinstance(item, Mapping) or not isinstance(item.get("value"), str):
        return None
    return AIModel(
        value=item["value"],
        label=read_str(item.get("label")),
        provider=read_str(item.get("provider")),
        description=read_str(item.get("description")),
        sort=read_int(item.get("sort")),
        group=read_str(item.get("group")),
        resolutions=_read_tuple(item.get("resolutionList"), read_resolution),
        durations=_read_tuple(item.get("durationList"), read_int),
        max_count=read_int(item.get("maxCount")),
        max_image_count=read_int(item.get("maxImageCount")),
        supports_last_frame=_flag(item, "supportedLastFrame"),
        # generate_audio is null (unsupported), a bool or an object: only "not null" matters.
        supports_audio=item.get("generate_audio") is not None,
        audio_credit_multiplier=_audio_multiplier(item.get("generate_audio")),
        supports_extend_prompt=_flag(item, "supportedExtendPrompt"),
        is_pro=_flag(item, "isPro"),
        requires_pay=_flag(item, "requiresPay"),
        raw=dict(item),
    )


def _model_hook(item: Any, _: Any) -> AIModel:
    model = read_model(item)
    if model is None:
        raise ValueError("expected a JSON object with a string value")
    return model


_converter.register_structure_hook(AIModel, _model_hook)
_converter.register_structure_hook(
    Effect,
    _keep_raw(Effect, code=override(rename="effect_code")),
)


def structure(data: Any, cls: type[_T], *, where: str) -> _T:
    """Build ``cls`` from JSON, raising AkoolResponseError when the answer does not fit."""
    try:
        return _converter.structure(data, cls)
    except Exception as exc:
        if isinstance(exc, cattrs.BaseValidationError):
            details = "; ".join(cattrs.transform_error(exc))
        else:
            details = str(exc)
        raise AkoolResponseError(f"unexpected answer from {where}: {details}", path=where) from exc
