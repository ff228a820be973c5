"""Tests of ``akool-async bulk --dry-run`` (akool_async._cli._dry_run), run as a subprocess."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from test_cli import KEY, cli, conn, request, write_jobs

from akool_async.testing import FakeAkoolServer

SEEDANCE = "seedance-1-0-lite-i2v-250428"
HD = "AkoolImage2VideoHDV1"


@pytest.fixture
async def fake() -> AsyncIterator[FakeAkoolServer]:
    """A fast fake server whose API key is KEY."""
    async with FakeAkoolServer(api_key=KEY, queue_seconds=0.02, process_seconds=0.1) as server:
        yield server


def three_lines(path: Path) -> Path:
    """12 table-priced videos, 3 of a third-party model, 1 with generated audio."""
    return write_jobs(
        path,
        [
            request("many", 12, id="many"),
            request("other", 3, model_name=SEEDANCE, video_length=10, id="other"),
            request("sound", 1, model_name=HD, resolution="1080p", generate_audio=True),
        ],
    )


async def test_dry_run_prints_calls_and_credits_and_creates_nothing(
    fake: FakeAkoolServer, tmp_path: Path
) -> None:
    """--dry-run prints each line's videos, batch calls and credits with their source, and
    the totals; it reads the model list once and sends no create (exit 0)."""
    jobs = three_lines(tmp_path / "jobs.jsonl")
    out = tmp_path / "out"

    run = await cli("bulk", str(jobs), "--out", str(out), "--dry-run", *conn(fake))

    lines = run.out.splitlines()
    assert 0 == run.code, run.err
    assert [
        "dry run: nothing was created",
        "line 1 (id:many): 12 video(s) in 2 batch call(s), about 240 credits (20 per video, table)",
        "line 2 (id:other): 3 video(s) in 1 batch call(s), about 360 credits "
        "(120 per video, fallback)",
        "total: 16 video(s) in 4 batch call(s), about 637.5 credits (fallback 360, table 277.5)",
    ] == [*lines[:3], *lines[4:]]
    # The HD model's extra_credit_multiplier (1.5), read from the model list.
    assert lines[3].startswith("line 3 (auto:")
    assert lines[3].endswith(
        "): 1 video(s) in 1 batch call(s), about 37.5 credits (37.5 per video, table)"
    )
    assert (0, 0, 1) == (
        fake.call_count("create_batch"),
        fake.created_count,
        fake.call_count("models"),
    )
    assert not out.exists()  # no journal written either


async def test_dry_run_json_without_a_key_sends_nothing(
    fake: FakeAkoolServer, tmp_path: Path
) -> None:
    """Without an API key the dry run sends no request at all; generated audio is then
    priced with the conservative factor (fallback). --json gives the same plan as data."""
    jobs = three_lines(tmp_path / "jobs.jsonl")

    run = await cli(
        "bulk", str(jobs), "--out", str(tmp_path / "out"), "--dry-run", "--json",
        "--base-url", fake.url,
    )  # fmt: skip
    plan = json.loads(run.out)

    assert 0 == run.code, run.err
    assert "no API key" in run.err
    assert [] == fake.requests
    assert (4, 16, 650.0, False) == (
        plan["batch_calls"],
        plan["videos"],
        plan["credits"],
        plan["model_list_read"],
    )
    assert [(12, 2, 240.0, "table"), (3, 1, 360.0, "fallback"), (1, 1, 50.0, "fallback")] == [
        (line["videos"], line["batch_calls"], line["credits"], line["source"])
        for line in plan["lines"]
    ]


async def test_dry_run_after_a_run_plans_the_shortfall_at_observed_prices(
    fake: FakeAkoolServer, tmp_path: Path
) -> None:
    """With a journal, only the videos still missing are planned, priced at what AKOOL
    charged the earlier run (observed); --max-credits below the estimate is pointed out."""
    out = tmp_path / "out"
    first = write_jobs(tmp_path / "jobs.jsonl", [request("other", 1, model_name=SEEDANCE, id="o")])
    done = await cli("bulk", str(first), "--out", str(out), *conn(fake))
    more = write_jobs(tmp_path / "jobs.jsonl", [request("other", 4, model_name=SEEDANCE, id="o")])
    fake.reset_log()

    run = await cli(
        "bulk", str(more), "--out", str(out), "--dry-run", "--json", "--max-credits", "70",
        *conn(fake),
    )  # fmt: skip
    (line,) = json.loads(run.out)["lines"]

    assert (0, 0) == (done.code, run.code)
    assert (3, 1, 60.0, "observed") == (
        line["videos"],
        line["in_journal"],
        line["credits"],
        line["source"],
    )
    assert "would stop early" in run.err
    assert (0, 1) == (fake.call_count("create_batch"), fake.created_count)
