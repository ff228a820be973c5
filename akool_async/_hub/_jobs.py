"""``RedisJobStore``: a bulk job shared by workers on several machines (the ``JobStore`` contract).

Claims are leases with expiry, not a stream with a consumer group: each worker holds one lease
(``{job}:workers``, a sorted set scored by server-time deadlines, renewed by its heartbeat),
and every row or video it claims names it. A claim is good while its worker's lease lives;
when the lease lapses (SIGKILL, a lost machine) the claims are free for the next worker that
asks, and its in-flight creates become *unknown*. Renewing one lease per worker, instead of
one per claim, keeps the Redis traffic per video small.

Every check-and-write is one Lua script. Keys of job ``NAME`` in namespace ``NS``:

* ``NS:job:NAME:meta`` (digest), ``:rows`` (key -> JSON counters), ``:bodies`` (key -> request),
  ``:todo`` (rows still lacking videos, scored by line), ``:rowclaim`` (key -> worker);
* ``:creates`` (id -> JSON), ``:sent`` and ``:unknown`` (create ids), ``:seq``;
* ``:videos`` (id -> JSON), ``:open`` (videos to follow or save), ``:vclaim`` (id -> worker);
* ``:workers`` (leases), ``:winfo`` (worker -> JSON); ``:budget:*`` (the job's budget).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Final, Self

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.commands.core import AsyncScript

from .._errors import AkoolValueError, ClientClosedError, JobConflictError
from .._jobstore import (
    REFUSED,
    UNKNOWN,
    JobRequest,
    JobStatus,
    LoadResult,
    RowClaim,
    StoredVideo,
    build_status,
)
from .._models import Video, VideoStatus
from ._budget import SharedBudget
from ._connection import HubConnection, password_of, redact_url, text, url_password
from ._records import Reservation

_NOW: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""

# A row's videos still to create, and its place in the todo set.
_ROW: Final = """
local function missing(row) return row.want - row.made - row.doubt - row.flight end
local function put_row(rows, todo, key, row)
  redis.call('HSET', rows, key, cjson.encode(row))
  if missing(row) > 0 then redis.call('ZADD', todo, row.line, key)
  else redis.call('ZREM', todo, key) end
end
"""


def _alive(workers_key: str) -> str:
    # Cached per script run: a scan asks about the same few workers many times.
    return (
        "local known = {}\n"
        "local function alive(w)\n"
        "  if known[w] == nil then\n"
        f"    local s = redis.call('ZSCORE', {workers_key}, w)\n"
        "    known[w] = (s and tonumber(s) >= now) or false\n"
        "  end\n"
        "  return known[w]\n"
        "end\n"
    )


#: KEYS: meta, rows, bodies, todo. ARGV: digest, now, then (key, row json, body json, line)...
_LOAD: Final = """
local cur = redis.call('HGET', KEYS[1], 'digest')
if cur and cur ~= ARGV[1] then return {-1, cur} end
if cur then return {0, redis.call('HLEN', KEYS[2])} end
redis.call('HSET', KEYS[1], 'digest', ARGV[1], 'loaded_at', ARGV[2])
local n = 0
for i = 3, #ARGV, 4 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 2])
  redis.call('ZADD', KEYS[4], tonumber(ARGV[i + 3]), ARGV[i])
  n = n + 1
end
return {n, 0}
"""

#: KEYS: workers, winfo. ARGV: worker, lease s, info json ('' keeps it).
#: Returns 1 if the worker's lease was still alive.
_HEARTBEAT: Final = (
    _NOW
    + _alive("KEYS[1]")
    + """
local was = alive(ARGV[1])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[2], ARGV[1], ARGV[3]) end
if was then return 1 end
return 0
"""
)

#: KEYS: workers, rowclaim, vclaim. ARGV: worker. Drops its lease and every claim it holds.
_LEAVE: Final = """
redis.call('ZREM', KEYS[1], ARGV[1])
for _, h in ipairs({KEYS[2], KEYS[3]}) do
  local all = redis.call('HGETALL', h)
  for i = 1, #all, 2 do
    if all[i + 1] == ARGV[1] then redis.call('HDEL', h, all[i]) end
  end
