"""Typed models for AKOOL answers and requests (attrs), mapped from JSON by a private converter.

Every answer model keeps the item it was built from in ``raw``, so fields AKOOL adds later
(or documents badly) stay reachable.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeGuard, TypeVar
from urllib.parse import urlsplit

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override

from ._constants import MAX_BATCH_COUNT, VIDEO_RETENTION_SECONDS
from ._errors import AkoolResponseError, AkoolValueError

_T = TypeVar("_T")


class VideoStatus(enum.IntEnum):
    """The lifecycle of one video: 1 queueing, 2 processing, 3 completed, 4 failed."""

    QUEUEING = 1
    PROCESSING = 2
    COMPLETED = 3
    FAILED = 4

    @property
    def is_terminal(self) -> bool:
        """True for COMPLETED and FAILED: the status will not change again."""
        return self in (VideoStatus.COMPLETED, VideoStatus.FAILED)


# --- answers -------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Resolution:
    """One resolution a model offers (``resolutionList`` item)."""

    value: str
    label: str | None = None
    width: int | None = None
    height: int | None = None


@attrs.frozen(kw_only=True)
class AIModel:
    """An image-to-video model from the model list.

    ``value`` is what ``create_batch(model_name=...)`` takes. ``supports_audio`` is true when
    the wire ``generate_audio`` is not null, whatever its type.
    """

    value: str
    label: str | None = None
    provider: str | None = None
    description: str | None = None
    resolutions: tuple[Resolution, ...] = ()
    durations: tuple[int, ...] = ()
    max_count: int | None = None
    supports_last_frame: bool = False
    supports_audio: bool = False
    supports_extend_prompt: bool = False
    is_pro: bool = False
    requires_pay: bool = False
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False, eq=False)

    @property
    def resolution_values(self) -> tuple[str, ...]:
        """The ``value`` of each offered resolution, e.g. ``("480p", "720p")``."""
        return tuple(r.value for r in self.resolutions)


@attrs.frozen(kw_only=True)
class Video:
    """One video task as AKOOL reports it (a ``resultsByIds`` or ``successList`` item)."""

    id: str
    status: VideoStatus
    video_url: str | None = None
    video_duration: float | None = None
    deduction_credit: float | None = None
    create_time: int | None = None
    update_time: int | None = None
    file_name: str | None = None
    image_url: str | None = None
    prompt: str | None = None
    resolution: str | None = None
    webhook_url: str | None = None
    only_add_audio: bool | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False, eq=False)

    @property
    def created_at(self) -> dt.datetime | None:
        """``create_time`` as an aware UTC datetime."""
        if self.create_time is None:
            return None
        return dt.datetime.fromtimestamp(self.create_time / 1000, tz=dt.UTC)

    @property
    def expires_at(self) -> dt.datetime | None:
        """When AKOOL deletes the video: seven days after creation."""
        created = self.created_at
        return None if created is None else created + dt.timedelta(seconds=VIDEO_RETENTION_SECONDS)


@attrs.frozen(kw_only=True)
class DeleteResult:
    """The answer of ``delete``: ids deleted, and the ones refused with AKOOL's reason."""

    deleted: tuple[str, ...] = ()
    refused: tuple[Mapping[str, Any], ...] = ()


@attrs.frozen(kw_only=True)
class Effect:
    """An image-to-video effect; pass ``code`` as ``effect_code`` to the single create."""

    code: str | None = None
    name: str | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False, eq=False)


# --- requests ------------------------------------------------------------------------------


def _fail(name: str, why: str) -> AkoolValueError:
    return AkoolValueError(f"{name}: {why}")


def is_int(value: object) -> TypeGuard[int]:
    """A real int: bool is an int subclass and 2.0 == 2, yet neither is an integer field."""
    return isinstance(value, int) and not isinstance(value, bool)


def require_text(name: str, value: object) -> str:
    """``value`` if it is a non-blank string, else AkoolValueError."""
    if not isinstance(value, str) or not value.strip():
        raise _fail(name, f"must be a non-empty string, got {value!r:.80}")
    return value


