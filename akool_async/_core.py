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
from typing import TYPE_CHECKING, Any

from ._auth import ApiKeyAuth, TokenAuth
from ._budget import CreditBudget
from ._catalog import ModelCatalog
from ._cluster import Cluster
from ._constants import DEFAULT_TIMEOUT
from ._creates import CreatePipeline
from ._downloads import download_video, download_videos
from ._errors import AkoolResponseError, AkoolValueError
from ._models import Video, VideoStatus
from ._polling import Poller, TaskHandle
from ._pricing import PriceBook
from ._requests import VideoRequest
from ._settings import (
    NO_OPTIONS,
    USE_CLIENT_DEFAULT,
    PollPolicy,
    RequestOptions,
    RetryPolicy,
    TimeoutArg,
    resolve_timeout,
)
from ._transport import TOKEN_PATH, Transport

if TYPE_CHECKING:
    from ._hub._hub import RedisHub


class ClientCore:
    """Transport, poller, budget, model catalog and create pipeline of one client.

    ``derive()`` makes the core of ``AkoolClient.with_options()``: it shares the session, the
    budget, the model catalog and the create gate, and (unless given its own poll policy)
    the poller.
    """

    def __init__(
        self,
        *,
        client_id: str | None,
        client_secret: str | None,
        transport: Transport,
        poller: Poller,
        budget: CreditBudget,
        catalog: ModelCatalog,
        creates: CreatePipeline,
        wait_timeout: float | None,
        cluster: Cluster | None = None,
        root: ClientCore | None = None,
    ) -> None:
        self.client_id = client_id
        self._client_secret = client_secret
        self.transport = transport
        self.poller = poller
        self.budget = budget
        self.catalog = catalog
        self.creates = creates
        #: How long a wait lasts by default (None: forever).
        self.wait_timeout = wait_timeout
        #: The client's part of a Redis hub (None: this process works alone).
        self.cluster = cluster
        self._root = root
        #: Pollers of derived cores with their own poll policy (closed with this core).
        self._own_pollers: list[Poller] = []

    @classmethod
    def build(
        cls,
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
        hub: RedisHub | None = None,
    ) -> ClientCore:
        """The core of a new client (credentials already checked by ``AkoolClient``)."""
        transport = Transport(
            base_url=base_url,
            auth=None,
            retry=retry,
            timeout=timeout,
            connect_timeout=connect_timeout,
        )
        poller = Poller(transport, poll, wait_timeout, max_pause=retry.max_retry_after)
        catalog = ModelCatalog()
        # Estimates price generate_audio with the model list's multiplier once it is known.
        budget = CreditBudget(
            max_credits,
            PriceBook(catalog.find),
            shared=None if hub is None else hub.budget,
        )
        # A live create settles within its request's life: holds older than that are stale.
        budget.stale_after = timeout + retry.max_time
        cluster = None
        if hub is not None:
            cluster = Cluster(hub, transport=transport, poller=poller, policy=poll)
        core = cls(
            # The console API key IS the legacy clientSecret (akool-api.md §2): webhooks use it.
            client_id=client_id,
            client_secret=client_secret or api_key,
            transport=transport,
            poller=poller,
            budget=budget,
            catalog=catalog,
            creates=CreatePipeline(
                transport=transport,
                poller=poller,
                budget=budget,
                catalog=catalog,
                max_concurrent_creates=max_concurrent_creates,
                cluster=cluster,
            ),
            wait_timeout=wait_timeout,
            cluster=cluster,
        )
        if api_key is not None:
            transport.auth = ApiKeyAuth(api_key)
        else:
            # AkoolClient checked the credentials: no key means a client id and secret.
            assert client_id is not None
            assert client_secret is not None
            transport.auth = TokenAuth(client_id, client_secret, core._fetch_token)
        return core

    def derive(
        self,
        *,
        timeout: TimeoutArg = USE_CLIENT_DEFAULT,
        retry: RetryPolicy | None = None,
        poll: PollPolicy | None = None,
        wait_timeout: TimeoutArg = USE_CLIENT_DEFAULT,
    ) -> ClientCore:
        """A core with other settings sharing this one's session, budget, catalog and gate."""
        root = self._root or self
        transport = self.transport.with_settings(retry=retry, timeout=timeout)
        waits = resolve_timeout(wait_timeout, self.wait_timeout)
        poller = self.poller
        if poll is not None:
            poller = Poller(transport, poll, waits, max_pause=transport.retry.max_retry_after)
            root._own_pollers.append(poller)
            if self.cluster is not None:
                self.cluster.add_poller(poller)
        return ClientCore(
            client_id=self.client_id,
            client_secret=self._client_secret,
            transport=transport,
            poller=poller,
            budget=self.budget,
            catalog=self.catalog,
            creates=self.creates.derive(transport=transport, poller=poller, wait_timeout=waits),
            wait_timeout=waits,
            cluster=self.cluster,
            root=root,
        )

    @property
    def is_root(self) -> bool:
        """True for a client's own core, False for one made by ``derive()``."""
        return self._root is None

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
    def poll_policy(self) -> PollPolicy:
        """How the shared poller schedules results calls."""
        return self.poller.policy

    def webhook_credentials(self) -> tuple[str | None, str | None]:
        """The clientId and clientSecret webhooks are verified with (None when missing)."""
        return self.client_id, self._client_secret

    async def open(self) -> None:
        """Open the session (and join the Redis hub, if any); ClientClosedError after close."""
        self.transport.open()
        if self.cluster is not None:
            await self.cluster.start()

    async def aclose(self) -> None:
        """Send no more creates (waiting for those in flight), stop polling, close the session.

        Closes what derived cores share too. Re-raises a poller's crash, if one had one.
        """
        try:
            await self.creates.drain(self.transport.timeout or DEFAULT_TIMEOUT)
            await self.budget.flush()
            if self.cluster is not None:
                await self.cluster.aclose()
            for poller in (*self._own_pollers, self.poller):
                await poller.aclose()
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
        options: RequestOptions = NO_OPTIONS,
    ) -> dict[str, Any]:
        """One API request that creates nothing; returns the success envelope."""
        if self.cluster is not None:
            await self.cluster.start()
        return await self.transport.request(method, path, json=json, params=params, options=options)

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
        return self.poller.track(
            video_id,
            status=status,
            webhook=webhook,
            request=request,
            wait_timeout=self.wait_timeout,
        )

    async def apply_news(self, video: Video) -> bool:
        """Apply a verified webhook's news; True when a waiting handle here finished.

        With a Redis hub the news is first recorded and announced to every process.
        """
        if self.cluster is not None:
            await self.cluster.publish_news(video)
        root = self._root or self
        finished = False
        for poller in (root.poller, *root._own_pollers):
            finished = poller.update(video) or finished
        return finished

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