end
return 1
"""

#: KEYS: todo, rowclaim, workers, rows, bodies. ARGV: worker, skip...
#: Claims the first row that lacks videos and is free (unclaimed, or its worker is dead).
_CLAIM_ROW: Final = (
    _NOW
    + _ROW
    + _alive("KEYS[3]")
    + """
if not alive(ARGV[1]) then return false end
local skip = {}
for i = 2, #ARGV do skip[ARGV[i]] = true end
local start = 0
while true do
  local keys = redis.call('ZRANGE', KEYS[1], start, start + 99)
  if #keys == 0 then return false end
  for _, k in ipairs(keys) do
    if not skip[k] then
      local owner = redis.call('HGET', KEYS[2], k)
      if (not owner) or not alive(owner) then
        local row = cjson.decode(redis.call('HGET', KEYS[4], k))
        local m = missing(row)
        if m > 0 then
          redis.call('HSET', KEYS[2], k, ARGV[1])
          return {k, tostring(row.line), redis.call('HGET', KEYS[5], k), tostring(m)}
        end
      end
    end
  end
  start = start + 100
end
"""
)

#: KEYS: rowclaim. ARGV: worker, key. Gives a row claim back if it is still ours.
_RELEASE_ROW: Final = """
if redis.call('HGET', KEYS[1], ARGV[2]) == ARGV[1] then redis.call('HDEL', KEYS[1], ARGV[2]) end
return 1
"""

#: KEYS: rows, rowclaim, workers, creates, sent, seq, todo.
#: ARGV: worker, key, count, estimate, wall time.
#: The guard against creating a row twice: only the live holder of the row's claim may send,
#: and only as many videos as the row still lacks. Returns the create id, or nil.
_START_CREATE: Final = (
    _NOW
    + _ROW
    + _alive("KEYS[3]")
    + """
if redis.call('HGET', KEYS[2], ARGV[2]) ~= ARGV[1] then return false end
if not alive(ARGV[1]) then return false end
local row = cjson.decode(redis.call('HGET', KEYS[1], ARGV[2]))
local n = tonumber(ARGV[3])
if missing(row) < n then return false end
row.flight = row.flight + n
put_row(KEYS[1], KEYS[7], ARGV[2], row)
local id = tostring(redis.call('INCR', KEYS[6]))
redis.call('HSET', KEYS[4], id, cjson.encode({row = ARGV[2], count = n, state = 'sent',
  worker = ARGV[1], estimate = tonumber(ARGV[4]), created = 0, sent_at = tonumber(ARGV[5])}))
redis.call('SADD', KEYS[5], id)
return id
"""
)

#: KEYS: rows, creates, sent, unknown, videos, open, vclaim, todo.
#: ARGV: create id, state, error, credits ('' = none), then (id, status, create_time, credits)...
#: Records a create's answer and its videos in one step. A create already marked unknown
#: (its worker's lease lapsed while it waited) still takes its ids: they are real videos.
_FINISH_CREATE: Final = (
    _ROW
    + """
local raw = redis.call('HGET', KEYS[2], ARGV[1])
if not raw then return false end
local c = cjson.decode(raw)
local row = cjson.decode(redis.call('HGET', KEYS[1], c.row))
if c.state == 'sent' then
  row.flight = row.flight - c.count
  redis.call('SREM', KEYS[3], ARGV[1])
elseif c.state == 'unknown' then
  row.doubt = row.doubt - (c.count - c.created)
  redis.call('SREM', KEYS[4], ARGV[1])
else
  return false
