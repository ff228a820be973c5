"""Typed records of AKOOL's answers (attrs): videos, statuses, models, effects.

Every answer model keeps the item it was built from in ``raw``, so fields AKOOL adds later
(or documents badly) stay reachable. Reading JSON into them is ``_convert``'s job; the
records themselves depend on nothing else in the package.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from typing import Any, Final, TypeGuard

import attrs

from ._constants import VIDEO_RETENTION_SECONDS


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


#: VideoStatus by wire value, without VideoStatus()'s slower lookup (the pollers' hot path).
STATUS_BY_VALUE: Final = {s.value: s for s in VideoStatus}


#: Characters no id may hold: resultsByIds takes ids as one comma-separated string.
_ID_SEPARATORS: Final = ", \t\r\n"


def is_video_id(value: object) -> TypeGuard[str]:
    """Whether ``value`` can be a video id: a non-empty string without separators."""
    if not isinstance(value, str) or not value:
        return False
    # isalnum() first: AKOOL's ids are hex, and the C check is the poller's hot path.
    return value.isalnum() or not any(c in value for c in _ID_SEPARATORS)


def is_int(value: object) -> TypeGuard[int]:
    """A real int: bool is an int subclass and 2.0 == 2, yet neither is an integer field."""
    return isinstance(value, int) and not isinstance(value, bool)


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
    the wire ``generate_audio`` is not null, whatever its type; ``audio_credit_multiplier`` is
    its ``extra_credit_multiplier`` (what ``generate_audio`` multiplies the price by), when
    given. ``sort`` is AKOOL's display
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
    audio_credit_multiplier: float | None = None
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
