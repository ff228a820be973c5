"""Tests of the jobs-file parser and batch planning (akool_async._bulk)."""

from __future__ import annotations

import json

from akool_async._bulk import parse_jobs, plan_batches

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
