"""The shared poller and the ``TaskHandle`` each video gets.

One poller task per client asks for every pending id together: every ``interval`` a tick
sends ``resultsByIds`` calls of at most ``max_ids_per_request`` ids, so N pending videos
cost ceil(N / 50) requests per tick, never N. A call costs the same with 1 id or 50, so
every call is filled with the ids polled longest ago, and the limit that matters is a
request budget (calls per second): when ceil(N / 50) calls do not fit it, fresh ids go
first and the oldest are thinned out. ``plan_calls`` is that decision, in one place; a rate
limit slows the whole poller down.

Failure never hangs a waiter: a permanent error (bad credentials) fails every waiting
handle, and if the poller itself dies every waiting handle receives that exception and
``AkoolClient.aclose()`` re-raises it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Mapping
from typing import Any, Final, Protocol, TypeVar

import attrs

from ._convert import read_status, structure
from ._errors import (
    AkoolAPIError,
    AkoolConnectionError,
    AkoolError,
    AkoolResponseError,
    AuthenticationError,
    ClientClosedError,
    NotFoundError,
    RateLimitError,
    UpstreamError,
    VideoFailedError,
    WaitTimeoutError,
)
from ._models import STATUS_BY_VALUE, Video, VideoStatus
from ._requests import VideoRequest, check_seconds
from ._settings import USE_CLIENT_DEFAULT, PollPolicy, TimeoutArg, resolve_timeout
from ._transport import RetryDetails, Transport

logger = logging.getLogger("akool_async")

RESULTS_PATH: Final = "/api/open/v4/image2Video/resultsByIds"
#: Webhook news kept for ids not tracked yet (oldest dropped first; polling is the backstop).
_EARLY_NEWS_LIMIT: Final = 1024
_IN_PROGRESS: Final = frozenset({VideoStatus.QUEUEING.value, VideoStatus.PROCESSING.value})
#: Errors after which the ids stay pending and polling backs off.
_TRANSIENT: Final = (AkoolConnectionError, UpstreamError, RateLimitError, AkoolResponseError)
#: A duration hint puts a video's own first poll off to this fraction of the quickest video of
#: its shape seen so far: durations vary, and a late first poll costs the user latency.
_HINT_MARGIN: Final = 0.5


@attrs.frozen(kw_only=True)
class PollerStatistics:
    """A snapshot of the poller's work (``client.poller.statistics()``).

    Attributes:
        pending: ids being tracked now.
        ticks: polling rounds run.
        requests: ``resultsByIds`` calls sent (failed ones included).
        ids_polled: ids asked for, summed over all requests.
        max_ids_per_request: the most ids one request carried.
        max_requests_per_tick: the most results calls one tick sent.
        failed_requests: results calls that ended in an error after retries.
        rate_limited: rate-limit answers seen (code 1005 or HTTP 429).
        slowdown: the current delay multiplier (1.0 when not rate limited).
        unknown_statuses: results items seen with a status other than 1-4 (each such video
            stays pending, with one warning per id, until its wait deadline).
        thinned: id-polls a tick left for later because the request budget was the limit.
        hinted: videos whose own first poll a duration hint put off (``learn_durations``).
    """

    pending: int
    ticks: int
    requests: int
    ids_polled: int
    max_ids_per_request: int
    max_requests_per_tick: int
    failed_requests: int
    rate_limited: int
    slowdown: float
    unknown_statuses: int = 0
    thinned: int = 0
    hinted: int = 0

    @property
    def mean_ids_per_request(self) -> float:
        """Average ids per results call (0.0 before the first)."""
        return self.ids_polled / self.requests if self.requests else 0.0


class Schedulable(Protocol):
    """What ``plan_calls`` reads of a pending id (times on one monotonic clock)."""

    #: Results answers seen for it so far (0: never polled, a fresh id).
    polls: int
    #: When it is due on its own: first poll, then growing by age (``PollPolicy.delay``).
    next_due: float
    #: When the poller last had news of it (tracked or polled): "polled longest ago" order.
    last_seen: float
    #: A webhook reports it: polling is only the backstop.
    webhook: bool
    #: A duration hint says it cannot plausibly be done before then (0.0: no hint).
    hint_until: float


_S = TypeVar("_S", bound=Schedulable)


def plan_calls(
    entries: Iterable[_S],
    *,
    horizon: float,
    full: bool,
    fill: bool,
    max_calls: int | None,
    ids_per_call: int,
) -> list[list[_S]]:
    """Which ids to poll now, as results calls of at most ``ids_per_call`` ids each.

    Fresh ids due by ``horizon`` (never polled, past their initial delay) go first, then
    webhook ids due for their backstop poll: these alone decide the calls of a tick that is
    not ``full``. A ``full`` tick (one per interval) also polls every other id past its
    initial delay. Beyond ``max_calls`` (the budget) the oldest are thinned out: ids due again
    by their age schedule first, most overdue first, then those polled longest ago. With
    ``fill``, room left in the last call is filled with whatever was polled longest ago
    (free: a call costs the same with 1 id or 50). Without ``fill``, only due ids are polled
    (the earlier default).
    """
    must: list[_S] = []
    overdue: list[_S] = []
    regular: list[_S] = []
    riders: list[_S] = []
    for entry in entries:
        ready = entry.hint_until <= horizon
        due = ready and entry.next_due <= horizon
        if not fill or entry.polls == 0 or entry.webhook:
            (must if due else riders).append(entry)
        elif not ready:
            riders.append(entry)
        else:
            (overdue if due else regular).append(entry)
    # Fresh ids first, so thousands of old ids never starve a new one.
    must.sort(key=lambda e: (e.polls != 0, e.next_due))
    overdue.sort(key=lambda e: e.next_due)
    regular.sort(key=lambda e: e.last_seen)
    wanted = len(must) + (len(overdue) + len(regular) if full else 0)
    calls = math.ceil(wanted / ids_per_call)
    if max_calls is not None:
        calls = min(calls, max_calls)
    order = must + overdue + regular
    if fill:
        riders.sort(key=lambda e: e.last_seen)
        order += riders
    picked = order[: calls * ids_per_call]
    return [picked[i : i + ids_per_call] for i in range(0, len(picked), ids_per_call)]


def next_wake(entries: Iterable[Schedulable], *, fill: bool, next_full: float) -> float:
    """When the next tick is wanted: a fresh or webhook id's due time, or the next full tick.

    With ``fill``, ids already polled are polled by full ticks (every interval), so only
    fresh and webhook ids wake the poller early; ``math.inf`` when nothing is pending.
    """
    wake = math.inf
    cadence = False
    for entry in entries:
        if fill and entry.polls > 0 and not entry.webhook:
            cadence = True
        else:
            wake = min(wake, max(entry.next_due, entry.hint_until))
    return min(wake, next_full) if cadence else wake


class CallBudget:
    """At most ``calls`` results calls per ``window`` seconds, counted from each answer.

    Counting from the answer rather than the send means the server sees the budget kept
    whatever the network or a busy CPU does to the timing: the next call of a slot starts
    only ``window`` after the server has finished with the previous one.
    """

    def __init__(self, policy: PollPolicy) -> None:
        budget = policy.budget()
        self._window = budget[1] if budget else 0.0
        self._slots = asyncio.Semaphore(budget[0]) if budget else None

    @contextlib.asynccontextmanager
    async def slot(self, stretch: Callable[[], float]) -> AsyncIterator[None]:
        """Hold one call's slot; it frees ``window * stretch()`` seconds after the call."""
        slots = self._slots
        if slots is None:
            yield
            return
        await slots.acquire()
        try:
            yield
        finally:
            asyncio.get_running_loop().call_later(self._window * stretch(), slots.release)


