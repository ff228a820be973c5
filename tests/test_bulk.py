"""Tests of the jobs-file parser, batch planning and the bulk runner (akool_async._bulk).

The runner tests drive ``BulkRunner`` against a FakeAkoolServer, some through a loopback proxy
that rewrites create answers the way a misbehaving AKOOL might.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from conftest import FAST_POLL, Proxy

from akool_async import AkoolClient, InsufficientCreditsError, RetryPolicy
from akool_async._bulk import BulkOutcome, BulkRunner, BulkStats, JobLine, parse_jobs
from akool_async._creates import plan_batches
from akool_async._journal import Journal
from akool_async.testing import FakeAkoolServer, video_bytes

BASE = {
    "image_url": "https://images.example/cat.png",
    "prompt": "the cat waves",
    "resolution": "720p",
    "video_length": 5,
}


def line(**fields: object) -> str:
    """One JSONL line."""
    return json.dumps({**BASE, **fields})


def test_valid_lines_become_requests_and_blank_lines_are_skipped() -> None:
    """Each non-blank line is one request, numbered by its line in the file."""
    jobs, errors = parse_jobs([line(id="a", count=25), "", line(prompt="run", webhookurl=None)])

    assert [] == errors
    assert [(1, "id:a", 25), (3, jobs[1].key, 1)] == [
        (j.line, j.key, j.request.count) for j in jobs
    ]


def test_a_line_may_carry_extra_body_fields() -> None:
    """``extra_body`` on a line reaches its request; a non-object is a bad line."""
    jobs, errors = parse_jobs([line(extra_body={"multi_prompt": True}), line(extra_body=[1])])
    assert {"multi_prompt": True} == jobs[0].request.extra_body
    assert [2] == [e.line for e in errors]
    assert "extra_body" in errors[0].message


def test_fingerprints_of_lines_without_extra_body_are_unchanged() -> None:
    """A journal from before extra_body existed still recognises its lines (no re-create)."""
    (job,) = parse_jobs([line(id="a")])[0]
    # sha256 of the identity as it was computed before the extra_body field was added.
    identity = {
        **BASE,
        "model_name": None,
        "negative_prompt": None,
        "extend_prompt": None,
        "last_image_url": None,
        "generate_audio": None,
        "webhook_url": None,
    }
    expected = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    assert expected == job.fingerprint


def test_bad_lines_are_named_with_the_reason() -> None:
    """Broken JSON, a missing field, an unknown field and a bad value each name their line."""
    lines = [
        line(),
        '{"image_url": "https://images.example/cat.png", "prompt": ',
        json.dumps({"image_url": "https://i.example/x.png", "resolution": "720p"}),
        line(promt="typo"),
        line(count=0),
        "[1, 2]",
    ]

    jobs, errors = parse_jobs(lines)

    assert [1] == [j.line for j in jobs]
    assert [2, 3, 4, 5, 6] == [e.line for e in errors]
    assert "not valid JSON" in errors[0].message
    assert "prompt, video_length" in errors[1].message
    assert "'promt'" in errors[2].message
    assert "count" in errors[3].message
    assert "JSON object" in errors[4].message


def test_a_repeated_id_is_an_error() -> None:
    """Two lines with the same id: the second one is refused."""
    _, errors = parse_jobs([line(id="x"), line(id="x", prompt="other")])

    assert ["line 2: id 'x' already used on line 1"] == [str(e) for e in errors]


def test_identical_lines_without_id_get_distinct_keys() -> None:
    """Two identical id-less requests are two requests, told apart by order."""
    jobs, _ = parse_jobs([line(), line()])

    assert 2 == len({j.key for j in jobs})


def test_the_key_of_an_idless_request_survives_edits_elsewhere() -> None:
    """Inserting a line above, or changing the count, keeps a request's key."""
    (before,), _ = parse_jobs([line(count=2)])
    _, after = parse_jobs([line(prompt="new first line"), line(count=7)])[0]

    assert before.key == after.key


def test_batches_are_at_most_ten() -> None:
    """A count is split into batches of at most 10."""
    assert ([10, 10, 5], [3], []) == (plan_batches(25), plan_batches(3), plan_batches(0))


def test_batches_respect_the_model_max_count() -> None:
    """A model's max_count below 10 caps every batch; one above 10 does not lift the cap."""
    assert ([3, 3, 1], [10, 2]) == (plan_batches(7, 3), plan_batches(12, 50))


# --- the runner --------------------------------------------------------------------------------


