"""``client.webhooks``: verify AKOOL's webhook deliveries and resolve the handles they are about."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from .._core import ClientCore
from .._errors import AkoolValueError
from .._models import Video, VideoStatus
from .._webhook_crypto import DEFAULT_WEBHOOK_TOLERANCE, WebhookEvent, key_iv, verify_webhook

logger = logging.getLogger("akool_async.webhooks")


class Webhooks:
    """``client.webhooks``: feed webhook bodies in; waiting handles resolve at once.

    Polling stays the backstop: a video whose webhook never arrives still finishes by polling,
    at ``PollPolicy.webhook_interval`` for videos created with a ``webhook_url``.
    """

    def __init__(self, core: ClientCore) -> None:
        self._core = core

    async def receive(
        self,
        body: bytes | str | Mapping[str, Any],
        *,
        tolerance: float | None = DEFAULT_WEBHOOK_TOLERANCE,
    ) -> WebhookEvent:
        """Verify one delivery and apply it to the handle waiting for that video, if any.

        Status 3 resolves the handle with a ``Video`` carrying the url, status 4 fails it with
        ``VideoFailedError``, and the poller stops asking for that id. Repeated and
        out-of-order deliveries are harmless: a status never goes backwards. An event about
        an id nobody waits for is verified and returned all the same.

        Args:
            body: the raw request body (bytes or str), or the already parsed JSON object.
            tolerance: seconds the envelope's timestamp may be off from now; ``None`` skips
                the check (see ``verify_webhook``).

        Returns:
            The verified event.

        Raises:
            WebhookVerificationError: the body failed verification (answer HTTP 400).
            AkoolValueError: the client has no ``client_id``, or its secret (the API key)
                is not a usable AES key.
        """
        client_id, client_secret = self._credentials()
        event = verify_webhook(
            body, client_id=client_id, client_secret=client_secret, tolerance=tolerance
        )
        url = event.url or None  # AKOOL-style senders put "" in url before completion
        if event.status is VideoStatus.COMPLETED and url is None:
            # A handle resolved without its url would break what `await handle` promises;
            # leave the id to polling, which reports video_url itself.
            logger.warning(
                "webhook for video %s says completed but has no url; left to polling", event.id
            )
            return event
        video = Video(id=event.id, status=event.status, video_url=url, raw=event.raw)
        finished = await self._core.apply_news(video)
        logger.debug(
            "webhook for video %s: status %s%s",
            event.id,
            event.status.name,
            " (handle resolved)" if finished else "",
        )
        return event

    def _credentials(self) -> tuple[str, str]:
        """The clientId and clientSecret to verify with; AkoolValueError when unusable."""
        client_id, client_secret = self._core.webhook_credentials()
        if not client_id:
            raise AkoolValueError(
                "client_id: webhook verification needs the account's clientId "
                "(AkoolClient(client_id=...))"
            )
        if not client_secret or key_iv(client_id, client_secret) is None:
            # Never name the value: it is the API key.
            raise AkoolValueError(
                "client_secret: webhook decryption needs the API key (clientSecret) to be "
                "16, 24 or 32 bytes of UTF-8, and client_id to be valid UTF-8"
            )
        return client_id, client_secret
