"""What a request handler works with: the server's settings and its parts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import attrs

from ._faults import FaultPlan
from ._holds import Holds
from ._state import FakeState
from ._webhook_delivery import WebhookDeliverer


class Knobs(Protocol):
    """The server settings handlers read and change (``FakeAkoolServer`` documents them)."""

    api_key: str
    client_id: str
    queue_seconds: float
    process_seconds: float
    timing_jitter: float
    max_ids_per_results: int
    credit: float
    models: list[dict[str, Any]]
    create_latency: float
    results_latency: float
    fail_when: Callable[[Mapping[str, Any]], bool] | None
    next_batch_errors: int
    wrong_typed_fields: bool

    def video_url(self, video_id: str) -> str: ...


@attrs.frozen(kw_only=True)
class Context:
    """One server's settings and parts, handed to every request handler."""

    knobs: Knobs
    state: FakeState
    faults: FaultPlan
    holds: Holds
    webhooks: WebhookDeliverer
