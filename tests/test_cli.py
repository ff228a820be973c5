"""Tests of the akool-async command line, run as a subprocess against a FakeAkoolServer.

The fake runs in the test process (it outlives a CLI killed with SIGKILL), so the tests can
count what it created. Every run is checked to never print the API key.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import shlex
import shutil
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest

from akool_async._cli import EXIT_CODES
from akool_async.testing import (
    DEFAULT_API_KEY,
    DEFAULT_MODELS,
    FakeAkoolServer,
    FaultKind,
    video_bytes,
)

#: A key that looks secret; no output may ever contain it.
KEY = "sk-akool-test-SECRET-0123456789ab"
IMAGE = "https://images.example/cat.png"
JOURNAL = "akool-journal.sqlite3"


@attrs.frozen
class Run:
    """A finished CLI run."""

    code: int
    out: str
    err: str


def environment(env_key: str | None = None) -> dict[str, str]:
    """The CLI's environment: ours without AKOOL_API_KEY, unless one is given."""
    env = {k: v for k, v in os.environ.items() if k != "AKOOL_API_KEY"}
    if env_key is not None:
        env["AKOOL_API_KEY"] = env_key
    return env


#: How the CLI is started: ``python -m akool_async``.
MODULE = ("-m", "akool_async")
#: The CLI started with ``rich`` made unimportable.
WITHOUT_RICH = (
    "-c",
    "import sys; sys.modules['rich'] = None; "
    "from akool_async._cli import main; sys.exit(main(sys.argv[1:]))",
)


async def start(
    *args: str, env_key: str | None = None, python: Sequence[str] = MODULE
) -> asyncio.subprocess.Process:
    """Start ``python -m akool_async ARGS`` without waiting for it."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        *python,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment(env_key),
    )


async def cli(
    *args: str, env_key: str | None = None, python: Sequence[str] = MODULE, timeout: float = 30.0
) -> Run:
    """Run the CLI to completion; fail the test if the key shows up in its output."""
    proc = await start(*args, env_key=env_key, python=python)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    run = Run(proc.returncode, out.decode(), err.decode())
    assert KEY not in run.out + run.err
    return run


def conn(server: FakeAkoolServer) -> list[str]:
    """Connection options for ``server`` with fast polling."""
    return ["--base-url", server.url, "--api-key", KEY, "--poll-interval", "0.02"]


def request(prompt: str, count: int = 1, **extra: Any) -> dict[str, Any]:
    """One jobs-file request (720p, 5 s: 20 credits per video on the fake)."""
    return {
        "image_url": IMAGE,
        "prompt": prompt,
        "resolution": "720p",
        "video_length": 5,
        "count": count,
        **extra,
    }


def write_jobs(path: Path, items: Sequence[dict[str, Any] | str]) -> Path:
    """Write a JSONL jobs file (strings are written verbatim)."""
    path.write_text("".join((i if isinstance(i, str) else json.dumps(i)) + "\n" for i in items))
    return path


def created_per_prompt(server: FakeAkoolServer) -> dict[str, int]:
    """Videos the fake created, by request prompt."""
    counts: collections.Counter[str] = collections.Counter()
    for call in server.calls("create_batch"):
        counts[call.body["prompt"]] += len(call.created_ids)
    return dict(counts)


def creates_sent_per_prompt(server: FakeAkoolServer) -> dict[str, int]:
    """Create requests the fake received, by prompt (answered or not)."""
    return dict(collections.Counter(c.body["prompt"] for c in server.calls("create_batch")))


def videos_on_disk(out: Path) -> dict[str, bytes]:
    """The .mp4 files in ``out`` by name."""
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.mp4"))}


def hidden_leftovers(out: Path) -> list[str]:
    """Temporary download files left in ``out``."""
    return [p.name for p in out.iterdir() if p.name.endswith(".part")]


def journal_rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows from the journal, read while the CLI may be writing it (WAL allows that)."""
    if not path.exists():
        return []
    db = sqlite3.connect(path, timeout=5.0)
    try:
        return db.execute(sql).fetchall()
    except sqlite3.OperationalError:  # the CLI has not created the tables yet
        return []
    finally:
        db.close()


