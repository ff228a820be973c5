"""How soon a finished video is seen, and at what request cost: ways of waiting compared.

Run: ``make bench`` (or ``.venv/bin/python benchmarks/bench_latency.py --sizes 200:0.1``).

The fake AKOOL server runs in its own process, each client in its own. For each N, N videos
are created in batches of 10; each takes 60-180 s (uniform: the fake's processing time of
120 s with 50% jitter). Time is scaled down (``--sizes N:scale``; 0.1 runs ten times faster),
every policy with it, and every figure below is converted back to real seconds. Waiting:

(a) ``per-job``: one coroutine per video polling ``resultsByIds`` with its id every 5 s
    (AKOOL's demo cadence, what peer SDKs do), written with plain aiohttp;
(b) ``old default``: the SDK's earlier schedule, ``PollPolicy(fill_calls=False,
    max_requests_per_second=None, learn_durations=False)`` (first poll 5 s, then 5 s growing
    x1.5 up to 30 s);
(c) ``new default``: ``PollPolicy()`` (every id each 5 s in filled calls, 2 calls/s budget,
    duration hint on: with every video created at once there is no history for it to use);
(c) ``warm``: the new default in a client that has first waited for one batch of 10 videos
    of the same shape (not counted), so the duration hint has history.

``--modes per-job,new`` runs some of them only.

Printed: results calls, calls per second at the peak (the most calls the fake received in
any one real second), client CPU seconds (user+sys while waiting, not scaled), and detection
lag p50/p90/p99 (from the fake's ``update_time`` of completion to the awaiting code seeing it).
``--hint-study`` compares (c) with and without ``learn_durations`` on a stream of videos
created evenly over 300 s, where later videos have earlier ones of their shape to learn from.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import subprocess
import sys
import time
from typing import Any

RESULTS = "/api/open/v4/image2Video/resultsByIds"
BATCH = "/api/open/v4/image2Video/createBySourcePrompt/batch"
BODY = {
    "image_url": "https://images.example/cat.png",
    "prompt": "the cat waves",
    "resolution": "720p",
    "video_length": 5,
    "model_name": "AkoolImage2VideoFastV1",
}
MODES = {
    "per-job": "(a) per-job 5 s",
    "old": "(b) old default",
    "new": "(c) new default",
    "warm": "(c) new default, warm",
}


def parse_modes(text: str) -> list[str]:
    modes = text.split(",")
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown mode {unknown[0]!r}; choose from {list(MODES)}")
    return modes


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def scaled_policy(mode: str, scale: float, hints: bool | None = None) -> Any:
    """The mode's PollPolicy with every duration times ``scale`` and the budget over it."""
    import attrs

    from akool_async import PollPolicy

    base = (
        PollPolicy(fill_calls=False, max_requests_per_second=None, learn_durations=False)
        if mode == "old"
        else PollPolicy()
    )
    rate = base.max_requests_per_second
    return attrs.evolve(
        base,
        initial_delay=base.initial_delay * scale,
        interval=base.interval * scale,
        max_interval=base.max_interval * scale,
        webhook_interval=base.webhook_interval * scale,
        budget_window=base.budget_window * scale,
        max_requests_per_second=None if rate is None else rate / scale,
        learn_durations=base.learn_durations if hints is None else hints,
    )


# --- the clients (each runs in its own process) ----------------------------------------------


