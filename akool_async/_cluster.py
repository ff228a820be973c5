"""A client's side of a Redis hub: webhook fan-out, one poller for the cluster, shared limits.

With ``AkoolClient(hub=RedisHub(...))`` every process of a namespace:

* tails the namespace's event stream (blocking reads from the last entry seen, resumed after
  a reconnect) and resolves its waiting handles the moment any process learns of a change:
  a webhook received by another worker, or the leader's poll;
* registers its pending ids in Redis and stops polling by itself. One process at a time holds
  the leader lease and polls every due id of the namespace in results calls of at most
  ``max_ids_per_request`` ids, publishing what it learns; if it dies, another takes over
  within a few lease lifetimes and carries on from the ids in Redis. The leader's
  ``PollPolicy`` request budget is the namespace's: however many processes wait, AKOOL sees
  no more results calls than one client would send. Every id is polled once per tick while
  the budget allows (no growth toward ``max_interval``), ids never polled yet first (from
  where the duration hint of the process that waits for them puts their first poll), and a
  call with room takes the ids due soonest along;
* shares one credit budget (``max_credits``) and AKOOL's rate-limit slow-downs.

Redis trouble never loses a video: while the hub is unreachable the client polls its own
handles itself (a WARNING says so), and when Redis answers again it re-registers its ids and
hands polling back. With ``max_credits`` set, a create whose reservation cannot reach Redis
raises ``HubUnavailableError`` rather than risk overspending.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Final

from ._convert import read_status, structure
from ._errors import (
    AkoolAPIError,
    AkoolError,
    AkoolResponseError,
    AkoolValueError,
    AuthenticationError,
    ClientClosedError,
    NotFoundError,
    RateLimitError,
    UpstreamError,
)
from ._models import Video, VideoStatus
from ._polling import RESULTS_PATH, CallBudget, Poller, result_items
from ._settings import PollPolicy
from ._transport import RetryDetails, Transport

if TYPE_CHECKING:
    from ._hub._hub import RedisHub

logger = logging.getLogger("akool_async.hub")

#: The status the leader publishes for an id AKOOL will not report (unknown to it, or refused):
#: every process fails its handles with NotFoundError. Above 1-4, so it is news in Redis.
GIVEN_UP: Final = 404

#: How long the leader holds the ids of one results call before they are due again anyway
#: (covers a leader that dies mid-call: its successor polls them after this).
_CLAIM_SECONDS: Final = 30.0
#: Seconds between two tries for a cluster-wide create slot while all are taken.
_SLOT_RECHECK: Final = 0.05
#: Seconds between two looks for news while nothing else wakes the maintenance loop.
_IDLE_STEP: Final = 0.5


def video_from_news(video_id: str, status: int, video_url: str | None, raw: Any) -> Video | None:
    """A ``Video`` from a published state; None when it cannot resolve anything yet."""
    known = read_status(status)
    if known is None:
        return None
    if known is VideoStatus.COMPLETED and not video_url:
        return None  # a handle resolved without its url would break its promise
    item = dict(raw) if isinstance(raw, Mapping) else {}
    item.update({"_id": video_id, "status": int(known)})
    if video_url:
        item["video_url"] = video_url
    try:
        return structure(item, Video, where="the Redis hub")
    except AkoolResponseError:
        return Video(id=video_id, status=known, video_url=video_url, raw=item)


class Cluster:
    """Runs a client's part of the hub (see the module docstring). One per root client."""

    def __init__(
        self,
        hub: RedisHub,
        *,
        transport: Transport,
        poller: Poller,
        policy: PollPolicy,
    ) -> None:
        self.hub = hub
        self._transport = transport
        self._poller = poller
        #: Every poller of the client (``with_options(poll=...)`` adds its own).
        self._pollers: list[Poller] = [poller]
        self._policy = policy
        self._tasks: list[asyncio.Task[None]] = []
        self._side_tasks: set[asyncio.Task[None]] = set()
        self._to_check: dict[str, None] = {}
        self._to_register: dict[str, None] = {}
        #: Pending ids a webhook reports: registered with the webhook backstop's cadence.
        self._webhook_ids: dict[str, None] = {}
        self._to_unregister: dict[str, None] = {}
        self._dirty = asyncio.Event()
        self._reregister = False
        self._published: dict[str, int] = {}
        self._misses: dict[str, int] = {}
        self._ticks = _Ticks(policy)
        #: The request budget, counted as the local poller counts it (the hub's slow-down
        #: holds the leader's polls, so nothing stretches its window).
        self._budget = CallBudget(policy)
        self._started = False
        self._closed = False
        self._starting = asyncio.Lock()
        #: How long the tasks get to stop at close (a blocking read takes stream_block).
        self.stop_limit = 5.0
        poller.observe_pending(self)
        transport.subscribe_retries(self._on_retry)

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the hub and start tailing, registering and (when leader) polling. Idempotent."""
        if self._started:
            return
        async with self._starting:
            if not self._started:
                await self._start()

    async def _start(self) -> None:
        if self._closed:
            raise ClientClosedError("the client is closed")
        available = await self.hub.open()
        self._started = True
        if self.closed:  # closed while the hub opened: aclose() did not see it started
            await self.hub.aclose()
            raise ClientClosedError("the client is closed")
        self.hub.watch_availability(self._availability_changed)
        self._availability_changed(available)
        last_id = "0-0"
        if available:
            with contextlib.suppress(AkoolError):
                last_id = await self.hub.latest_event_id()
        self._tasks = [
            asyncio.create_task(self._tail(last_id), name="akool-async-hub-tail"),
            asyncio.create_task(self._maintain(), name="akool-async-hub-maintain"),
            asyncio.create_task(self._lead(), name="akool-async-hub-lead"),
        ]

    @property
    def closed(self) -> bool:
        """True once ``aclose()`` began."""
        return self._closed

    async def aclose(self) -> None:
        """Stop every task, give up the lease, and close the hub if it owns its connection."""
        self._closed = True
        tail, others = self._tasks[:1], {*self._tasks[1:], *self._side_tasks}
        for task in others:
            task.cancel()
        # The tail is not cancelled mid-read (redis-py would drop its connection unclosed):
        # it ends after its current blocking read, then the hub closes.
        self.hub.stop_events()
        tasks = {*tail, *others}
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=self.stop_limit)
            for task in stuck:
                task.cancel()
            if stuck:
                logger.warning("%d hub task(s) did not stop at close", len(stuck))
        if self._started:
            await self.hub.aclose()

    def add_poller(self, poller: Poller) -> None:
        """Share news with (and poll for) a derived client's own poller too."""
        self._pollers.append(poller)
        poller.observe_pending(self)
        poller.delegate(self._poller.delegated)

    def _availability_changed(self, available: bool) -> None:
        if not available:
            logger.warning(
                "Redis hub unreachable: this process polls its own videos until it is back"
            )
        else:
            # Redis may have lost our registrations (a restart): send them all again.
            self._reregister = True
            self._dirty.set()
        for poller in self._pollers:
            poller.delegate(available)

    # --- pending ids ----------------------------------------------------------------------

    def pending_added(self, video_id: str, status: VideoStatus | None, webhook: bool) -> None:
        """Register a new pending id (a re-attached one is looked up in Redis first)."""
        if webhook:
            self._webhook_ids[video_id] = None
        if status is None:
            self._to_check[video_id] = None
        else:
            self._to_register[video_id] = None
        self._to_unregister.pop(video_id, None)
        self._dirty.set()

    def pending_removed(self, video_id: str) -> None:
        """Tell Redis this process no longer waits for ``video_id``."""
        self._to_check.pop(video_id, None)
        self._to_register.pop(video_id, None)
        self._webhook_ids.pop(video_id, None)
        self._to_unregister[video_id] = None
        self._dirty.set()

    async def _sync_pending(self) -> None:
        """Send the registrations that piled up since the last call (few commands each)."""
        pending = self.hub.pending
        if self._reregister:
            self._reregister = False
            for poller in self._pollers:
                self._to_register.update(dict.fromkeys(poller.pending_ids()))
        if self._to_check:
            checking = list(self._to_check)
            for video_id in checking:
                state = await self.hub.get_state(video_id)
                self._to_check.pop(video_id, None)
                # Some process saw it final: resolved with no API call.
                if state is None or not self._apply(
                    video_id, state.status, state.video_url, state.raw
                ):
                    self._to_register[video_id] = None
        if self._to_register:
            registering = list(self._to_register)
            hooked = [i for i in registering if i in self._webhook_ids]
            polled = [i for i in registering if i not in self._webhook_ids]
            policy = self._policy
            now = time.time()
            if polled:
                for due, group in self._first_dues(polled, now + policy.delay(0)).items():
                    await pending.register(group, due)
            if hooked:
                await pending.register(hooked, now + policy.delay(0, webhook=True))
                await pending.set_cadence(hooked, policy.webhook_interval)
            for video_id in registering:  # kept until Redis took them (a failure retries)
                self._to_register.pop(video_id, None)
        if self._to_unregister:
            leaving = list(self._to_unregister)
            await pending.unregister(leaving)
            for video_id in leaving:
                self._to_unregister.pop(video_id, None)

    def _first_dues(self, ids: list[str], first: float) -> dict[float, list[str]]:
        """Ids by their first due time: ``first``, or later where a duration hint says a video
        cannot be done yet (rounded up to half a second so that few registrations carry many
        ids)."""
        by_due: dict[float, list[str]] = {}
        for video_id in ids:
            due = first
            for poller in self._pollers:
                hinted = poller.hinted_until(video_id)
                if hinted is not None and hinted > due:
                    due = math.ceil(hinted * 2) / 2
            by_due.setdefault(due, []).append(video_id)
        return by_due

    # --- the loops ----------------------------------------------------------------------------

    async def _tail(self, last_id: str) -> None:
        async for event in self.hub.events(last_id=last_id):
            self._apply(event.video_id, event.status, event.video_url, event.raw)

    def _apply(self, video_id: str, status: int, url: str | None, raw: Any) -> bool:
        """Apply published news to every poller of this client; True when it was final."""
        if status == GIVEN_UP:
            why = raw.get("error") if isinstance(raw, Mapping) else None
            error = NotFoundError(
                f"video {video_id}: {why or 'AKOOL will not report it'}",
                method="POST",
                path=RESULTS_PATH,
            )
            for poller in self._pollers:
                poller.give_up(video_id, error)
            return True
        video = video_from_news(video_id, status, url, raw)
        if video is None:
            return False
        for poller in self._pollers:
            poller.update(video)
        return video.status.is_terminal

    async def _maintain(self) -> None:
        """Heartbeat, lease and registrations (the polling runs apart: ``_lead``)."""
        hub = self.hub
        renew_every = hub.leader.ttl / 3
        beat_every = hub.pending.heartbeat_ttl / 3
        next_renew = next_beat = 0.0
        while not self._closed:
            now = time.monotonic()
            try:
                if self._dirty.is_set() or self._reregister:
                    self._dirty.clear()
                    await self._sync_pending()
                if now >= next_beat:
                    next_beat = now + beat_every
                    if not await hub.pending.heartbeat():
                        self._reregister = True  # Redis lost our ids (restart, reaped)
                    await hub.pending.reap_orphans()
                if now >= next_renew:
                    next_renew = now + renew_every
                    await hub.leader.maintain()
            except AkoolError as exc:
                # Redis trouble: the availability watch has switched polling back to this
                # process where needed; try again after a short pause.
                logger.debug("hub maintenance step failed: %s", exc)
                await asyncio.sleep(_IDLE_STEP)
                continue
            wake = min(next_beat, next_renew)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, min(wake - time.monotonic(), _IDLE_STEP))):
                    await self._dirty.wait()

    async def _lead(self) -> None:
        """While this process holds the lease: the cluster's polling, tick after tick.

        A task of its own, so that waiting for the request budget never holds up the
        heartbeat or the lease.
        """
        leading = False
        while not self._closed:
            wait = _IDLE_STEP
            if self.hub.leader.is_leader:
                if not leading:
                    # Another leader polled meanwhile: what this process counted is stale.
                    self._misses.clear()
                    self._published.clear()
                leading = True
                try:
                    wait = await self._poll_due()
                except AkoolError as exc:
                    logger.debug("hub polling step failed: %s", exc)
                except Exception:
                    # Keep polling: a leader that stopped would hold the lease with nobody
                    # polling for the whole namespace.
                    logger.exception("hub polling step crashed; polling goes on")
            else:
                leading = False
            await asyncio.sleep(wait)

    async def _poll_due(self) -> float:
        """Poll the due ids of the namespace within the request budget (waiting for it);
        returns the seconds until the next tick."""
        hub = self.hub
        policy = self._policy
        slowed = await hub.slowed_until()
        if slowed is not None:
            return max(0.0, slowed - time.time())
        ticks = self._ticks
        ticks.start_tick_if_due()
        limit = policy.max_ids_per_request
        while hub.leader.is_leader and ticks.calls_left():
            # The budget's slot before the ids are claimed, not while holding them.
            async with self._budget.slot(_no_stretch):
                if policy.fill_calls:
                    # Riders (the ids due soonest after this tick) fill the room: a call
                    # costs the same with 1 id or 50.
                    due, riders = await hub.pending.take_call(ticks.horizon, limit, _CLAIM_SECONDS)
                else:
                    due = await hub.pending.take_due(ticks.horizon, limit, _CLAIM_SECONDS)
                    riders = []
                if not due:
                    break
                outcome = await self._ask(due + riders)
            if not await self._search(due + riders, outcome):
                break
            if len(due) < limit:
                break  # every due id was in that call
        return ticks.until_next()

    async def _search(self, ids: list[str], outcome: AkoolAPIError | _CallFailed | None) -> bool:
        """When AKOOL refused the call for ``ids`` as a whole, find out whether one id is why.

        As the local poller does: a refused call is halved and both halves asked again; the
        search goes on inside the refused half until the culprit stands alone, and if both
        halves are refused AKOOL refuses these calls whatever they hold, so every id of the
        chunk is given up. Every call waits for the request budget. A call that fails
        otherwise (a rate limit, AKOOL or the network down) ends the search, and what it has
        not asked yet waits for the next tick: returns False then.
        """
        while isinstance(outcome, AkoolAPIError):
            if len(ids) > 1:
                half = len(ids) // 2
                halves = (ids[:half], ids[half:])
                first = await self._call(halves[0])
                if first is _FAILED:
                    await self._poll_later(halves[1])
                    return False
                second = await self._call(halves[1])
                if second is _FAILED:
                    if isinstance(first, AkoolAPIError):
                        await self._poll_later(halves[0])
                    return False
                if first is None or second is None:
                    # The search goes on in the refused half, if any.
                    ids, outcome = (halves[0], first) if first is not None else (halves[1], second)
                    continue
            if isinstance(outcome, NotFoundError):
                # "Not found" for the whole call: a miss for each id, as when an answer
                # leaves an id out (one transient miss does not give it up).
                await self._missed(ids)
            else:
                for video_id in ids:
                    await self._give_up(video_id, f"AKOOL refused to report it: {outcome}")
            return True
        return outcome is not _FAILED

    async def _call(self, ids: list[str]) -> AkoolAPIError | _CallFailed | None:
        """``_ask`` once the budget allows."""
        async with self._budget.slot(_no_stretch):
            return await self._ask(ids)

    async def _ask(self, ids: list[str]) -> AkoolAPIError | _CallFailed | None:
        """One results call for ``ids`` (counted in the tick).

        Returns AKOOL's refusal of the whole call (the ids are then still claimed: the caller
        decides), ``_FAILED`` when the call failed otherwise (the ids wait for the next tick),
        or None when the answer was handled.
        """
        self._ticks.count_call()
        if not self.hub.leader.is_leader:
            await self._poll_later(ids)  # the lease went while waiting: the next leader's
            return _FAILED
        try:
            envelope = await self._transport.request(
                "POST", RESULTS_PATH, json={"_ids": ",".join(ids)}
            )
            items = result_items(envelope)
        except AkoolAPIError as exc:
            if not isinstance(exc, (AuthenticationError, RateLimitError, UpstreamError)):
                return exc
            failure: AkoolError = exc
        except AkoolError as exc:
            failure = exc
        else:
            await self._handle_answer(ids, items)
            return None
        # The same call would fail again now: the rest of this tick waits as well.
        logger.warning("cluster results call for %d ids failed: %s", len(ids), failure)
        await self._poll_later(ids)
        return _FAILED

    async def _handle_answer(self, ids: list[str], items: list[Any]) -> None:
        hub = self.hub
        final: list[str] = []
        seen: set[str] = set()
        for item in items:
            if not isinstance(item, Mapping) or item.get("_id") not in ids:
                continue
            video_id = item["_id"]
            seen.add(video_id)
            self._misses.pop(video_id, None)
            status = read_status(item.get("status"))
            if status is None:
                continue
            url = item.get("video_url") if isinstance(item.get("video_url"), str) else None
            if status is VideoStatus.COMPLETED and not url:
                continue  # not done until it has a url: stays due
            if self._published.get(video_id) != status or status.is_terminal:
                # Marked only once Redis has it; a final status always goes (Redis ignores a
                # repeat): an id must never be dropped without its news.
                await hub.publish(video_id, int(status), url, item)
                self._published[video_id] = status
            if status.is_terminal:
                final.append(video_id)
                self._published.pop(video_id, None)
        if final:
            await hub.pending.drop_final(final)
        await self._missed([i for i in ids if i not in seen])
        rest = [i for i in ids if i in seen and i not in final]
        if rest:
            await self._reschedule(rest)

    async def _missed(self, ids: list[str]) -> None:
        """AKOOL did not report ``ids``: given up after ``missing_polls`` misses in a row,
        else due again at the next tick."""
        again = []
        for video_id in ids:
            misses = self._misses[video_id] = self._misses.get(video_id, 0) + 1
            if misses > self._policy.missing_polls:
                await self._give_up(
                    video_id, f"unknown to AKOOL (missing from {misses} results answers in a row)"
                )
            else:
                again.append(video_id)
        if again:
            await self._reschedule(again)

    async def _reschedule(self, ids: list[str]) -> None:
        """Due again at the next tick, or after an id's own (slower) webhook cadence.

        From the tick's start, not from this answer (as the local poller schedules): ids
        polled late in a tick the budget stretched must not miss the next one.
        """
        now, next_tick = time.time(), self._ticks.next_tick_at
        by_due: dict[float, list[str]] = {}
        for video_id, cadence in zip(ids, await self.hub.pending.cadences(ids), strict=True):
            by_due.setdefault(max(next_tick, now + (cadence or 0.0)), []).append(video_id)
        for due, group in by_due.items():
            await self.hub.pending.reschedule(group, due)

    async def _poll_later(self, ids: list[str]) -> None:
        """Due again at the next tick, unanswered (a fresh id stays fresh)."""
        await self.hub.pending.reschedule(ids, self._ticks.next_tick_at, polled=False)

    async def _give_up(self, video_id: str, why: str) -> None:
        """Tell every process AKOOL will not report ``video_id``: its handles fail."""
        await self.hub.publish(video_id, GIVEN_UP, None, {"_id": video_id, "error": why})
        self._misses.pop(video_id, None)
        self._published.pop(video_id, None)
        await self.hub.pending.drop_final([video_id])

    # --- shared signals -------------------------------------------------------------------

    async def publish_news(self, video: Video) -> None:
        """Record and announce a verified webhook's news for every process.

        Redis away: logged; this process still applies the news itself, and the others
        learn of it from polling.
        """
        try:
            await self.start()
            await self.hub.publish(video.id, int(video.status), video.video_url, dict(video.raw))
        except AkoolError as exc:
            logger.warning("webhook news for video %s not shared (Redis hub: %s)", video.id, exc)

    def _on_retry(self, details: RetryDetails) -> None:
        error = details.error
        if isinstance(error, RateLimitError) and self.hub.available:
            # AKOOL asked one process to slow down: every process slows down.
            self._spawn(self.hub.slow_down(details.wait))

    @contextlib.asynccontextmanager
    async def create_slot(self, hold_for: float) -> AsyncIterator[None]:
        """Hold one of the namespace's create slots (``RedisHub(max_concurrent_creates=)``).

        A slot is a lease of ``hold_for`` seconds, so a crashed process's slots come back.
        Redis away: the create goes on under this process's own limit (a concurrency cap
        protects AKOOL, not money; the budget still fails closed).
        """
        limit = self.hub.max_concurrent_creates
        lease = None
        if limit is not None:
            try:
                # Slots held by other processes free up with no event to await here.
                lease = await self.hub.slots.acquire(limit, hold_for)
                while lease is None:
                    await asyncio.sleep(_SLOT_RECHECK)
                    lease = await self.hub.slots.acquire(limit, hold_for)
            except AkoolError as exc:
                logger.warning("cluster create slot not taken (Redis hub: %s)", exc)
        try:
            yield
        finally:
            if lease is not None:
                self._spawn(self.hub.slots.release(lease))

    async def wait_if_slowed(self) -> None:
        """Hold a create while any process of the namespace was asked to slow down."""
        try:
            until = await self.hub.slowed_until()
        except AkoolError:
            return  # Redis away: this process's own retries still honour AKOOL
        if until is not None:
            await asyncio.sleep(max(0.0, until - time.time()))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        if self._closed:  # aclose() has already gathered the tasks it waits for
            work.close()
            return

        async def run() -> None:
            with contextlib.suppress(AkoolError):
                await work

        task = asyncio.get_running_loop().create_task(run())
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)