async def until(condition: Callable[[], bool], proc: asyncio.subprocess.Process) -> None:
    """Wait until ``condition()`` holds; fail if the CLI exits first."""
    deadline = time.monotonic() + 20
    while not condition():
        assert proc.returncode is None, "the CLI finished before the expected moment"
        assert time.monotonic() < deadline, "timed out waiting for the CLI"
        await asyncio.sleep(0.02)


@pytest.fixture
async def fake() -> AsyncIterator[FakeAkoolServer]:
    """A fast fake server whose API key is KEY."""
    async with FakeAkoolServer(api_key=KEY, queue_seconds=0.02, process_seconds=0.1) as server:
        yield server


# --- help and single commands ----------------------------------------------------------------


async def test_help_documents_every_exit_code() -> None:
    """--help lists each exit code with its meaning; subcommands take --api-key/--base-url."""
    top = await cli("--help")
    bulk = await cli("bulk", "--help")

    assert 0 == top.code
    for code, meaning in EXIT_CODES.items():
        assert f"{code:>3}  {meaning}" in top.out
    assert {"--api-key", "--base-url"} <= set(bulk.out.split())


async def test_models_prints_a_table_and_json(fake: FakeAkoolServer) -> None:
    """models shows each model with resolutions, durations and audio; --json the raw list."""
    table = await cli("models", *conn(fake))
    raw = await cli("models", "--json", *conn(fake))

    assert 0 == table.code
    assert "AkoolImage2VideoHDV1          720p,1080p,4k    5,10     yes" in table.out
    by_sort = sorted(DEFAULT_MODELS, key=lambda m: -m["sort"])
    assert [m["value"] for m in by_sort] == [m["value"] for m in json.loads(raw.out)]


async def test_credits_prints_the_balance(fake: FakeAkoolServer) -> None:
    """credits prints the balance, as text or JSON."""
    text = await cli("credits", *conn(fake))
    raw = await cli("credits", "--json", *conn(fake))

    assert (0, "credit balance: 100000\n") == (text.code, text.out)
    assert {"credit": 100000.0} == json.loads(raw.out)


async def test_create_then_wait_then_download(fake: FakeAkoolServer, tmp_path: Path) -> None:
    """create --json gives ids; wait prints them completed; download saves their files."""
    created = await cli(
        "create",
        *conn(fake),
        "--image-url",
        IMAGE,
        "--prompt",
        "wave",
        "--resolution",
        "720p",
        "--video-length",
        "5",
        "--count",
        "2",
        "--json",
    )
    data = json.loads(created.out)
    ids = [v["_id"] for v in data["videos"]]

    waited = await cli("wait", *ids, *conn(fake))
    saved = await cli("download", *ids, "--out", str(tmp_path), *conn(fake))

    assert (0, 2, 40.0) == (created.code, len(ids), data["deduction_credit"])
    assert 0 == waited.code
    assert [f"{i}  completed  {fake.video_url(i)}" for i in ids] == waited.out.splitlines()
    assert 0 == saved.code
    assert {f"{i}.mp4": video_bytes(i) for i in ids} == videos_on_disk(tmp_path)


async def test_create_wait_prints_the_finished_videos(fake: FakeAkoolServer) -> None:
    """create --wait prints each video completed with its URL."""
    run = await cli(
        "create",
        "--image-url",
        IMAGE,
        "--prompt",
        "wave",
        "--resolution",
        "720p",
        "--video-length",
        "5",
        "--wait",
        *conn(fake),
    )

    (video_id,) = fake.videos
    assert (0, f"{video_id}  completed  {fake.video_url(video_id)}\n") == (run.code, run.out)
    assert "created 1 video(s) for 20 credits" in run.err


async def test_create_refuses_more_than_one_batch(fake: FakeAkoolServer) -> None:
    """create --count 11 is bad input (exit 2) and sends nothing."""
    run = await cli(
        "create",
        *conn(fake),
        "--image-url",
        IMAGE,
        "--prompt",
        "wave",
        "--resolution",
        "720p",
        "--video-length",
        "5",
        "--count",
        "11",
    )

    assert 2 == run.code
    assert "count" in run.err
    assert 0 == fake.call_count("create_batch")


