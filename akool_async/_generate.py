"""``generate_many``: many videos from many requests, and the progress record.

``generate_many`` splits each request's ``count`` into batch calls of at most 10 (or the
model's ``max_count``), sends them through the client's create pipeline (one ``CreateRun``),
and hands out each ``TaskHandle`` the moment its batch answers. Nothing is dropped: every
create that failed, wholly or in part, is kept in ``Generation.failures`` with its request,
and a create already sent when the caller stops iterating still finishes into
``Generation.handles``.
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
)
from typing import TYPE_CHECKING, Any

import attrs

from ._creates import CreateObserver, CreateOutcome, CreateState, plan_batches
from ._errors import AkoolError, AkoolValueError
from ._models import VideoStatus
from ._polling import TaskHandle
from ._requests import VideoRequest
from ._settings import NO_OPTIONS, RequestOptions

if TYPE_CHECKING:
    from ._core import ClientCore

logger = logging.getLogger("akool_async")


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


class Generation(CreateObserver[None]):
    """A running ``generate_many``: iterate it for handles as they are created.

    ``async for handle in generation`` yields each ``TaskHandle`` as soon as its batch call
    answers; ``await generation`` creates everything and returns all handles. It runs once.
    ``failures`` lists what was not created; ``progress()`` tells where everything stands.
    """

    def __init__(
        self,
        core: ClientCore,
        requests: Iterable[VideoRequest] | AsyncIterable[VideoRequest],
        on_progress: ProgressCallback | None,
        options: RequestOptions = NO_OPTIONS,
    ) -> None:
        self._core = core
        self._requests = requests
        self._on_progress = on_progress
        self._started = False
        self._total = 0
        self._credits = 0.0
        self.handles: list[TaskHandle] = []
        self.failures: list[CreateFailure] = []
        self._notify_scheduled = False
        self._created_all = False
        self._run = core.creates.run([self], options)
        self._out: asyncio.Queue[Any] = asyncio.Queue()
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
        iterator = self._iterate()
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
            model = self._core.catalog.check(request.model_name)
        except AkoolValueError as exc:
            # One bad request (e.g. an unknown model) must not stop the others.
            self.failures.append(CreateFailure(request=request, count=request.count, error=exc))
            return []
        max_count = None if model is None else model.max_count
        return [(request, size) for size in plan_batches(request.count, max_count)]

    def create_finished(self, outcome: CreateOutcome[None]) -> None:
        """Record one create's handles and failures (called by the create run)."""
        request, count = outcome.request, outcome.count
        if outcome.state is CreateState.NOT_SENT:
            if outcome.error is None:
                return  # not sent: the caller left before this create's turn
            self.failures.append(CreateFailure(request=request, count=count, error=outcome.error))
        elif outcome.state is CreateState.CREATED:
            assert outcome.batch is not None
            self._credits += outcome.batch.deduction_credit
            if outcome.batch.errors or outcome.missing:
                self.failures.append(
                    CreateFailure(
                        request=request, count=outcome.missing, items=outcome.batch.errors
                    )
                )
        elif outcome.missing:  # refused, or unknown beyond the ids its answer named
            self.failures.append(
                CreateFailure(request=request, count=outcome.missing, error=outcome.error)
            )
        for handle in outcome.handles:
            self.handles.append(handle)
            self._out.put_nowait(handle)
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

    async def _iterate(self) -> AsyncGenerator[TaskHandle, None]:
        if self._on_progress is not None:
            # Stays subscribed after creation ends, until every video finished (see _report).
            self._unsubscribe = self._core.poller.subscribe(self._schedule_progress)
        reader = asyncio.create_task(self._read(), name="akool-async-generate")
        # Retrieved here so an error nobody awaits (the caller left) is not logged by asyncio.
        reader.add_done_callback(lambda task: task.cancelled() or task.exception())
        try:
            while True:
                item = await self._out.get()
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
            if not reader.done() or self._run.in_flight:
                # The caller left early (break, cancel, timeout). Reading their requests has
                # no effect at AKOOL, so it stops at once; creates already sent may have
                # charged credits, so they finish (shielded) and land in self.handles.
                self._run.stop()
                reader.cancel()
                if self._run.in_flight:
                    await asyncio.shield(self._run.wait_idle())

    async def _read(self) -> None:
        error: Exception | None = None
        try:
            try:
                # submit() waits for a create slot: no more creates in flight than the
                # client's cap, so memory stays proportional to it.
                async for request, count in self._jobs():
                    await self._run.submit(request, count, None)
            except Exception as exc:
                # The caller's iterable failed: stop reading; creates in flight still finish.
                error = exc
            await self._run.join()
            if error is not None:
                raise error
        finally:
            self._out.put_nowait(_DONE)


_DONE = object()
