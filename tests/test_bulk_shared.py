"""Several ``akool-async bulk`` worker processes on one job kept in a real Redis.

The fake AKOOL server runs in the test process (its create counters and holds are the
ground truth); the workers are real subprocesses, killed with SIGKILL where a test says so.
Waits are on the fake's events or bounded polls of the store, never fixed sleeps.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest
from conftest import FAST_POLL

from akool_async import AkoolClient, RetryPolicy, SharedBulkRunner, SqliteJobStore, load_job
from akool_async._bulk import BulkOutcome
from akool_async.redis import RedisJobStore
from akool_async.testing import FakeAkoolServer

KEY = "k" * 32
IMAGE = "https://images.example/cat.png"
LEASE = "1"
#: 60 lines of 1..25 videos (781 in all).
COUNTS = [1 + (i * 7) % 25 for i in range(60)]

#: What the fake charges for one 720p, 5 s video (the docs' price table).
PRICE = 20.0


@attrs.frozen
class Run:
    """A finished CLI run."""

    code: int
    out: str
    err: str


@pytest.fixture
async def fake() -> AsyncIterator[FakeAkoolServer]:
    """A fake AKOOL server with the test key."""
    async with FakeAkoolServer(api_key=KEY, queue_seconds=0.05, process_seconds=0.3) as server:
        yield server


def write_jobs(path: Path, counts: Sequence[int]) -> Path:
    """A jobs file: line i has prompt "line i" and counts[i] videos."""
    lines = [
        json.dumps(
            {
                "id": f"row{i}",
                "image_url": IMAGE,
                "prompt": f"line {i}",
                "resolution": "720p",
                "video_length": 5,
                "count": count,
            }
        )
        for i, count in enumerate(counts)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def environment() -> dict[str, str]:
    """Our environment without an API key."""
    return {k: v for k, v in os.environ.items() if k != "AKOOL_API_KEY"}


async def start(*args: str) -> asyncio.subprocess.Process:
    """Start ``python -m akool_async ARGS``."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "akool_async",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment(),
    )


async def finish(proc: asyncio.subprocess.Process, timeout: float = 60.0) -> Run:
    """Wait for a CLI process; its exit code and output."""
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


def worker_args(
    fake: FakeAkoolServer, jobs: Path, out: Path, redis_url: str, namespace: str, *extra: str
) -> list[str]:
    """``bulk`` options of one worker of job "j"."""
    return [
        "bulk",
        str(jobs),
        "--out",
        str(out),
        "--store",
        redis_url,
        "--namespace",
        namespace,
        "--job",
        "j",
        "--lease",
        LEASE,
        "--base-url",
        fake.url,
        "--api-key",
        KEY,
        "--poll-interval",
        "0.05",
        "--progress",
        "plain",
        "--json",
        *extra,
    ]


def created_per_prompt(fake: FakeAkoolServer) -> dict[str, int]:
    """Videos the fake created, by prompt."""
    counts: collections.Counter[str] = collections.Counter()
    for call in fake.calls("create_batch"):
        counts[call.body["prompt"]] += len(call.created_ids)
    return dict(counts)


def files(outs: Sequence[Path]) -> list[str]:
    """Every saved video file name across the workers' directories (repeats kept)."""
    return sorted(p.name for out in outs if out.exists() for p in out.glob("*.mp4"))


async def status(
    fake: FakeAkoolServer, redis_url: str, namespace: str
) -> tuple[int, dict[str, Any]]:
    """``jobs status j --json``: exit code and report."""
    del fake
    run = await finish(
        await start("jobs", "status", "j", "--store", redis_url, "--namespace", namespace, "--json")
    )
    return run.code, json.loads(run.out)


async def store_says(redis_url: str, namespace: str, what: str, value: int) -> None:
    """Poll the job's status until ``videos[what] >= value`` (bounded)."""
    async with RedisJobStore(redis_url, job="j", namespace=namespace) as store:
        deadline = time.monotonic() + 60
        while True:
            try:
                current = (await store.status()).videos[what]
            except Exception:  # the job is not loaded yet
                current = -1
            if current >= value:
                return
            assert time.monotonic() < deadline, f"{what} stayed at {current}, not {value}"
            await asyncio.sleep(0.05)


