"""One worker process of the multi-process cluster tests (tests/test_cluster_processes.py).

Run as ``python tests/_cluster_child.py '<json settings>'``. It builds an ``AkoolClient`` with a
``RedisHub`` and then obeys one JSON command per stdin line, answering one JSON line each on
stdout (the first line it prints is ``{"ready": ..., "process_id": ...}``):

* ``{"op": "create", "count": n}``: one batch create of ``n`` videos; ``{"ids": [...]}``.
* ``{"op": "create_until_refused", "max": n}``: creates one video at a time until the budget
  refuses (or ``n`` creates); ``{"created": k, "refused": bool}``.
* ``{"op": "wait"}``: awaits every handle made so far; ``{"videos": [[id, status, url]...]}``.
* ``{"op": "stats"}``: ``{"role": ..., "pid": ...}``.
* ``{"op": "exit"}``: closes the client and exits.

Settings: ``base_url``, ``api_key``, ``client_id``, ``redis_url``, ``namespace``,
``leader_ttl``, ``poll`` (PollPolicy keyword arguments), ``max_credits``, ``webhook_url``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from akool_async import AkoolClient, BudgetExceededError, PollPolicy, RetryPolicy, TaskHandle
from akool_async.redis import RedisHub

CREATE_ARGS = {
    "image_url": "https://images.example/cat.png",
    "prompt": "the cat waves",
    "resolution": "720p",
    "video_length": 5,
}


def say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def main(settings: dict[str, Any]) -> None:
    hub = RedisHub(
        settings["redis_url"],
        namespace=settings["namespace"],
        leader_ttl=settings.get("leader_ttl", 1.0),
        heartbeat_ttl=settings.get("heartbeat_ttl", 3.0),
        stream_block=0.2,
    )
    client = AkoolClient(
        settings["api_key"],
        client_id=settings["client_id"],
        base_url=settings["base_url"],
        poll=PollPolicy(**settings.get("poll", {})),
        retry=RetryPolicy(max_attempts=4, initial_wait=0.01, max_wait=0.05, max_time=30.0),
        max_credits=settings.get("max_credits"),
        hub=hub,
        wait_timeout=60.0,
    )
    handles: list[TaskHandle] = []
    webhook_url = settings.get("webhook_url")
    loop = asyncio.get_running_loop()
    async with client:
        say({"ready": True, "process_id": hub.process_id, "pid": os.getpid()})
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                return
            command = json.loads(line)
            op = command["op"]
            if op == "create":
                batch = await client.image_to_video.create_batch(
                    **CREATE_ARGS, count=command.get("count", 1), webhook_url=webhook_url
                )
                handles.extend(batch.handles)
                say({"ids": list(batch.ids)})
            elif op == "create_until_refused":
                created, refused = 0, False
                for _ in range(command["max"]):
                    try:
                        batch = await client.image_to_video.create_batch(**CREATE_ARGS)
                    except BudgetExceededError:
                        refused = True
                        break
                    handles.extend(batch.handles)
                    created += 1
                say({"created": created, "refused": refused})
            elif op == "wait":
                videos = await asyncio.gather(*handles)
                say({"videos": [[v.id, int(v.status), v.video_url] for v in videos]})
            elif op == "stats":
                stats = hub.statistics()
                say({"role": stats.role, "pid": os.getpid()})
            elif op == "exit":
                return


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