async def test_wait_reports_a_failed_video(fake: FakeAkoolServer) -> None:
    """A video that ends in status 4 makes wait exit 12."""
    fake.fail_when = lambda body: True
    created = await cli(
        "create",
        *conn(fake),
        "--image-url",
        IMAGE,
        "--prompt",
        "wave",
        "--resolution",
        "720p",
        "--video-length",
        "5",
        "--json",
    )
    (video_id,) = [v["_id"] for v in json.loads(created.out)["videos"]]

    run = await cli("wait", video_id, *conn(fake))

    assert (12, f"{video_id}  failed\n") == (run.code, run.out)


async def test_a_wait_that_runs_out_exits_10_and_names_the_video(fake: FakeAkoolServer) -> None:
    """A wait past --timeout keeps exit 10 (WaitTimeoutError is no longer a connection
    error in the SDK, but the CLI's code for it stays)."""
    fake.queue_seconds = 3600.0
    created = await cli(
        "create",
        *conn(fake),
        "--image-url",
        IMAGE,
        "--prompt",
        "wave",
        "--resolution",
        "720p",
        "--video-length",
        "5",
        "--json",
    )
    (video_id,) = [v["_id"] for v in json.loads(created.out)["videos"]]

    run = await cli("wait", video_id, "--timeout", "0.5", *conn(fake))

    assert 10 == run.code
    assert video_id in run.out + run.err


async def test_wait_for_an_unknown_id_is_not_found(fake: FakeAkoolServer) -> None:
    """An id AKOOL does not know ends with exit 7."""
    run = await cli("wait", "0123456789abcdef01234567", *conn(fake))

    assert 7 == run.code
    assert "unknown to AKOOL" in run.out


# --- keys ------------------------------------------------------------------------------------


async def test_the_key_is_never_printed(fake: FakeAkoolServer, tmp_path: Path) -> None:
    """No output shows a key: not the right one, not a wrong one, not one from the env."""
    wrong = "sk-wrong-SECRET-key-9876543210"
    jobs = write_jobs(tmp_path / "jobs.jsonl", [request("wave", 2)])

    runs = [
        await cli("credits", "--base-url", fake.url, env_key=KEY),
        await cli("models", *conn(fake)),
        await cli("bulk", str(jobs), "--out", str(tmp_path / "out"), *conn(fake)),
        await cli("credits", "--base-url", fake.url, "--api-key", wrong),
        await cli("credits", "--base-url", fake.url, env_key=wrong),
        await cli("fake-server", "--api-key", wrong, "--base-url", fake.url),
    ]

    assert [0, 0, 0, 3, 3, 2] == [r.code for r in runs]
    assert [] == [r for r in runs if wrong in r.out + r.err]
    assert "[1109]" in runs[3].err


async def test_a_missing_key_is_an_authentication_error(fake: FakeAkoolServer) -> None:
    """Without --api-key or $AKOOL_API_KEY the CLI exits 3 before any request."""
    run = await cli("credits", "--base-url", fake.url)

    assert 3 == run.code
    assert "no API key" in run.err
    assert [] == fake.requests


# --- bulk ------------------------------------------------------------------------------------


async def test_bulk_of_thirty_requests_downloads_every_file(tmp_path: Path) -> None:
    """30 requests with counts up to 25: every video created once and saved whole."""
    counts = [25, 12, 10, 9] + [1 + i % 4 for i in range(26)]
    items = [request(f"job {i}", n, id=f"job-{i:02d}") for i, n in enumerate(counts)]
    jobs = write_jobs(tmp_path / "jobs.jsonl", items)
    out = tmp_path / "out"
    async with FakeAkoolServer(api_key=KEY, queue_seconds=0.02, process_seconds=0.1) as fake:
        run = await cli(
            "bulk",
            str(jobs),
            "--out",
            str(out),
            "--json",
            "--download-concurrency",
            "8",
            *conn(fake),
        )
        summary = json.loads(run.out)
        files = videos_on_disk(out)

        assert 0 == run.code, run.err
        assert {f"job {i}": n for i, n in enumerate(counts)} == created_per_prompt(fake)
        assert sum(counts) == len(files) == fake.created_count
        assert {video_bytes(v) for v in fake.videos} == set(files.values())
    assert {f"job-{i:02d}-{k}.mp4" for i, n in enumerate(counts) for k in range(1, n + 1)} == set(
        files
    )
    assert (sum(counts), sum(counts), 0, 0, 20.0 * sum(counts)) == (
        summary["created"],
        summary["downloaded"],
        summary["failed"],
        summary["unknown"],
        summary["credits"],
    )