end
local out = {}
local n = 0
for i = 5, #ARGV, 4 do
  n = n + 1
  row.ord = row.ord + 1
  local gen = 0
  if row.gens ~= '' then
    local comma = string.find(row.gens, ',', 1, true)
    if comma then
      gen = tonumber(string.sub(row.gens, 1, comma - 1))
      row.gens = string.sub(row.gens, comma + 1)
    else
      gen = tonumber(row.gens)
      row.gens = ''
    end
  end
  local v = {row = c.row, line = row.line, file_name = row.stem .. '-' .. row.ord .. '.mp4',
    status = tonumber(ARGV[i + 1]), create = ARGV[1], generation = gen, retried = 0}
  if ARGV[i + 2] ~= '' then v.create_time = tonumber(ARGV[i + 2]) end
  if ARGV[i + 3] ~= '' then v.credits = tonumber(ARGV[i + 3]) end
  local encoded = cjson.encode(v)
  redis.call('HSET', KEYS[5], ARGV[i], encoded)
  if v.status ~= 4 then
    redis.call('ZADD', KEYS[6], tonumber(ARGV[1]) * 100 + n, ARGV[i])
    redis.call('HSET', KEYS[7], ARGV[i], c.worker)
  end
  table.insert(out, ARGV[i])
  table.insert(out, encoded)
end
row.made = row.made + n
c.state = ARGV[2]
c.created = n
if ARGV[3] ~= '' then c.error = ARGV[3] end
if ARGV[4] ~= '' then c.credits = tonumber(ARGV[4]) end
if ARGV[2] == 'unknown' then
  row.doubt = row.doubt + math.max(0, c.count - n)
  redis.call('SADD', KEYS[4], ARGV[1])
end
redis.call('HSET', KEYS[2], ARGV[1], cjson.encode(c))
put_row(KEYS[1], KEYS[8], c.row, row)
return out
"""
)

#: KEYS: creates, sent, unknown, workers, rows, todo. The sent creates of dead workers
#: become unknown (counted at their estimate). Returns their rows' keys.
_RECOVER: Final = (
    _NOW
    + _ROW
    + _alive("KEYS[4]")
    + """
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local c = cjson.decode(redis.call('HGET', KEYS[1], id))
  if not alive(c.worker) then
    c.state = 'unknown'
    c.error = 'worker ' .. c.worker .. ' stopped while this create was in flight'
    c.credits = c.estimate
    redis.call('HSET', KEYS[1], id, cjson.encode(c))
    redis.call('SREM', KEYS[2], id)
    redis.call('SADD', KEYS[3], id)
    local row = cjson.decode(redis.call('HGET', KEYS[5], c.row))
    row.flight = row.flight - c.count
    row.doubt = row.doubt + c.count
    put_row(KEYS[5], KEYS[6], c.row, row)
    table.insert(out, c.row)
  end
end
return out
"""
)

#: KEYS: open, vclaim, workers, videos. ARGV: worker, limit, skip...
_CLAIM_VIDEOS: Final = (
    _NOW
    + _alive("KEYS[3]")
    + """
if not alive(ARGV[1]) then return {} end
-- Fast path: every open video is claimed and no worker's lease has lapsed.
if redis.call('ZCOUNT', KEYS[3], '-inf', '(' .. now) == 0
    and redis.call('HLEN', KEYS[2]) >= redis.call('ZCARD', KEYS[1]) then
  return {}
end
local limit = tonumber(ARGV[2])
local skip = {}
for i = 3, #ARGV do skip[ARGV[i]] = true end
local out = {}
local start = 0
local complete, saw_dead = false, false
while #out < 2 * limit do
  local ids = redis.call('ZRANGE', KEYS[1], start, start + 199)
  if #ids == 0 then complete = true break end
  for _, id in ipairs(ids) do
    if #out >= 2 * limit then break end
    if not skip[id] then
      local owner = redis.call('HGET', KEYS[2], id)
      if owner and not alive(owner) then saw_dead = true end
      if (not owner) or not alive(owner) then
        redis.call('HSET', KEYS[2], id, ARGV[1])
        table.insert(out, id)
        table.insert(out, redis.call('HGET', KEYS[4], id))
      end
    end
  end
  start = start + 200
