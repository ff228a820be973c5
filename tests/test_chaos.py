"""Chaos: 1,000 videos through ``create_batch`` while a fifth of all calls fail, in every way.

The accounting must close exactly: every video the fake created was either handed out as a
handle or lies behind a ``CreateOutcomeUnknownError`` (nothing lost, nothing hidden), no create
was resent after a fault that may have reached the server, and every handle ends.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

from akool_async import (
    AkoolClient,
    AkoolError,
    Batch,
    CreateOutcomeUnknownError,
    PollPolicy,
    RetryPolicy,
    Video,
    VideoFailedError,
    VideoStatus,
)
from akool_async.testing import FakeAkoolServer, Fault, FaultKind, RecordedRequest

VIDEOS = 1000
#: Videos per create cycle through 1..4: 400 creates make exactly 1,000 videos.
COUNTS = (1, 2, 3, 4)
FAULT_RATE = 0.2
#: The whole run, creates and waits, must end within this many seconds (a hang guard).
DEADLINE = 60.0
CLIENT_TIMEOUT = 0.5
#: Every fault kind; a slow answer comes after the client stopped waiting.
KINDS = [Fault(k, delay=CLIENT_TIMEOUT * 2) if k is FaultKind.SLOW else k for k in FaultKind]
#: Faults proving the server did not act: the only ones a create may be resent after.
RESENDABLE = {FaultKind.HTTP_429, FaultKind.CODE_1005}
MAX_ATTEMPTS = 4
#: Small results requests, polled often, so results calls are many and meet every fault.
POLL = PollPolicy(
    initial_delay=0.05,
    interval=0.05,
    max_interval=0.1,
    jitter=0.0,
    max_ids_per_request=10,
    max_requests_per_second=None,
)


def plan() -> list[tuple[str, int]]:
    """(unique prompt, count) per create; the prompt ties SDK errors to the fake's records."""
    creates: list[tuple[str, int]] = []
    total = 0
    while total < VIDEOS:
        count = COUNTS[len(creates) % len(COUNTS)]
        creates.append((f"chaos video {len(creates):04d}", count))
        total += count
    assert VIDEOS == total
    return creates