class _CallFailed:
    """A results call failed (not refused): see ``Cluster._call``."""


_FAILED: Final = _CallFailed()


def _no_stretch() -> float:
    """The budget window's factor for the leader (``CallBudget.slot``): always 1."""
    return 1.0


class _Ticks:
    """The leader's ticks (every ``interval``): at most ``calls_per_tick()`` results calls
    each, as in the local poller."""

    def __init__(self, policy: PollPolicy) -> None:
        self._interval = policy.interval
        self._per_tick = policy.calls_per_tick()
        self._next_tick = 0.0
        self._left: int | None = 0
        #: This tick's ids are those due by then (unix seconds, as Redis scores them).
        self.horizon = 0.0
        #: When the next tick starts (unix seconds): when the ids this tick polls are due (or
        #: at once, if a tick overran it).
        self.next_tick_at = 0.0

    def start_tick_if_due(self) -> None:
        now = time.monotonic()
        if now >= self._next_tick:
            self._next_tick = now + self._interval
            self._left = self._per_tick
            # Ids due within half an interval join this tick (as in the local poller): ids
            # rescheduled at the end of the last tick are due a little after the next one
            # starts, and without this they would be polled every other tick only. Fixed
            # for the tick: ids it polled early on must not come due again before it ends.
            wall = time.time()
            self.horizon = wall + self._interval / 2
            self.next_tick_at = wall + self._interval

    def calls_left(self) -> bool:
        return self._left is None or self._left > 0

    def count_call(self) -> None:
        if self._left is not None:
            self._left -= 1

    def until_next(self) -> float:
        return max(0.0, self._next_tick - time.monotonic())


def check_hub(hub: object) -> None:
    """AkoolValueError unless ``hub`` is a ``RedisHub`` (or None)."""
    if hub is None:
        return
    from ._hub._hub import RedisHub  # the hub needs the optional redis package

    if not isinstance(hub, RedisHub):
        raise AkoolValueError(f"hub: expected an akool_async.redis.RedisHub, got {hub!r:.80}")
