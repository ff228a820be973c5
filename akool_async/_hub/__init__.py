"""The Redis hub behind ``akool_async.redis.RedisHub`` (imports ``redis``: load it only on demand).

Modules:

* ``_records``: the frozen records the hub hands out (events, states, statistics, leases).
* ``_connection``: the Redis client, key names, error mapping, password redaction.
* ``_scripts``: the Lua scripts that make each check-and-write atomic.
* ``_leader``, ``_pending``, ``_budget``, ``_slots``: the cluster primitives.
* ``_hub``: ``RedisHub`` itself: lifecycle, video state, the event stream, slow-downs.
"""