async def test_three_workers_share_one_job(
    fake: FakeAkoolServer, tmp_path: Path, redis_url: str, redis_namespace: str
) -> None:
    """Every video is created exactly as often as asked and saved once across the workers."""
    jobs = write_jobs(tmp_path / "jobs.jsonl", COUNTS)
    outs = [tmp_path / f"out{i}" for i in range(3)]

    procs = [await start(*worker_args(fake, jobs, out, redis_url, redis_namespace)) for out in outs]
    runs = await asyncio.gather(*(finish(p) for p in procs))

    assert [0, 0, 0] == [r.code for r in runs], [r.err[-2000:] for r in runs]
    assert {f"line {i}": n for i, n in enumerate(COUNTS)} == created_per_prompt(fake)
    saved = files(outs)
    assert sum(COUNTS) == len(saved)
    assert len(saved) == len(set(saved))
    code, report = await status(fake, redis_url, redis_namespace)
    assert 0 == code
    assert report["done"]
    assert sum(COUNTS) == report["videos"]["downloaded"]
    assert PRICE * sum(COUNTS) == report["credits"]

    # Worker 0's machine is lost: its files are saved again by the next worker.
    lost = json.loads(runs[0].out)["worker"]
    lost_files = sorted(p.name for p in outs[0].glob("*.mp4"))
    for path in outs[0].glob("*.mp4"):
        path.unlink()
    reopen = await finish(
        await start(
            "jobs", "reopen", "j", "--worker", lost, "--store", redis_url,
            "--namespace", redis_namespace,
        )
    )  # fmt: skip
    assert 0 == reopen.code
    assert f"{len(lost_files)} file(s)" in reopen.out
    replacement = tmp_path / "replacement"
    again = await finish(
        await start(*worker_args(fake, jobs, replacement, redis_url, redis_namespace))
    )
    assert 0 == again.code, again.err[-2000:]
    assert lost_files == sorted(p.name for p in replacement.glob("*.mp4"))
    assert sum(COUNTS) == sum(created_per_prompt(fake).values())


async def test_a_worker_killed_after_creating_is_taken_over(
    fake: FakeAkoolServer, tmp_path: Path, redis_url: str, redis_namespace: str
) -> None:
    """SIGKILL once every row has ids: the others save its videos; nothing is created twice."""
    fake.process_seconds = 2.0  # videos outlive the kill
    counts = COUNTS[:30]
    jobs = write_jobs(tmp_path / "jobs.jsonl", counts)
    outs = [tmp_path / f"out{i}" for i in range(3)]
    procs = [await start(*worker_args(fake, jobs, out, redis_url, redis_namespace)) for out in outs]

    await store_says(redis_url, redis_namespace, "created", sum(counts))
    procs[0].send_signal(signal.SIGKILL)
    runs = await asyncio.gather(*(finish(p) for p in procs))

    assert -signal.SIGKILL == runs[0].code
    assert [0, 0] == [r.code for r in runs[1:]], [r.err[-2000:] for r in runs[1:]]
    assert {f"line {i}": n for i, n in enumerate(counts)} == created_per_prompt(fake)
    code, report = await status(fake, redis_url, redis_namespace)
    assert (0, True) == (code, report["done"])
    saved = files(outs)
    assert sum(counts) == len(set(saved))
    assert sum(counts) == report["videos"]["downloaded"]


async def test_a_worker_killed_mid_create_leaves_an_unknown_create_not_resent(
    fake: FakeAkoolServer, tmp_path: Path, redis_url: str, redis_namespace: str
) -> None:
    """SIGKILL while its create is held by the fake: the create is reported unknown, the
    others finish without sending it again, and ``--retry-unknown`` sends it."""
    counts = COUNTS[:12]
    jobs = write_jobs(tmp_path / "jobs.jsonl", counts)
    outs = [tmp_path / f"out{i}" for i in range(3)]
    one_at_a_time = ("--concurrency", "1")
    with fake.holding("create_batch"):
        procs = [
            await start(*worker_args(fake, jobs, out, redis_url, redis_namespace, *one_at_a_time))
            for out in outs
        ]
        # Each worker sends one create at a time: three held creates, one per worker.
        await fake.wait_for_calls("create_batch", 3, timeout=60)
        procs[0].send_signal(signal.SIGKILL)
        assert -signal.SIGKILL == await procs[0].wait()
    runs = await asyncio.gather(*(finish(p) for p in procs[1:]))

    assert [11, 11] == [r.code for r in runs], [r.err[-2000:] for r in runs]
    code, report = await status(fake, redis_url, redis_namespace)
    assert 15 == code
    [unknown] = report["unknown"]
    row = int(unknown["row"].removeprefix("id:row"))
    created = created_per_prompt(fake)
    for i, n in enumerate(counts):
        if i != row:
            assert n == created[f"line {i}"]
    # The held create may or may not have been acted on after its client died; nothing
    # was sent for its videos again.
    in_doubt = unknown["videos"]
    assert created[f"line {row}"] in (counts[row], counts[row] - in_doubt)
    before = created[f"line {row}"]
    assert sum(counts) - in_doubt == report["videos"]["downloaded"]

    retry = await finish(
        await start(
            *worker_args(fake, jobs, outs[1], redis_url, redis_namespace, "--retry-unknown")
        )
    )

    assert 0 == retry.code, retry.err[-2000:]
    assert before + in_doubt == created_per_prompt(fake)[f"line {row}"]
    code, report = await status(fake, redis_url, redis_namespace)
    assert (0, True, []) == (code, report["done"], report["unknown"])


