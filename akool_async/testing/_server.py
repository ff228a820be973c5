"""``FakeAkoolServer``: the public face of the fake, composing its parts."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from .._models import VideoStatus
from ._app import build_app
from ._catalog import DEFAULT_MODELS
from ._context import Context
from ._faults import Fault, FaultKind, FaultPlan
from ._harness import Harness
from ._holds import Holds
from ._state import FakeState, FakeVideo, RecordedRequest
from ._webhook_delivery import WebhookDeliverer, WebhookDelivery
from ._wire import DEFAULT_API_KEY, DEFAULT_CLIENT_ID, check_endpoint, epoch_ms

#: How long the wait_* methods wait by default: long enough for a loaded machine, short enough
#: that a broken test fails instead of hanging.
DEFAULT_WAIT_TIMEOUT = 10.0


class FakeAkoolServer:
    """A fake AKOOL Image-to-Video server on loopback (see the ``akool_async.testing`` docs).

    A facade over its parts: the harness that serves (``_harness``), the app and its handlers
    (``_app``, ``_handlers``), the state and request log (``_state``), fault injection
    (``_faults``), holds (``_holds``) and webhook delivery (``_webhook_delivery``).

    Args:
        api_key: the key accepted in ``x-api-key``; also the clientSecret for getToken and
            webhook encryption, so it must be 16, 24 or 32 bytes for webhooks to work.
        client_id: the clientId accepted by getToken and used to sign webhooks.
        host, port: where to listen; port 0 picks a free port (read ``url`` after start).
        queue_seconds, process_seconds: how long a new video stays in status 1, then 2.
        timing_jitter: a fraction; each video's durations are scaled by a seeded random factor
            in ``[1 - jitter, 1 + jitter]``.
        max_ids_per_results: more ids than this in one results request answers 1003.
        credit: the starting credit balance.
        models: the model list (defaults to ``DEFAULT_MODELS``); creates are validated
            against it.
        seed: seeds timing jitter, results order, random faults and webhook drops.
        create_latency: seconds every create (batch, single, update_audio) waits before acting.
        results_latency: seconds every results request waits before answering.

    The timing, limit, credit and latency arguments are also plain attributes that tests may
    change at run time; timing changes apply to videos created afterwards.
    """

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        client_id: str = DEFAULT_CLIENT_ID,
        host: str = "127.0.0.1",
        port: int = 0,
        queue_seconds: float = 0.05,
        process_seconds: float = 0.2,
        timing_jitter: float = 0.0,
        max_ids_per_results: int = 100,
        credit: float = 100_000.0,
        models: list[dict[str, Any]] | None = None,
        seed: int = 0,
        create_latency: float = 0.0,
        results_latency: float = 0.0,
    ) -> None:
        self.api_key = api_key
        self.client_id = client_id
        self.host = host
        self.port = port
        self.queue_seconds = queue_seconds
        self.process_seconds = process_seconds
        self.timing_jitter = timing_jitter
        self.max_ids_per_results = max_ids_per_results
        self.credit = float(credit)
        # Deep copies: a test editing its server's models must not change another server's.
        self.models: list[dict[str, Any]] = copy.deepcopy(
            [dict(m) for m in DEFAULT_MODELS] if models is None else models
        )
        self.create_latency = create_latency
        self.results_latency = results_latency

        #: Predicate on a create body; True makes every video of that create end in status 4.
        self.fail_when: Callable[[Mapping[str, Any]], bool] | None = None
        #: The next batch create reports this many of its videos in errorList; then resets.
        self.next_batch_errors = 0
        #: Send every video item (create and results answers) with plausible wrong types in
        #: its optional fields (numbers as strings, ``only_add_audio: 0``, ``extend_prompt:
        #: "false"``, ``negative_prompt: null``) and an unknown key, ``task_meta``.
        self.wrong_typed_fields = False

        #: Webhook knobs: drop a delivery when this returns True for ``(video_id, status)``.
        self.webhook_drop: Callable[[str, int], bool] | None = None
        #: Fraction of deliveries dropped at random (seeded).
        self.webhook_drop_rate = 0.0
        #: Send every delivery twice.
        self.webhook_duplicate = False
        #: Hold the status-2 delivery and send it after the terminal one.
        self.webhook_reorder = False
        #: Attempts per delivery while the receiver does not answer HTTP 200.
        self.webhook_max_attempts = 4
        #: First retry delay in seconds; doubles on every further attempt.
        self.webhook_retry_delay = 0.05
        #: Per-attempt timeout in seconds.
        self.webhook_timeout = 5.0

        self._state = FakeState(seed)
        self._faults = FaultPlan()
        self._holds = Holds()
        self._webhooks = WebhookDeliverer(self, seed=seed + 1)
        self._harness = Harness()
        self._context = Context(
            knobs=self,
            state=self._state,
            faults=self._faults,
            holds=self._holds,
            webhooks=self._webhooks,
        )

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def client_secret(self) -> str:
        """AKOOL's clientSecret: the same value as the console API key (§2)."""
        return self.api_key

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:<port>``.

        Raises:
            RuntimeError: the server is not started.
        """
        return self._harness.url

    async def start(self) -> None:
        """Start listening.

        Raises:
            RuntimeError: already started, or closed.
        """
        await self._harness.start(build_app(self._context), self.host, self.port)

    async def close(self) -> None:
        """Stop webhook deliveries, release every hold, and stop the server. Idempotent."""
        self._harness.mark_closed()
        await self._webhooks.close()
        self._holds.release()
        await self._harness.close()

    async def __aenter__(self) -> FakeAkoolServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- videos ------------------------------------------------------------------------------

    @property
    def videos(self) -> Mapping[str, FakeVideo]:
        """Every video created, by id (deleted and forgotten ones included)."""
        return types.MappingProxyType(self._state.videos)

    @property
    def created_count(self) -> int:
        """How many videos were created in total."""
        return len(self._state.videos)

    def status_of(self, video_id: str) -> VideoStatus:
        """The video's status now. Raises ``KeyError`` for an unknown id."""
        return self._state.videos[video_id].status_at(time.monotonic())

    def complete(self, video_id: str) -> None:
        """Force the video to status 3 now (and fire its webhooks)."""
        self.set_status(video_id, VideoStatus.COMPLETED)

    def fail(self, video_id: str) -> None:
        """Force the video to status 4 now (and fire its webhooks)."""
        self.set_status(video_id, VideoStatus.FAILED)

    def set_status(self, video_id: str, status: int) -> None:
        """Pin the video to ``status`` (1-4) from now on (and fire its webhooks)."""
        video = self._state.videos[video_id]
        video.forced_status = VideoStatus(status)
        video.forced_time = epoch_ms()
        self._webhooks.poke(video_id)

    def answer_with(self, video_id: str, **fields: Any) -> None:
        """Make results answers for the video carry ``fields`` instead of the computed ones;
        with no ``fields``, answer normally again. Webhooks are not affected.

        For the surprising answers AKOOL may send: an unknown status
        (``answer_with(id, status=5)``), a completed video without a file
        (``complete(id)`` then ``answer_with(id, video_url="")``), or any other field.
        """
        self._state.videos[video_id].answer_fields = dict(fields)

    def forget(self, video_id: str) -> None:
        """Make results stop reporting the video (it is omitted from ``data.result``)."""
        self._state.videos[video_id].forgotten = True

    def video_url(self, video_id: str) -> str:
        """Where the fake serves the video's bytes (the ``"download"`` endpoint)."""
        return f"{self.url}/files/{video_id}.mp4"

    # -- auth --------------------------------------------------------------------------------

    def expire_tokens(self) -> None:
        """Make every Bearer token issued so far answer code 1101."""
        self._state.tokens.clear()

    def issue_token(self) -> str:
        """A valid Bearer token, as getToken would return it."""
        return self._state.issue_token()

    # -- request log -------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, in arrival order."""
        return self._state.requests

    @property
    def faults_served(self) -> list[tuple[str, FaultKind]]:
        """Every fault served, in order, as ``(endpoint, kind)``."""
        return self._faults.served

    def calls(self, endpoint: str) -> list[RecordedRequest]:
        """The recorded requests to ``endpoint``, in arrival order."""
        check_endpoint(endpoint)
        return [r for r in self._state.requests if r.endpoint == endpoint]

    def call_count(self, endpoint: str) -> int:
        """How many requests ``endpoint`` received."""
        return len(self.calls(endpoint))

    def max_in_flight(self, endpoint: str) -> int:
        """The peak number of concurrent requests to ``endpoint``."""
        check_endpoint(endpoint)
        return self._state.peak_in_flight[endpoint]

    def reset_log(self) -> None:
        """Clear ``requests``, ``faults_served``, ``webhook_deliveries`` and in-flight peaks."""
        self._faults.served.clear()
        self._webhooks.deliveries.clear()
        self._state.reset_log()

    # -- waiting on the request log ----------------------------------------------------------

    async def wait_until(
        self, predicate: Callable[[], bool], *, timeout: float | None = DEFAULT_WAIT_TIMEOUT
    ) -> None:
        """Return once ``predicate()`` is true; it is checked now and whenever a request
        arrives or finishes (no polling).

        Raises:
            TimeoutError: still false after ``timeout`` seconds (``None`` waits forever).
        """
        await self._state.wait_until(
            predicate, timeout=timeout, what=lambda: f"wait_until({predicate!r}) is still false"
        )

    async def wait_for_calls(
        self,
        endpoint: str,
        n: int = 1,
        *,
        answered: bool = False,
        timeout: float | None = DEFAULT_WAIT_TIMEOUT,
    ) -> list[RecordedRequest]:
        """Wait until ``endpoint`` has received at least ``n`` requests; return them all.

        Counts the log as ``call_count`` does (``reset_log`` starts it again). With
        ``answered=True`` only requests the fake has finished with count (``finished_at``
        set: answered, faulted or dropped).

        Raises:
            TimeoutError: fewer than ``n`` after ``timeout`` seconds (``None`` waits forever).
        """
        check_endpoint(endpoint)

        def matching() -> list[RecordedRequest]:
            return [
                r
                for r in self._state.requests
                if r.endpoint == endpoint and (not answered or r.finished_at is not None)
            ]

        await self._state.wait_until(
            lambda: len(matching()) >= n,
            timeout=timeout,
            what=lambda: (
                f"{endpoint!r} received {len(matching())} "
                f"{'answered ' if answered else ''}requests, not {n}"
            ),
        )
        return matching()

    async def wait_idle(
        self, endpoint: str | None = None, *, timeout: float | None = DEFAULT_WAIT_TIMEOUT
    ) -> None:
        """Wait until no request (to ``endpoint``, or to any endpoint) is in flight.

        Useful after a client gave up on a slow request: the fake may still act on it.

        Raises:
            TimeoutError: requests still in flight after ``timeout`` seconds.
        """
        if endpoint is not None:
            check_endpoint(endpoint)

        def in_flight() -> int:
            counts = self._state.in_flight
            return counts[endpoint] if endpoint is not None else sum(counts.values())

        await self._state.wait_until(
            lambda: in_flight() == 0,
            timeout=timeout,
            what=lambda: f"{in_flight()} requests still in flight",
        )

    # -- holding answers ---------------------------------------------------------------------

    def hold(self, endpoint: str) -> None:
        """Hold requests to ``endpoint`` until ``release``: they are recorded (and counted by
        ``wait_for_calls``) but not acted on or answered. Holding a held endpoint is a no-op.
        """
        self._holds.hold(endpoint)

    def release(self, endpoint: str | None = None) -> None:
        """Let the held requests to ``endpoint`` (or to every endpoint) go on; stop holding."""
        self._holds.release(endpoint)

    @contextlib.contextmanager
    def holding(self, endpoint: str) -> Iterator[None]:
        """``hold(endpoint)`` for the ``with`` block; released on the way out, even on error."""
        self.hold(endpoint)
        try:
            yield
        finally:
            self.release(endpoint)

    # -- fault injection ---------------------------------------------------------------------

    def inject(self, endpoint: str, *faults: Fault | FaultKind) -> None:
        """Queue faults for ``endpoint``: each following request consumes one, FIFO."""
        self._faults.inject(endpoint, *faults)

    def inject_random(
        self,
        endpoint: str,
        *,
        rate: float,
        kinds: Sequence[FaultKind | Fault],
        seed: int = 0,
        retry_after: float | None = None,
        delay: float = 0.0,
    ) -> None:
        """Fault each request to ``endpoint`` with probability ``rate`` (seeded), kind at random.

        Scripted faults (``inject``) are served first. ``rate=0`` turns random faults off.
        ``retry_after`` and ``delay`` apply to the bare ``FaultKind`` entries of ``kinds``; a
        ``Fault`` entry keeps its own, e.g. ``Fault(FaultKind.SLOW, delay=1.0)`` so that only
        slow answers outlast the client timeout.
        """
        self._faults.inject_random(
            endpoint, rate=rate, kinds=kinds, seed=seed, retry_after=retry_after, delay=delay
        )

    def clear_faults(self, endpoint: str | None = None) -> None:
        """Drop pending scripted and random faults (for one endpoint, or all)."""
        self._faults.clear(endpoint)

    # -- webhooks ----------------------------------------------------------------------------

    @property
    def webhook_deliveries(self) -> list[WebhookDelivery]:
        """Every webhook attempt (and deliberate drop), in order."""
        return self._webhooks.deliveries

    @property
    def webhook_errors(self) -> list[BaseException]:
        """Exceptions that ended a delivery task (e.g. an api_key unusable as an AES key)."""
        return self._webhooks.errors

    @property
    def webhooks_pending(self) -> int:
        """How many webhook videos still have deliveries to make."""
        return self._webhooks.pending

    async def wait_webhooks(self) -> None:
        """Wait until every webhook delivery under way has finished (wrap in a timeout)."""
        await self._webhooks.wait()


async def serve_forever(
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    ready: Callable[[FakeAkoolServer], object] | None = None,
    **options: Any,
) -> None:
    """Run a ``FakeAkoolServer`` until cancelled (for ``akool-async fake-server``).

    Args:
        host, port: where to listen.
        ready: called with the started server, e.g. to print its URL and key.
        options: any other ``FakeAkoolServer`` keyword argument.
    """
    async with FakeAkoolServer(host=host, port=port, **options) as server:
        if ready is not None:
            ready(server)
        await asyncio.Event().wait()