async def test_bulk_killed_with_sigkill_resumes_without_duplicates(tmp_path: Path) -> None:
    """A run killed mid-way and re-run with its journal creates nothing twice, saves all.

    The first run's credit runs out part-way (so some requests are still uncreated), and it
    is killed while following the videos it made: at that moment no create is in flight (a
    create cut off mid-flight is "unknown" by design; see the next test).
    """
    counts = list(range(1, 13))  # 78 videos; credit for 30 on the first run
    items = [request(f"job {i}", n, id=f"job-{i:02d}") for i, n in enumerate(counts)]
    jobs = write_jobs(tmp_path / "jobs.jsonl", items)
    out = tmp_path / "out"
    journal = out / JOURNAL
    async with FakeAkoolServer(
        api_key=KEY, queue_seconds=0.05, process_seconds=1.0, timing_jitter=0.5, credit=600
    ) as fake:
        proc = await start("bulk", str(jobs), "--out", str(out), *conn(fake))

        def mid_way() -> bool:
            states = dict(journal_rows(journal, "SELECT state, COUNT(*) FROM creates GROUP BY 1"))
            downloaded = journal_rows(
                journal, "SELECT COUNT(*) FROM videos WHERE downloaded_at IS NOT NULL"
            )
            return (
                states.get("refused", 0) > 0 and states.get("sent", 0) == 0 and downloaded[0][0] > 0
            )

        await until(mid_way, proc)
        proc.kill()
        await proc.communicate()
        before = fake.created_count
        fake.credit = 100_000.0

        rerun = await cli("bulk", str(jobs), "--out", str(out), *conn(fake))
        files = videos_on_disk(out)

        assert -9 == proc.returncode
        assert 0 < before < sum(counts)
        assert 0 == rerun.code, rerun.err
        assert "resume" in rerun.out
        assert {f"job {i}": n for i, n in enumerate(counts)} == created_per_prompt(fake)
        assert sum(counts) == fake.created_count == len(files)
        assert {video_bytes(v) for v in fake.videos} == set(files.values())
        assert [] == hidden_leftovers(out)


async def test_a_create_cut_off_by_a_crash_is_unknown_and_not_resent(tmp_path: Path) -> None:
    """Killed while a create is out: the re-run reports it unknown (exit 11), counts it at its
    estimate, sends it again only with --retry-unknown, and finishes the other requests."""
    items = [request(p, 1, id=p) for p in ("a", "b", "c")]
    jobs = write_jobs(tmp_path / "jobs.jsonl", items)
    out = tmp_path / "out"
    journal = out / JOURNAL
    async with FakeAkoolServer(
        api_key=KEY, queue_seconds=0.02, process_seconds=0.1, create_latency=5.0
    ) as fake:
        proc = await start("bulk", str(jobs), "--out", str(out), "--concurrency", "1", *conn(fake))
        # The create reached AKOOL (its answer is held back by create_latency): kill now.
        await fake.wait_for_calls("create_batch", 1, timeout=30)
        assert journal_rows(journal, "SELECT 1 FROM creates")  # journaled before it left
        proc.kill()
        await proc.communicate()
        fake.create_latency = 0.0

        rerun = await cli("bulk", str(jobs), "--out", str(out), *conn(fake))
        sent_after_rerun = creates_sent_per_prompt(fake)
        retried = await cli("bulk", str(jobs), "--out", str(out), "--retry-unknown", *conn(fake))

        assert (11, {"a": 1, "b": 1, "c": 1}) == (rerun.code, sent_after_rerun)
        assert "in flight when the last run stopped" in rerun.err
        assert "unknown     1" in rerun.out
        # The cut-off create counts at its estimate (20: the docs' table), b and c at 20.
        assert "credits     60 (40 this run)" in rerun.out
        assert {"b-1.mp4", "c-1.mp4"} <= set(videos_on_disk(out))
        assert (0, {"a": 2, "b": 1, "c": 1}) == (retried.code, creates_sent_per_prompt(fake))
        assert {"a-1.mp4", "b-1.mp4", "c-1.mp4"} == set(videos_on_disk(out))


