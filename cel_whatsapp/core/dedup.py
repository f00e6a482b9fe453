"""Remember which updates were already handled, so none is handled twice.

Meta delivers webhooks at least once: an answer other than 200, or one that
comes too late, makes it deliver the same update again, for up to 7 days, and
copies may arrive concurrently. Each message is claimed under its id with an
atomic check-and-set before it is handled; a copy finds the claim and is
skipped.

Stores share one small protocol, :class:`Store`. :class:`InMemoryStore` (the
default) serves one process; :class:`RedisStore` is shared by every gunicorn
worker and every machine pointed at the same Redis, and also carries the
per-lead leases that keep a lead's messages in order across workers (see
:mod:`cel_whatsapp.core.dispatch`).
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from ..config import (
    DEFAULT_DEDUP_MAX_ENTRIES,
    DEFAULT_DEDUP_MAX_STATUS_ENTRIES,
    DEFAULT_DEDUP_TTL,
)
from ..errors import CelWhatsappError

logger = logging.getLogger(__name__)

#: Ids longer than this (or not plain ASCII) are hashed into keys.
_MAX_PLAIN_KEY = 128


class StoreError(CelWhatsappError):
    """The store could not be reached; the webhook answers 503 so Meta delivers again."""


@runtime_checkable
class Store(Protocol):
    """Where handled update keys are remembered.

    ``claim`` must be atomic across everything sharing the store: of several
    concurrent claims of one key, exactly one returns ``True``. A claim lasts
    the store's TTL. ``release`` forgets a claim (used when an accepted update
    could not be queued, so its redelivery is handled).
    """

    def claim(self, key: str) -> bool:
        """Remember ``key``; ``True`` if it was new, ``False`` if already claimed."""
        ...

    def release(self, key: str) -> None:
        """Forget ``key``."""
        ...


def safe_key(value: str) -> str:
    """``value`` itself when short plain ASCII, else a digest of it.

    Keeps store keys bounded whatever an attacker puts in an id.
    """
    if len(value) <= _MAX_PLAIN_KEY and value.isascii() and value.isprintable():
        return value
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


#: The prefix of every :func:`status_key`; :class:`InMemoryStore` keeps those apart.
STATUS_PREFIX = "status:"


def message_key(phone_number_id: str, message_id: str) -> str:
    """The dedup key of an inbound message (by its wamid)."""
    return f"msg:{safe_key(phone_number_id)}:{safe_key(message_id)}"


def status_key(phone_number_id: str, status_id: str, status: str) -> str:
    """The dedup key of a status update: one per message id and status value."""
    return f"{STATUS_PREFIX}{safe_key(phone_number_id)}:{safe_key(status_id)}:{safe_key(status)}"


class InMemoryStore:
    """A thread-safe, bounded store for one process (the default).

    Keys live ``ttl`` seconds (default: Meta's 7-day redelivery window).
    Status-update keys (:func:`status_key`) and all other keys (message ids)
    have separate bounds, ``max_status_entries`` and ``max_entries``, so a
    flood of statuses never pushes a message id out; past its bound a kind's
    oldest claims are forgotten first (a warning is logged once per kind).
    With several gunicorn workers each has its own memory, so copies of a
    webhook landing on different workers are not caught: use
    :class:`RedisStore` there.

    Each kind is a dict of key digest -> expiry time, and deques of the
    digests and their expiries in claim order, oldest first, so memory
    grows only with the claims made. A key is kept as a 120-bit BLAKE2b
    digest (an int) rather than as the key itself (about 80 characters for
    a wamid), and claims made within a second share their expiry: about 86
    bytes per claim in all (measured with tracemalloc), where 16-byte
    digests with an expiry each took 142 and the keys themselves in an
    ``OrderedDict`` 240. Both kinds full at the default 100,000 each take
    about 23 MiB of RSS (35 MiB with the 142-byte claims); a process that
    answers that many messages within the TTL is busy enough to want
    several workers and :class:`RedisStore`, or else lower bounds.
    """

    def __init__(
        self,
        *,
        ttl: float = DEFAULT_DEDUP_TTL,
        max_entries: int = DEFAULT_DEDUP_MAX_ENTRIES,
        max_status_entries: int = DEFAULT_DEDUP_MAX_STATUS_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl <= 0 or max_entries <= 0 or max_status_entries <= 0:
            raise ValueError(
                "InMemoryStore needs a positive ttl, max_entries and max_status_entries"
            )
        self.ttl = ttl
        self.max_entries = max_entries
        self.max_status_entries = max_status_entries
        self._clock = clock
        # Claims this close share their expiry (see _Partition): a second
        # at the default TTL of 7 days, less for short test TTLs.
        granularity = min(1.0, ttl / 10_000)
        self._messages = _Partition(max_entries, "message keys", "max_entries", granularity)
        self._statuses = _Partition(
            max_status_entries, "status-update keys", "max_status_entries", granularity
        )
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"InMemoryStore(ttl={self.ttl!r}, max_entries={self.max_entries!r}, "
            f"max_status_entries={self.max_status_entries!r})"
        )

    def __len__(self) -> int:
        now = self._clock()
        with self._lock:
            self._messages.purge(now)
            self._statuses.purge(now)
            return len(self._messages.expiries) + len(self._statuses.expiries)

    def _partition(self, key: str) -> _Partition:
        return self._statuses if key.startswith(STATUS_PREFIX) else self._messages

    def claim(self, key: str) -> bool:
        """Atomically remember ``key``; ``True`` if it was not remembered yet."""
        now = self._clock()
        # _partition() written out: every message and status is claimed here.
        partition = self._statuses if key.startswith(STATUS_PREFIX) else self._messages
        digest = _digest(key)
        with self._lock:
            return partition.claim(digest, now, now + self.ttl)

    def release(self, key: str) -> None:
        """Forget ``key`` (nothing happens if it is unknown)."""
        partition = self._partition(key)
        digest = _digest(key)
        with self._lock:
            partition.forget(digest)


def _digest(key: str) -> int:
    """What :class:`InMemoryStore` keeps of a key: a 120-bit BLAKE2b digest, as an int.

    An int of 120 bits takes 40 bytes, a 16-byte ``bytes`` 49 (64 once
    allocated); two keys of one store share a digest with a chance of about
    one in 10**31.
    """
    data = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=15).digest()
    return int.from_bytes(data, "big")


class _Partition:
    """The claims of one kind of key, with their own bound. Not locked: the store locks.

    ``expiries`` maps each live digest to its expiry. ``order`` and ``times``
    list every claim made, in claim order, with the expiry it was made with:
    with one TTL for all, claim order is expiry order, so expired claims are
    always at the front. A claim released, or replaced by a new claim of the
    same key, leaves its place behind, counted in ``stale`` (releases are
    rare: a 503 gives its messages back); a key's stale places are older than
    its live one, so they reach the front first and are dropped there.

    Claims made within ``granularity`` seconds after one another share the
    first one's expiry object: each lives its TTL less at most
    ``granularity`` (a second of 7 days), and a busy store keeps one float a
    second instead of one a claim.
    """

    def __init__(self, max_entries: int, kind: str, setting: str, granularity: float) -> None:
        self.max_entries = max_entries
        self.kind = kind
        self.setting = setting
        self.granularity = granularity
        self.expiries: dict[int, float] = {}
        self.order: deque[int] = deque()
        self.times: deque[float] = deque()
        self.stale: dict[int, int] = {}
        self.last_expiry = -math.inf
        self.warned_full = False

    def purge(self, now: float) -> None:
        expiries, order, times, stale = self.expiries, self.order, self.times, self.stale
        while times and times[0] <= now:
            digest = order.popleft()
            times.popleft()
            if not (stale and self._was_stale(digest)):
                expiries.pop(digest, None)

    def claim(self, digest: int, now: float, expires: float) -> bool:
        self.purge(now)
        expiries = self.expiries
        # The key's own expiry, not only membership: a clock that stepped back
        # can leave an expired key behind a live one at the front.
        known = expiries.get(digest)
        if known is not None:
            if known > now:
                return False
            self.forget(digest)
        if len(expiries) >= self.max_entries:
            self._forget_oldest()
            if not self.warned_full:
                self.warned_full = True
                logger.warning(
                    "InMemoryStore is full (%d %s): the oldest are forgotten before "
                    "their TTL; raise %s or use RedisStore",
                    self.max_entries,
                    self.kind,
                    self.setting,
                )
        last = self.last_expiry
        if 0 <= expires - last < self.granularity:
            expires = last
        else:
            self.last_expiry = expires
        expiries[digest] = expires
        self.order.append(digest)
        self.times.append(expires)
        if len(self.order) > 2 * self.max_entries + 64:
            # Many releases or claims again left stale places: rebuild from the
            # live claims (a dict keeps insertion order, which is claim order).
            self.order = deque(expiries)
            self.times = deque(expiries.values())
            self.stale.clear()
        return True

    def forget(self, digest: int) -> None:
        """Forget a claim; its place in the claim order is dropped when it reaches the front."""
        if self.expiries.pop(digest, None) is not None:
            self.stale[digest] = self.stale.get(digest, 0) + 1

    def _was_stale(self, digest: int) -> bool:
        """Whether the place just taken from the front was a stale one of ``digest``."""
        count = self.stale.get(digest)
        if count is None:
            return False
        if count == 1:
            del self.stale[digest]
        else:
            self.stale[digest] = count - 1
        return True

    def _forget_oldest(self) -> None:
        """Forget the oldest live claim, dropping the stale places before it."""
        expiries, order, times = self.expiries, self.order, self.times
        while order:
            digest = order.popleft()
            times.popleft()
            stale = self.stale and self._was_stale(digest)
            if not stale and expiries.pop(digest, None) is not None:
                return


def _redis_errors() -> tuple[type[BaseException], ...]:
    try:
        from redis.exceptions import RedisError
    except ImportError:  # a client object that is not redis-py's
        return (ConnectionError, TimeoutError, OSError)
    return (RedisError, OSError)


class RedisStore:
    """A store in Redis, shared by every worker and machine using that Redis.

    ``claim`` is ``SET key 1 NX EX ttl``: atomic on the server, so of five
    copies of a webhook arriving at four workers at once exactly one is
    handled. Keys are ``{prefix}dedup:{key}``. The ``redis`` package is an
    optional dependency (``pip install "cel_whatsapp[redis]"``)::

        store = RedisStore.from_url("redis://localhost:6379/0")
        connector = WhatsappConnector(..., store=store)

    Errors reaching Redis raise :class:`StoreError`; the webhook then answers
    503 and Meta delivers the update again later.
    """

    def __init__(
        self,
        client: Any,
        *,
        ttl: float = DEFAULT_DEDUP_TTL,
        prefix: str = "cel_whatsapp:",
    ) -> None:
        if ttl <= 0:
            raise ValueError("RedisStore needs a positive ttl")
        self.client = client
        self.ttl = ttl
        self.prefix = prefix
        self.errors = _redis_errors()

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        ttl: float = DEFAULT_DEDUP_TTL,
        prefix: str = "cel_whatsapp:",
        **client_options: Any,
    ) -> RedisStore:
        """Connect to ``redis://host:port/db`` (``rediss://`` for TLS).

        ``client_options`` go to ``redis.Redis.from_url``; short socket
        timeouts are set unless given, so a dead Redis fails fast.
        """
        try:
            import redis
        except ImportError as exc:
            raise ImportError(
                'RedisStore needs the redis package: pip install "cel_whatsapp[redis]"'
            ) from exc
        client_options.setdefault("socket_timeout", 5.0)
        client_options.setdefault("socket_connect_timeout", 5.0)
        client_options.setdefault("health_check_interval", 30)
        return cls(redis.Redis.from_url(url, **client_options), ttl=ttl, prefix=prefix)

    def __repr__(self) -> str:
        # The client's repr may hold a password in its URL: leave it out.
        return f"RedisStore(prefix={self.prefix!r}, ttl={self.ttl!r})"

    def key(self, kind: str, name: str) -> str:
        """The full Redis key of ``name`` in namespace ``kind``."""
        return f"{self.prefix}{kind}:{name}"

    def claim(self, key: str) -> bool:
        """``SET {prefix}dedup:{key} 1 NX EX ttl``: ``True`` if the key was new."""
        try:
            created = self.client.set(
                self.key("dedup", key), b"1", nx=True, ex=max(1, round(self.ttl))
            )
        except self.errors as exc:
            raise StoreError(
                f"could not reach Redis to deduplicate ({type(exc).__name__})"
            ) from exc
        return bool(created)

    def release(self, key: str) -> None:
        """Delete the claim of ``key``."""
        try:
            self.client.delete(self.key("dedup", key))
        except self.errors as exc:
            raise StoreError(
                f"could not reach Redis to release a key ({type(exc).__name__})"
            ) from exc