async def test_retry_failed_recreates_failed_videos_at_most_n_times(
    fake: FakeAkoolServer, tmp_path: Path
) -> None:
    """``--retry-failed N`` creates one new video per failure, recorded in the journal, and
    stops after N attempts per video."""
    fake.fail_when = lambda body: body["prompt"] == "line 1"
    jobs = write_jobs(tmp_path / "jobs.jsonl", [1, 2])
    out = tmp_path / "out"
    base = ["bulk", str(jobs), "--out", str(out), "--base-url", fake.url, "--api-key", KEY]
    base += ["--poll-interval", "0.05", "--progress", "plain"]

    first = await finish(await start(*base))
    assert 12 == first.code
    again = await finish(await start(*base, "--retry-failed", "1"))
    assert {"line 0": 1, "line 1": 4} == created_per_prompt(fake)
    once_more = await finish(await start(*base, "--retry-failed", "1"))
    assert {"line 0": 1, "line 1": 4} == created_per_prompt(fake)  # each retried once only
    fake.fail_when = None
    last = await finish(await start(*base, "--retry-failed", "2"))

    assert {"line 0": 1, "line 1": 6} == created_per_prompt(fake)
    assert [12, 0, 0] == [again.code, once_more.code, last.code], last.err
    assert "retrying 2 failed video(s)" in last.err
    assert 3 == len(list(out.glob("*.mp4")))
    code, report = await status_of_journal(out)
    assert (0, True) == (code, report["done"])
    assert 4 == report["videos"]["failed"]


async def status_of_journal(out: Path) -> tuple[int, dict[str, Any]]:
    """``jobs status default --journal OUT --json``."""
    run = await finish(await start("jobs", "status", "default", "--journal", str(out), "--json"))
    return run.code, json.loads(run.out)


async def test_an_unreachable_store_stops_the_worker_with_its_own_code(
    fake: FakeAkoolServer, tmp_path: Path, make_redis_server: Any
) -> None:
    """Exit 14, a clear message, nothing created."""
    server = make_redis_server()
    url = server.url
    server.kill()
    jobs = write_jobs(tmp_path / "jobs.jsonl", [1])

    run = await finish(await start(*worker_args(fake, jobs, tmp_path / "o", url, "ns")))

    assert 14 == run.code
    assert "cannot be reached" in run.err or "failed" in run.err
    assert 0 == fake.call_count("create_batch")


async def test_a_bad_line_is_named_and_never_claimed(
    fake: FakeAkoolServer, tmp_path: Path, redis_url: str, redis_namespace: str
) -> None:
    """With --skip-invalid the valid lines run; the bad one is reported with its number."""
    jobs = write_jobs(tmp_path / "jobs.jsonl", [1, 1])
    jobs.write_text(jobs.read_text() + '{"prompt": "no image"}\n')

    run = await finish(
        await start(
            *worker_args(fake, jobs, tmp_path / "o", redis_url, redis_namespace, "--skip-invalid")
        )
    )

    assert 2 == run.code
    assert "line 3" in run.err
    assert {"line 0": 1, "line 1": 1} == created_per_prompt(fake)


async def test_the_python_api_runs_two_workers_under_one_budget(
    fake: FakeAkoolServer, tmp_path: Path, redis_url: str, redis_namespace: str
) -> None:
    """Two ``SharedBulkRunner``s on one Redis job: the job's max_credits caps both together."""
    jobs = write_jobs(tmp_path / "jobs.jsonl", [5, 5, 5, 5])
    # 12 videos of credits for a job of 20.
    cap = PRICE * 12

    async def worker(name: str) -> BulkOutcome:
        async with (
            RedisJobStore(redis_url, job="j", namespace=redis_namespace) as store,
            AkoolClient(KEY, base_url=fake.url, poll=FAST_POLL, retry=RetryPolicy.fast()) as c,
        ):
            await load_job(store, jobs)
            runner = SharedBulkRunner(c, store, tmp_path / name, lease=5, max_credits=cap)
            return await runner.run()

    outcomes = await asyncio.gather(worker("a"), worker("b"))

    created = sum(created_per_prompt(fake).values())
    assert created * PRICE <= cap
    assert created >= 5  # the first batches fit; then the budget stops both workers
    assert any(o.budget is not None for o in outcomes)
    async with RedisJobStore(redis_url, job="j", namespace=redis_namespace) as store:
        report = await store.status()
    assert created == report.videos["downloaded"]
    assert report.credits <= cap
    assert not report.done


async def test_sqlite_store_runs_the_same_runner(fake: FakeAkoolServer, tmp_path: Path) -> None:
    """The embedded store: two workers of one process share the journal's job."""
    jobs = write_jobs(tmp_path / "jobs.jsonl", [3, 12])
    out = tmp_path / "out"
    async with (
        SqliteJobStore.open(out / "akool-journal.sqlite3", job="j") as store,
        AkoolClient(KEY, base_url=fake.url, poll=FAST_POLL, retry=RetryPolicy.fast()) as client,
    ):
        loaded, bad = await load_job(store, jobs)
        runners = [SharedBulkRunner(client, store, out, lease=5) for _ in range(2)]
        await asyncio.gather(*(r.run() for r in runners))
        report = await store.status()

    assert (2, []) == (loaded.added, bad)
    assert {"line 0": 3, "line 1": 12} == created_per_prompt(fake)
    assert report.done
    assert 15 == len(list(out.glob("*.mp4")))
