"""Typed models for AKOOL answers and requests (attrs), mapped from JSON by a private converter.

Every answer model keeps the item it was built from in ``raw``, so fields AKOOL adds later
(or documents badly) stay reachable.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
import re
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
    """One resolution a model offers (``resolutionList`` item).

    ``unit_credit`` is AKOOL's own number for it; its unit is undocumented (it does not follow
    the published price table), so it is shown, never used to price a create.
    """

    value: str
    label: str | None = None
    width: int | None = None
    height: int | None = None
    unit_credit: float | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False, eq=False)


@attrs.frozen(kw_only=True)
class AIModel:
    """An image-to-video model from the model list.

    ``value`` is what ``create_batch(model_name=...)`` takes. ``supports_audio`` is true when
    the wire ``generate_audio`` is not null, whatever its type. ``sort`` is AKOOL's display
    order (``models.list()`` puts the highest first); a field whose wire value has an
    unexpected type reads as its default, and ``raw`` keeps it as sent.
    """

    value: str
    label: str | None = None
    provider: str | None = None
    description: str | None = None
    sort: int | None = None
    group: str | None = None
    resolutions: tuple[Resolution, ...] = ()
    durations: tuple[int, ...] = ()
    max_count: int | None = None
    max_image_count: int | None = None
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
    """One video task as AKOOL reports it (a ``resultsByIds`` or ``successList`` item).

    Only ``id`` and ``status`` must be readable. Any other field whose wire value has an
    unexpected type (a string where a number belongs, say) is None here; ``raw`` keeps the
    whole item as AKOOL sent it, unknown keys included.
    """

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
    model_name: str | None = None
    batch_id: str | None = None
    batch_count: int | None = None
    negative_prompt: str | None = None
    last_image_url: str | None = None
    effect_name: str | None = None
    effect_code: str | None = None
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


#: VideoStatus by wire value, without VideoStatus()'s slower lookup (the pollers' hot path).
STATUS_BY_VALUE: Final = {s.value: s for s in VideoStatus}

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
