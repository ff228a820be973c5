"""What a create costs before AKOOL says: the one place the SDK's pricing rules live.

AKOOL has no endpoint that quotes a create (akool-api.md §9). A price is estimated, in order:

* ``observed``: the highest ``deduction_credit`` per video AKOOL charged earlier for the same
  price key (model, resolution, length, audio), as this client (or a bulk journal) saw it;
* ``table``: AKOOL's published Image-to-Video table: 720p 20, 1080p 25, 4k 30 credits per 5 s
  of video (twice that for 10 s), for AKOOL's own models; replacing audio 5 credits per 5 s;
* ``fallback``: ``FALLBACK_CREDITS_PER_5S`` per 5 s, when the table does not cover the create.

Choices where the table is silent, each made so an estimate errs towards too high (a budget
then stops early rather than overspends):

* Lengths are priced per started 5 s step (a 6 s video as two steps): the table has no
  smaller unit.
* A resolution below the table's lowest row (480p, 540p) is priced like that row (720p): every
  published row costs more than the one below it, so the lowest row bounds a smaller frame from
  above. A resolution between rows takes the next row up; one above 4k, or one whose height
  cannot be read from its name, takes the fallback.
* The table covers AKOOL's own models (no ``model_name``, a name starting with ``Akool``, or a
  model whose ``provider`` is ``akool``). Third-party models "can cost more": the fallback.
* ``generate_audio`` multiplies the price by the model's ``extra_credit_multiplier`` from the
  model list when the client knows it (``client.models.list()``); else by
  ``FALLBACK_AUDIO_FACTOR``, and the estimate is then labelled ``fallback``.
* The older single create: AKOOL's own models; its AI audio is free (part of the create), a
  premium model is unpriced (fallback), and a missing resolution is unpriced (fallback).
* ``replace_audio``: the client does not know the earlier video's length; it is assumed to be
  ``REPLACE_AUDIO_ASSUMED_SECONDS`` long, the longest length the table prices.

The model list's ``unit_credit`` is never used: its unit is undocumented (akool-api.md §9).
"""

from __future__ import annotations

import enum
import math
import re
import types
from collections.abc import Callable, Mapping
from typing import Final

import attrs

from ._models import AIModel

#: AKOOL's Image-to-Video table: credits per 5 seconds of video, by resolution (§9).
TABLE_CREDITS_PER_5S: Final[Mapping[str, float]] = types.MappingProxyType(
    {"720p": 20.0, "1080p": 25.0, "4k": 30.0}
)
#: Replacing the audio of a finished video: credits per 5 seconds of it (§9).
AUDIO_REPLACEMENT_CREDITS_PER_5S: Final = 5.0
#: The length ``replace_audio`` is priced for: the longest the table lists.
REPLACE_AUDIO_ASSUMED_SECONDS: Final = 10
#: Credits per 5 seconds when the table does not cover a create: twice the table's top row
#: (third-party models "can cost more").
FALLBACK_CREDITS_PER_5S: Final = 60.0
#: Price factor of ``generate_audio`` when the model's own multiplier is unknown.
FALLBACK_AUDIO_FACTOR: Final = 2.0

#: (model name, resolution, video length, generate_audio): what a video's price depends on.
PriceKey = tuple[str, str, int, bool]

#: Model names of price keys that are not batch creates.
SINGLE: Final = "single"
SINGLE_PREMIUM: Final = "single:premium"
REPLACE_AUDIO: Final = "replace_audio"

# The table's rows by frame height, lowest first.
_ROWS: Final = ((720, "720p"), (1080, "1080p"), (2160, "4k"))
_HEIGHT: Final = re.compile(r"(\d{3,4})p")


class PriceSource(enum.StrEnum):
    """Where an estimate comes from (see ``CreditEstimate``)."""

    #: The highest ``deduction_credit`` AKOOL charged earlier for the same kind of video.
    OBSERVED = "observed"
    #: AKOOL's published Image-to-Video price table.
    TABLE = "table"
    #: A conservative guess: the table does not cover this create.
    FALLBACK = "fallback"


