"""What the fake offers and charges: its models, effects, prices and video files."""

from __future__ import annotations

import hashlib
import types
from collections.abc import Mapping
from typing import Any, Final

IMAGE_TO_VIDEO_TYPE: Final = 1501
DEFAULT_MODEL: Final = "AkoolImage2VideoFastV1"
MAX_COUNT: Final = 10
#: Credits per 5 seconds of video, by resolution (AKOOL's older price table, §9).
CREDITS_PER_5S: Final[Mapping[str, float]] = types.MappingProxyType(
    {"480p": 20.0, "720p": 30.0, "1080p": 45.0, "4k": 60.0}
)
GENERATE_AUDIO_FACTOR: Final = 1.5
#: Replacing audio costs 1 credit per second of video (AKOOL's "video to audio" price).
AUDIO_CREDITS_PER_SECOND: Final = 1.0


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
        "type": IMAGE_TO_VIDEO_TYPE,
        "resolutionList": [_R480, _R720],
        "durationList": [5, 10],
        "isPro": False,
        "requiresPay": False,
        "supportedLastFrame": False,
        "supportedExtendPrompt": True,
        "maxImageCount": 1,
        "maxCount": MAX_COUNT,
        "generate_audio": None,
    },
    {
        "value": "AkoolImage2VideoHDV1",
        "label": "Akool Image2Video HD V1",
        "provider": "akool",
        "description": "High-definition image-to-video generation.",
        "sort": 2,
        "group": "akool",
        "type": IMAGE_TO_VIDEO_TYPE,
        "resolutionList": [_R720, _R1080],
        "durationList": [5, 10],
        "isPro": True,
        "requiresPay": True,
        "supportedLastFrame": True,
        "supportedExtendPrompt": True,
        "maxImageCount": 2,
        "maxCount": MAX_COUNT,
        "generate_audio": False,
    },
    {
        "value": "seedance-1-0-lite-i2v-250428",
        "label": "Seedance 1.0 Lite",
        "provider": "bytedance",
        "description": "Seedance lite image-to-video.",
        "sort": 3,
        "group": "seedance",
        "type": IMAGE_TO_VIDEO_TYPE,
        "resolutionList": [_R480, _R720, _R1080],
        "durationList": [5, 10],
        "isPro": True,
        "requiresPay": True,
        "supportedLastFrame": True,
        "supportedExtendPrompt": False,
        "maxImageCount": 2,
        "maxCount": MAX_COUNT,
        "generate_audio": {"default": False},
    },
)

EFFECTS: Final[tuple[Mapping[str, Any], ...]] = (
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
