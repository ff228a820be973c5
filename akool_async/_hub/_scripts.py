"""The Lua scripts of the hub: each check-and-write runs atomically on the Redis server.

Keys are always passed in KEYS; times of liveness (heartbeats, slot leases) come from the
server's ``TIME`` so that hosts with skewed clocks agree on who is alive.
"""

from __future__ import annotations

from typing import Final

# Server time in seconds (float), for liveness deadlines.
_NOW: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""

#: KEYS: state hash, events stream. ARGV: video id, status, video url, raw json, ttl ms, maxlen.
#: Records the state and appends an event only if the status moved forward: a final status
#: (3 or 4) never changes, a final one always wins over a non-final one, duplicates are news
#: to nobody. Returns the new entry id, or nil when nothing changed.
PUBLISH: Final = """
local new = tonumber(ARGV[2])
local cur = redis.call('HGET', KEYS[1], 'status')
if cur then
  cur = tonumber(cur)
  if cur == 3 or cur == 4 then return false end
  if new ~= 3 and new ~= 4 and new <= cur then return false end
end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'video_url', ARGV[3], 'raw', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*',
  'video_id', ARGV[1], 'status', ARGV[2], 'video_url', ARGV[3], 'raw', ARGV[4])
"""

#: KEYS: leader key. ARGV: token, ttl ms. Extends the lease only if it is still ours.
RENEW_LEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

#: KEYS: leader key. ARGV: token. Deletes the lease only if it is still ours.
RELEASE_LEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

#: KEYS: pending zset, waiters hash, this process's id set, processes zset, fresh zset.
#: ARGV: process id, heartbeat ttl s, key ttl ms, due, id...
#: Adds each id (keeping the earlier due time of an id already pending) and counts this
#: process as one of its waiters; an id new to the namespace is also fresh (never polled).
#: Returns how many ids this process did not wait for yet.
REGISTER: Final = (
    _NOW
    + """
redis.call('ZADD', KEYS[4], now + tonumber(ARGV[2]), ARGV[1])
local added = 0
for i = 5, #ARGV do
  local id = ARGV[i]
  if redis.call('SADD', KEYS[3], id) == 1 then
    redis.call('HINCRBY', KEYS[2], id, 1)
    added = added + 1
  end
  if not redis.call('ZSCORE', KEYS[1], id) then
    redis.call('ZADD', KEYS[5], ARGV[4], id)
  else
    redis.call('ZADD', KEYS[5], 'XX', 'LT', ARGV[4], id)
  end
  redis.call('ZADD', KEYS[1], 'LT', ARGV[4], id)
end
redis.call('PEXPIRE', KEYS[3], ARGV[3])
return added
"""
)

# Stops a process waiting for `ids`; an id nobody waits for any more leaves the pending set
# (and the fresh set). KEYS: pending zset, waiters hash, the process's id set; `fresh` is the
# fresh zset's key. Returns how many ids left.
_FORGET: Final = """
local function forget(ids, fresh)
  local dropped = 0
  for _, id in ipairs(ids) do
    if redis.call('SREM', KEYS[3], id) == 1 then
      if redis.call('HINCRBY', KEYS[2], id, -1) <= 0 then
        redis.call('HDEL', KEYS[2], id)
        redis.call('ZREM', KEYS[1], id)
        redis.call('ZREM', fresh, id)
        dropped = dropped + 1
      end
    end
  end
  return dropped
end
"""

#: KEYS: pending zset, waiters hash, this process's id set, fresh zset. ARGV: id...
#: Returns how many ids left the pending set (no other process waits for them).
UNREGISTER: Final = _FORGET + "return forget(ARGV, KEYS[4])\n"

#: KEYS: pending zset, waiters hash, a process's id set, processes zset, fresh zset.
#: ARGV: process id,
#: "1" to reap it even if alive (a process retiring itself).
#: If the process's heartbeat has run out, forgets all its ids and the process itself.
#: Returns the number of ids that left the pending set, or -1 if the process is alive.
REAP: Final = (
    _NOW
    + _FORGET
    + """
local deadline = redis.call('ZSCORE', KEYS[4], ARGV[1])
if ARGV[2] ~= '1' and deadline and tonumber(deadline) >= now then return -1 end
local dropped = forget(redis.call('SMEMBERS', KEYS[3]), KEYS[5])
redis.call('DEL', KEYS[3])
redis.call('ZREM', KEYS[4], ARGV[1])
return dropped
"""
)

