"""``make demo``: start the fake AKOOL server in its own process, run the quick start against it."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
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
        status = subprocess.call([sys.executable, str(HERE / "quickstart.py")], env=env)
        if status:
            return status

        # The same fake, driven by the CLI: a resumable bulk job straight to files on disk.
        out = Path(tempfile.mkdtemp(prefix="akool-demo-"))
        jobs = HERE / "jobs.jsonl"
        print(f"\n$ akool-async bulk {jobs.relative_to(HERE.parent)} --out {out}")
        command = [sys.executable, "-m", "akool_async", "bulk", str(jobs), "--out", str(out)]
        status = subprocess.call([*command, "--base-url", url, "--poll-interval", "0.5"], env=env)
        print(f"\nfiles in {out}:")
        for path in sorted(out.glob("*.mp4")):
            print(f"  {path.name:<24} {path.stat().st_size:>7} bytes")
        return status
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    sys.exit(main())
