"""Waiting for many handles at once: ``as_completed`` and ``wait_all``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Literal, overload

from ._errors import AkoolError, WaitTimeoutError
from ._models import Video
from ._polling import TaskHandle
from ._requests import check_seconds


async def as_completed(
    handles: Iterable[TaskHandle], *, timeout: float | None
) -> AsyncIterator[TaskHandle]:
    """Yield each handle as it finishes (status 3 or 4, or an error), in completion order.

    Args:
        timeout: seconds for the whole iteration; ``None`` waits forever.

    Raises:
        WaitTimeoutError: the timeout passed with handles still pending (they stay usable).
    """
    pending = list(handles)
    if not pending:
        return
    if timeout is not None:
        check_seconds("timeout", timeout)
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    finished: asyncio.Queue[TaskHandle] = asyncio.Queue()

    def report(handle: TaskHandle) -> Callable[[], None]:
        return lambda: finished.put_nowait(handle)

    cancels = [handle.add_done_callback(report(handle)) for handle in pending]
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
                raise WaitTimeoutError(
                    f"{remaining} of {len(pending)} videos not finished after {timeout}s; "
                    "they are still tracked, wait again"
                ) from None
            yield handle
    finally:
        for cancel in cancels:
            cancel()


@overload
async def wait_all(
    handles: Sequence[TaskHandle],
    *,
    timeout: float | None,
    return_exceptions: Literal[False] = ...,
) -> list[Video]: ...
@overload
async def wait_all(
    handles: Sequence[TaskHandle],
    *,
    timeout: float | None,
    return_exceptions: Literal[True],
) -> list[Video | AkoolError]: ...
async def wait_all(
    handles: Sequence[TaskHandle],
    *,
    timeout: float | None,
    return_exceptions: bool = False,
) -> list[Video] | list[Video | AkoolError]:
    """Wait for every handle; return the videos in the order of ``handles``.

    Args:
        timeout: seconds for all of them together; ``None`` waits forever.
        return_exceptions: put each handle's error (e.g. VideoFailedError) in the list
            instead of raising the first one.

    Raises:
        WaitTimeoutError: the timeout passed first; every handle stays usable.
        AkoolError: the first failure in completion order, unless ``return_exceptions``.
    """
    async for handle in as_completed(handles, timeout=timeout):
        if not return_exceptions:
            handle.result_nowait()  # raises this handle's error
    if not return_exceptions:
        return [h.result_nowait() for h in handles]
    out: list[Video | AkoolError] = []
    for handle in handles:
        error = handle.exception_nowait()
        if error is None:
            out.append(handle.result_nowait())
        elif isinstance(error, AkoolError):
            out.append(error)
        else:
            raise error
    return out