class _Entry:
    """What the poller knows about one id. Handles for the same id share one entry."""

    __slots__ = (
        "future",
        "hint_until",
        "id",
        "last_seen",
        "missing",
        "next_due",
        "odd_status_seen",
        "polls",
        "shape",
        "status",
        "tracked_at",
        "video",
        "webhook",
    )

    def __init__(
        self,
        video_id: str,
        future: asyncio.Future[Video],
        now: float,
        due: float,
        webhook: bool,
    ) -> None:
        self.id = video_id
        self.webhook = webhook
        self.future = future
        self.status: VideoStatus | None = None
        self.video: Video | None = None
        self.polls = 0
        self.missing = 0
        self.next_due = due
        self.odd_status_seen = False
        self.tracked_at = now
        self.last_seen = now
        self.hint_until = 0.0
        self.shape: tuple[str | None, str, int] | None = None


class TaskHandle:
    """One video being generated. ``await handle`` returns the finished ``Video``.

    ``await handle`` waits up to the client's ``wait_timeout``; ``handle.wait(timeout=...)``
    chooses (``None`` waits forever). A timed-out or cancelled wait leaves the video, its
    id and the other waiters untouched: await the handle again later.
    """

    __slots__ = ("_entry", "_wait_timeout", "request")

    def __init__(
        self, entry: _Entry, request: VideoRequest | None, wait_timeout: float | None
    ) -> None:
        self._entry = entry
        self._wait_timeout = wait_timeout
        #: The request this video was created from (None for a re-attached id).
        self.request = request

    @property
    def id(self) -> str:
        """The video's ``_id``: save it to re-attach later with ``image_to_video.handle(id)``."""
        return self._entry.id

    @property
    def status(self) -> VideoStatus | None:
        """The last status seen (``None`` for a re-attached id not yet polled)."""
        return self._entry.status

    @property
    def video(self) -> Video | None:
        """The finished video (or the latest webhook news), None while only polled pending."""
        return self._entry.video

    def done(self) -> bool:
        """True once the video completed or failed, or the handle failed with an error."""
        return self._entry.future.done()

    def add_done_callback(self, callback: Callable[[], object]) -> Callable[[], None]:
        """Call ``callback()`` once the handle is done; returns a function that cancels it."""

        def done(_: object) -> None:
            callback()

        future = self._entry.future
        future.add_done_callback(done)

        def cancel() -> None:
            future.remove_done_callback(done)

        return cancel

    def exception_nowait(self) -> BaseException | None:
        """The error a wait would raise, or None for a completed video.

        Raises:
            asyncio.InvalidStateError: the video is not finished yet.
        """
        return self._entry.future.exception()

    def result_nowait(self) -> Video:
        """The finished ``Video`` without waiting.

        Raises:
            asyncio.InvalidStateError: the video is not finished yet.
            VideoFailedError: the video failed (and any error a wait would raise).
        """
        return self._entry.future.result()

    async def wait(self, timeout: TimeoutArg = USE_CLIENT_DEFAULT) -> Video:
        """Wait for the video to finish.

        Args:
            timeout: seconds to wait; ``None`` waits forever; by default the client's
                ``wait_timeout``.

        Returns:
            The completed ``Video`` (status 3, ``video_url`` set).

        Raises:
            VideoFailedError: the video ended with status 4.
            WaitTimeoutError: ``timeout`` passed first; the handle stays usable.
            NotFoundError: AKOOL stopped reporting the id.
            ClientClosedError: the client was closed while waiting.
        """
        seconds = resolve_timeout(timeout, self._wait_timeout)
        if seconds is not None:
            check_seconds("timeout", seconds)
        future = self._entry.future
        if future.done():
            return future.result()
        deadline = asyncio.timeout(seconds)
        try:
            async with deadline:
                # shield: cancelling this wait must not cancel the future other waiters share.
                return await asyncio.shield(future)
        except TimeoutError:
            if not deadline.expired():
                raise
            status = self._entry.status
            raise WaitTimeoutError(
                f"video {self.id} not finished after {seconds}s (last status: "
                f"{status.name if status else 'unknown'}); it is still tracked, wait again",
                video_id=self.id,
                last_status=status,
            ) from None

    def __await__(self) -> Generator[Any, None, Video]:
        return self.wait().__await__()

    def __repr__(self) -> str:
        status = self._entry.status
        return f"<TaskHandle id={self.id} status={status.name if status else None}>"