#: KEYS: processes zset. Returns the ids of processes whose heartbeat has run out.
DEAD_PROCESSES: Final = (
    _NOW
    + """
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now, 'LIMIT', 0, 100)
"""
)

#: KEYS: processes zset, this process's id set. ARGV: process id, heartbeat ttl s, key ttl ms.
#: Returns 1 if the process was still known, 0 if its registrations were lost (reaped, or
#: Redis restarted without its data): the caller must register its ids again.
HEARTBEAT: Final = (
    _NOW
    + """
local known = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
if known then return 1 end
return 0
"""
)

#: KEYS: pending zset, leader key, fresh zset.
#: ARGV: leader token, now, limit, claimed until, "1" to fill.
#: For the leader only: the ids due by `now` (at most `limit`), fresh ones first (thousands of
#: overdue old ids must not starve a new one); with fill, room left in a call some due id
#: makes is filled with the ids due soonest after `now`. All are pushed to `claimed until` so
#: that no one takes them again before they are rescheduled. An id stays fresh until it is
#: rescheduled or dropped, so one whose call died with its leader keeps its place; fresh
#: entries of ids no longer pending are dropped on the way. Returns {number due, id...}, or
#: nil if not the leader.
TAKE_DUE: Final = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return false end
local limit = tonumber(ARGV[3])
local now = tonumber(ARGV[2])
local ids, taken = {}, {}
local function take(id)
  if #ids < limit and not taken[id] then
    ids[#ids + 1] = id
    taken[id] = true
  end
end
-- Claimed fresh ids (a call in flight) are skipped, so look a little past `limit`.
local fresh = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[2], 'LIMIT', 0, 4 * limit)
for _, id in ipairs(fresh) do
  local due = redis.call('ZSCORE', KEYS[1], id)
  if not due then
    redis.call('ZREM', KEYS[3], id)
  elseif tonumber(due) <= now then
    take(id)
  end
end
if #ids < limit then
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, limit)) do
    take(id)
  end
end
local due = #ids
if ARGV[5] == '1' and due > 0 and due < limit then
  local after = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[2], '+inf', 'LIMIT', 0, limit)
  for _, id in ipairs(after) do take(id) end
end
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[4], id)
end
table.insert(ids, 1, due)
return ids
"""

# Float sums of prices like 22.5 must not trip the cap by rounding noise.
#: KEYS: committed, open reservations hash. ARGV: reservation id, amount, cap.
#: committed = charged + reserved; reserves only if it stays within the cap. Idempotent per
#: id: a client resending it after a lost reply holds it once.
RESERVE: Final = """
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 1 end
local committed = tonumber(redis.call('GET', KEYS[1]) or '0')
if committed + tonumber(ARGV[2]) > tonumber(ARGV[3]) + 1e-9 then return 0 end
redis.call('INCRBYFLOAT', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
"""

#: KEYS: committed, charged, open reservations hash. ARGV: reservation id, actual cost.
#: Replaces the reservation by its actual cost, once. Returns 0 if already settled/released.
SETTLE: Final = """
local amount = redis.call('HGET', KEYS[3], ARGV[1])
if not amount then return 0 end
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('INCRBYFLOAT', KEYS[1], tostring(tonumber(ARGV[2]) - tonumber(amount)))
redis.call('INCRBYFLOAT', KEYS[2], ARGV[2])
return 1
"""

#: KEYS: committed, open reservations hash. ARGV: reservation id.
#: Gives the reservation back, once. Returns 0 if already settled/released.
RELEASE_RESERVATION: Final = """
local amount = redis.call('HGET', KEYS[2], ARGV[1])
if not amount then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('INCRBYFLOAT', KEYS[1], tostring(-tonumber(amount)))
return 1
"""

#: KEYS: slow-down key. ARGV: until (unix seconds), ttl ms. Only ever extends.
SLOW_DOWN: Final = """
local cur = redis.call('GET', KEYS[1])
if cur and tonumber(cur) >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

#: KEYS: slots zset. ARGV: token, limit, ttl s. Takes a slot if fewer than `limit` are held;
#: slots whose lease ran out (a crashed process's) are freed first.
ACQUIRE_SLOT: Final = (
    _NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
return 1
"""
)

#: KEYS: slots zset. ARGV: token, ttl s. Extends a slot lease that has not run out.
RENEW_SLOT: Final = (
    _NOW
    + """
local expiry = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not expiry or tonumber(expiry) < now then return 0 end
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
return 1
"""
)
