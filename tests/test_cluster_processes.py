"""Several real processes sharing one pool of videos through a real Redis hub.

Each worker is a separate ``python`` process (tests/_cluster_child.py, driven over stdin and
stdout) or a ``uvicorn --workers 3`` server running examples/fastapi_cluster.py. The fake
AKOOL server runs in the test process, so its request log tells what every process did.
Videos that must not finish on their own are made with a queue time of an hour and finished
by the test (``server.complete``), so no assertion depends on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from _redis_server import RedisServer, free_port
from conftest import CREATE_ARGS

from akool_async import AkoolClient, PollPolicy, RetryPolicy
from akool_async.redis import RedisHub
from akool_async.testing import FakeAkoolServer, Fault, FaultKind, RecordedRequest

HERE = Path(__file__).parent
CHILD = HERE / "_cluster_child.py"
EXAMPLE = HERE.parent / "examples" / "fastapi_cluster.py"
#: A bound on every wait for a child: generous for a busy 2-CPU machine, finite so a broken
#: test fails instead of hanging.
CHILD_TIMEOUT = 30.0
#: Never finishes unless the test says so.
FOREVER = 3600.0

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and uvicorn workers")


def tail(log: Path) -> str:
    """The end of a child's log, for failure messages."""
    return log.read_text(errors="replace")[-4000:]