async def run_sdk(
    url: str, key: str, n: int, scale: float, mode: str, spread: float, hints: bool | None
) -> dict[str, Any]:
    from akool_async import AkoolClient

    policy = scaled_policy(mode, scale, hints)
    async with AkoolClient(key, base_url=url, poll=policy, wait_timeout=3600) as client:
        await client.account.credits()  # open the session first
        if mode == "warm":
            # A client that has already waited for one batch of this shape (a backend that
            # has been up for a while): the duration hint has history. Not counted below.
            await asyncio.gather(
                *(await client.image_to_video.create_batch(**BODY, count=10)).handles
            )
        warmed = client.poller.statistics().requests
        started = time.monotonic()
        cpu0 = cpu_seconds()
        latencies: list[float] = []

        async def wait(handle: Any) -> None:
            video = await handle
            latencies.append(time.time() - video.update_time / 1000)

        waits: list[asyncio.Task[None]] = []
        batches = max(1, n // 10)
        for _b in range(batches):
            if spread:
                await asyncio.sleep(spread * scale / batches)
            batch = await client.image_to_video.create_batch(**BODY, count=10)
            waits.extend(asyncio.create_task(wait(h)) for h in batch.handles)
        await asyncio.gather(*waits)
        stats = client.poller.statistics()
    return {
        "requests": stats.requests - warmed,
        "cpu": cpu_seconds() - cpu0,
        "latencies": latencies,
        "started": started,
    }


async def run_per_job(url: str, key: str, n: int, scale: float) -> dict[str, Any]:
    import aiohttp

    requests = 0
    latencies: list[float] = []
    async with aiohttp.ClientSession(headers={"x-api-key": key}) as session:
        cpu0 = cpu_seconds()

        async def poll_one(video_id: str) -> None:
            nonlocal requests
            while True:
                await asyncio.sleep(5 * scale)
                requests += 1
                async with session.post(url + RESULTS, json={"_ids": video_id}) as resp:
                    data = await resp.json()
                for item in data["data"]["result"]:
                    if item["status"] in (3, 4):
                        latencies.append(time.time() - item["update_time"] / 1000)
                        return

        tasks = []
        for start in range(0, n, 10):
            body = {**BODY, "count": min(10, n - start)}
            async with session.post(url + BATCH, json=body) as resp:
                data = await resp.json()
            ids = [item["_id"] for item in data["data"]["successList"]]
            tasks.extend(asyncio.create_task(poll_one(i)) for i in ids)
        await asyncio.gather(*tasks)
    return {"requests": requests, "cpu": cpu_seconds() - cpu0, "latencies": latencies}


# --- orchestration ---------------------------------------------------------------------------

FAKE = """
import asyncio, json, sys
from akool_async.testing import FakeAkoolServer

async def main(scale):
    async with FakeAkoolServer(queue_seconds=0, process_seconds=120 * scale, timing_jitter=0.5,
                               credit=1e12, max_ids_per_results=1000, seed=7) as fake:
        print(fake.url, fake.api_key, flush=True)
        loop = asyncio.get_running_loop()
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            if line.startswith("scale"):
                fake.process_seconds = 120 * float(line.split()[1])
            fake_log = [r.started_at for r in fake.calls("results")]
            fake.reset_log()
            print(json.dumps(fake_log), flush=True)

asyncio.run(main(float(sys.argv[1])))
"""


class Fake:
    """The fake server in its own process; ``log()`` returns (and clears) results call times."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", FAKE, "1"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        assert self.proc.stdout is not None
        self.url, self.key = self.proc.stdout.readline().split()

    def command(self, line: str) -> list[float]:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        return list(json.loads(self.proc.stdout.readline()))

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def run_client(fake: Fake, mode: str, n: int, scale: float, **extra: Any) -> dict[str, Any]:
    fake.command(f"scale {scale}")
    argv = [sys.executable, __file__, "--client", mode, "--url", fake.url, "--key", fake.key,
            "--n", str(n), "--scale", str(scale)]  # fmt: skip
    for name, value in extra.items():
        argv += [f"--{name}", str(value)]
    out = subprocess.run(argv, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"the {mode} client failed:\n{out.stderr}")
    result = dict(json.loads(out.stdout.strip().splitlines()[-1]))
    # The fake's clock is time.monotonic(), shared by every process on the machine.
    starts = sorted(t for t in fake.command("log") if t >= result.get("started", 0.0))
    # Calls per real second at the peak: the most calls within any `scale` seconds.
    result["peak"] = max(
        (sum(1 for t in starts[i:] if t < s + scale) for i, s in enumerate(starts)), default=0
    )
    return result


def row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def print_table(results: list[tuple[int, float, str, dict[str, Any]]]) -> None:
    print(row(["N", "scale", "waited for by", "results calls", "peak calls/s", "client CPU s",
               "lag p50 s", "lag p90 s", "lag p99 s"]))  # fmt: skip
    print(row(["---"] * 9))
    for n, scale, label, r in results:
        lat = [x / scale for x in r["latencies"]]
        assert len(lat) == n, (label, len(lat))
        print(
            row(
                [str(n), f"1/{1 / scale:g}", label, f"{r['requests']:,}", str(r["peak"]),
                 f"{r['cpu']:.2f}", f"{percentile(lat, 0.5):.1f}", f"{percentile(lat, 0.9):.1f}",
                 f"{percentile(lat, 0.99):.1f}"]
            )
        )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200:0.1,2000:0.25", help="N:scale,...")
    parser.add_argument(
        "--modes",
        default=",".join(MODES),
        type=parse_modes,
        help="comma-separated, of: " + ",".join(MODES),
    )
    parser.add_argument("--hint-study", action="store_true")
    parser.add_argument("--client", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--scale", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--spread", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--hints", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.client:
        if args.client == "per-job":
            result = asyncio.run(run_per_job(args.url, args.key, args.n, args.scale))
        else:
            result = asyncio.run(
                run_sdk(args.url, args.key, args.n, args.scale, args.client, args.spread,
                        None if args.hints is None else bool(args.hints))
            )  # fmt: skip
        print(json.dumps(result))
        return

    fake = Fake()
    print(
        f"videos take 60-180 s (uniform); time scaled as shown, figures in real seconds; "
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs\n"
    )
    results: list[tuple[int, float, str, dict[str, Any]]] = []
    try:
        if args.hint_study:
            # A stream: the videos are created evenly over 300 s, so later ones have history.
            for n, scale in ((200, 0.1), (2000, 0.1)):
                for hints in (0, 1):
                    label = f"(c) new default, learn_durations={bool(hints)}"
                    r = run_client(fake, "new", n, scale, spread=300, hints=hints)
                    results.append((n, scale, label + ", created over 300 s", r))
        else:
            for size in args.sizes.split(","):
                n, scale = int(size.split(":")[0]), float(size.split(":")[1])
                for mode in args.modes:
                    label = MODES[mode]
                    results.append((n, scale, label, run_client(fake, mode, n, scale)))
        print_table(results)
    finally:
        fake.close()


if __name__ == "__main__":
    main()
