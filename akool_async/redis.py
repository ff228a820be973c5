"""Several processes, one pool of videos: the Redis hub (``pip install 'akool-async[redis]'``).

::

    from akool_async.redis import RedisHub

    hub = RedisHub("redis://localhost:6379/0", namespace="akool")

Importing this module needs the ``redis`` package; ``import akool_async`` never does.
"""

from __future__ import annotations

try:
    import redis.asyncio  # noqa: F401  (fail here, with the fix, rather than deep inside)
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without redis
    raise ImportError(
        "akool_async.redis needs the redis package: pip install 'akool-async[redis]'"
    ) from exc

from ._errors import HubUnavailableError
from ._hub._budget import SharedBudget
from ._hub._hub import RedisHub
from ._hub._jobs import RedisJobStore
from ._hub._leader import LeaderLease
from ._hub._pending import PendingRegistry
from ._hub._records import (
    BudgetSnapshot,
    HubEvent,
    HubRole,
    HubStatistics,
    Reservation,
    SlotLease,
    VideoState,
)
from ._hub._slots import CreateSlots

__all__ = [
    "BudgetSnapshot",
    "CreateSlots",
    "HubEvent",
    "HubRole",
    "HubStatistics",
    "HubUnavailableError",
    "LeaderLease",
    "PendingRegistry",
    "RedisHub",
    "RedisJobStore",
    "Reservation",
    "SharedBudget",
    "SlotLease",
    "VideoState",
]

for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) and _obj is not HubUnavailableError:
        _obj.__module__ = "akool_async.redis"
del _name, _obj