class Recorder:
    """A Reporter that keeps every event."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def event(self, kind: str, message: str) -> None:
        """Keep the event."""
        self.events.append((kind, message))

    def refresh(self, stats: BulkStats) -> None:
        """Nothing to draw."""


def fast_client(server: FakeAkoolServer, url: str | None = None, **options: Any) -> AkoolClient:
    """A client for ``server`` (or a proxy of it at ``url``) with fast polling and retries."""
    return AkoolClient(
        server.api_key,
        base_url=url or server.url,
        poll=FAST_POLL,
        retry=RetryPolicy.fast(),
        **options,
    )


async def run_job(
    client: AkoolClient, journal_path: Path, jobs: list[JobLine], out: Path
) -> BulkOutcome:
    """One bulk run, as the CLI does it: record, recover, run."""
    with Journal.open(journal_path) as journal:
        journal.add_requests(job.as_job_request() for job in jobs)
        journal.recover()
        runner = BulkRunner(
            client,
            journal,
            out,
            Recorder(),
            download_concurrency=4,
            wait_timeout=30.0,
            expiry_warning=3600.0,
            status_tick=0.05,
        )
        return await runner.run(jobs, spent_before=journal.credits_spent())


def break_second_and_third(envelope: dict[str, Any]) -> None:
    """Make item 2 nameless and item 3 unreadable but named (a string status)."""
    items = envelope["data"]["successList"]
    items[1] = {**items[1], "_id": None}
    items[2] = {**items[2], "status": "1"}


async def test_ids_of_a_partly_unreadable_create_are_followed_and_never_created_again(
    server: FakeAkoolServer, proxy: Proxy, tmp_path: Path
) -> None:
    """Named ids of an unreadable answer are journaled, followed and saved; only the unnamed
    rest is in doubt, and --retry-unknown creates only that rest again."""
    jobs, _ = parse_jobs([line(id="cat", count=3)])
    out, journal_path = tmp_path / "out", tmp_path / "journal.sqlite3"
    proxy.mangle = break_second_and_third
    async with fast_client(server, proxy.url) as client:
        first = await run_job(client, journal_path, jobs, out)
    first_ids = server.calls("create_batch")[0].created_ids
    first_files = {p.name: p.read_bytes() for p in out.glob("*.mp4")}
    with Journal.open(journal_path) as journal:
        in_doubt = journal.in_doubt("id:cat")
        journal.abandon_unknown()  # what --retry-unknown does
    proxy.mangle = None
    async with fast_client(server, proxy.url) as client:
        second = await run_job(client, journal_path, jobs, out)

    assert {
        "cat-1.mp4": video_bytes(first_ids[0]),
        "cat-2.mp4": video_bytes(first_ids[2]),
    } == first_files
    assert (1, 2, 1, 1) == (
        in_doubt,
        first.stats.created,
        first.stats.unknown,
        len(first.unknown),
    )
    assert [3, 1] == [c.body["count"] for c in server.calls("create_batch")]
    assert (3, 3, 0) == (second.stats.created, second.stats.downloaded, second.stats.unknown)
    assert {"cat-1.mp4", "cat-2.mp4", "cat-3.mp4"} == {p.name for p in out.glob("*.mp4")}


async def test_batches_follow_a_known_model_max_count(
    server: FakeAkoolServer, tmp_path: Path
) -> None:
    """With the model list loaded, a request is split by its model's maxCount, not by 10."""
    model = server.models[0]
    model["maxCount"] = 3
    jobs, _ = parse_jobs([line(id="cat", count=7, model_name=model["value"])])
    async with fast_client(server) as client:
        await client.models.list()
        outcome = await run_job(client, tmp_path / "journal.sqlite3", jobs, tmp_path / "out")

    assert [1, 3, 3] == sorted(c.body["count"] for c in server.calls("create_batch"))
    assert (7, 7, 0) == (
        outcome.stats.created,
        outcome.stats.downloaded,
        outcome.stats.create_failed,
    )


async def test_no_queued_create_is_sent_after_the_credit_runs_out(
    server: FakeAkoolServer, tmp_path: Path
) -> None:
    """Once a create is refused for credit, no waiting one is sent: neither those queued
    for the client's create slots nor one already waiting for the budget."""
    server.credit = 0.0
    jobs, _ = parse_jobs([line(id=f"job-{i}") for i in range(5)])
    # A cap of 30 holds one 20-credit estimate: the second create waits for the first.
    async with fast_client(server, max_concurrent_creates=2, max_credits=30) as client:
        outcome = await run_job(client, tmp_path / "journal.sqlite3", jobs, tmp_path / "out")

    assert 1 == server.call_count("create_batch")
    assert (1, 4) == (outcome.stats.create_failed, outcome.stats.not_created)
    assert [InsufficientCreditsError] == [type(e) for e in outcome.create_errors]