async def test_chaos_nothing_lost_nothing_doubled() -> None:
    """Under 20% faults on create and results calls, every created video is accounted for."""
    async with FakeAkoolServer(
        queue_seconds=0.2, process_seconds=0.8, timing_jitter=0.5, seed=6
    ) as server:
        # Some videos end in status 4, so failed handles are part of the run.
        server.fail_when = lambda body: str(body.get("prompt", "")).endswith("7")
        server.inject_random(
            "create_batch", rate=FAULT_RATE, kinds=KINDS, seed=11, retry_after=0.02
        )
        server.inject_random("results", rate=FAULT_RATE, kinds=KINDS, seed=156, retry_after=0.02)

        batches: dict[str, Batch] = {}
        unknown: list[CreateOutcomeUnknownError] = []
        refused: dict[str, AkoolError] = {}
        outcomes: dict[str, Video | BaseException] = {}

        async with AkoolClient(
            server.api_key,
            base_url=server.url,
            timeout=CLIENT_TIMEOUT,
            retry=RetryPolicy.fast(max_attempts=MAX_ATTEMPTS),
            poll=POLL,
            wait_timeout=DEADLINE,
            max_concurrent_creates=32,
        ) as client:

            async def one(prompt: str, count: int) -> None:
                try:
                    batch = await client.image_to_video.create_batch(
                        image_url="https://images.example/chaos.png",
                        prompt=prompt,
                        resolution="480p",
                        video_length=5,
                        count=count,
                    )
                except CreateOutcomeUnknownError as exc:
                    unknown.append(exc)
                    return
                except AkoolError as exc:
                    refused[prompt] = exc
                    return
                batches[prompt] = batch
                ended = await asyncio.gather(*batch.handles, return_exceptions=True)
                outcomes.update(zip(batch.ids, ended, strict=True))

            async with asyncio.timeout(DEADLINE):
                async with asyncio.TaskGroup() as group:
                    for prompt, count in plan():
                        group.create_task(one(prompt, count))
                all_handles = [h for b in batches.values() for h in b.handles]
            stats = client.poller.statistics()

        # A slow create acts after the client gave up: let the fake finish before counting.
        await server.wait_idle(timeout=10)

        creates = server.calls("create_batch")
        by_prompt: dict[str, list[RecordedRequest]] = collections.defaultdict(list)
        for record in creates:
            by_prompt[record.body["prompt"]].append(record)

        handed = {video_id for b in batches.values() for video_id in b.ids}
        unknown_prompts = {e.request["prompt"] for e in unknown}
        behind_unknown = {
            video_id
            for prompt in unknown_prompts
            for record in by_prompt[prompt]
            for video_id in record.created_ids
        }
        reported = sum(e.request["count"] for e in unknown)
        faults = collections.Counter(server.faults_served)
        served = {f"{ep}/{k.value}": n for (ep, k), n in sorted(faults.items(), key=str)}
        create_faults = sum(n for (ep, _), n in faults.items() if ep == "create_batch")
        results_faults = sum(n for (ep, _), n in faults.items() if ep == "results")
        tally = collections.Counter(
            "completed"
            if isinstance(o, Video)
            else "failed (status 4)"
            if isinstance(o, VideoFailedError)
            else type(o).__name__
            for o in outcomes.values()
        )
        print(
            f"\nchaos: {len(plan())} creates for {VIDEOS} videos; "
            f"{len(creates)} create requests ({create_faults} faulted), "
            f"{server.call_count('results')} results requests ({results_faults} faulted)\n"
            f"  fake created {server.created_count} = {len(handed)} handed out "
            f"+ {len(behind_unknown)} behind {len(unknown)} CreateOutcomeUnknownErrors "
            f"(which reported up to {reported})\n"
            f"  creates refused with other errors: {len(refused)} "
            f"{sorted({type(e).__name__ for e in refused.values()})}\n"
            f"  handles: {dict(tally)}\n"
            f"  poller: {stats.requests} requests, {stats.failed_requests} failed, "
            f"{stats.rate_limited} rate limited\n"
            f"  faults served: {served}"
        )

        # Every fault kind hit both endpoints, at about the asked rate.
        for endpoint in ("create_batch", "results"):
            assert set(FaultKind) == {k for ep, k in faults if ep == endpoint}
        assert 0.1 < create_faults / len(creates) < 0.3
        assert 0.1 < results_faults / server.call_count("results") < 0.3

        # Nothing lost, nothing hidden, nothing doubled.
        assert set(server.videos) == handed | behind_unknown
        assert set() == handed & behind_unknown
        assert server.created_count == len(handed) + len(behind_unknown)
        assert len(behind_unknown) <= reported
        assert unknown, "the seed must produce ambiguous creates"

        # Each create is one prompt. Only a 429/1005 answer may be followed by a resend; the
        # attempt that created something is the last; refused creates created nothing.
        assert len(plan()) == len(by_prompt) == len(batches) + len(unknown) + len(refused)
        for prompt, records in by_prompt.items():
            assert len(records) <= MAX_ATTEMPTS
            assert all(r.fault in RESENDABLE and not r.created_ids for r in records[:-1]), prompt
            if prompt in batches:
                assert set(batches[prompt].ids) == set(records[-1].created_ids)
            elif prompt in refused:
                assert [] == records[-1].created_ids
        for error in unknown:
            assert by_prompt[error.request["prompt"]][-1].body == error.request

        # Every handle ended, the way the fake says its video ended.
        assert all(h.done() for h in all_handles)
        assert handed == set(outcomes)
        for video_id, outcome in outcomes.items():
            expected: Any = (
                Video if server.status_of(video_id) is VideoStatus.COMPLETED else VideoFailedError
            )
            assert isinstance(outcome, expected), (video_id, outcome)
        assert tally["failed (status 4)"] > 0