async def test_an_ambiguous_create_is_reported_and_not_retried(
    fake: FakeAkoolServer, tmp_path: Path
) -> None:
    """A create whose answer is lost is reported unknown (exit 11) and never resent."""
    items = [request(p, 2, id=p) for p in ("a", "b")]
    jobs = write_jobs(tmp_path / "jobs.jsonl", items)
    out = tmp_path / "out"
    fake.inject("create_batch", FaultKind.RESET_AFTER)  # the first create: line 1

    first = await cli("bulk", str(jobs), "--out", str(out), "--concurrency", "1", *conn(fake))
    second = await cli("bulk", str(jobs), "--out", str(out), *conn(fake))

    assert (11, 11) == (first.code, second.code)
    assert "line 1" in first.err
    assert "unknown outcome" in first.err
    assert "unknown: line 1 (id:a)" in second.err
    assert {"a": 1, "b": 1} == creates_sent_per_prompt(fake)
    assert {"b-1.mp4", "b-2.mp4"} == set(videos_on_disk(out))


async def test_max_credits_stops_at_the_cap(fake: FakeAkoolServer, tmp_path: Path) -> None:
    """--max-credits stops creating (exit 6), counts earlier runs, and a higher cap goes on."""
    items = [request(f"job {i}", 2, id=f"job-{i}") for i in range(10)]  # 40 credits each
    jobs = write_jobs(tmp_path / "jobs.jsonl", items)
    out = tmp_path / "out"

    capped = await cli("bulk", str(jobs), "--out", str(out), "--max-credits", "170", *conn(fake))
    created_first = fake.created_count
    files_first = len(videos_on_disk(out))
    again = await cli("bulk", str(jobs), "--out", str(out), "--max-credits", "170", *conn(fake))
    created_again = fake.created_count
    raised = await cli("bulk", str(jobs), "--out", str(out), "--max-credits", "1000", *conn(fake))

    assert (6, 8) == (capped.code, created_first)
    assert "max_credits=170" in capped.err
    assert 8 == files_first  # the videos made before the stop are followed and saved
    assert (6, 8) == (again.code, created_again)
    assert (0, 20) == (raised.code, fake.created_count)


async def test_a_corrupt_line_is_named_and_nothing_is_created(
    fake: FakeAkoolServer, tmp_path: Path
) -> None:
    """A bad JSONL line stops the job before any create (exit 2), naming the line;
    --skip-invalid runs the good lines and still exits 2."""
    items: list[dict[str, Any] | str] = [
        request("good one", id="a"),
        '{"image_url": "https://images.example/cat.png", "prompt": ',
        request("good two", id="b"),
        {"image_url": IMAGE, "resolution": "720p", "video_length": 5},
    ]
    jobs = write_jobs(tmp_path / "jobs.jsonl", items)
    out = tmp_path / "out"

    refused = await cli("bulk", str(jobs), "--out", str(out), *conn(fake))
    no_creates = fake.call_count("create_batch")
    no_journal = not (out / JOURNAL).exists()
    skipped = await cli("bulk", str(jobs), "--out", str(out), "--skip-invalid", *conn(fake))

    assert (2, 0) == (refused.code, no_creates)
    assert "line 2: not valid JSON" in refused.err
    assert "line 4: missing required field(s): prompt" in refused.err
    assert no_journal
    assert 2 == skipped.code
    assert {"good one": 1, "good two": 1} == created_per_prompt(fake)
    assert {"a-1.mp4", "b-1.mp4"} == set(videos_on_disk(out))


async def test_a_failed_video_is_counted_and_exits_12(
    fake: FakeAkoolServer, tmp_path: Path
) -> None:
    """A failed video is summarised, exits 12, and is not created again by a re-run."""
    fake.fail_when = lambda body: body["prompt"] == "breaks"
    jobs = write_jobs(tmp_path / "jobs.jsonl", [request("works", id="w"), request("breaks")])

    run = await cli("bulk", str(jobs), "--out", str(tmp_path / "out"), *conn(fake))
    rerun = await cli("bulk", str(jobs), "--out", str(tmp_path / "out"), *conn(fake))

    assert 12 == run.code
    assert "failed      1" in run.out
    assert {"w-1.mp4"} == set(videos_on_disk(tmp_path / "out"))
    assert (12, 2) == (rerun.code, fake.created_count)  # still failed; nothing made again


