"""``make demo``: start the fake AKOOL server in its own process, run the quick start against it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
SERVER = """
import asyncio
from akool_async.testing import serve_forever

def ready(server):
    print(server.url, server.api_key, flush=True)

asyncio.run(serve_forever(port=0, ready=ready, queue_seconds=0.5, process_seconds=1.0,
                          timing_jitter=0.5))
"""


def main() -> int:
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url, key = server.stdout.readline().split()
        print(f"fake AKOOL server running at {url} (its API key is a fixed test value)\n")
        env = {**os.environ, "AKOOL_BASE_URL": url, "AKOOL_API_KEY": key}
        return subprocess.call([sys.executable, str(HERE / "quickstart.py")], env=env)
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    sys.exit(main())
