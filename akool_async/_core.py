"""The client's core: the one object resources, generation, bulk jobs and the CLI work through.

``AkoolClient`` builds one ``ClientCore`` and hands it to every resource (openai-python's
``_resource.py`` gives its resources the client's request methods the same way). Nothing
outside this object reaches into the transport, the poller, the budget or the create gate;
they are reached through the core's methods and public attributes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ._auth import ApiKeyAuth, Auth, TokenAuth
from ._budget import CreditBudget
from ._catalog import ModelCatalog
from ._creates import CreatePipeline
from ._downloads import download_video, download_videos
from ._errors import AkoolResponseError, AkoolValueError
from ._models import Video, VideoStatus
from ._polling import Poller, TaskHandle
from ._pricing import PriceBook
from ._requests import VideoRequest
from ._settings import PollPolicy, RetryPolicy
from ._transport import TOKEN_PATH, Transport


class ClientCore:
    """Transport, poller, budget, model catalog and create pipeline of one client."""

    def __init__(
        self,
        *,
        api_key: str | None,
        client_id: str | None,
        client_secret: str | None,
        base_url: str,
        timeout: float,
        connect_timeout: float,
        retry: RetryPolicy,
        poll: PollPolicy,
        wait_timeout: float | None,
        max_concurrent_creates: int,
        max_credits: float | None,
    ) -> None:
        self.client_id = client_id
        # The console API key IS the legacy clientSecret (akool-api.md §2): webhooks use it.
        self._client_secret = client_secret or api_key
        self.request_timeout = timeout
        self.transport = Transport(
            base_url=base_url,
            auth=None,
            retry=retry,
            timeout=timeout,
            connect_timeout=connect_timeout,
        )
        auth: Auth
        if api_key is not None:
            auth = ApiKeyAuth(api_key)
        else:
            # AkoolClient checked the credentials: no key means a client id and secret.
            assert client_id is not None
            assert client_secret is not None
            auth = TokenAuth(client_id, client_secret, self._fetch_token)
        self.transport.auth = auth
        self.poller = Poller(self.transport, poll, wait_timeout, max_pause=retry.max_retry_after)
        self.catalog = ModelCatalog()
        # Estimates price generate_audio with the model list's multiplier once it is known.
        self.budget = CreditBudget(max_credits, PriceBook(self.catalog.find))
        self.creates = CreatePipeline(
            transport=self.transport,
            poller=self.poller,
            budget=self.budget,
            catalog=self.catalog,
            max_concurrent_creates=max_concurrent_creates,
        )

    # --- state --------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True after ``aclose()``."""
        return self.transport.closed

    @property
    def opened(self) -> bool:
        """True while a session is open."""
        return self.transport.opened

    @property
    def uses_api_key(self) -> bool:
        """True for ``x-api-key`` authentication, False for the token flow."""
        return isinstance(self.transport.auth, ApiKeyAuth)

    @property
    def wait_timeout(self) -> float | None:
        """How long a wait lasts by default (None: forever)."""
        return self.poller.wait_timeout

    @property
    def poll_policy(self) -> PollPolicy:
        """How the shared poller schedules results calls."""
        return self.poller.policy

    def webhook_credentials(self) -> tuple[str | None, str | None]:
        """The clientId and clientSecret webhooks are verified with (None when missing)."""
        return self.client_id, self._client_secret

    def open(self) -> None:
        """Open the session now; ClientClosedError after ``aclose()``."""
        self.transport.open()

    async def aclose(self) -> None:
        """Send no more creates (waiting for those in flight), stop polling, close the session.

        Re-raises the poller's crash, if it had one.
        """
        try:
            await self.creates.drain(self.request_timeout)
            await self.poller.aclose()
        finally:
            await self.transport.aclose()

    # --- requests -----------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | list[tuple[str, str]] | None = None,
    ) -> dict[str, Any]:
        """One API request that creates nothing; returns the success envelope."""
        return await self.transport.request(method, path, json=json, params=params)

    async def _fetch_token(self, client_id: str, client_secret: str) -> str:
        envelope = await self.transport.request(
            "POST",
            TOKEN_PATH,
            json={"clientId": client_id, "clientSecret": client_secret},
            authenticated=False,
        )
        token = envelope.get("token")
        if not isinstance(token, str) or not token:
            raise AkoolResponseError(
                "getToken answered without a token", method="POST", path=TOKEN_PATH
            )
        return token

    # --- videos -------------------------------------------------------------------------------

    def track(
        self,
        video_id: str,
        *,
        status: VideoStatus | None = None,
        webhook: bool = False,
        request: VideoRequest | None = None,
    ) -> TaskHandle:
        """A handle for ``video_id``, polled until it finishes."""
        return self.poller.track(video_id, status=status, webhook=webhook, request=request)

    def apply_news(self, video: Video) -> bool:
        """Apply news from a webhook; True when a waiting handle finished because of it."""
        return self.poller.update(video)

    async def download(self, video: Video, path: Path, *, overwrite: bool) -> Path:
        """Save one completed video's file (see ``AkoolClient.download``)."""
        return await download_video(self.transport, video, path, overwrite=overwrite)

    async def download_many(
        self,
        videos: Iterable[Video],
        directory: Path,
        *,
        concurrency: int,
        overwrite: bool,
        return_exceptions: bool,
    ) -> list[Path | BaseException]:
        """Save many videos (see ``AkoolClient.download_many``)."""
        return await download_videos(
            self.transport,
            videos,
            directory,
            concurrency=concurrency,
            overwrite=overwrite,
            return_exceptions=return_exceptions,
        )


def check_credentials(
    api_key: str | None, client_id: str | None, client_secret: str | None, env: str
) -> str | None:
    """The API key to use (``$env`` when none was given); AkoolValueError when none is usable."""
    if api_key is None and not (client_id and client_secret):
        api_key = os.environ.get(env) or None
    for name, value in (
        ("api_key", api_key),
        ("client_id", client_id),
        ("client_secret", client_secret),
    ):
        if value is not None and (not isinstance(value, str) or not value):
            raise AkoolValueError(f"{name}: must be a non-empty string")
    if api_key is None and not (client_id and client_secret):
        raise AkoolValueError(
            f"no credentials: pass api_key=..., set ${env}, or pass client_id and client_secret"
        )
    return api_key