def _resolve(entry: _Entry, video: Video) -> None:
    if entry.future.done():
        return
    if video.status is VideoStatus.COMPLETED:
        entry.future.set_result(video)
    else:
        _fail(entry, VideoFailedError(video))


def _fail(entry: _Entry, exc: BaseException) -> None:
    if not entry.future.done():
        entry.future.set_exception(exc)
        # Mark it retrieved: nobody may be awaiting this handle, and that is fine.
        entry.future.exception()


class PendingObserver(Protocol):
    """Told when an id starts or stops being pending (a cluster registers them in Redis)."""

    def pending_added(self, video_id: str, status: VideoStatus | None, webhook: bool) -> None:
        """``video_id`` is now pending (``status``: known from a create answer, or None;
        ``webhook``: a webhook reports it, so polling is its backstop only)."""

    def pending_removed(self, video_id: str) -> None:
        """``video_id`` finished or was given up."""


class Poller:
    """The one background task per client that polls every pending id together."""

    def __init__(
        self,
        transport: Transport,
        policy: PollPolicy,
        wait_timeout: float | None,
        *,
        max_pause: float,
    ) -> None:
        """Poll through ``transport``; a rate limit pauses polling for at most ``max_pause`` s."""
        self._transport = transport
        self._max_pause = max_pause
        self.policy = policy
        self.wait_timeout = wait_timeout
        self._entries: dict[str, _Entry] = {}
        self._task: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()
        self._planned_wake = math.inf
        self._not_before = 0.0
        self._slowdown = 1.0
        self._failures = 0
        self._crashed: BaseException | None = None
        self._closed = False
        self._ticks = 0
        self._requests = 0
        self._ids_polled = 0
        self._max_ids = 0
        self._max_tick_requests = 0
        self._failed_requests = 0
        self._rate_limited = 0
        self._unknown_statuses = 0
        self._thinned = 0
        self._hinted = 0
        self._budget = CallBudget(policy)
        self._next_full = 0.0
        #: The quickest video seen per shape (model, resolution, length), in seconds.
        self._quickest: dict[tuple[str | None, str, int], float] = {}
        self._listeners: list[Callable[[], None]] = []
        self._early: dict[str, Video] = {}
        self._delegated = False
        self._membership: list[PendingObserver] = []
        transport.subscribe_retries(self._on_retry)

    def observe_pending(self, observer: PendingObserver) -> None:
        """Tell ``observer`` of every id that starts or stops being pending."""
        self._membership.append(observer)

    def delegate(self, delegated: bool) -> None:
        """Stop (True) or resume (False) polling: while delegated, news arrives only through
        ``update()`` (another process polls for this one, see ``_cluster``)."""
        if self._delegated != delegated:
            self._delegated = delegated
            self._wakeup.set()

    @property
    def delegated(self) -> bool:
        """True while another process polls for this one."""
        return self._delegated

    def subscribe(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener()`` after each batch of status changes; returns an unsubscribe."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _notify(self) -> None:
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:
                # A listener's bug must not stop polling for every handle (or fail a webhook).
                logger.exception("a poller listener raised")

    # --- tracking ---------------------------------------------------------------------------

    def track(
        self,
        video_id: str,
        *,
        status: VideoStatus | None = None,
        webhook: bool = False,
        request: VideoRequest | None = None,
        wait_timeout: TimeoutArg = USE_CLIENT_DEFAULT,
    ) -> TaskHandle:
        """A handle for ``video_id``, polled until it finishes (shared with other handles).

        ``webhook``: a webhook will report this id, so polling is only the slow backstop.
        ``wait_timeout``: how long ``await handle`` waits (default: the poller's).
        On a closed client the handle comes back already failed with ClientClosedError
        (a create answered during aclose() still names its paid videos, never raises them away).
        """
        seconds = resolve_timeout(wait_timeout, self.wait_timeout)
        entry = self._entries.get(video_id)
        if entry is None:
            loop = asyncio.get_running_loop()
            now = loop.time()
            due = now + self.policy.delay(0, webhook=webhook)
            entry = _Entry(video_id, loop.create_future(), now, due, webhook)
            entry.status = status
            if request is not None:
                entry.shape = (request.model_name, request.resolution, request.video_length)
                quickest = self._quickest.get(entry.shape)
                if quickest is not None and self.policy.learn_durations:
                    entry.hint_until = now + quickest * _HINT_MARGIN
                    if entry.hint_until > due:
                        self._hinted += 1
                        due = entry.hint_until
            if self._closed or self._crashed is not None:
                _fail(entry, self._crashed or ClientClosedError("the client is closed"))
                return TaskHandle(entry, request, seconds)
            self._entries[video_id] = entry
            for observer in self._membership:
                observer.pending_added(entry.id, entry.status, entry.webhook)
            early = self._early.pop(video_id, None)
            if early is not None:
                self._apply(entry, early, loop.time())
                if entry.future.done():
                    return TaskHandle(entry, request, seconds)
            if due < self._planned_wake:
                self._wakeup.set()
            if self._task is None:
                self._task = asyncio.create_task(self._run(), name="akool-async-poller")
        return TaskHandle(entry, request, seconds)

    def update(self, video: Video) -> bool:
        """Apply news about a video from outside the poller (a webhook).

        Returns True when a tracked handle finished because of it. A status never goes
        backwards: an older status arriving late is ignored.
        """
        entry = self._entries.get(video.id)
        if entry is None:
            # A webhook can beat the create's own answer: keep the news for track() to apply.
            self._early[video.id] = video
            while len(self._early) > _EARLY_NEWS_LIMIT:
                del self._early[next(iter(self._early))]
            return False
        self._apply(entry, video, asyncio.get_running_loop().time())
        self._notify()
        return entry.future.done()

    def give_up(self, video_id: str, exc: BaseException) -> bool:
        """Fail the handles of ``video_id`` with ``exc`` (another process learned that AKOOL
        will not report it); True when a tracked handle finished because of it."""
        entry = self._entries.get(video_id)
        if entry is None:
            return False
        self._finish(entry, exc)
        self._notify()
        return True

    def pending_ids(self) -> list[str]:
        """The ids being polled now."""
        return list(self._entries)

    def hinted_until(self, video_id: str) -> float | None:
        """Unix time before which a duration hint says ``video_id`` cannot be done, or None.

        For a hub's leader, which polls in this poller's stead.
        """
        entry = self._entries.get(video_id)
        if entry is None or entry.hint_until <= 0:
            return None
        return time.time() + entry.hint_until - asyncio.get_running_loop().time()

    def statistics(self) -> PollerStatistics:
        """A snapshot of the work done so far."""
        return PollerStatistics(
            pending=len(self._entries),
            ticks=self._ticks,
            requests=self._requests,
            ids_polled=self._ids_polled,
            max_ids_per_request=self._max_ids,
            max_requests_per_tick=self._max_tick_requests,
            failed_requests=self._failed_requests,
            rate_limited=self._rate_limited,
            slowdown=self._slowdown,
            unknown_statuses=self._unknown_statuses,
            thinned=self._thinned,
            hinted=self._hinted,
        )

    async def aclose(self) -> None:
        """Stop polling; fail pending handles with ClientClosedError; re-raise a crash."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                # Our own cancel() finished the task; a cancel of aclose() itself re-raises.
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
        self._fail_all(ClientClosedError("the client was closed while this video was pending"))
        # Raised once: a second aclose() is a no-op, as closing should be.
        crashed, self._crashed = self._crashed, None
        if crashed is not None:
            raise crashed

    # --- the loop ---------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                if not self._entries or self._delegated:
                    self._planned_wake = math.inf
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                now = loop.time()
                fill = self.policy.fill_calls
                wake = next_wake(self._entries.values(), fill=fill, next_full=self._next_full)
                start = max(wake, self._not_before)
                if start > now:
                    self._planned_wake = start
                    self._wakeup.clear()
                    # Jitter only shortens a sleep: polling a bit early costs nothing, late would
                    # add latency. It still keeps many clients from polling in lockstep.
                    sleep = (start - now) * (1 - random.uniform(0, self.policy.jitter))
                    try:
                        async with asyncio.timeout(sleep):
                            await self._wakeup.wait()
                    except TimeoutError:
                        pass
                    continue
                await self._tick(loop.time())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Never log-and-drop: every waiter gets the exception, aclose() re-raises it.
            crash = exc.exceptions[0] if isinstance(exc, ExceptionGroup) else exc
            logger.error("the akool_async poller crashed: %r", crash)
            self._crashed = crash
            try:
                self._fail_all(crash)
            except Exception:
                # _fail_all failed every waiter before notifying listeners; a listener that
                # raises again (often the same bug) must not end this task with an exception
                # nobody retrieves (asyncio would log it at garbage collection).
                logger.exception("a poller listener failed while the crash was reported")

    async def _tick(self, now: float) -> None:
        policy = self.policy
        # Ids due within half an interval join this tick, so ids created close together
        # share requests; a full tick is pulled forward by as much.
        horizon = now + policy.interval / 2
        full = policy.fill_calls and self._next_full <= horizon
        max_calls = policy.calls_per_tick()
        chunks = plan_calls(
            self._entries.values(),
            horizon=horizon,
            full=full,
            fill=policy.fill_calls,
            max_calls=max_calls,
            ids_per_call=policy.max_ids_per_request,
        )
        if full:
            self._next_full = now + policy.interval * self._slowdown
            if max_calls is not None and len(chunks) == max_calls:
                # Left for later: the pending ids past their first delay that did not fit.
                waiting = sum(
                    1
                    for e in self._entries.values()
                    if (e.polls > 0 and not e.webhook) or e.next_due <= horizon
                )
                self._thinned += max(0, waiting - sum(map(len, chunks)))
        if not chunks:
            return
        self._ticks += 1
        requests_before = self._requests
        rate_limited_before = self._rate_limited
        limit = asyncio.Semaphore(self.policy.max_concurrent_requests)
        try:
            async with asyncio.TaskGroup() as group:
                for chunk in chunks:
                    group.create_task(self._poll_chunk(chunk, limit, now))
        finally:
            self._max_tick_requests = max(self._max_tick_requests, self._requests - requests_before)
            self._notify()
        if self._rate_limited == rate_limited_before:
            self._slowdown = max(1.0, self._slowdown / 2)

    async def _poll_chunk(self, chunk: list[_Entry], limit: asyncio.Semaphore, tick: float) -> None:
        """Poll ``chunk``; when AKOOL refuses it as a whole, find out whether one id is why.

        One bad id (say, one AKOOL no longer lets us see) must not sink the healthy ids it
        shares a request with, so a refused chunk is halved and both halves asked again.
        If only one half is refused, the search goes on inside it until the culprit stands
        alone: about 2*log2(n) extra requests. If both are refused, AKOOL refuses these
        requests whatever they hold (a systemic 1003, say): the whole chunk takes the error,
        as without the search, for at most two extra requests.
        """
        refused = await self._poll(chunk, limit, tick)
        while refused is not None:
            if len(chunk) == 1:
                self._refused(chunk, refused)
                return
            half = len(chunk) // 2
            halves = (chunk[:half], chunk[half:])
            first, second = [await self._poll(part, limit, tick) for part in halves]
            if first is not None and second is not None:
                self._refused(chunk, refused)
                return
            chunk, refused = (halves[0], first) if first is not None else (halves[1], second)

    def _refused(self, chunk: list[_Entry], exc: AkoolAPIError) -> None:
        if isinstance(exc, NotFoundError):
            self._missing(chunk, asyncio.get_running_loop().time())
        else:
            # AKOOL refused these ids for good (e.g. 1003, 1009 no permission).
            for entry in chunk:
                self._finish(entry, exc)

    async def _poll(
        self, chunk: list[_Entry], limit: asyncio.Semaphore, tick: float
    ) -> AkoolAPIError | None:
        """One results call for ``chunk``; returns AKOOL's refusal of the whole request."""
        async with limit, self._budget.slot(lambda: self._slowdown):
            # An entry may have finished (webhook) while this chunk waited for its turn.
            chunk = [e for e in chunk if not e.future.done()]
            if not chunk:
                return None
            self._requests += 1
            self._ids_polled += len(chunk)
            self._max_ids = max(self._max_ids, len(chunk))
            error: AkoolError | None = None
            try:
                envelope = await self._transport.request(
                    "POST",
                    RESULTS_PATH,
                    # One comma-separated string, not a list (akool-api.md §3).
                    json={"_ids": ",".join([e.id for e in chunk])},
                )
                items = result_items(envelope)
            except AkoolError as exc:
                self._failed_requests += 1
                error = exc
        if error is not None:
            return self._handle_error(chunk, error)
        self._failures = 0
        # Schedule from the tick's start, not from this answer: a tick of many requests must
        # not stretch every id's period by its own duration.
        now = tick
        by_id: dict[str, Mapping[str, Any]] = {}
        for item in items:
            if isinstance(item, Mapping) and isinstance(item.get("_id"), str):
                by_id[item["_id"]] = item
        for entry in chunk:
            item = by_id.get(entry.id)
            if item is None:
                self._missing([entry], now)
                continue
            entry.missing = 0
            wire_status = item.get("status")
            # Type first: a list or dict status is unhashable and would crash the poller.
            if type(wire_status) is int and wire_status in _IN_PROGRESS:
                self._in_progress(entry, STATUS_BY_VALUE[wire_status], now)
                continue
            status = read_status(wire_status)
            if status is None:
                self._unknown_status(entry, wire_status, now)
            elif not status.is_terminal:
                self._in_progress(entry, status, now)
            else:
                try:
                    if status is VideoStatus.COMPLETED and not _has_url(entry, item):
                        # AKOOL said completed before filling video_url in (the webhook path
                        # waits likewise): keep polling; the wait deadline still bounds it.
                        # Reported as processing, so nothing counts it as finished yet.
                        self._in_progress(entry, VideoStatus.PROCESSING, now)
                        continue
                    video = structure(item, Video, where=RESULTS_PATH)
                except AkoolResponseError as exc:
                    self._finish(entry, exc)
                    continue
                self._apply(entry, video, now)
        return None

    def _in_progress(self, entry: _Entry, status: VideoStatus, now: float) -> None:
        # Still running: keep only the status. Building a Video per poll would cost CPU and
        # ~1 KiB per pending id for nothing (akool-api.md §5 shapes stay raw).
        if entry.status is None or status >= entry.status:
            entry.status = status
        self._reschedule(entry, now)

    def _unknown_status(self, entry: _Entry, wire_status: object, now: float) -> None:
        # A status AKOOL may add later (or a garbled one) must not fail a video that may yet
        # complete: keep polling, and say so once per id rather than once per poll.
        self._unknown_statuses += 1
        if not entry.odd_status_seen:
            entry.odd_status_seen = True
            logger.warning(
                "video %s has an unknown status %.40r; it stays pending until its wait deadline",
                entry.id,
                wire_status,
            )
        self._reschedule(entry, now)

    def _apply(self, entry: _Entry, video: Video, now: float) -> None:
        if entry.future.done():
            return
        if entry.status is not None and video.status < entry.status:
            return
        entry.status = video.status
        entry.video = video
        if video.status.is_terminal:
            if video.status is VideoStatus.COMPLETED:
                self._learn(entry, video, now)
            self._forget(entry)
            _resolve(entry, video)
        else:
            self._reschedule(entry, now)

    def _learn(self, entry: _Entry, video: Video, now: float) -> None:
        """Remember how long a video of this shape took (the duration hint)."""
        if entry.shape is None:
            return
        if video.create_time is not None and video.update_time is not None:
            # AKOOL's own clock: free of our polling lag.
            took = (video.update_time - video.create_time) / 1000
        else:
            took = now - entry.tracked_at
        if took > 0:
            known = self._quickest.get(entry.shape, math.inf)
            self._quickest[entry.shape] = min(known, took)

    def _reschedule(self, entry: _Entry, now: float) -> None:
        entry.polls += 1
        entry.last_seen = now
        entry.next_due = (
            now + self.policy.delay(entry.polls, webhook=entry.webhook) * self._slowdown
        )

    def _missing(self, chunk: Iterable[_Entry], now: float) -> None:
        for entry in chunk:
            if entry.future.done():  # finished meanwhile (a webhook): nothing is missing
                continue
            entry.missing += 1
            if entry.missing > self.policy.missing_polls:
                self._finish(
                    entry,
                    NotFoundError(
                        f"video {entry.id} is unknown to AKOOL (missing from "
                        f"{entry.missing} results answers in a row)",
                        method="POST",
                        path=RESULTS_PATH,
                    ),
                )
            else:
                self._reschedule(entry, now)

    def _finish(self, entry: _Entry, exc: BaseException) -> None:
        self._forget(entry)
        _fail(entry, exc)

    def _forget(self, entry: _Entry) -> None:
        # By identity: the id may have been tracked anew since this entry was polled.
        if self._entries.get(entry.id) is entry:
            del self._entries[entry.id]
            for observer in self._membership:
                observer.pending_removed(entry.id)

    def _fail_all(self, exc: BaseException) -> None:
        entries, self._entries = self._entries, {}
        for entry in entries.values():
            _fail(entry, exc)
            for observer in self._membership:
                observer.pending_removed(entry.id)
        if entries:
            self._notify()

    def _on_retry(self, details: RetryDetails) -> None:
        # A rate limit on a results call slows the whole poller down, not just that call.
        if details.path == RESULTS_PATH:
            self._note_retry(details.error)

    def _note_retry(self, exc: BaseException) -> None:
        if isinstance(exc, RateLimitError):
            self._rate_limited += 1
            self._slowdown = min(self.policy.max_slowdown, self._slowdown * 2)
            wait = exc.retry_after if exc.retry_after is not None else self.policy.interval
            # Never sit through more than the transport would: a Retry-After of hours (or
            # inf) would otherwise stop polling for every handle, silently.
            wait = min(wait, self._max_pause)
            self._not_before = max(
                self._not_before, asyncio.get_running_loop().time() + wait * self._slowdown
            )

    def _handle_error(self, chunk: list[_Entry], exc: AkoolError) -> AkoolAPIError | None:
        """React to a failed results call; returns AKOOL's refusal for the caller to settle."""
        now = asyncio.get_running_loop().time()
        if isinstance(exc, AuthenticationError):
            # Bad credentials or a banned account: no later poll can succeed.
            logger.error("polling stopped: %s", exc)
            self._fail_all(exc)
        elif isinstance(exc, _TRANSIENT):
            if isinstance(exc, RateLimitError):
                self._note_retry(exc)
            self._failures += 1
            backoff = min(
                self.policy.max_interval, self.policy.interval * 2 ** min(self._failures, 16)
            )
            logger.warning(
                "results call failed (%s); %d ids stay pending, next try in %.1fs",
                exc,
                len(chunk),
                backoff,
            )
            self._not_before = max(self._not_before, now + backoff)
            for entry in chunk:
                entry.next_due = max(entry.next_due, now + backoff)
        elif isinstance(exc, AkoolAPIError):
            # AKOOL refused the whole request (1003, 1008, 1009, ...): see _poll_chunk.
            logger.warning("results call for %d ids refused: %s", len(chunk), exc)
            return exc
        else:
            raise exc
        return None


def _has_url(entry: _Entry, item: Mapping[str, Any]) -> bool:
    """Whether a completed item carries its url: False for a blank one (not there yet).

    Raises:
        AkoolResponseError: ``video_url`` is missing or not a string, which no later poll
            is known to repair.
    """
    url = item.get("video_url")
    if not isinstance(url, str):
        raise AkoolResponseError(
            f"video {entry.id} is completed but has no usable video_url ({url!r:.80})",
            method="POST",
            path=RESULTS_PATH,
            body=dict(item),
        )
    return bool(url.strip())


def result_items(envelope: Mapping[str, Any]) -> list[Any]:
    """``data.result`` of a resultsByIds answer; AkoolResponseError when it is not a list."""
    data = envelope.get("data")
    result = data.get("result") if isinstance(data, Mapping) else None
    if not isinstance(result, list):
        raise AkoolResponseError(
            "resultsByIds answered without a data.result list", method="POST", path=RESULTS_PATH
        )
    return result
