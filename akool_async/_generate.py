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
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal, overload

import attrs

from ._constants import MAX_BATCH_COUNT
from ._errors import (
    AkoolError,
    AkoolTimeoutError,
    AkoolValueError,
    AuthenticationError,
    BudgetExceededError,
    InsufficientCreditsError,
    PermissionDeniedError,
)
from ._models import Video, VideoRequest, VideoStatus, check_seconds
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
        return self._run()

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
        cap = MAX_BATCH_COUNT
        if model is not None and model.max_count is not None:
            cap = max(1, min(cap, model.max_count))
        full, rest = divmod(request.count, cap)
        return [(request, cap)] * full + ([(request, rest)] if rest else [])

    async def _create(self, request: VideoRequest, count: int, out: asyncio.Queue[Any]) -> None:
        if self._stop is not None:
            self.failures.append(CreateFailure(request=request, count=count, error=self._stop))
            return
        try:
            batch = await self._client.image_to_video.create_from(request, count)
        except AkoolError as exc:
            logger.warning("create of %d video(s) failed: %s", count, exc)
            self.failures.append(CreateFailure(request=request, count=count, error=exc))
            if isinstance(exc, _STOPS_ALL):
                self._stop = exc
        else:
            self._credits += batch.deduction_credit
            if batch.errors or len(batch.handles) < count:
                self.failures.append(
                    CreateFailure(
                        request=request, count=count - len(batch.handles), items=batch.errors
                    )
                )
            for handle in batch.handles:
                self.handles.append(handle)
                out.put_nowait(handle)
        self._schedule_progress()

    async def _run(self) -> AsyncIterator[TaskHandle]:
        out: asyncio.Queue[Any] = asyncio.Queue()
        if self._on_progress is not None:
            # Stays subscribed after creation ends, until every video finished (see _report).
            self._unsubscribe = self._client.poller.subscribe(self._schedule_progress)
        producer = asyncio.create_task(self._produce(out), name="akool-async-generate")
        try:
            while True:
                item = await out.get()
                if item is _DONE:
                    break
                yield item
            # Surface an error from the caller's iterable instead of ending quietly.
            await producer
            self._created_all = True
            self._schedule_progress()
        finally:
            if not self._created_all:
                self._unsubscribe()
            if not producer.done():
                # The caller left early (break, cancel, timeout). Creates already sent may
                # have charged credits: let them finish so their handles land in
                # self.handles, but start no new one. Shielded: a cancel of this wait must
                # not cancel them either.
                self._stopping = True
                await asyncio.shield(producer)

    async def _produce(self, out: asyncio.Queue[Any]) -> None:
        error: Exception | None = None
        try:
            # No more tasks than the client's create cap: memory stays proportional to the cap,
            # and after a stopping error (credits, auth) no queued task is left to send.
            slots = asyncio.Semaphore(self._client.max_concurrent_creates)
            async with asyncio.TaskGroup() as group:
                try:
                    async for request, count in self._jobs():
                        await slots.acquire()
                        if self._stopping:
                            break
                        task = group.create_task(self._create(request, count, out))
                        task.add_done_callback(lambda _: slots.release())
                except Exception as exc:
                    # The caller's iterable failed: stop pulling, but let the creates in
                    # flight finish inside the group (cancelling them would lose paid ids).
                    error = exc
            if error is not None:
                raise error
        finally:
            out.put_nowait(_DONE)


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