end
-- No video is left with a dead owner: forget dead workers (their rows and creates count as
-- dead without an entry too), so the fast path above works again.
if complete and not saw_dead then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. now)
end
return out
"""
)

#: KEYS: todo, open, sent. ARGV: number of rows to skip (-1: rows do not count), rows...,
#: videos...
_WORK_LEFT: Final = """
if redis.call('SCARD', KEYS[3]) > 0 then return 1 end
local nrows = tonumber(ARGV[1])
local rows, videos = {}, {}
for i = 2, nrows + 1 do rows[ARGV[i]] = true end
for i = math.max(nrows, 0) + 2, #ARGV do videos[ARGV[i]] = true end
if nrows >= 0 then
  for _, k in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    if not rows[k] then return 1 end
  end
end
for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  if not videos[id] then return 1 end
end
return 0
"""

#: KEYS: videos, open, vclaim. ARGV: id, status, worker, path, size.
#: Status 4 or a saved file (path given) closes the video.
_UPDATE_VIDEO: Final = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local v = cjson.decode(raw)
v.status = tonumber(ARGV[2])
if ARGV[4] ~= '' then
  v.worker = ARGV[3]
  v.path = ARGV[4]
  v.size = tonumber(ARGV[5])
end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(v))
if v.status == 4 or ARGV[4] ~= '' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('HDEL', KEYS[3], ARGV[1])
end
return 1
"""

#: KEYS: videos, open. ARGV: worker. The files it saved are lost: save them again.
_REOPEN: Final = """
local n = 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local v = cjson.decode(all[i + 1])
  if v.worker == ARGV[1] and v.path then
    v.worker = nil
    v.path = nil
    v.size = nil
    redis.call('HSET', KEYS[1], all[i], cjson.encode(v))
    redis.call('ZADD', KEYS[2], tonumber(v.create) * 100, all[i])
    n = n + 1
  end
end
return n
"""

#: KEYS: creates, unknown, rows, todo. Unknown creates become abandoned: their videos in
#: doubt are created again. Returns how many.
_RETRY_UNKNOWN: Final = (
    _ROW
    + """
local n = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local c = cjson.decode(redis.call('HGET', KEYS[1], id))
  c.state = 'abandoned'
  redis.call('HSET', KEYS[1], id, cjson.encode(c))
  redis.call('SREM', KEYS[2], id)
  local row = cjson.decode(redis.call('HGET', KEYS[3], c.row))
  local doubt = math.max(0, c.count - c.created)
  row.doubt = row.doubt - doubt
  n = n + doubt
  put_row(KEYS[3], KEYS[4], c.row, row)
end
return n
"""
)

#: KEYS: videos, rows, todo. ARGV: max times. Each failed video not retried yet, of a
#: generation below the limit, asks its row for one more video (of the next generation).
_RETRY_FAILED: Final = (
    _ROW
    + """
local out = {}
local all = redis.call('HGETALL', KEYS[1])
local limit = tonumber(ARGV[1])
for i = 1, #all, 2 do
  local v = cjson.decode(all[i + 1])
  if v.status == 4 and v.retried == 0 and v.generation < limit then
    v.retried = 1
    redis.call('HSET', KEYS[1], all[i], cjson.encode(v))
    local row = cjson.decode(redis.call('HGET', KEYS[2], v.row))
    row.want = row.want + 1
    local gen = tostring(v.generation + 1)
    if row.gens == '' then row.gens = gen else row.gens = row.gens .. ',' .. gen end
    put_row(KEYS[2], KEYS[3], v.row, row)
    table.insert(out, all[i])
  end
end
return out
"""
)


def _opt(value: float | int | None) -> str:
    return "" if value is None else repr(value)


