"""What the fake offers and charges: its models, effects, prices and video files."""

from __future__ import annotations

import hashlib
import types
from collections.abc import Mapping
from typing import Any, Final

IMAGE_TO_VIDEO_TYPE: Final = 1501
DEFAULT_MODEL: Final = "AkoolImage2VideoFastV1"
MAX_COUNT: Final = 10
#: Credits per 5 seconds of video, by resolution: AKOOL's Image-to-Video table (§9) for
#: 720p, 1080p and 4k; 480p, which the table does not list, is charged like its lowest row.
CREDITS_PER_5S: Final[Mapping[str, float]] = types.MappingProxyType(
    {"480p": 20.0, "720p": 20.0, "1080p": 25.0, "4k": 30.0}
)
#: Replacing the audio of a video: 5 credits per 5 seconds of it (§9).
AUDIO_CREDITS_PER_5S: Final = 5.0


def _resolution(label: str, width: int, height: int, unit_credit: float) -> dict[str, Any]:
    # unit_credit: AKOOL's own number, unit undocumented (it does not follow the table).
    return {
        "label": label,
        "value": label,
        "width": width,
        "height": height,
        "unit_credit": unit_credit,
    }


def _generate_audio(multiplier: float) -> dict[str, Any]:
    # The one non-null shape AKOOL's docs and official demo show.
    return {
        "required": False,
        "type": "boolean",
        "default": False,
        "extra_credit_multiplier": multiplier,
    }


_R480 = _resolution("480p", 854, 480, 4)
_R720 = _resolution("720p", 1280, 720, 6)
_R1080 = _resolution("1080p", 1920, 1080, 10)
_R4K = _resolution("4k", 3840, 2160, 16)

#: The models ``GET /api/open/v4/aigModel/list?types[]=1501`` answers by default (§6 fields),
#: highest ``sort`` first as in the docs' example.
DEFAULT_MODELS: Final[tuple[Mapping[str, Any], ...]] = (
    {
        "value": "AkoolImage2VideoFastV1",
        "label": "Akool Image2Video Fast V1",
        "provider": "akool",
        "description": "Fast image-to-video generation.",
        "sort": 30,
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
        "sort": 20,
        "group": "akool",
        "type": IMAGE_TO_VIDEO_TYPE,
        "resolutionList": [_R720, _R1080, _R4K],
        "durationList": [5, 10],
        "isPro": True,
        "requiresPay": True,
        "supportedLastFrame": True,
        "supportedExtendPrompt": True,
        "maxImageCount": 2,
        "maxCount": MAX_COUNT,
        "generate_audio": _generate_audio(1.5),
    },
    {
        "value": "seedance-1-0-lite-i2v-250428",
        "label": "Seedance 1.0 Lite",
        "provider": "bytedance",
        "description": "Seedance lite image-to-video.",
        "sort": 10,
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
        "generate_audio": _generate_audio(2),
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
        "sub_type": IMAGE_TO_VIDEO_TYPE,
    },
    {
        "_id": "66a0f1c2b3d4e5f6a7b8c902",
        "effect_code": "inflate_35567128890",
        "name": "Inflate",
        "logo": "https://static.example.invalid/effects/inflate.png",
        "video_url": "https://static.example.invalid/effects/inflate.mp4",
        "create_time": 1721800000000,
        "sub_type": IMAGE_TO_VIDEO_TYPE,
    },
    {
        "_id": "66a0f1c2b3d4e5f6a7b8c903",
        "effect_code": "hug_10993847561",
        "name": "Hug",
        "logo": "https://static.example.invalid/effects/hug.png",
        "video_url": "https://static.example.invalid/effects/hug.mp4",
        "create_time": 1721800000000,
        "sub_type": IMAGE_TO_VIDEO_TYPE,
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