def require_url(name: str, value: object) -> str:
    """``value`` if it is an absolute http(s) URL, else AkoolValueError."""
    text = require_text(name, value)
    try:
        parts = urlsplit(text)
    except ValueError:
        raise _fail(name, "is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _fail(name, f"must be an absolute http(s) URL, got {text!r:.80}")
    return text


def check_seconds(name: str, value: object) -> float:
    """``value`` if it is a positive, finite number of seconds, else AkoolValueError."""
    # bool is an int subclass: timeout=True is a mistake, not one second.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(name, f"must be a positive number of seconds, got {value!r:.40}")
    if not math.isfinite(value) or value <= 0:
        raise _fail(name, "must be a positive, finite number of seconds")
    return float(value)


def _text(_: object, a: attrs.Attribute[Any], value: object) -> None:
    require_text(a.name, value)


def _url(_: object, a: attrs.Attribute[Any], value: object) -> None:
    if value is not None or a.default is not None:
        require_url(a.name, value)


def _opt_str(_: object, a: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise _fail(a.name, f"must be a string or None, got {type(value).__name__}")


def _opt_bool(_: object, a: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, bool):
        raise _fail(a.name, f"must be True, False or None, got {value!r:.80}")


def _positive_int(_: object, a: attrs.Attribute[Any], value: object) -> None:
    if not is_int(value) or value < 1:
        raise _fail(a.name, f"must be a positive integer, got {value!r:.80}")


@attrs.frozen(kw_only=True)
class VideoRequest:
    """The fields of one image-to-video create, checked before any request is sent.

    ``count`` may exceed 10 here: ``generate_many`` splits it into several batch calls.
    Invalid values raise ``AkoolValueError``.
    """

    image_url: str = attrs.field(validator=_url)
    prompt: str = attrs.field(validator=_text)
    resolution: str = attrs.field(validator=_text)
    video_length: int = attrs.field(validator=_positive_int)
    model_name: str | None = attrs.field(default=None, validator=_opt_str)
    negative_prompt: str | None = attrs.field(default=None, validator=_opt_str)
    extend_prompt: bool | None = attrs.field(default=None, validator=_opt_bool)
    last_image_url: str | None = attrs.field(default=None, validator=_url)
    generate_audio: bool | None = attrs.field(default=None, validator=_opt_bool)
    count: int = attrs.field(default=1, validator=_positive_int)
    webhook_url: str | None = attrs.field(default=None, validator=_url)

    def check_model(self, model: AIModel) -> None:
        """Reject values the model does not offer, naming the allowed ones."""
        allowed = model.resolution_values
        if allowed and self.resolution not in allowed:
            raise _fail(
                "resolution", f"{self.resolution!r} not offered by {model.value}: {allowed}"
            )
        if model.durations and self.video_length not in model.durations:
            raise _fail(
                "video_length",
                f"{self.video_length} not offered by {model.value}: {model.durations}",
            )
        if self.last_image_url is not None and not model.supports_last_frame:
            raise _fail("last_image_url", f"{model.value} does not support a last frame")
        if self.generate_audio and not model.supports_audio:
            raise _fail("generate_audio", f"{model.value} cannot generate audio")

    def batch_body(self, count: int) -> dict[str, Any]:
        """The JSON body of one batch create making ``count`` videos."""
        if not is_int(count) or not 1 <= count <= MAX_BATCH_COUNT:
            raise _fail(
                "count",
                f"must be an integer between 1 and {MAX_BATCH_COUNT} per batch, got {count!r}",
            )
        body: dict[str, Any] = {
            "image_url": self.image_url,
            "prompt": self.prompt,
            "resolution": self.resolution,
            "video_length": self.video_length,
            "count": count,
        }
        optional = {
            "model_name": self.model_name,
            "negative_prompt": self.negative_prompt,
            "extend_prompt": self.extend_prompt,
            "last_image_url": self.last_image_url,
            "generate_audio": self.generate_audio,
            # AKOOL spells it all lowercase in requests, camelCase in answers (akool-api.md §4).
            "webhookurl": self.webhook_url,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        return body


# --- JSON -> models ------------------------------------------------------------------------

_converter = cattrs.Converter(detailed_validation=True)
_RAW = "__raw"


def _strict_bool(value: object, _: object) -> bool:
    # cattrs' default is bool(value): the string "false" would read as True.
    if not isinstance(value, bool):
        raise TypeError(f"expected a JSON boolean, got {value!r:.40}")
    return value


def _strict_status(value: object, _: object) -> VideoStatus:
    # VideoStatus(True) would be QUEUEING, and VideoStatus(3.0) COMPLETED: only ints 1-4.
    if type(value) is not int:
        raise TypeError(f"expected an integer status, got {value!r:.40}")
    return VideoStatus(value)


# Registered before any class hook is generated: generated hooks bind field hooks eagerly.
_converter.register_structure_hook(bool, _strict_bool)
_converter.register_structure_hook(VideoStatus, _strict_status)


def _keep_raw(
    cls: type[_T],
    prepare: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
    **overrides: Any,
) -> Callable[[Any, Any], _T]:
    """A structure hook that maps the wire names and stores the whole item in ``raw``."""
    base = make_dict_structure_fn(cls, _converter, raw=override(rename=_RAW), **overrides)

    def hook(item: Any, _: Any) -> _T:
        if not isinstance(item, Mapping):
            raise TypeError(f"expected a JSON object, got {type(item).__name__}")
        wire = prepare(item) if prepare is not None else item
        return base({**wire, _RAW: dict(item)}, cls)

    return hook


#: Characters no id may hold: resultsByIds takes ids as one comma-separated string.
_ID_SEPARATORS: Final = ", \t\r\n"


def is_video_id(value: object) -> TypeGuard[str]:
    """Whether ``value`` can be a video id: a non-empty string without separators."""
    if not isinstance(value, str) or not value:
        return False
    # isalnum() first: AKOOL's ids are hex, and the C check is the poller's hot path.
    return value.isalnum() or not any(c in value for c in _ID_SEPARATORS)


def _video_id(value: object, _: object) -> str:
    # cattrs' str hook would turn null into "None" and 5 into "5": a handle for an id AKOOL
    # never gave. An id must also survive resultsByIds' comma-separated list.
    if not is_video_id(value):
        raise ValueError(f"not a video id: {value!r:.40}")
    return value


_video_hook = _keep_raw(
    Video,
    id=override(rename="_id", struct_hook=_video_id),
    webhook_url=override(rename="webhookUrl"),
)
#: (wire key, attribute, the exact JSON types the fast path takes) for Video's optional fields.
_VIDEO_FIELDS: Final = tuple(
    (wire, name, kinds)
    for wire, name, kinds in (
        ("video_url", "video_url", (str,)),
        ("video_duration", "video_duration", (int, float)),
        ("deduction_credit", "deduction_credit", (int, float)),
        ("create_time", "create_time", (int,)),
        ("update_time", "update_time", (int,)),
        ("file_name", "file_name", (str,)),
        ("image_url", "image_url", (str,)),
        ("prompt", "prompt", (str,)),
        ("resolution", "resolution", (str,)),
        ("webhookUrl", "webhook_url", (str,)),
        ("only_add_audio", "only_add_audio", (bool,)),
    )
)
#: VideoStatus by wire value, without VideoStatus()'s slower lookup (the pollers' hot path).
STATUS_BY_VALUE: Final = {s.value: s for s in VideoStatus}


def _structure_video(item: Any, cls: Any) -> Video:
    # The poller's hot path: every finished video passes here. A well-typed item is built
    # directly (twice as fast); anything unusual takes the generated cattrs hook, which
    # converts it or says exactly what is wrong. Both paths give the same Video.
    if type(item) is dict and type(item.get("status")) is int:
        status = STATUS_BY_VALUE.get(item["status"])
        video_id = item.get("_id")
        if status is not None and is_video_id(video_id):
            fields: dict[str, Any] = {}
            for wire, name, kinds in _VIDEO_FIELDS:
                value = item.get(wire)
                if value is None:
                    continue
                if type(value) not in kinds:  # type(): True must not pass as an int
                    break
                fields[name] = float(value) if float in kinds else value
            else:
                return Video(id=video_id, status=status, raw=dict(item), **fields)
    return _video_hook(item, cls)


_converter.register_structure_hook(Video, _structure_video)
_converter.register_structure_hook(
    Resolution, make_dict_structure_fn(Resolution, _converter, _cattrs_forbid_extra_keys=False)
)


def _model_fields(item: Mapping[str, Any]) -> Mapping[str, Any]:
    # generate_audio is null (unsupported), a bool or an object: only "not null" matters.
    wire = {k: v for k, v in item.items() if v is not None}
    wire["__supports_audio"] = item.get("generate_audio") is not None
    return wire


_converter.register_structure_hook(
    AIModel,
    _keep_raw(
        AIModel,
        _model_fields,
        resolutions=override(rename="resolutionList"),
        durations=override(rename="durationList"),
        max_count=override(rename="maxCount"),
        supports_last_frame=override(rename="supportedLastFrame"),
        supports_extend_prompt=override(rename="supportedExtendPrompt"),
        is_pro=override(rename="isPro"),
        requires_pay=override(rename="requiresPay"),
        supports_audio=override(rename="__supports_audio"),
    ),
)
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