def _video(video_id: str, raw: str) -> StoredVideo:
    data = json.loads(raw)
    return StoredVideo(
        id=video_id,
        row=data["row"],
        line=int(data["line"]),
        file_name=data["file_name"],
        status=int(data["status"]),
        create_time=None if data.get("create_time") is None else int(data["create_time"]),
        credits=data.get("credits"),
        worker=data.get("worker"),
        path=data.get("path"),
        size=None if data.get("size") is None else int(data["size"]),
        generation=int(data.get("generation", 0)),
    )


def _pairs(reply: Sequence[Any]) -> list[StoredVideo]:
    items = [text(x) for x in reply]
    return [_video(items[i], items[i + 1]) for i in range(0, len(items), 2)]


class RedisJobStore:
    """A bulk job kept in Redis, shared by every worker that opens it (``JobStore``).

    ``async with RedisJobStore("redis://host:6379/0", job="nightly") as store:``. Made from a
    URL, it owns its connection; given a ``redis.asyncio.Redis``, it leaves it open. Every
    method raises ``HubUnavailableError`` when Redis cannot be reached (password redacted).

    Args:
        url_or_client: ``redis://[:password@]host:port/db``, ``rediss://...`` or a client.
        job: the job's name; workers of one job use the same name and jobs file.
        namespace: the key prefix (a hub's namespace can be shared: job keys live under
            ``{namespace}:job:{job}:``).
        timeout: seconds for connecting and for one command (URL stores only).
    """

    def __init__(
        self,
        url_or_client: str | aioredis.Redis,
        *,
        job: str,
        namespace: str = "akool",
        timeout: float = 5.0,
    ) -> None:
        if not isinstance(job, str) or not job or any(c.isspace() for c in job):
            raise AkoolValueError("job must be a non-empty name without whitespace")
        if not isinstance(namespace, str) or not namespace or any(c.isspace() for c in namespace):
            raise AkoolValueError("namespace must be a non-empty string without whitespace")
        if isinstance(url_or_client, str):
            self._url: str | None = url_or_client
            self._given: aioredis.Redis | None = None
            where, password = redact_url(url_or_client), url_password(url_or_client)
        elif isinstance(url_or_client, aioredis.Redis):
            self._url, self._given = None, url_or_client
            where, password = "(caller-owned client)", password_of(url_or_client)
        else:
            raise AkoolValueError("url_or_client must be a URL or a redis.asyncio.Redis")
        self.job = job
        self.where = where
        self._timeout = timeout
        self._conn = HubConnection(f"{namespace}:job:{job}", where=where, password=password)
        k = self._conn.key
        self._meta, self._rows, self._bodies, self._todo = (
            k("meta"),
            k("rows"),
            k("bodies"),
            k("todo"),
        )
        self._rowclaim, self._creates, self._sent, self._unknown, self._seq = (
            k("rowclaim"),
            k("creates"),
            k("sent"),
            k("unknown"),
            k("seq"),
        )
        self._videos, self._open, self._vclaim = k("videos"), k("open"), k("vclaim")
        self._workers, self._winfo = k("workers"), k("winfo")
        #: The job's one credit budget, shared by every worker (see ``reserve``).
        self._budget = SharedBudget(self._conn)
        self._reservations: dict[str, Reservation] = {}
        self._scripts: dict[str, AsyncScript] = {}
        self._opened = False

    def __repr__(self) -> str:
        return f"RedisJobStore({self.where!r}, job={self.job!r})"

    async def open(self) -> None:
        """Connect and check that Redis answers.

        Raises:
            HubUnavailableError: Redis cannot be reached.
        """
        if self._opened:
            raise ClientClosedError("a RedisJobStore can be opened only once")
        self._opened = True
        if self._given is not None:
            self._conn.client = self._given
        else:
            assert self._url is not None
            self._conn.client = aioredis.Redis.from_url(
                self._url,
                decode_responses=True,
                socket_timeout=self._timeout,
                socket_connect_timeout=self._timeout,
                retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), 2),
            )
        with self._conn.guard("register scripts") as client:
            for name, source in _SCRIPTS.items():
                self._scripts[name] = client.register_script(source)
        self._budget.bind()
        with self._conn.guard("ping") as client:
            await client.ping()

    async def aclose(self) -> None:
        """Close the connection if it is ours. Idempotent."""
        if self._conn.closed:
            return
        self._conn.closed = True
        if self._given is None and self._conn.client is not None:
            await self._conn.client.aclose()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _call(self, name: str, what: str, keys: list[str], args: list[Any]) -> Any:
        with self._conn.guard(what):
            return await self._scripts[name](keys=keys, args=args)

    # -- loading -----------------------------------------------------------------------------

    async def load(self, digest: str, requests: Sequence[JobRequest]) -> LoadResult:
        """Record the job's rows once (see ``JobStore.load``)."""
        args: list[Any] = [digest, repr(time.time())]
        stems: set[str] = set()
        for request in requests:
            stem = request.stem
            if stem in stems:
                stem = f"{stem}-{request.fingerprint[:8]}"
            stems.add(stem)
            row = {
                "line": request.line,
                "stem": stem,
                "fingerprint": request.fingerprint,
                "want": request.count,
                "made": 0,
                "doubt": 0,
                "flight": 0,
                "ord": 0,
                "gens": "",
            }
            args += [
                request.key,
                json.dumps(row),
                json.dumps(dict(request.body), sort_keys=True),
                request.line,
            ]
        reply = await self._call(
            "LOAD", "load the job", [self._meta, self._rows, self._bodies, self._todo], args
        )
        first, second = int(reply[0]), reply[1]
        if first < 0:
            raise JobConflictError(
                f"job {self.job!r} was loaded from another jobs file (digest "
                f"{text(second)[:12]}, this file {digest[:12]}); use another --job name"
            )
        if first == 0:
            return LoadResult(added=0, existing=int(second))
        return LoadResult(added=first, existing=0)

    # -- workers -----------------------------------------------------------------------------

    async def join(self, worker: str, lease: float, info: Mapping[str, Any]) -> None:
        """Register ``worker`` as alive for ``lease`` seconds."""
        payload = json.dumps({**info, "joined_at": time.time()})
        await self._call(
            "HEARTBEAT", "join the job", [self._workers, self._winfo], [worker, lease, payload]
        )

    async def heartbeat(self, worker: str, lease: float) -> bool:
        """Renew ``worker``'s lease; False if it had lapsed."""
        ok = await self._call(
            "HEARTBEAT", "renew the worker lease", [self._workers, self._winfo], [worker, lease, ""]
        )
        return bool(int(ok))

    async def leave(self, worker: str) -> None:
        """Drop ``worker``'s lease and claims."""
        await self._call(
            "LEAVE", "leave the job", [self._workers, self._rowclaim, self._vclaim], [worker]
        )

    async def recover(self) -> list[str]:
        """Mark the sent creates of dead workers unknown."""
        reply = await self._call(
            "RECOVER",
            "recover creates",
            [self._creates, self._sent, self._unknown, self._workers, self._rows, self._todo],
            [],
        )
        return [text(x) for x in reply]

    # -- creating ----------------------------------------------------------------------------

    async def claim_row(self, worker: str, skip: Sequence[str] = ()) -> RowClaim | None:
        """Claim a row that still lacks videos."""
        reply = await self._call(
            "CLAIM_ROW",
            "claim a row",
            [self._todo, self._rowclaim, self._workers, self._rows, self._bodies],
            [worker, *skip],
        )
        if not reply:
            return None
        key, line, body, missing = (text(x) for x in reply)
        return RowClaim(key=key, line=int(line), body=json.loads(body), missing=int(missing))

    async def release_row(self, worker: str, key: str) -> None:
        """Give a row claim back."""
        await self._call("RELEASE_ROW", "release a row", [self._rowclaim], [worker, key])

    async def start_create(self, worker: str, key: str, count: int, estimate: float) -> str | None:
        """Record a create as sent, if ``worker`` still holds the row and it still lacks them."""
        reply = await self._call(
            "START_CREATE",
            "record a create",
            [
                self._rows,
                self._rowclaim,
                self._workers,
                self._creates,
                self._sent,
                self._seq,
                self._todo,
            ],
            [worker, key, count, repr(float(estimate)), repr(time.time())],
        )
        return None if reply is None else text(reply)

    async def _finish(
        self,
        create_id: str,
        state: str,
        error: str,
        credits: float | None,
        videos: Sequence[tuple[str, int, int | None, float | None]],
    ) -> list[StoredVideo]:
        args: list[Any] = [create_id, state, error, _opt(credits)]
        for video_id, status, create_time, cost in videos:
            args += [video_id, status, _opt(create_time), _opt(cost)]
        reply = await self._call(
            "FINISH_CREATE",
            "record a create's answer",
            [
                self._rows,
                self._creates,
                self._sent,
                self._unknown,
                self._videos,
                self._open,
                self._vclaim,
                self._todo,
            ],
            args,
        )
        return _pairs(reply or [])

    async def finish_create(self, create_id: str, videos: Sequence[Video]) -> list[StoredVideo]:
        """Record the videos a create made."""
        credits = sum(v.deduction_credit or 0.0 for v in videos)
        return await self._finish(
            create_id,
            "created",
            "",
            credits,
            [(v.id, int(v.status), v.create_time, v.deduction_credit) for v in videos],
        )

    async def fail_create(
        self,
        create_id: str,
        state: str,
        error: str,
        *,
        credits: float | None = None,
        video_ids: Sequence[str] = (),
    ) -> list[StoredVideo]:
        """Record a refused or unanswered create."""
        if state not in (UNKNOWN, REFUSED):
            raise ValueError(f"state must be {UNKNOWN!r} or {REFUSED!r}, got {state!r}")
        queueing = int(VideoStatus.QUEUEING)
        return await self._finish(
            create_id, state, error, credits, [(i, queueing, None, None) for i in video_ids]
        )

    # -- following and saving ----------------------------------------------------------------

    async def claim_videos(
        self, worker: str, limit: int, skip: Sequence[str] = ()
    ) -> list[StoredVideo]:
        """Claim up to ``limit`` videos to follow and save."""
        reply = await self._call(
            "CLAIM_VIDEOS",
            "claim videos",
            [self._open, self._vclaim, self._workers, self._videos],
            [worker, limit, *skip],
        )
        return _pairs(reply)

    async def work_left(
        self, skip_rows: Sequence[str], skip_videos: Sequence[str], *, rows: bool = True
    ) -> bool:
        """Whether work remains for someone (see ``JobStore.work_left``)."""
        reply = await self._call(
            "WORK_LEFT",
            "read the work left",
            [self._todo, self._open, self._sent],
            [len(skip_rows) if rows else -1, *skip_rows, *skip_videos],
        )
        return bool(int(reply))

    async def set_status(self, video_id: str, status: int) -> None:
        """Record a video's status."""
        await self._call(
            "UPDATE_VIDEO",
            "record a status",
            [self._videos, self._open, self._vclaim],
            [video_id, status, "", "", ""],
        )

    async def mark_downloaded(self, video_id: str, worker: str, path: str, size: int) -> None:
        """Record where the file went."""
        await self._call(
            "UPDATE_VIDEO",
            "record a download",
            [self._videos, self._open, self._vclaim],
            [video_id, int(VideoStatus.COMPLETED), worker, path, size],
        )

    async def reopen_downloads(self, worker: str) -> int:
        """Save again the files ``worker`` saved (its machine is lost)."""
        return int(
            await self._call("REOPEN", "reopen downloads", [self._videos, self._open], [worker])
        )

    async def retry_unknown(self) -> int:
        """Let the videos of unknown creates be created again."""
        return int(
            await self._call(
                "RETRY_UNKNOWN",
                "retry unknown creates",
                [self._creates, self._unknown, self._rows, self._todo],
                [],
            )
        )

    async def retry_failed(self, max_times: int) -> list[str]:
        """Ask for a new video for each failed one retried fewer than ``max_times``."""
        reply = await self._call(
            "RETRY_FAILED",
            "retry failed videos",
            [self._videos, self._rows, self._todo],
            [max_times],
        )
        return [text(x) for x in reply]

    # -- the job's budget: the one place to switch to the client's hub budget later ----------

    async def reserve(self, amount: float, cap: float) -> str | None:
        """Hold ``amount`` credits if the job's committed credits stay within ``cap``."""
        reservation = await self._budget.reserve(amount, cap)
        if reservation is None:
            return None
        self._reservations[reservation.id] = reservation
        return reservation.id

    async def settle(self, token: str, actual: float) -> None:
        """Replace a reservation by the create's real cost."""
        reservation = self._reservations.pop(token, None)
        if reservation is not None:
            await self._budget.settle(reservation, actual)

    async def release(self, token: str) -> None:
        """Give a reservation back."""
        reservation = self._reservations.pop(token, None)
        if reservation is not None:
            await self._budget.release(reservation)

    # -- status ------------------------------------------------------------------------------

    async def status(self) -> JobStatus:
        """The job across its workers."""
        with self._conn.guard("read the job") as client:
            async with client.pipeline(transaction=True) as pipe:
                pipe.time()
                pipe.hgetall(self._rows)
                pipe.hgetall(self._creates)
                pipe.hgetall(self._videos)
                pipe.hgetall(self._rowclaim)
                pipe.hgetall(self._vclaim)
                pipe.zrange(self._workers, 0, -1, withscores=True)
                pipe.hgetall(self._winfo)
                pipe.exists(self._meta)
                (
                    server_time,
                    rows,
                    creates,
                    videos,
                    rowclaim,
                    vclaim,
                    workers,
                    winfo,
                    exists,
                ) = await pipe.execute()
        if not exists:
            raise AkoolValueError(f"job {self.job!r} is not in {self.where}")
        now = server_time[0] + server_time[1] / 1e6
        leases = {text(w): float(s) for w, s in workers}
        return build_status(
            self.job,
            now=now,
            rows={text(k): json.loads(v) for k, v in rows.items()},
            creates={text(k): json.loads(v) for k, v in creates.items()},
            videos={text(k): json.loads(v) for k, v in videos.items()},
            rowclaim={text(k): text(v) for k, v in rowclaim.items()},
            vclaim={text(k): text(v) for k, v in vclaim.items()},
            leases=leases,
            info={text(k): json.loads(v) for k, v in winfo.items()},
        )

    @staticmethod
    def new_worker_id(host: str, pid: int) -> str:
        """A worker id unique in the job."""
        return f"{host}:{pid}:{uuid.uuid4().hex[:8]}"


_SCRIPTS: Final = {
    "LOAD": _LOAD,
    "HEARTBEAT": _HEARTBEAT,
    "LEAVE": _LEAVE,
    "CLAIM_ROW": _CLAIM_ROW,
    "RELEASE_ROW": _RELEASE_ROW,
    "START_CREATE": _START_CREATE,
    "FINISH_CREATE": _FINISH_CREATE,
    "RECOVER": _RECOVER,
    "CLAIM_VIDEOS": _CLAIM_VIDEOS,
    "UPDATE_VIDEO": _UPDATE_VIDEO,
    "WORK_LEFT": _WORK_LEFT,
    "REOPEN": _REOPEN,
    "RETRY_UNKNOWN": _RETRY_UNKNOWN,
    "RETRY_FAILED": _RETRY_FAILED,
}
