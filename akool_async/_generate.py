"""Bulk generation: ``generate_many``, ``as_completed``, ``wait_all`` and the progress record.

``generate_many`` splits each request's ``count`` into batch calls of at most 10 (or the
model's ``max_count``), runs them under the client's create cap, and hands out each
``TaskHandle`` the moment its batch answers. Nothing is dropped: every create that failed,
wholly or in part, is kept in ``Generation.failures`` with its request, and a create already
sent when the caller stops iterating still finishes into ``Generation.handles``.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
    Sequence,
)
from typing import TYPE_CHECKING, Any, Literal, overload

import attrs

from ._errors import (
    AkoolError,
    AkoolTimeoutError,
    AkoolValueError,
    AuthenticationError,
    BudgetExceededError,
    CreateOutcomeUnknownError,
    InsufficientCreditsError,
    PermissionDeniedError,
)
from ._models import Video, VideoRequest, VideoStatus, check_seconds, plan_batches
from ._polling import DEFAULT, TaskHandle, _Default

if TYPE_CHECKING:
    from ._client import AkoolClient

logger = logging.getLogger("akool_async")

#: After one of these, no further create can succeed: the rest are recorded, not sent.
_STOPS_ALL = (
    AuthenticationError,
    BudgetExceededError,
    InsufficientCreditsError,
    PermissionDeniedError,
)


@attrs.frozen(kw_only=True)
class Progress:
    """Where a set of videos stands.

    Attributes:
        total: videos asked for (the sum of the requests' counts seen so far).
        created: videos AKOOL created (handles handed out).
        queueing, processing, completed, failed: created videos by last known status;
            ``failed`` also counts handles that ended in an error (e.g. not found).
        create_failed: videos that were asked for but not created (see ``failures``).
        credits: credits charged for the created videos (``deduction_credit``).
    """

    total: int = 0
    created: int = 0
    queueing: int = 0
    processing: int = 0
    completed: int = 0
    failed: int = 0
    create_failed: int = 0
    credits: float = 0.0

    @property
    def finished(self) -> int:
        """Videos that will not change any more (completed, failed, or never created)."""
        return self.completed + self.failed + self.create_failed

    @classmethod
    def of(cls, handles: Iterable[TaskHandle], **counts: Any) -> Progress:
        """Count ``handles`` by status (extra fields such as ``total`` pass through)."""
        by_status = dict.fromkeys(VideoStatus, 0)
        errored = created = 0
        for handle in handles:
            created += 1
            status = handle.status
            if handle.done() and (status is None or not status.is_terminal):
                errored += 1  # ended in an error (not found, client closed, ...)
            else:
                # A re-attached id not yet polled has no status: count it as queueing.
                by_status[status or VideoStatus.QUEUEING] += 1
        counts.setdefault("total", created)
        return cls(
            created=created,
            queueing=by_status[VideoStatus.QUEUEING],
            processing=by_status[VideoStatus.PROCESSING],
            completed=by_status[VideoStatus.COMPLETED],
            failed=by_status[VideoStatus.FAILED] + errored,
            **counts,
        )


@attrs.frozen(kw_only=True)
class CreateFailure:
    """Videos of one request that were not created.

    Attributes:
        request: the request they belong to.
        count: how many of its videos this failure covers.
        error: the error of the whole batch call (None when AKOOL reported ``items``).
        items: ``errorList`` items AKOOL returned for a partly failed batch, raw.
    """

    request: VideoRequest
    count: int
    error: AkoolError | None = None
    items: tuple[Any, ...] = ()


ProgressCallback = Callable[[Progress], object]


class Generation:
    """A running ``generate_many``: iterate it for handles as they are created.

    ``async for handle in generation`` yields each ``TaskHandle`` as soon as its batch call
    answers; ``await generation`` creates everything and returns all handles. It runs once.
    ``failures`` lists what was not created; ``progress()`` tells where everything stands.
    """

    def __init__(
        self,
        client: AkoolClient,
        requests: Iterable[VideoRequest] | AsyncIterable[VideoRequest],
        on_progress: ProgressCallback | None,
    ) -> None:
        self._client = client
        self._requests = requests
        self._on_progress = on_progress
        self._started = False
        self._total = 0
        self._credits = 0.0
        self.handles: list[TaskHandle] = []
        self.failures: list[CreateFailure] = []
        self._stop: AkoolError | None = None
        self._notify_scheduled = False
        self._created_all = False
        self._stopping = False
        self._in_flight: set[asyncio.Task[None]] = set()
        self._bug: BaseException | None = None
        # Weak: a strong reference would keep Python from finalizing the iterator after a
        # `break`, and so from stopping the creates.
        self._iterator: weakref.ref[AsyncGenerator[TaskHandle, None]] | None = None
        self._unsubscribe: Callable[[], None] = lambda: None

    def progress(self) -> Progress:
        """A snapshot of the videos of this generation."""
        return Progress.of(
            self.handles,
            total=self._total,
            create_failed=sum(f.count for f in self.failures),
            credits=self._credits,
        )

    def __aiter__(self) -> AsyncIterator[TaskHandle]:
        if self._started:
            raise RuntimeError("a Generation runs once; call generate_many() again")
        self._started = True
        iterator = self._run()
        self._iterator = weakref.ref(iterator)
        return iterator

    def __await__(self) -> Any:
        return self._collect().__await__()

    async def _collect(self) -> list[TaskHandle]:
        async for _ in self:
            pass
        return self.handles

    def _schedule_progress(self) -> None:
        # Many handles change in one poller tick: report once per tick, not once per handle.
        if self._on_progress is None or self._notify_scheduled:
            return
        self._notify_scheduled = True
        asyncio.get_running_loop().call_soon(self._report)

    def _report(self) -> None:
        self._notify_scheduled = False
        progress = self.progress()
        if self._created_all and progress.finished >= progress.total:
            self._unsubscribe()
        if self._on_progress is not None:
            try:
                self._on_progress(progress)
            except Exception:
                # A broken progress callback must not kill video creation or lose ids.
                logger.exception("on_progress callback raised")

    async def _jobs(self) -> AsyncIterator[tuple[VideoRequest, int]]:
        if isinstance(self._requests, AsyncIterable):
            async for request in self._requests:
                for job in self._split(request):
                    yield job
        else:
            for request in self._requests:
                for job in self._split(request):
                    yield job

    def _split(self, request: object) -> list[tuple[VideoRequest, int]]:
        if not isinstance(request, VideoRequest):
            raise AkoolValueError(
                f"generate_many takes VideoRequest objects, got {type(request).__name__}"
            )
        self._total += request.count
        try:
            model = self._client.models.check(request.model_name)
        except AkoolValueError as exc:
            # One bad request (e.g. an unknown model) must not stop the others.
            self.failures.append(CreateFailure(request=request, count=request.count, error=exc))
            return []
        max_count = None if model is None else model.max_count
        return [(request, size) for size in plan_batches(request.count, max_count)]

    def _refuse_if_stopping(self, body: object) -> None:
        # Runs inside the client's create slot, right before the request is written: a create
        # queued when the caller left is never sent.
        if self._stopping:
            raise _Stopped

    async def _create(self, request: VideoRequest, count: int, out: asyncio.Queue[Any]) -> None:
        if self._stop is not None:
            self.failures.append(CreateFailure(request=request, count=count, error=self._stop))
            return
        handles: tuple[TaskHandle, ...] = ()
        try:
            batch = await self._client.image_to_video.create_from(
                request, count, before_send=self._refuse_if_stopping
            )
        except _Stopped:
            return  # not sent: the caller left before this create's turn
        except CreateOutcomeUnknownError as exc:
            logger.warning("create of %d video(s) has an unknown outcome: %s", count, exc)
            # Ids a partly unreadable answer did name are real, paid videos: follow them.
            handles = tuple(
                self._client.poller.track(
                    video_id, webhook=request.webhook_url is not None, request=request
                )
                for video_id in exc.video_ids
            )
            if len(handles) < count:
                self.failures.append(
                    CreateFailure(request=request, count=count - len(handles), error=exc)
                )
        except AkoolError as exc:
            logger.warning("create of %d video(s) failed: %s", count, exc)
            self.failures.append(CreateFailure(request=request, count=count, error=exc))
            if isinstance(exc, _STOPS_ALL):
                self._stop = exc
        else:
            self._credits += batch.deduction_credit
            handles = batch.handles
            if batch.errors or len(batch.handles) < count:
                self.failures.append(
                    CreateFailure(
                        request=request, count=count - len(batch.handles), items=batch.errors
                    )
                )
        for handle in handles:
            self.handles.append(handle)
            out.put_nowait(handle)
        self._schedule_progress()

    async def aclose(self) -> None:
        """Stop creating: no new create is sent; creates already sent finish into ``handles``.

        ``break`` out of ``async for`` gets the same, once Python finalizes the iterator;
        call this (or use ``contextlib.aclosing``) to have it happen at once.
        """
        iterator = self._iterator() if self._iterator is not None else None
        if iterator is not None:
            await iterator.aclose()
        self._started = True

    async def _run(self) -> AsyncGenerator[TaskHandle, None]:
        out: asyncio.Queue[Any] = asyncio.Queue()
        if self._on_progress is not None:
            # Stays subscribed after creation ends, until every video finished (see _report).
            self._unsubscribe = self._client.poller.subscribe(self._schedule_progress)
        reader = asyncio.create_task(self._read(out), name="akool-async-generate")
        # Retrieved here so an error nobody awaits (the caller left) is not logged by asyncio.
        reader.add_done_callback(lambda task: task.cancelled() or task.exception())
        try:
            while True:
                item = await out.get()
                if item is _DONE:
                    break
                yield item
            # Surface an error from the caller's iterable instead of ending quietly.
            await reader
            self._created_all = True
            self._schedule_progress()
        finally:
            if not self._created_all:
                self._unsubscribe()
            if not reader.done() or self._in_flight:
                # The caller left early (break, cancel, timeout). Reading their requests has
                # no effect at AKOOL, so it stops at once; creates already sent may have
                # charged credits, so they finish (shielded) and land in self.handles.
                self._stopping = True
                reader.cancel()
                if self._in_flight:
                    await asyncio.shield(asyncio.wait(set(self._in_flight)))

    async def _read(self, out: asyncio.Queue[Any]) -> None:
        error: Exception | None = None
        # No more creates in flight than the client's cap: memory stays proportional to it,
        # and after a stopping error (credits, auth) no queued create is left to send.
        slots = asyncio.Semaphore(self._client.max_concurrent_creates)

        def finished(task: asyncio.Task[None]) -> None:
            self._in_flight.discard(task)
            slots.release()
            if not task.cancelled() and task.exception() is not None:
                self._bug = self._bug or task.exception()

        try:
            try:
                async for request, count in self._jobs():
                    await slots.acquire()
                    if self._stopping:
                        break
                    task = asyncio.create_task(self._create(request, count, out))
                    self._in_flight.add(task)
                    task.add_done_callback(finished)
            except Exception as exc:
                # The caller's iterable failed: stop reading; creates in flight still finish.
                error = exc
            if self._in_flight:
                # asyncio.wait, not gather: if this task is cancelled the creates go on.
                await asyncio.wait(set(self._in_flight))
            if self._bug is not None:
                raise self._bug
            if error is not None:
                raise error
        finally:
            out.put_nowait(_DONE)


class _Stopped(Exception):
    """The caller stopped the generation before this create was sent."""


_DONE = object()


async def as_completed(
    handles: Iterable[TaskHandle], *, timeout: float | _Default | None = DEFAULT
) -> AsyncIterator[TaskHandle]:
    """Yield each handle as it finishes (status 3 or 4, or an error), in completion order.

    Args:
        timeout: seconds for the whole iteration; ``None`` waits forever; by default the
            client's ``wait_timeout``.

    Raises:
        AkoolTimeoutError: the timeout passed with handles still pending (they stay usable).
    """
    pending = list(handles)
    if not pending:
        return
    seconds = pending[0]._poller.wait_timeout if isinstance(timeout, _Default) else timeout
    if seconds is not None:
        check_seconds("timeout", seconds)
    loop = asyncio.get_running_loop()
    deadline = None if seconds is None else loop.time() + seconds
    finished: asyncio.Queue[TaskHandle] = asyncio.Queue()
    callbacks = []
    for handle in pending:

        def done(_: object, handle: TaskHandle = handle) -> None:
            finished.put_nowait(handle)

        handle._entry.future.add_done_callback(done)
        callbacks.append((handle, done))
    try:
        for remaining in range(len(pending), 0, -1):
            if not finished.empty():
                # Many handles finish in one poller tick: no deadline timer needed for those.
                yield finished.get_nowait()
                continue
            try:
                left = None if deadline is None else max(0.0, deadline - loop.time())
                async with asyncio.timeout(left):
                    handle = await finished.get()
            except TimeoutError:
                raise AkoolTimeoutError(
                    f"{remaining} of {len(pending)} videos not finished after {seconds}s; "
                    "they are still tracked, wait again"
                ) from None
            yield handle
    finally:
        for handle, done in callbacks:
            handle._entry.future.remove_done_callback(done)


@overload
async def wait_all(
    handles: Sequence[TaskHandle],
    *,
    timeout: float | _Default | None = ...,
    return_exceptions: Literal[False] = ...,
) -> list[Video]: ...
@overload
async def wait_all(
    handles: Sequence[TaskHandle],
    *,
    timeout: float | _Default | None = ...,
    return_exceptions: Literal[True],
) -> list[Video | AkoolError]: ...
async def wait_all(
    handles: Sequence[TaskHandle],
    *,
    timeout: float | _Default | None = DEFAULT,
    return_exceptions: bool = False,
) -> list[Video] | list[Video | AkoolError]:
    """Wait for every handle; return the videos in the order of ``handles``.

    Args:
        timeout: seconds for all of them together; ``None`` waits forever.
        return_exceptions: put each handle's error (e.g. VideoFailedError) in the list
            instead of raising the first one.

    Raises:
        AkoolTimeoutError: the timeout passed first; every handle stays usable.
        AkoolError: the first failure in completion order, unless ``return_exceptions``.
    """
    async for handle in as_completed(handles, timeout=timeout):
        if not return_exceptions:
            handle.result_nowait()  # raises this handle's error
    if not return_exceptions:
        return [h.result_nowait() for h in handles]
    out: list[Video | AkoolError] = []
    for handle in handles:
        error = handle._entry.future.exception()
        if error is None:
            out.append(handle.result_nowait())
        elif isinstance(error, AkoolError):
            out.append(error)
        else:
            raise error
    return out
