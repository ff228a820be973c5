"""The credit budget behind ``AkoolClient(max_credits=...)``.

Every create reserves its estimated cost before it is sent and settles it when the answer
arrives. The cap is checked against ``charged + reserved + estimate``, so concurrent creates
cannot overshoot it together.

How the next create's cost is estimated: ``_pricing`` (the one place the pricing rules
live): the highest ``deduction_credit`` per video seen for the same price key (model,
resolution, length, audio), else AKOOL's published table, else a conservative fallback;
times the videos asked for. ``client.image_to_video.estimate_credits`` shows the same number.

When the estimate does not fit but other creates are still in flight, the create waits for
them to settle (their real price may be lower than their estimate) and checks again; it raises
``BudgetExceededError`` only when nothing is in flight and it still does not fit.

What a settled create costs: the ``deduction_credit`` of each created video (the estimate for
an item without a usable one: absent, negative or NaN), even when something fails after the
answer named them. A create refused by AKOOL, or one that never left, costs nothing; so does
one stopped by a local error while its request was built or encoded (a ``TypeError`` or
``ValueError``: the transport turns every failure after the request left into an
``AkoolError``). A create whose outcome is unknown (lost answer, cancelled mid-request) is
charged its estimate: it may have been billed, and the budget must not hand that money out
twice.

``replace_audio`` makes a new video too and goes through the same budget (priced by the
table's audio row until AKOOL has charged one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any, Final, Protocol

from ._errors import (
    AkoolAPIError,
    AkoolConnectionError,
    AkoolError,
    AkoolValueError,
    BudgetExceededError,
    ClientClosedError,
)
from ._models import Video
from ._pricing import (
    REPLACE_AUDIO,
    SINGLE,
    SINGLE_PREMIUM,
    CreditEstimate,
    PriceBook,
    PriceKey,
)
from ._pricing import price_key as _price_key
from ._requests import VideoRequest

logger = logging.getLogger("akool_async")

# Float sums of prices like 22.5 must not trip the cap by rounding noise.
_EPSILON: Final = 1e-9
#: Seconds between two looks at a shared budget whose holds elsewhere may still settle.
_SHARED_RECHECK: Final = 0.05
#: Seconds shared holds may stay unmoved before a create that does not fit gives up (a hold
#: of a crashed process never settles; a live create settles within its request timeout).
_SHARED_STALE: Final = 90.0

#: Errors after which AKOOL certainly did not create (or bill) anything.
_NOTHING_CHARGED: Final = (AkoolAPIError, AkoolConnectionError, AkoolValueError, ClientClosedError)
#: Local errors of building or encoding a request (e.g. a body json cannot encode): raised
#: before anything is written, since the transport maps every later failure to an AkoolError.
_LOCAL_ERRORS: Final = (TypeError, ValueError)


def price_key(request: VideoRequest) -> PriceKey:
    """The price key of a batch create."""
    return _price_key(
        request.model_name, request.resolution, request.video_length, request.generate_audio
    )


def single_price_key(body: Mapping[str, Any]) -> PriceKey:
    """The price key of a single (older endpoint) create body, as ``create`` validated it."""
    model = SINGLE_PREMIUM if body.get("is_premium_model") else SINGLE
    return (model, body["resolution"], body["video_length"], body["audio_type"] == 1)


def audio_price_key(audio_type: int) -> PriceKey:
    """The price key of ``replace_audio`` (the earlier video's length is not known here)."""
    return (f"{REPLACE_AUDIO}:{audio_type}", "", 0, audio_type == 1)


class Spend:
    """One create's reservation. The create reports what it made with ``created``."""

    __slots__ = ("actual", "estimate", "key", "reservation", "sent")

    def __init__(self, key: PriceKey, estimate: float, reservation: object = None) -> None:
        self.key = key
        self.estimate = estimate
        #: The shared budget's hold on ``estimate`` (None when the budget is not shared).
        self.reservation = reservation
        self.actual: list[Video] | None = None
        #: Whether the request left (set by the create pipeline right before it is written):
        #: a create that fails before that point cost nothing.
        self.sent = False

    def created(self, videos: Iterable[Video]) -> None:
        """Record the videos the create made (their ``deduction_credit`` is the real cost)."""
        self.actual = list(videos)


class SharedCredits(Protocol):
    """One atomic budget for many processes (``RedisHub.budget``)."""

    async def reserve(self, amount: float, cap: float) -> Any | None:
        """Hold ``amount`` if it fits under ``cap`` with what all processes hold and spent."""

    async def settle(self, reservation: Any, actual: float) -> bool:
        """Replace a hold by what the create really cost."""

    async def release(self, reservation: Any) -> bool:
        """Give a hold back: nothing was charged."""

    async def snapshot(self) -> Any:
        """``charged`` and ``reserved`` of every process together."""


class CreditBudget:
    """Credits charged by one client's creates, and the optional cap on them.

    With ``shared`` (a Redis hub's budget) the cap holds for every process of the namespace:
    each reservation is checked and held atomically in Redis, and settled there.
    """

    def __init__(
        self,
        max_credits: float | None,
        prices: PriceBook | None = None,
        shared: SharedCredits | None = None,
    ) -> None:
        if max_credits is not None and (
            isinstance(max_credits, bool)
            or not isinstance(max_credits, (int, float))
            # "not >= 0" rather than "< 0": NaN compares False both ways.
            or not max_credits >= 0
        ):
            raise AkoolValueError(
                f"max_credits: must be a number >= 0 or None, got {max_credits!r}"
            )
        self.max_credits = None if max_credits is None else float(max_credits)
        self.charged = 0.0
        self.reserved = 0.0
        #: What AKOOL charged so far, and the estimates built on it.
        self.prices = PriceBook() if prices is None else prices
        self._settled = asyncio.Event()
        self._shared = shared if self.max_credits is not None else None
        self._settling: set[asyncio.Task[None]] = set()
        #: Shared holds whose settlement Redis missed, with their cost: retried later.
        self._unsettled: list[tuple[Any, float]] = []
        #: Seconds a create waits on shared holds that do not move before it gives up.
        self.stale_after = _SHARED_STALE

    def estimate(self, key: PriceKey, count: int) -> float:
        """The estimated cost of ``count`` videos of ``key`` (see the module docstring)."""
        return self.quote(key, count).credits

    def quote(self, key: PriceKey, count: int) -> CreditEstimate:
        """The estimate of ``count`` videos of ``key``, with its source."""
        return self.prices.quote(key, count)

    def observe(self, key: PriceKey, unit_price: float) -> None:
        """Learn a per-video price AKOOL charged earlier (e.g. in a previous run)."""
        self.prices.observe(key, unit_price)

    @contextlib.asynccontextmanager
    async def spend(self, key: PriceKey, count: int) -> AsyncIterator[Spend]:
        """Reserve the estimated cost of a create for its duration, then settle it.

        Raises:
            BudgetExceededError: the create does not fit under ``max_credits``; nothing is sent.
        """
        spend = await self._reserve(key, count)
        try:
            yield spend
        except BaseException as exc:
            self._settle(spend, self._cost_on_error(spend, exc))
            raise
        else:
            # A create held back before it left (a stopped run) cost nothing.
            self._settle(spend, self._cost(spend) if spend.sent else 0.0)

    def _cost_on_error(self, spend: Spend, exc: BaseException) -> float:
        """What a create that raised ``exc`` may have cost."""
        if spend.actual is not None:
            # The answer named the videos it made (the failure came later): they are billed.
            return self._cost(spend)
        if not spend.sent or isinstance(exc, (*_NOTHING_CHARGED, *_LOCAL_ERRORS)):
            return 0.0
        # The outcome is unknown (CreateOutcomeUnknownError, a cancellation mid-request):
        # count it as billed so the cap never lets that money be spent twice.
        return spend.estimate

    async def _reserve(self, key: PriceKey, count: int) -> Spend:
        if self._shared is not None:
            return await self._reserve_shared(self._shared, key, count)
        while True:
            estimate = self.estimate(key, count)
            cap = self.max_credits
            if cap is None or self.charged + self.reserved + estimate <= cap + _EPSILON:
                self.reserved += estimate
                return Spend(key, estimate)
            if self.reserved <= _EPSILON:
                raise BudgetExceededError(
                    f"budget: {count} more video(s) (about {estimate:g} credits) would pass "
                    f"max_credits={cap:g} ({self.charged:g} charged so far); not sent",
                    max_credits=cap,
                    charged=self.charged,
                    reserved=self.reserved,
                    estimate=estimate,
                )
            # Creates in flight may cost less than reserved: wait for one to settle, re-check.
            settled = self._settled
            await settled.wait()

    async def _reserve_shared(self, shared: SharedCredits, key: PriceKey, count: int) -> Spend:
        assert self.max_credits is not None
        cap = self.max_credits
        await self._retry_unsettled(shared)
        waiting_since = asyncio.get_running_loop().time()
        lowest_held = math.inf
        while True:
            estimate = self.estimate(key, count)
            # Raises HubUnavailableError when Redis is away: never create unbudgeted.
            reservation = await self._reserve_once(shared, estimate, cap)
            if reservation is not None:
                self.reserved += estimate
                return Spend(key, estimate, reservation)
            snapshot = await shared.snapshot()
            now = asyncio.get_running_loop().time()
            if snapshot.reserved < lowest_held - _EPSILON:
                # Holds are being settled somewhere: worth waiting for.
                lowest_held, waiting_since = snapshot.reserved, now
            # Holds that never move (a crashed process's) must not make a create wait forever.
            stale = now - waiting_since > self.stale_after and self.reserved <= _EPSILON
            if snapshot.reserved <= _EPSILON or stale:
                raise BudgetExceededError(
                    f"budget: {count} more video(s) (about {estimate:g} credits) would pass "
                    f"max_credits={cap:g} shared by every process ({snapshot.charged:g} "
                    "charged so far); not sent",
                    max_credits=cap,
                    charged=snapshot.charged,
                    reserved=snapshot.reserved,
                    estimate=estimate,
                )
            # Creates in flight somewhere may cost less than they hold: check again soon.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_SHARED_RECHECK):
                    await self._settled.wait()

    async def _reserve_once(self, shared: SharedCredits, estimate: float, cap: float) -> Any:
        # Shielded: a create cancelled while Redis took the hold must still give it back.
        attempt = asyncio.ensure_future(shared.reserve(estimate, cap))
        try:
            return await asyncio.shield(attempt)
        except asyncio.CancelledError:

            def give_back(done: asyncio.Future[Any]) -> None:
                if not done.cancelled() and done.exception() is None and done.result():
                    self._settle_shared(shared, done.result(), 0.0)

            attempt.add_done_callback(give_back)
            raise

    async def _retry_unsettled(self, shared: SharedCredits) -> None:
        unsettled, self._unsettled = self._unsettled, []
        for reservation, cost in unsettled:
            self._settle_shared(shared, reservation, cost)

    async def flush(self) -> None:
        """Wait until every settlement has reached the shared budget (retrying failed ones)."""
        if self._shared is not None:
            await self._retry_unsettled(self._shared)
        while self._settling:
            await asyncio.wait(set(self._settling))

    def _settle_shared(self, shared: SharedCredits, reservation: Any, cost: float) -> None:
        """Replace ``reservation`` by ``cost`` in the shared budget (give it back at 0)."""

        async def settle() -> None:
            try:
                if cost > _EPSILON:
                    await shared.settle(reservation, cost)
                else:
                    await shared.release(reservation)
            except AkoolError as exc:
                # The hold stays counted in Redis (the cap errs towards stopping early) until
                # the next create or close tries again.
                logger.warning("could not settle %g credits in the shared budget: %s", cost, exc)
                self._unsettled.append((reservation, cost))

        # A task, so a create cancelled mid-request still settles (cleanup must not await).
        task = asyncio.get_running_loop().create_task(settle())
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    def _cost(self, spend: Spend) -> float:
        if spend.actual is None:
            return spend.estimate
        unit = self.estimate(spend.key, 1)
        cost = 0.0
        for video in spend.actual:
            credit = video.deduction_credit
            if credit is None or not credit >= 0:  # absent, negative or NaN: no usable price
                cost += unit
            else:
                cost += credit
                self.observe(spend.key, credit)
        return cost

    def _settle(self, spend: Spend, cost: float) -> None:
        self.reserved = max(0.0, self.reserved - spend.estimate)
        self.charged += cost
        if self._shared is not None and spend.reservation is not None:
            self._settle_shared(self._shared, spend.reservation, cost)
        # Wake every waiter, then arm a fresh event for the next round (no lock needed:
        # this runs synchronously, so it is safe inside a cancelled task's cleanup).
        settled, self._settled = self._settled, asyncio.Event()
        settled.set()
