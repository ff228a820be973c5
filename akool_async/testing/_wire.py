"""AKOOL's wire format as the fake speaks it: credentials, endpoint paths and envelopes."""

from __future__ import annotations

import json
import math
import time
import types
from collections.abc import Mapping
from typing import Any, Final

import attrs

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

#: Endpoint name -> the body fields AKOOL documents for it (akool-api.md §3-4). Any other
#: field is accepted and ignored, as AKOOL does, and kept in ``RecordedRequest.unknown_fields``.
DOCUMENTED_FIELDS: Final[Mapping[str, frozenset[str]]] = types.MappingProxyType(
    {
        "token": frozenset({"clientId", "clientSecret"}),
        "create_batch": frozenset(
            {
                "image_url",
                "prompt",
                "model_name",
                "negative_prompt",
                "extend_prompt",
                "resolution",
                "video_length",
                "last_image_url",
                "generate_audio",
                "count",
                "webhookurl",
            }
        ),
        "create": frozenset(
            {
                "image_url",
                "prompt",
                "negative_prompt",
                "extend_prompt",
                "resolution",
                "audio_type",
                "audio_url",
                "video_length",
                "is_premium_model",
                "effect_code",
                "webhookurl",
            }
        ),
        "results": frozenset({"_ids"}),
        "update_audio": frozenset({"pre_video_id", "audio_url", "audio_type", "webhookurl"}),
        "delete": frozenset({"_ids"}),
    }
)

#: The webhook ``type`` is undocumented (§8); receivers must route by ``_id``.
WEBHOOK_EVENT_TYPE: Final = "image2video"

SUCCESS: Final = 1000


@attrs.define(kw_only=True)
class Answer:
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


def ok(data: Any) -> Answer:
    return Answer(envelope={"code": SUCCESS, "msg": "OK", "data": data})


def error(code: int, msg: str) -> Answer:
    return Answer(envelope={"code": code, "msg": msg, "data": None})


def check_endpoint(endpoint: str) -> None:
    if endpoint not in ENDPOINT_PATHS:
        raise ValueError(f"unknown endpoint {endpoint!r}; expected one of {sorted(ENDPOINT_PATHS)}")


def epoch_ms() -> int:
    return math.floor(time.time() * 1000)