@attrs.frozen(kw_only=True)
class CreditEstimate:
    """What a create is expected to cost, and where that number comes from.

    Attributes:
        credits: the total for ``count`` videos.
        per_video: the estimate for one video.
        count: how many videos were priced.
        source: ``observed`` (what AKOOL charged earlier for the same model, resolution,
            length and audio), ``table`` (AKOOL's published prices) or ``fallback`` (a
            conservative guess where neither applies).
    """

    credits: float
    per_video: float
    count: int
    source: PriceSource


def price_key(
    model_name: str | None, resolution: str, video_length: int, generate_audio: bool | None
) -> PriceKey:
    """The price key of a batch create."""
    return (model_name or "", resolution, video_length, bool(generate_audio))


def _steps(seconds: int) -> int:
    return max(1, math.ceil(seconds / 5))


def _row(resolution: str) -> str | None:
    """The table row pricing ``resolution`` (see the module docstring), or None."""
    value = resolution.strip().lower()
    if value in TABLE_CREDITS_PER_5S:
        return value
    match = _HEIGHT.fullmatch(value)
    if match is None:
        return None
    height = int(match.group(1))
    return next((row for top, row in _ROWS if height <= top), None)


def _is_akool_model(name: str, model: AIModel | None) -> bool:
    if not name or name.lower().startswith("akool"):
        return True
    return model is not None and (model.provider or "").lower() == "akool"


def listed_price(key: PriceKey, model: AIModel | None = None) -> tuple[float, PriceSource]:
    """The per-video price of ``key`` from the table, else the fallback (no observations).

    ``model`` is the model-list entry of the key's model, when known.
    """
    name, resolution, length, audio = key
    fallback = FALLBACK_CREDITS_PER_5S * _steps(length)
    if name.startswith(REPLACE_AUDIO):
        price = AUDIO_REPLACEMENT_CREDITS_PER_5S * _steps(REPLACE_AUDIO_ASSUMED_SECONDS)
        return price, PriceSource.TABLE
    row = _row(resolution)
    if name in (SINGLE, SINGLE_PREMIUM):
        # The single create's AI audio is part of the create: free (§9).
        if name == SINGLE_PREMIUM or row is None:
            return fallback, PriceSource.FALLBACK
        return TABLE_CREDITS_PER_5S[row] * _steps(length), PriceSource.TABLE
    if row is None or not _is_akool_model(name, model):
        price, source = fallback, PriceSource.FALLBACK
    else:
        price, source = TABLE_CREDITS_PER_5S[row] * _steps(length), PriceSource.TABLE
    if audio:
        factor = None if model is None else model.audio_credit_multiplier
        if factor is None:
            factor, source = FALLBACK_AUDIO_FACTOR, PriceSource.FALLBACK
        price *= max(1.0, factor)
    return price, source


class PriceBook:
    """The prices AKOOL charged so far, and the estimates built on them.

    Args:
        model_of: the model-list entry of a model name, or None when unknown (the client
            passes its catalog, so ``generate_audio`` is priced with the model's multiplier).
    """

    def __init__(self, model_of: Callable[[str], AIModel | None] | None = None) -> None:
        self._seen: dict[PriceKey, float] = {}
        self._model_of = model_of

    def observe(self, key: PriceKey, per_video: float) -> None:
        """Learn a per-video price AKOOL charged (the highest one seen is kept)."""
        self._seen[key] = max(per_video, self._seen.get(key, 0.0))

    def observed(self, key: PriceKey) -> float | None:
        """The highest per-video price seen for ``key``, or None."""
        return self._seen.get(key)

    def quote(self, key: PriceKey, count: int = 1) -> CreditEstimate:
        """The estimate for ``count`` videos of ``key`` (see the module docstring)."""
        seen = self._seen.get(key)
        if seen is not None:
            per_video, source = seen, PriceSource.OBSERVED
        else:
            model = self._model_of(key[0]) if self._model_of is not None and key[0] else None
            per_video, source = listed_price(key, model)
        return CreditEstimate(
            credits=per_video * count, per_video=per_video, count=count, source=source
        )
