"""The one create pipeline: every request that makes (and bills) videos goes through here.

A create takes a slot of the client's create gate (``max_concurrent_creates``, the one limit
on creates in flight), reserves its estimated cost in the credit budget, and is sent once:
never resent when AKOOL may have acted. Its answer becomes a ``Batch`` (or one handle for the
single endpoints), and the budget is settled with what AKOOL charged.

``CreateRun`` groups the batch creates of one ``generate_many`` or bulk job. It shares a stop
flag, and sorts each outcome into created, refused, unknown (sent, no usable answer: never
resent) or not sent. Observers, registered once when the run is made (the bulk journal,
progress), see each create right before it leaves and each outcome the moment it is known.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Any, Final, Generic, TypeVar

import attrs

from ._budget import CreditBudget, Spend, price_key
from ._catalog import ModelCatalog
from ._cluster import Cluster
from ._constants import DEFAULT_TIMEOUT, MAX_BATCH_COUNT
from ._convert import structure
from ._errors import (
    AkoolError,
    AkoolResponseError,
    AuthenticationError,
    BudgetExceededError,
    ClientClosedError,
    CreateOutcomeUnknownError,
    InsufficientCreditsError,
    PermissionDeniedError,
)
from ._models import Video, is_video_id
from ._polling import Poller, TaskHandle
from ._pricing import PriceKey
from ._requests import VideoRequest, check_unpriced
from ._settings import NO_OPTIONS, USE_CLIENT_DEFAULT, RequestOptions, TimeoutArg
from ._transport import Transport

logger = logging.getLogger("akool_async")

_BASE: Final = "/api/open/v4/image2Video"
BATCH_PATH: Final = f"{_BASE}/createBySourcePrompt/batch"

#: After one of these, no further create can succeed: a run stops sending.
STOPS_ALL: Final = (
    AuthenticationError,
    BudgetExceededError,
    InsufficientCreditsError,
    PermissionDeniedError,
)

_Tag = TypeVar("_Tag")


def plan_batches(count: int, max_count: int | None = None) -> list[int]:
    """Split ``count`` videos into batch sizes of at most 10 (or the model's ``max_count``)."""
    cap = MAX_BATCH_COUNT if max_count is None else max(1, min(MAX_BATCH_COUNT, max_count))
    full, rest = divmod(count, cap)
    return [cap] * full + ([rest] if rest else [])


@attrs.frozen(kw_only=True)
class Batch:
    """What one batch create made.

    Attributes:
        handles: one awaitable ``TaskHandle`` per created video, in ``successList`` order.
        videos: the ``successList`` items as ``Video`` records.
        errors: the ``errorList`` items, raw (their shape is undocumented): a batch can
            partly succeed.
        batch_id: AKOOL's batch id, when given.
        deduction_credit: credits charged for the created videos (sum).
    """

    handles: tuple[TaskHandle, ...]
    videos: tuple[Video, ...]
    errors: tuple[Mapping[str, Any], ...] = ()
    batch_id: str | None = None
    deduction_credit: float = 0.0

    @property
    def ids(self) -> tuple[str, ...]:
        """The created video ids."""
        return tuple(v.id for v in self.videos)


def created_data(envelope: Mapping[str, Any], request: Mapping[str, Any], path: str) -> Any:
    """``data`` of a create answer; an unreadable one means the outcome is unknown."""
    data = envelope.get("data")
    if not isinstance(data, Mapping):
        raise CreateOutcomeUnknownError(
            "create answered code 1000 without data: videos may exist that we cannot name",
            path=path,
            request=request,
        )
    return data


class _Gate:
    """Creates in flight: the one limit on them, and the closing flag (shared when derived)."""

    def __init__(self, max_concurrent_creates: int) -> None:
        self.slots = asyncio.Semaphore(max_concurrent_creates)
        self.closing = False
        self.in_flight = 0
        self.idle = asyncio.Event()
        self.idle.set()


class CreatePipeline:
    """The client's create gate, budget and sender (see the module docstring)."""

    def __init__(
        self,
        *,
        transport: Transport,
        poller: Poller,
        budget: CreditBudget,
        catalog: ModelCatalog,
        max_concurrent_creates: int,
        wait_timeout: TimeoutArg = USE_CLIENT_DEFAULT,
        cluster: Cluster | None = None,
        _gate: _Gate | None = None,
    ) -> None:
        self._transport = transport
        self._poller = poller
        self.budget = budget
        self.catalog = catalog
        self.max_concurrent_creates = max_concurrent_creates
        self._wait_timeout = wait_timeout
        self._cluster = cluster
        self._gate = _gate or _Gate(max_concurrent_creates)

    def derive(
        self, *, transport: Transport, poller: Poller, wait_timeout: TimeoutArg
    ) -> CreatePipeline:
        """A pipeline sharing this one's gate, budget and catalog, sending through ``transport``."""
        return CreatePipeline(
            transport=transport,
            poller=poller,
            budget=self.budget,
            catalog=self.catalog,
            max_concurrent_creates=self.max_concurrent_creates,
            wait_timeout=wait_timeout,
            cluster=self._cluster,
            _gate=self._gate,
        )

    # --- the gate -----------------------------------------------------------------------------

    async def acquire_slot(self) -> None:
        """Wait for a free create slot; pair with ``release_slot``."""
        await self._gate.slots.acquire()

    def release_slot(self) -> None:
        """Give back a slot taken with ``acquire_slot``."""
        self._gate.slots.release()

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        async with self._gate.slots:
            yield

    def _check_open(self) -> None:
        if self._gate.closing:
            raise ClientClosedError("the client is closing: the create was not sent")

    async def drain(self, timeout: float) -> None:
        """Send no more creates; wait up to ``timeout`` s for those in flight to answer.

        A create already sent may have charged credits: its ids must reach the caller
        instead of an abort.
        """
        self._gate.closing = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._gate.idle.wait()

    async def _join_cluster(self) -> None:
        """With a Redis hub: join it (the shared budget needs it) and honour slow-downs."""
        if self._cluster is not None:
            await self._cluster.start()
            await self._cluster.wait_if_slowed()

    def _track(self, video: Video, *, webhook: bool, request: VideoRequest | None) -> TaskHandle:
        return self._poller.track(
            video.id,
            status=video.status,
            webhook=webhook,
            request=request,
            wait_timeout=self._wait_timeout,
        )

    async def _send(
        self, path: str, body: Mapping[str, Any], spend: Spend, options: RequestOptions
    ) -> dict[str, Any]:
        """Send one create; from here on a failure may have been billed."""
        async with self._cluster_slot():
            # Checked again at the last moment: aclose() may have begun while this create
            # waited for its budget or a slot, and then no longer waits for it.
            self._check_open()
            spend.sent = True
            gate = self._gate
            gate.in_flight += 1
            gate.idle.clear()
            try:
                return await self._transport.request(
                    "POST", path, json=body, create=True, options=options
                )
            finally:
                gate.in_flight -= 1
                if not gate.in_flight:
                    gate.idle.set()

    def _cluster_slot(self) -> contextlib.AbstractAsyncContextManager[None]:
        if self._cluster is None:
            return contextlib.nullcontext()
        # A create lasts at most one request timeout (plus its retries' waits).
        hold_for = (self._transport.timeout or DEFAULT_TIMEOUT) + self._transport.retry.max_time
        return self._cluster.create_slot(hold_for)

    # --- batch creates ------------------------------------------------------------------------

    async def create_batch(
        self,
        request: VideoRequest,
        count: int | None = None,
        options: RequestOptions = NO_OPTIONS,
    ) -> Batch:
        """Send one batch create for ``request`` (``count`` overrides ``request.count``).

        Raises:
            AkoolValueError: bad input or a value the known model does not offer.
            BudgetExceededError: it does not fit under ``max_credits``; nothing was sent.
            CreateOutcomeUnknownError: the request was sent but no usable answer came back.
            AkoolAPIError: AKOOL refused the create.
        """
        count = request.count if count is None else count
        body = request.batch_body(count)
        self.catalog.check_request(request, count)
        async with self._slot():
            batch = await self.send_batch(request, count, body, options=options)
        assert batch is not None  # only a ``ready`` check can hold a create back
        return batch

    async def send_batch(
        self,
        request: VideoRequest,
        count: int,
        body: Mapping[str, Any],
        ready: Callable[[float], bool] | None = None,
        *,
        options: RequestOptions = NO_OPTIONS,
    ) -> Batch | None:
        """Reserve, send and read one batch create, holding a slot already.

        ``ready(estimate)`` runs once the cost is reserved, right before the request leaves:
        False holds the create back (None is returned, nothing is charged).
        """
        self._check_open()
        check_unpriced(options.extra_body)
        await self._join_cluster()
        async with self.budget.spend(price_key(request), count) as spend:
            if ready is not None and not ready(spend.estimate):
                return None
            envelope = await self._send(BATCH_PATH, body, spend, options)
            batch = self._read_batch(envelope, options.body(body), request)
            spend.created(batch.videos)
        return batch

    def _read_batch(
        self, envelope: Mapping[str, Any], body: Mapping[str, Any], request: VideoRequest
    ) -> Batch:
        data = created_data(envelope, body, BATCH_PATH)
        success = data.get("successList")
        if not isinstance(success, list):
            raise CreateOutcomeUnknownError(
                "batch create answered without a successList: videos may exist that we cannot name",
                path=BATCH_PATH,
                request=body,
            )
        errors = data.get("errorList") or []
        if not isinstance(errors, list):
            errors = [errors]  # its shape is undocumented: keep it raw, never lose successList
        videos: list[Video] = []
        ids: list[str] = []
        unreadable: AkoolResponseError | None = None
        for item in success:
            try:
                video = structure(item, Video, where=BATCH_PATH)
            except AkoolResponseError as exc:
                unreadable = exc
                # The item is broken, but a readable _id still names a real, paid video.
                video_id = item.get("_id") if isinstance(item, Mapping) else None
                if is_video_id(video_id):
                    ids.append(video_id)
            else:
                videos.append(video)
                ids.append(video.id)
        if unreadable is not None:
            # Some videos exist that we cannot fully read: never hand out a partial Batch as
            # if complete, but keep every id we could read so none of them is lost.
            raise CreateOutcomeUnknownError(
                f"batch create answer unreadable ({unreadable}): videos may exist that we "
                f"cannot name; readable ids: {ids}",
                path=BATCH_PATH,
                request=body,
                video_ids=tuple(ids),
            ) from unreadable
        webhook = request.webhook_url is not None
        handles = tuple(self._track(v, webhook=webhook, request=request) for v in videos)
        batch_id = success[0].get("batch_id") if success and isinstance(success[0], dict) else None
        return Batch(
            handles=handles,
            videos=tuple(videos),
            errors=tuple(e if isinstance(e, Mapping) else {"error": e} for e in errors),
            batch_id=str(batch_id) if batch_id is not None else None,
            deduction_credit=sum(v.deduction_credit or 0.0 for v in videos),
        )

    # --- single-video creates -----------------------------------------------------------------

    async def create_one(
        self,
        path: str,
        body: Mapping[str, Any],
        key: PriceKey,
        *,
        webhook: bool,
        options: RequestOptions = NO_OPTIONS,
    ) -> TaskHandle:
        """Send one create that makes a single video (the older endpoint, audio replacement).

        Raises:
            BudgetExceededError: it does not fit under ``max_credits``; nothing was sent.
            CreateOutcomeUnknownError: the request was sent but no usable answer came back.
            AkoolAPIError: AKOOL refused the create.
        """
        check_unpriced(options.extra_body)
        async with self._slot():
            self._check_open()
            await self._join_cluster()
            async with self.budget.spend(key, 1) as spend:
                envelope = await self._send(path, body, spend, options)
                body = options.body(body)
                data = created_data(envelope, body, path)
                try:
                    video = structure(data, Video, where=path)
                except AkoolResponseError as exc:
                    raise CreateOutcomeUnknownError(
                        f"create answer unreadable ({exc}): a video may exist that we cannot name",
                        path=path,
                        request=body,
                    ) from exc
                spend.created([video])
        return self._track(video, webhook=webhook, request=None)

    def track_id(self, video_id: str, *, webhook: bool, request: VideoRequest | None) -> TaskHandle:
        """A handle for an id a create named (its answer was otherwise unreadable)."""
        return self._poller.track(
            video_id, webhook=webhook, request=request, wait_timeout=self._wait_timeout
        )

    def run(
        self,
        observers: Iterable[CreateObserver[_Tag]] = (),
        options: RequestOptions = NO_OPTIONS,
    ) -> CreateRun[_Tag]:
        """A new run of batch creates sharing a stop flag, ``observers`` and ``options``."""
        return CreateRun(self, observers, options)


class CreateState(enum.Enum):
    """How one create of a run ended."""

    #: AKOOL answered with the videos it made (a batch may still be short: see ``missing``).
    CREATED = "created"
    #: AKOOL (or a local check) refused it: nothing was made or billed.
    REFUSED = "refused"
    #: Sent, but no usable answer came back: videos may exist. Never resent.
    UNKNOWN = "unknown"
    #: Never sent: the run stopped, the budget was exhausted, or the client was closing.
    NOT_SENT = "not_sent"


@attrs.frozen(kw_only=True, eq=False)
class CreateTicket(Generic[_Tag]):
    """One batch create about to leave, as observers see it."""

    request: VideoRequest
    count: int
    #: The credits reserved for it.
    estimate: float
    #: What the caller passed to ``CreateRun.submit`` to know it by.
    tag: _Tag


@attrs.frozen(kw_only=True, eq=False)
class CreateOutcome(Generic[_Tag]):
    """How one batch create of a run ended."""

    state: CreateState
    request: VideoRequest
    count: int
    tag: _Tag
    #: The ticket observers saw when it left; None when it never reached that point.
    ticket: CreateTicket[_Tag] | None = None
    batch: Batch | None = None
    error: AkoolError | None = None
    #: Handles of the videos it surely made (created, or named by an unreadable answer).
    handles: tuple[TaskHandle, ...] = ()

    @property
    def missing(self) -> int:
        """Videos asked for that this create did not (surely) make."""
        return max(0, self.count - len(self.handles))


class CreateObserver(Generic[_Tag]):
    """Sees a run's creates; override what you need. Called synchronously, in order."""

    def create_sending(self, ticket: CreateTicket[_Tag]) -> None:
        """The create is about to leave (journal it: a crash from here on is "unknown")."""

    def create_finished(self, outcome: CreateOutcome[_Tag]) -> None:
        """The create's outcome is known; nothing else ran since its answer arrived."""


class CreateRun(Generic[_Tag]):
    """The batch creates of one job, sharing a stop flag and observers.

    ``submit`` waits for a create slot, then sends in a task the run owns; ``join`` waits for
    every create submitted. A create whose error means no later one can succeed (bad
    credentials, no credits, the budget) stops the run: creates not yet sent end NOT_SENT.
    """

    def __init__(
        self,
        pipeline: CreatePipeline,
        observers: Iterable[CreateObserver[_Tag]],
        options: RequestOptions,
    ) -> None:
        self._pipeline = pipeline
        self._options = options
        self._observers: Sequence[CreateObserver[_Tag]] = tuple(observers)
        self._tasks: set[asyncio.Task[None]] = set()
        self._bug: BaseException | None = None
        self._stopped = False
        #: The error that stopped the run (None while running, or when stopped by its owner).
        self.stop_reason: AkoolError | None = None

    @property
    def stopped(self) -> bool:
        """True once no further create of this run will be sent."""
        return self._stopped

    @property
    def in_flight(self) -> int:
        """Creates submitted and not finished yet."""
        return len(self._tasks)

    def stop(self, reason: AkoolError | None = None) -> None:
        """Send no further create; those already sent finish."""
        self._stopped = True
        if reason is not None and self.stop_reason is None:
            self.stop_reason = reason

    async def submit(self, request: VideoRequest, count: int, tag: _Tag) -> None:
        """Wait for a create slot, then send ``count`` videos of ``request`` in the background.

        Memory stays bounded: at most ``max_concurrent_creates`` creates are in flight.
        """
        await self._pipeline.acquire_slot()
        task = asyncio.create_task(self._create(request, count, tag))
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None and self._bug is None:
            self._bug = task.exception()

    async def wait_idle(self) -> None:
        """Wait until no submitted create is in flight.

        Cancelling the wait does not cancel the creates (they may have been billed).
        """
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def join(self) -> None:
        """Wait for every submitted create; re-raise an unexpected error one of them hit."""
        await self.wait_idle()
        if self._bug is not None:
            raise self._bug

    async def _create(self, request: VideoRequest, count: int, tag: _Tag) -> None:
        try:
            outcome = await self._send(request, count, tag)
        finally:
            self._pipeline.release_slot()
        if outcome.state is not CreateState.NOT_SENT and isinstance(outcome.error, STOPS_ALL):
            self.stop(outcome.error)
        for each in self._observers:
            try:
                each.create_finished(outcome)
            except Exception as exc:
                # Its ids are paid for: say them where a person will see them, and send no
                # more creates into an observer that cannot record them.
                ids = " ".join(h.id for h in outcome.handles) or "none"
                logger.error(
                    "a create observer failed (%r); this create's %s video(s): %s",
                    exc,
                    outcome.state.value,
                    ids,
                )
                self.stop()
                if self._bug is None:
                    self._bug = exc

    async def _send(self, request: VideoRequest, count: int, tag: _Tag) -> CreateOutcome[_Tag]:
        ticket: CreateTicket[_Tag] | None = None

        def outcome(state: CreateState, **fields: Any) -> CreateOutcome[_Tag]:
            return CreateOutcome(
                state=state, request=request, count=count, tag=tag, ticket=ticket, **fields
            )

        def ready(estimate: float) -> bool:
            nonlocal ticket
            # Checked after the budget wait: a create queued when the run stopped never leaves.
            if self._stopped:
                return False
            ticket = CreateTicket(request=request, count=count, estimate=estimate, tag=tag)
            for observer in self._observers:
                observer.create_sending(ticket)
            return True

        if self._stopped:
            return outcome(CreateState.NOT_SENT, error=self.stop_reason)
        try:
            body = request.batch_body(count)
            self._pipeline.catalog.check_request(request, count)
            batch = await self._pipeline.send_batch(
                request, count, body, ready, options=self._options
            )
        except BudgetExceededError as exc:
            self.stop(exc)
            return outcome(CreateState.NOT_SENT, error=exc)
        except ClientClosedError as exc:
            return outcome(CreateState.NOT_SENT, error=exc)
        except CreateOutcomeUnknownError as exc:
            logger.warning("create of %d video(s) has an unknown outcome: %s", count, exc)
            # Ids a partly unreadable answer did name are real, paid videos: follow them.
            webhook = request.webhook_url is not None
            handles = tuple(
                self._pipeline.track_id(video_id, webhook=webhook, request=request)
                for video_id in dict.fromkeys(exc.video_ids)
            )
            return outcome(CreateState.UNKNOWN, error=exc, handles=handles)
        except AkoolError as exc:
            logger.warning("create of %d video(s) failed: %s", count, exc)
            return outcome(CreateState.REFUSED, error=exc)
        if batch is None:
            return outcome(CreateState.NOT_SENT, error=self.stop_reason)
        return outcome(CreateState.CREATED, batch=batch, handles=batch.handles)
