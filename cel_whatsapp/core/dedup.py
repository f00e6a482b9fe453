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
from ._digests import DigestQueue, DigestSet

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

    Keys live ``ttl`` seconds (default: Meta's 7-day redelivery window), or
    up to 0.1% longer: claims made close together share one expiry time.
    Status-update keys (:func:`status_key`) and all other keys (message ids)
    have separate bounds, ``max_status_entries`` and ``max_entries``, so a
    flood of statuses never pushes a message id out; past its bound a kind's
    oldest claims are forgotten first (a warning is logged once per kind).
    With several gunicorn workers each has its own memory, so copies of a
    webhook landing on different workers are not caught: use
    :class:`RedisStore` there.

    A full store of the default 100,000 message and 100,000 status keys takes
    about 5.6 MiB (see :mod:`cel_whatsapp.core._digests`).
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
        self._messages = _Partition(ttl, max_entries, "message keys", "max_entries")
        self._statuses = _Partition(
            ttl, max_status_entries, "status-update keys", "max_status_entries"
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
            return self._messages.size(now) + self._statuses.size(now)

    def _partition(self, key: str) -> _Partition:
        return self._statuses if key.startswith(STATUS_PREFIX) else self._messages

    def claim(self, key: str) -> bool:
        """Atomically remember ``key``; ``True`` if it was not remembered yet."""
        now = self._clock()
        digest = _digest(key)
        partition = self._partition(key)
        with self._lock:
            return partition.claim(digest, now)

    def release(self, key: str) -> None:
        """Forget ``key`` (nothing happens if it is unknown)."""
        digest = _digest(key)
        partition = self._partition(key)
        with self._lock:
            partition.release(digest)


class _Partition:
    """The claims of one kind of key, with their own bound. Not locked: the store locks."""

    def __init__(self, ttl: float, max_entries: int, kind: str, setting: str) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.kind = kind
        self.setting = setting
        # Keys are kept as 64-bit digests (a wamid key is ~100 bytes as a
        # str); 100,000 of them collide with odds of about 3e-10.
        self._live = DigestSet()
        # Every claim in claim order, which is expiry order since all share
        # one TTL. Claims within ttl/1000 of a run's start join that run, and
        # the run expires ttl after its latest claim: one float per run
        # instead of one per key.
        self._order = DigestQueue()
        self._runs: deque[_Run] = deque()
        self._run_width = ttl / 1000
        # Released digests still in _order, with how many such older copies.
        self._released: dict[int, int] = {}
        self._warned_full = False

    def size(self, now: float) -> int:
        self._purge(now)
        return len(self._live)

    def claim(self, digest: int, now: float) -> bool:
        self._purge(now)
        live = self._live
        # Released claims stay queued until they expire, so the bound
        # counts the queue, not only the live keys: nothing grows past
        # max_entries however many claims are released.
        if len(self._order) >= self.max_entries:
            if digest in live:
                return False
            if self._forget_oldest() and not self._warned_full:
                self._warned_full = True
                logger.warning(
                    "InMemoryStore is full (%d %s): the oldest are forgotten before "
                    "their TTL; raise %s or use RedisStore",
                    self.max_entries,
                    self.kind,
                    self.setting,
                )
        if not live.add(digest):
            return False
        self._order.append(digest)
        runs = self._runs
        if runs and now - runs[-1].started < self._run_width:
            run = runs[-1]
            # max(): a clock that steps back must not shorten the run's keys.
            run.expires = max(run.expires, now + self.ttl)
            run.count += 1
        else:
            runs.append(_Run(now, now + self.ttl, 1))
        return True

    def release(self, digest: int) -> None:
        if self._live.discard(digest):
            self._released[digest] = self._released.get(digest, 0) + 1

    def _purge(self, now: float) -> None:
        runs = self._runs
        while runs and runs[0].expires <= now:
            for _ in range(runs[0].count):
                self._forget_oldest()

    def _forget_oldest(self) -> bool:
        """Drop the oldest claim; ``True`` if it was still live (not released)."""
        digest = self._order.popleft()
        run = self._runs[0]
        run.count -= 1
        if not run.count:
            self._runs.popleft()
        copies = self._released.get(digest)
        if copies is None:
            self._live.discard(digest)
            return True
        # Released copies are older than a live re-claim of the same key.
        if copies == 1:
            del self._released[digest]
        else:
            self._released[digest] = copies - 1
        return False


class _Run:
    """Consecutive claims sharing one expiry time."""

    __slots__ = ("count", "expires", "started")

    def __init__(self, started: float, expires: float, count: int) -> None:
        self.started = started
        self.expires = expires
        self.count = count


def _digest(key: str) -> int:
    """A nonzero 64-bit digest of ``key``."""
    raw = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(raw, "big") or 1


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