class Child:
    """One worker process (tests/_cluster_child.py) and the JSON lines it answers."""

    def __init__(self, process: asyncio.subprocess.Process, log: Path) -> None:
        self.process = process
        self.log = log
        self.process_id = ""

    @classmethod
    async def start(cls, settings: dict[str, Any], log: Path) -> Child:
        with log.open("wb") as stderr:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                str(CHILD),
                json.dumps(settings),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
            )
        child = cls(process, log)
        hello = await child.read()
        child.process_id = hello["process_id"]
        return child

    async def read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        try:
            async with asyncio.timeout(CHILD_TIMEOUT):
                line = await self.process.stdout.readline()
        except TimeoutError:
            raise AssertionError(f"child gave no answer; its log:\n{self.stderr()}") from None
        if not line:
            raise AssertionError(f"child exited; its log:\n{self.stderr()}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def send(self, op: str, **args: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps({"op": op, **args}) + "\n").encode())

    async def ask(self, op: str, **args: Any) -> dict[str, Any]:
        self.send(op, **args)
        return await self.read()

    def stderr(self) -> str:
        return tail(self.log)

    def kill(self) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(OSError):
                self.send("exit")
            try:
                await asyncio.wait_for(self.process.wait(), 15)
            except TimeoutError:
                self.kill()
                await self.process.wait()


@pytest.fixture
async def children(
    server: FakeAkoolServer, redis_url: str, redis_namespace: str, tmp_path: Path
) -> AsyncIterator[Callable[..., Any]]:
    """Start worker processes on one namespace: ``await children(n, **settings)``."""
    started: list[Child] = []

    async def start(count: int, **settings: Any) -> list[Child]:
        base = {
            "base_url": server.url,
            "api_key": server.api_key,
            "client_id": server.client_id,
            "redis_url": redis_url,
            "namespace": redis_namespace,
            "poll": {"initial_delay": 0.05, "interval": 0.3, "max_interval": 0.3, "jitter": 0.0},
        }
        base.update(settings)
        first = len(started)
        made = await asyncio.gather(
            *(Child.start(base, tmp_path / f"child-{first + i}.log") for i in range(count))
        )
        started.extend(made)
        return list(made)

    try:
        yield start
    finally:
        await asyncio.gather(*(c.stop() for c in started))


def ids_of(call: RecordedRequest) -> set[str]:
    return set(call.body["_ids"].split(","))


def overlapping_polls(calls: list[RecordedRequest]) -> list[tuple[set[str], set[str]]]:
    """Pairs of results calls in flight at the same time that carried a common id."""
    found = []
    for i, first in enumerate(calls):
        first_end = first.finished_at if first.finished_at is not None else float("inf")
        for second in calls[i + 1 :]:
            second_end = second.finished_at if second.finished_at is not None else float("inf")
            at_once = first.started_at < second_end and second.started_at < first_end
            if at_once and ids_of(first) & ids_of(second):
                found.append((ids_of(first), ids_of(second)))
    return found


async def test_four_processes_share_one_results_call_per_tick(
    server: FakeAkoolServer, children: Callable[..., Any]
) -> None:
    """4 processes x 10 pending ids, no webhooks: one results call carries all 40, not four."""
    server.queue_seconds = FOREVER
    workers: list[Child] = await children(4, leader_ttl=2.0)
    created = await asyncio.gather(*(w.ask("create", count=10) for w in workers))
    per_process = [set(answer["ids"]) for answer in created]
    every_id = set().union(*per_process)
    assert 40 == len(every_id)

    # The leader's ticks merge every process's due ids: soon one call carries all 40.
    await server.wait_until(
        lambda: any(ids_of(c) == every_id for c in server.calls("results")), timeout=20
    )
    merged_at = next(c for c in server.calls("results") if ids_of(c) == every_id).started_at
    await server.wait_until(
        lambda: sum(c.started_at >= merged_at for c in server.calls("results")) >= 3, timeout=20
    )
    before_completing = len(server.calls("results"))
    for video_id in every_id:
        server.complete(video_id)
    answers = await asyncio.gather(*(w.ask("wait") for w in workers))

    for ids, answer in zip(per_process, answers, strict=True):
        assert {(i, 3) for i in ids} == {(v[0], v[1]) for v in answer["videos"]}
        assert all(v[2] for v in answer["videos"])
    calls = server.calls("results")
    # Once merged, every tick is one call carrying every process's pending ids.
    ticks = [c for c in calls[:before_completing] if c.started_at >= merged_at]
    assert len(ticks) >= 3
    assert all(ids_of(c) == every_id for c in ticks)
    assert all(len(ids_of(c)) <= 50 for c in calls)
    assert [] == overlapping_polls(calls)


async def test_three_processes_share_one_request_budget(
    server: FakeAkoolServer, children: Callable[..., Any]
) -> None:
    """3 processes x 100 pending ids need 6 full calls a tick; the budget allows 3 calls per
    window, and the leader keeps it for all of them: never more within any window."""
    server.queue_seconds = FOREVER
    poll = {
        "initial_delay": 0.05,
        "interval": 0.3,
        "max_interval": 0.3,
        "jitter": 0.0,
        "max_requests_per_second": 10,
        "budget_window": 0.3,
    }
    workers: list[Child] = await children(3, leader_ttl=2.0, poll=poll)
    every_id: set[str] = set()
    for _ in range(10):
        for answer in await asyncio.gather(*(w.ask("create", count=10) for w in workers)):
            every_id.update(answer["ids"])
    assert 300 == len(every_id)
    server.reset_log()
    calls = await server.wait_for_calls("results", 24, answered=True, timeout=60)
    starts = sorted(c.started_at for c in calls)
    assert max(sum(1 for t in starts if s <= t < s + 0.3) for s in starts) <= 3
    assert every_id == {i for c in calls for i in ids_of(c)}
    assert [] == overlapping_polls(calls)


async def test_the_leader_killed_mid_wait_another_takes_over(
    server: FakeAkoolServer, children: Callable[..., Any], redis_url: str, redis_namespace: str
) -> None:
    """SIGKILL the leader: another process takes the lease and every survivor's handle resolves,
    with no id in two results calls at once."""
    server.queue_seconds = FOREVER
    workers: list[Child] = await children(
        3, leader_ttl=1.0, poll={"initial_delay": 0.05, "interval": 0.6, "jitter": 0.0}
    )
    created = await asyncio.gather(*(w.ask("create", count=5) for w in workers))
    every_id = set().union(*(a["ids"] for a in created))
    await server.wait_until(
        lambda: any(ids_of(c) == every_id and c.finished_at for c in server.calls("results")),
        timeout=20,
    )
    async with RedisHub(redis_url, namespace=redis_namespace) as observer:
        holder = await observer.leader.holder()
        (leader,) = [w for w in workers if w.process_id == holder]
        survivors = [w for w in workers if w is not leader]
        # Between two ticks (0.6 s apart) rather than mid-call: ids a leader dies holding come
        # due again only after their claim (30 s). Landing mid-call anyway only slows the test.
        await server.wait_idle("results")
        await asyncio.sleep(0.2)
        leader.kill()
        await leader.process.wait()
        killed_at = len(server.calls("results"))
        for video_id in every_id:
            server.complete(video_id)
        answers = await asyncio.wait_for(asyncio.gather(*(w.ask("wait") for w in survivors)), 45)
        new_holder = await observer.leader.holder()

    assert new_holder in {w.process_id for w in survivors}
    for worker, answer in zip(survivors, answers, strict=True):
        mine = set(created[workers.index(worker)]["ids"])
        assert {(i, 3) for i in mine} == {(v[0], v[1]) for v in answer["videos"]}
    after = server.calls("results")[killed_at:]
    assert after, "the new leader polled"
    assert [] == overlapping_polls(server.calls("results"))


async def test_three_processes_never_pass_one_max_credits(
    server: FakeAkoolServer, children: Callable[..., Any]
) -> None:
    """Three processes creating under one ``max_credits``: AKOOL's total charge stays within."""
    cap = 100.0
    start_balance = server.credit
    workers: list[Child] = await children(3, max_credits=cap)
    answers = await asyncio.gather(*(w.ask("create_until_refused", max=10) for w in workers))
    charged = start_balance - server.credit
    created = sum(a["created"] for a in answers)
    assert 0 < charged <= cap
    assert all(a["refused"] for a in answers)
    # Alone, each process would have spent up to the cap: together they made at most that.
    assert created == len(server.calls("create_batch"))


@pytest.fixture
def private_redis(make_redis_server: Callable[..., RedisServer]) -> RedisServer:
    """A redis-server of this test only, announcing key writes (keyspace notifications)."""
    redis = make_redis_server()
    import redis as sync_redis

    admin = sync_redis.Redis(host="127.0.0.1", port=redis.port)
    try:
        admin.config_set("notify-keyspace-events", "K$")
    finally:
        admin.close()
    return redis


async def test_a_rate_limit_in_one_process_holds_the_others_creates(
    server: FakeAkoolServer,
    children: Callable[..., Any],
    private_redis: RedisServer,
    redis_namespace: str,
) -> None:
    """A 429 with Retry-After seen by process A: process B's next create waits it out too."""
    retry_after = 2.0
    first, second = await children(2, redis_url=private_redis.url)
    server.inject("create_batch", Fault(FaultKind.HTTP_429, retry_after=retry_after))
    watcher = aioredis.Redis(host="127.0.0.1", port=private_redis.port)
    try:
        async with watcher.pubsub() as pubsub:
            # The hub's slow-down key: written by A's hub as soon as A sees the 429.
            await pubsub.subscribe(f"__keyspace@0__:{redis_namespace}:slowdown")
            await pubsub.get_message(timeout=5)  # the subscribe confirmation
            first.send("create", count=1)
            async with asyncio.timeout(CHILD_TIMEOUT):
                while (await pubsub.get_message(timeout=CHILD_TIMEOUT)) is None:
                    pass
    finally:
        await watcher.aclose()
    faulted = (await server.wait_for_calls("create_batch", 1, answered=True))[0]
    answer = await second.ask("create", count=1)
    await first.read()

    (b_create,) = [c for c in server.calls("create_batch") if answer["ids"][0] in c.created_ids]
    assert faulted.fault is FaultKind.HTTP_429
    assert faulted.finished_at is not None
    # B asked right after A's 429, but its create left only once AKOOL's wait was over.
    assert b_create.started_at - faulted.finished_at >= retry_after - 0.1


# -- the FastAPI example under uvicorn --workers 3 ------------------------------------------


@contextlib.contextmanager
def uvicorn_workers(env: dict[str, str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``uvicorn examples.fastapi_cluster:app --workers 3`` on 127.0.0.1:port."""
    command = [
        sys.executable, "-m", "uvicorn", "fastapi_cluster:app",
        "--app-dir", str(EXAMPLE.parent),
        "--host", "127.0.0.1", "--port", str(port),
        "--workers", "3", "--log-level", "warning",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        # SIGTERM to the whole group: the supervisor and its workers shut down gracefully.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


async def wait_until_serving(
    http: aiohttp.ClientSession, url: str, process: Any, log: Path
) -> None:
    """Until the app answers (a readiness probe of a child process)."""
    async with asyncio.timeout(CHILD_TIMEOUT):
        while True:
            assert process.poll() is None, tail(log)
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)


async def test_fastapi_example_under_uvicorn_workers_resolves_by_the_hub(
    server: FakeAkoolServer, redis_url: str, redis_namespace: str, tmp_path: Path
) -> None:
    """examples/fastapi_cluster.py under ``uvicorn --workers 3``: every request that creates
    and awaits a video returns once the fake's webhook reached any worker; nobody polls."""
    server.queue_seconds = 0.2
    server.process_seconds = 0.3
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {
        "AKOOL_BASE_URL": server.url,
        "AKOOL_API_KEY": server.api_key,
        "AKOOL_CLIENT_ID": server.client_id,
        "REDIS_URL": redis_url,
        "REDIS_NAMESPACE": redis_namespace,
        "PUBLIC_URL": base_url,
        # Polling only every 10 minutes: a handle resolves in time by webhook news alone.
        "AKOOL_POLL_SECONDS": "600",
    }
    log = tmp_path / "uvicorn.log"
    slow = PollPolicy(initial_delay=600, interval=600, webhook_interval=600)
    with uvicorn_workers(env, port, log) as process:
        # Separate connections, so the requests spread over the workers as the kernel likes.
        connector = aiohttp.TCPConnector(force_close=True, family=socket.AF_INET)
        async with aiohttp.ClientSession(connector=connector) as http:
            await wait_until_serving(http, f"{base_url}/healthz", process, log)
            # This process is a fourth member of the cluster, and never receives a webhook:
            # its handle can only resolve through the hub.
            hub = RedisHub(redis_url, namespace=redis_namespace, stream_block=0.2)
            async with AkoolClient(
                server.api_key,
                client_id=server.client_id,
                base_url=server.url,
                retry=RetryPolicy.fast(),
                poll=slow,
                hub=hub,
            ) as outsider:
                batch = await outsider.image_to_video.create_batch(
                    **CREATE_ARGS, webhook_url=f"{base_url}/akool/webhook"
                )

                async def create_and_wait() -> dict[str, Any]:
                    async with http.post(
                        f"{base_url}/videos", params={"wait": "20"}, json=CREATE_ARGS
                    ) as response:
                        assert 200 == response.status, await response.text()
                        answer: dict[str, Any] = await response.json()
                        return answer

                async with asyncio.timeout(CHILD_TIMEOUT):
                    reports = await asyncio.gather(*(create_and_wait() for _ in range(6)))
                    outside = await batch.handles[0].wait()
            await asyncio.wait_for(server.wait_webhooks(), 10)

    assert server.video_url(outside.id) == outside.video_url
    for report in reports:
        assert ("COMPLETED", True) == (report["status"], report["done"])
        assert server.video_url(report["id"]) == report["video_url"]
    deliveries = server.webhook_deliveries
    assert deliveries
    assert all(200 == d.http_status for d in deliveries)
    assert 0 == server.call_count("results")
