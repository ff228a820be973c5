"""Frozen records handed out by the Redis hub."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import attrs

#: This process's part in the cluster poller: ``None`` until it has tried for the lease.
HubRole = Literal["leader", "follower"]


@attrs.frozen(kw_only=True)
class VideoState:
    """The latest state of one video as recorded in Redis (kept 7 days, like AKOOL's files).

    Attributes:
        video_id: AKOOL's ``_id``.
        status: the raw status (1 queueing, 2 processing, 3 completed, 4 failed).
        video_url: the video's URL once completed, else ``None``.
        raw: the item that reported this state (results item or decrypted webhook payload).
    """

    video_id: str
    status: int
    video_url: str | None
    raw: Mapping[str, Any]


@attrs.frozen(kw_only=True)
class HubEvent:
    """One state change read from the namespace's event stream.

    Attributes:
        entry_id: the stream entry id; pass it as ``last_id`` to resume after it.
        video_id, status, video_url, raw: as in ``VideoState``.
    """

    entry_id: str
    video_id: str
    status: int
    video_url: str | None
    raw: Mapping[str, Any]

    @property
    def state(self) -> VideoState:
        """The event as a ``VideoState``."""
        return VideoState(
            video_id=self.video_id, status=self.status, video_url=self.video_url, raw=self.raw
        )


@attrs.frozen(kw_only=True)
class Reservation:
    """Credits held in the shared budget until settled or released.

    Attributes:
        id: the reservation's id in Redis.
        amount: the credits held.
    """

    id: str
    amount: float


@attrs.frozen(kw_only=True)
class BudgetSnapshot:
    """The shared budget of a namespace (``hub.budget.snapshot()``).

    Attributes:
        charged: credits settled by every process of the namespace.
        reserved: credits held by reservations not yet settled or released.
    """

    charged: float
    reserved: float


@attrs.frozen(kw_only=True)
class SlotLease:
    """One cluster-wide create slot, held until released or until its lease runs out.

    Attributes:
        token: the slot's id in Redis.
    """

    token: str


@attrs.frozen(kw_only=True)
class HubStatistics:
    """A snapshot of one hub's work (``hub.statistics()``).

    Attributes:
        role: ``"leader"`` while this process holds the poller lease, ``"follower"`` once it
            has tried for it without holding it, ``None`` before that.
        available: whether the last Redis command succeeded.
        events_published: publishes that were news (a status moved forward).
        events_received: events read from the stream.
        stream_lag: seconds from the last received event's append (its entry id's time, by the
            Redis server's clock) to its arrival here (local clock); ``None`` before any event.
        fallbacks: times Redis became unreachable, each a fall back to local polling.
        leader_changes: times this process gained or lost the leader lease.
    """

    role: HubRole | None
    available: bool
    events_published: int
    events_received: int
    stream_lag: float | None
    fallbacks: int
    leader_changes: int