async def test_bulk_warns_about_a_video_near_expiry(fake: FakeAkoolServer, tmp_path: Path) -> None:
    """A video still to download that is close to AKOOL's 7-day deletion is warned about."""
    jobs = write_jobs(tmp_path / "jobs.jsonl", [request("wave", id="w")])
    out = tmp_path / "out"
    await cli("bulk", str(jobs), "--out", str(out), *conn(fake))
    (out / "w-1.mp4").unlink()
    six_and_a_half_days_ago = int((time.time() - 6.5 * 86400) * 1000)
    db = sqlite3.connect(out / JOURNAL)
    with db:
        db.execute("UPDATE videos SET create_time = ?", (six_and_a_half_days_ago,))
    db.close()

    run = await cli("bulk", str(jobs), "--out", str(out), *conn(fake))

    assert 0 == run.code
    assert "expires in 12.0 h" in run.err
    assert {"w-1.mp4"} == set(videos_on_disk(out))
    assert 1 == fake.created_count


async def test_the_live_display_and_its_plain_fallback(
    fake: FakeAkoolServer, tmp_path: Path
) -> None:
    """--progress live draws counts with rich; without rich the CLI falls back to plain lines."""
    jobs = write_jobs(tmp_path / "jobs.jsonl", [request("wave", 2, id="w")])

    live = await cli(
        "bulk", str(jobs), "--out", str(tmp_path / "a"), "--progress", "live", *conn(fake)
    )
    plain = await cli(
        "bulk",
        str(jobs),
        "--out",
        str(tmp_path / "b"),
        "--progress",
        "live",
        *conn(fake),
        python=WITHOUT_RICH,
    )

    assert 0 == live.code
    assert "queueing 0  processing 0  completed 2  failed 0  unknown 0  downloaded 2" in live.out
    assert "40 credits" in live.out
    assert 0 == plain.code
    assert "rich is not installed" in plain.err
    assert 2 == plain.out.count("downloaded      line 1:")


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash for the pipeline")
async def test_a_closed_stdout_does_not_stop_a_bulk_job(
    fake: FakeAkoolServer, tmp_path: Path
) -> None:
    """`bulk ... | head -1`: the job still finishes every video and exits 0."""
    items = [request(f"job {i}", 3, id=f"job-{i}") for i in range(4)]
    jobs = write_jobs(tmp_path / "jobs.jsonl", items)
    out = tmp_path / "out"
    command = shlex.join(
        [sys.executable, "-m", "akool_async", "bulk", str(jobs), "--out", str(out), *conn(fake)]
    )
    proc = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        f"{command} | head -1 >/dev/null; exit ${{PIPESTATUS[0]}}",
        stderr=asyncio.subprocess.PIPE,
        env=environment(),
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)

    assert (0, "") == (proc.returncode, err.decode())
    assert 12 == len(videos_on_disk(out)) == fake.created_count


async def test_the_example_job_runs(fake: FakeAkoolServer, tmp_path: Path) -> None:
    """examples/jobs.jsonl (used by `make demo`) is valid and completes against the fake."""
    jobs = Path(__file__).parent.parent / "examples" / "jobs.jsonl"

    run = await cli("bulk", str(jobs), "--out", str(tmp_path), *conn(fake))

    assert 0 == run.code, run.err
    assert 20 == len(videos_on_disk(tmp_path)) == fake.created_count
    assert {"cat-waves-3.mp4", "owl-blinks-12.mp4", "line6-2.mp4"} <= set(videos_on_disk(tmp_path))


# --- fake-server -----------------------------------------------------------------------------


async def test_fake_server_prints_its_url_and_serves() -> None:
    """fake-server prints its URL and (public) key, and answers the other commands."""
    proc = await start("fake-server", "--port", "0")
    assert proc.stdout is not None
    try:
        first = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        second = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        url = first.removeprefix("url: ").strip()
        run = await cli("credits", "--base-url", url, "--api-key", DEFAULT_API_KEY)
    finally:
        proc.terminate()
        await proc.communicate()

    assert first.startswith("url: http://127.0.0.1:")
    assert f"api key: {DEFAULT_API_KEY}\n" == second
    assert (0, "credit balance: 100000\n") == (run.code, run.out)
