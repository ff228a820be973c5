"""What a create sends: ``VideoRequest`` and the checks every input passes before a request.

Invalid values raise ``AkoolValueError`` before anything is sent (and so before anything is
charged).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit

import attrs

from ._constants import MAX_BATCH_COUNT
from ._errors import AkoolValueError
from ._models import AIModel, is_int


def _fail(name: str, why: str) -> AkoolValueError:
    return AkoolValueError(f"{name}: {why}")


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


#: Create fields the price depends on: never taken from ``extra_body``, or a create could cost
#: more than ``max_credits`` checked (the budget prices the SDK's own arguments).
PRICED_FIELDS: Final = frozenset(
    {
        "count",
        "resolution",
        "video_length",
        "model_name",
        "generate_audio",
        "audio_type",
        "is_premium_model",
        "pre_video_id",
    }
)


def check_unpriced(extra_body: Mapping[str, Any] | None) -> None:
    """AkoolValueError when ``extra_body`` sets a field a create's price depends on."""
    priced = sorted(PRICED_FIELDS.intersection(extra_body or ()))
    if priced:
        raise _fail(
            "extra_body",
            f"{', '.join(priced)} decide(s) the price: pass them as the method's own arguments",
        )


def _extra_body(value: object) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise _fail("extra_body", f"must be a JSON object (str keys), got {value!r:.80}")
    check_unpriced(value)
    try:
        # Checked now: a body that cannot be encoded must fail before anything is reserved.
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise _fail("extra_body", f"must be JSON-serialisable ({exc})") from None
    return dict(value)


@attrs.frozen(kw_only=True)
class VideoRequest:
    """The fields of one image-to-video create, checked before any request is sent.

    ``count`` may exceed 10 here: ``generate_many`` splits it into several batch calls.
    ``extra_body`` holds fields the SDK does not know yet (e.g. ``multi_prompt``): they are
    merged into every batch create's body as they are. Invalid values raise
    ``AkoolValueError``.
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
    extra_body: Mapping[str, Any] | None = attrs.field(
        default=None, converter=_extra_body, hash=False
    )

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
        body.update(self.extra_body or {})
        return body
