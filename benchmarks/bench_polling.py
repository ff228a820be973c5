"""Shared poller vs naive per-video polling, side by side, against the fake AKOOL server.

Run: ``make bench-polling``
(or ``.venv/bin/python benchmarks/bench_polling.py --sizes 100,1000,10000``).

The fake server runs in its own process so its CPU is not counted as ours; each
(mode, N) run is a fresh client process so peak RSS belongs to that run alone. For each N,
N videos are created in batches of 10 and complete over a few seconds (queue + processing
time, with jitter). Three clients wait for all of them:

1. ``ours``: the SDK's shared poller (``generate_many`` + ``as_completed``) on the baseline's
   fixed schedule (one poll per id per interval), so only the batching differs;
2. ``adaptive``: the same with the SDK's default schedule shape (each id's interval grows
   x1.5 per poll, here capped at 3 intervals): fewer requests, later detection;
3. ``naive``: what peer SDKs do, written here with plain aiohttp: one coroutine per video
   polling ``resultsByIds`` with its single id at a fixed interval.

Printed per N: results requests, requests per tick, client CPU seconds (user+sys during the
wait), peak RSS, RSS per pending handle, median and p99 detection latency (from the fake's
``update_time`` of completion to the awaiting code seeing it), and baseline/ours ratios.
The numbers are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import resource
import statistics
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


MODES = ("ours", "adaptive", "naive")


def rss_bytes() -> int:
    """Resident set size now (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


# --- the two clients (each runs in its own process) ------------------------------------------


async def run_ours(
    url: str, key: str, n: int, interval: float, adaptive: bool = False
) -> dict[str, Any]:
    from akool_async import AkoolClient, PollPolicy, VideoRequest

    # "ours": the baseline's fixed schedule, so only the batching differs.
    # "adaptive": the SDK's default shape (x1.5 per poll), capped at 3 intervals.
    policy = PollPolicy(
        initial_delay=interval,
        interval=interval,
        max_interval=interval * (3 if adaptive else 1),
        # Batching alone: no request budget, and only due ids polled (the earlier default).
        max_requests_per_second=None,
        fill_calls=False,
    )
    async with AkoolClient(key, base_url=url, poll=policy, wait_timeout=600) as client:
        await client.account.credits()  # open the session before the baseline RSS
        gc.collect()
        rss_before = rss_bytes()
        request = VideoRequest(**BODY, count=n)
        handles = await client.image_to_video.generate_many([request])
        gc.collect()
        rss_pending = rss_bytes()
        pending_at_measure = client.poller.statistics().pending
        cpu0 = cpu_seconds()
        latencies = []
        async for handle in client.as_completed(handles):
            video = handle.result_nowait()
            assert video.update_time is not None
            latencies.append(time.time() - video.update_time / 1000)
        cpu = cpu_seconds() - cpu0
        stats = client.poller.statistics()
    return {
        "requests": stats.requests,
        "ticks": stats.ticks,
        "first_tick_requests": stats.max_requests_per_tick,
        "cpu": cpu,
        "peak_rss": peak_rss_bytes(),
        "rss_per_pending": (rss_pending - rss_before) / max(1, pending_at_measure),
        "latencies": latencies,
    }


async def run_naive(url: str, key: str, n: int, interval: float) -> dict[str, Any]:
    import aiohttp

    headers = {"x-api-key": key}
    requests = 0
    latencies: list[float] = []
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.get(url + "/api/open/v3/faceswap/quota/info") as resp:
            await resp.read()
        gc.collect()
        rss_before = rss_bytes()
        ids: list[str] = []
        for start in range(0, n, 10):
            body = {**BODY, "count": min(10, n - start)}
            async with session.post(url + BATCH, json=body) as resp:
                data = await resp.json()
            ids.extend(item["_id"] for item in data["data"]["successList"])

        async def poll_one(video_id: str) -> None:
            nonlocal requests
            while True:
                await asyncio.sleep(interval)
                requests += 1
                async with session.post(url + RESULTS, json={"_ids": video_id}) as resp:
                    data = await resp.json()
                for item in data["data"]["result"]:
                    if item["status"] in (3, 4):
                        latencies.append(time.time() - item["update_time"] / 1000)
                        return

        tasks = [asyncio.create_task(poll_one(i)) for i in ids]
        await asyncio.sleep(0)
        gc.collect()
        rss_pending = rss_bytes()
        cpu0 = cpu_seconds()
        await asyncio.gather(*tasks)
        cpu = cpu_seconds() - cpu0
    return {
        "requests": requests,
        "ticks": None,
        "first_tick_requests": n,
        "cpu": cpu,
        "peak_rss": peak_rss_bytes(),
        "rss_per_pending": (rss_pending - rss_before) / n,
        "latencies": latencies,
    }


# --- orchestration ---------------------------------------------------------------------------


def start_fake_server(args: argparse.Namespace) -> tuple[subprocess.Popen[str], str, str]:
    code = (
        "import asyncio, sys\n"
        "from akool_async.testing import serve_forever\n"
        "def ready(s):\n"
        "    print(s.url, s.api_key, flush=True)\n"
        f"asyncio.run(serve_forever(port=0, ready=ready, queue_seconds={args.queue},"
        f" process_seconds={args.process}, timing_jitter={args.jitter}, credit=1e12,"
        " max_ids_per_results=1000))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, bufsize=1
    )
    assert proc.stdout is not None
    url, key = proc.stdout.readline().split()
    return proc, url, key


def run_client(mode: str, url: str, key: str, n: int, interval: float) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--client", mode, "--url", url, "--key", key,
         "--n", str(n), "--interval", str(interval)],
        capture_output=True, text=True,
    )  # fmt: skip
    if out.returncode:
        raise SystemExit(f"the {mode} client failed:\n{out.stderr}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def fmt_row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--interval", type=float, default=1.0, help="poll interval, both modes")
    parser.add_argument("--queue", type=float, default=1.0, help="fake queueing seconds")
    parser.add_argument("--process", type=float, default=2.0, help="fake processing seconds")
    parser.add_argument("--jitter", type=float, default=0.5, help="fake timing jitter fraction")
    parser.add_argument("--client", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.client:
        if args.client == "naive":
            result = asyncio.run(run_naive(args.url, args.key, args.n, args.interval))
        else:
            adaptive = args.client == "adaptive"
            result = asyncio.run(run_ours(args.url, args.key, args.n, args.interval, adaptive))
        print(json.dumps(result))
        return

    sizes = [int(s) for s in args.sizes.split(",")]
    proc, url, key = start_fake_server(args)
    print(
        f"fake server: separate process; videos queue {args.queue}s + process {args.process}s "
        f"(jitter {args.jitter:.0%}); poll interval {args.interval}s in both modes; "
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
    )
    headers = ["N", "mode", "requests", "req/tick", "CPU s", "peak RSS MiB", "B/pending",
               "p50 lat s", "p99 lat s"]  # fmt: skip
    widths = [6, 8, 9, 8, 7, 12, 9, 9, 9]
    try:
        for n in sizes:
            rows = {}
            for mode in MODES:
                rows[mode] = run_client(mode, url, key, n, args.interval)
            print()
            print(fmt_row(headers, widths))
            for mode, r in rows.items():
                lat = r["latencies"]
                print(
                    fmt_row(
                        [
                            str(n),
                            mode,
                            str(r["requests"]),
                            str(r["first_tick_requests"]),
                            f"{r['cpu']:.2f}",
                            f"{r['peak_rss'] / 2**20:.1f}",
                            f"{r['rss_per_pending']:.0f}",
                            f"{statistics.median(lat):.3f}",
                            f"{percentile(lat, 0.99):.3f}",
                        ],
                        widths,
                    )
                )
            ours, naive = rows["ours"], rows["naive"]
            print(
                f"ratios naive/ours at N={n}: "
                f"requests {naive['requests'] / ours['requests']:.1f}x, "
                f"CPU {naive['cpu'] / max(ours['cpu'], 1e-9):.1f}x, "
                f"peak RSS {naive['peak_rss'] / ours['peak_rss']:.2f}x; "
                f"ours p99 latency = {percentile(ours['latencies'], 0.99) / args.interval:.2f} "
                "poll intervals; "
                f"ours: {ours['ticks']} ticks, first tick {ours['first_tick_requests']} requests "
                f"(ceil(N/50) = {math.ceil(n / 50)})"
            )
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
