"""Quick start: list models, create two batches concurrently, await every video.

Runs against real AKOOL with ``AKOOL_API_KEY`` set, or against the fake server:
``make demo`` starts one and points ``AKOOL_BASE_URL`` at it.
"""

from __future__ import annotations

import asyncio
import os

from akool_async import AkoolClient, PollPolicy, VideoFailedError

BASE_URL = os.environ.get("AKOOL_BASE_URL", "https://openapi.akool.com")
# The fake server finishes videos in about a second: poll it faster than AKOOL's 5 s.
POLL = PollPolicy(initial_delay=0.5, interval=0.5) if "127.0.0.1" in BASE_URL else None


async def main() -> None:
    async with AkoolClient(base_url=BASE_URL, poll=POLL) as client:  # key from $AKOOL_API_KEY
        models = await client.models.list()
        for model in models:
            print(f"model {model.value}: {model.resolution_values} {model.durations}s")

        cats, dogs = await asyncio.gather(
            client.image_to_video.create_batch(
                image_url="https://images.example/cat.png",
                prompt="the cat waves",
                model_name="AkoolImage2VideoFastV1",
                resolution="720p",
                video_length=5,
                count=3,
            ),
            client.image_to_video.create_batch(
                image_url="https://images.example/dog.png",
                prompt="the dog jumps",
                model_name="AkoolImage2VideoFastV1",
                resolution="480p",
                video_length=5,
                count=2,
            ),
        )
        print(
            f"created {len(cats.handles) + len(dogs.handles)} videos "
            f"for {cats.deduction_credit + dogs.deduction_credit:g} credits"
        )

        for handle in [*cats.handles, *dogs.handles]:
            try:
                video = await handle
                print(f"{video.id}  {video.status.name:<9}  {video.video_url}")
            except VideoFailedError as exc:
                print(f"{handle.id}  FAILED     {exc}")

        stats = client.poller.statistics()
        print(
            f"results calls made: {stats.requests} for {stats.ids_polled} id lookups "
            f"(at most {stats.max_ids_per_request} ids per call)"
        )


if __name__ == "__main__":
    asyncio.run(main())
