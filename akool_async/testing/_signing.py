"""``sign_webhook``: build the signed, encrypted envelope AKOOL would POST to a webhook."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from .._webhook_crypto import build_envelope
from ._wire import WEBHOOK_EVENT_TYPE


class _WebhookEventLike(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def status(self) -> int: ...


def sign_webhook(
    event: Mapping[str, Any] | _WebhookEventLike,
    *,
    client_id: str,
    client_secret: str,
    timestamp: int | None = None,
    nonce: str | int | None = None,
) -> dict[str, Any]:
    """Build a signed, encrypted webhook envelope, as AKOOL would POST it.

    Args:
        event: the plaintext ``{"_id", "status", "type", "url"}``, or an object with ``id``,
            ``status`` and optional ``type``/``url`` attributes (e.g. a ``WebhookEvent``).
        client_id, client_secret: the credentials the receiver verifies with.
        timestamp: epoch milliseconds; defaults to now.
        nonce: a string or an int; defaults to a random one.

    Returns:
        ``{"signature", "dataEncrypt", "timestamp", "nonce"}``.
    """
    if isinstance(event, Mapping):
        payload = dict(event)
    else:
        payload = {
            "_id": event.id,
            "status": int(event.status),
            "type": getattr(event, "type", None) or WEBHOOK_EVENT_TYPE,
            "url": getattr(event, "url", None) or "",
        }
    return build_envelope(
        payload,
        client_id=client_id,
        client_secret=client_secret,
        timestamp=timestamp,
        nonce=nonce,
    )
