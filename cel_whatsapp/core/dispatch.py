"""Who runs the assistant for accepted messages, and when.

:class:`InlineDispatcher` answers inside the webhook request: simple, and
handy in tests and tiny sites, but a slow assistant delays the webhook's 200
and Meta delivers the same update again (deduplication then drops the copy).

:class:`BackgroundDispatcher` (the default) lets the webhook answer 200 at
once and answers the messages on a bounded pool of threads, started as the
answers in flight need them (up to ``max_workers`` per process). An answer
spends most of its time waiting: on the assistant (a language model) and on
the Graph API (100-300 ms a send), with the GIL released, so many threads
overlap those waits; each answer keeps its thread from its first send to its
last, which is what keeps one lead's messages one at a time:

- messages of one lead are answered one at a time, ordered by the message
  timestamp, then by arrival; different leads are answered in parallel;
- with :class:`~cel_whatsapp.core.dedup.RedisStore` that order also holds across
  gunicorn workers and machines: each lead has a queue in Redis ordered the
  same way, and the worker whose message is at its head takes a lease on the
  lead (a Redis key with a TTL, renewed while the answer runs). A worker that
  dies stops renewing; its lease and its queued entries expire, and the
  other workers carry on;
- when ``max_pending`` messages are waiting, the webhook waits up to
  ``full_timeout`` seconds for room, then refuses the rest: the webhook
  answers 503, their dedup keys are released, and Meta delivers them again
  later. Nothing is dropped silently;
- an answer running past ``slow_answer_after`` seconds is logged, and so is
  a pool whose every thread is stuck that way (see :mod:`cel_whatsapp.core._watch`);
- :meth:`~BackgroundDispatcher.drain` waits for pending work, and
  :meth:`~BackgroundDispatcher.shutdown` (run at interpreter exit, and from
  ``worker_exit`` in ``sample_app/gunicorn.conf.py``) finishes accepted
  messages before the process ends, within one time budget. What it cannot
  finish in time is logged, message id by message id, before anything that
  could block (joining threads, Redis); retry waits in progress are cut
  short then, and queued messages are not started any more.
"""

from __future__ import annotations

import abc
import atexit
import heapq
import itertools
import logging
import math
import os
import re
import secrets
import socket
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from queue import SimpleQueue
from typing import Any

from .. import config
from ..model import Message
from ._watch import AnswerWatch
from .answering import message_fields
from .dedup import RedisStore, Store, safe_key
from .retry import stop_waiting_on

logger = logging.getLogger(__name__)

Handler = Callable[[Message], object]

#: How often (seconds) a worker asks Redis whether a waiting lead's turn came.
DEFAULT_POLL_INTERVAL = 0.02
#: Message ids per log record when a shutdown lists the messages it leaves.
IDS_PER_RECORD = 100


def lead_key(message: Message) -> str:
    """The ordering key of a message's sender (per business number)."""
    return safe_key(f"{message.lead.phone_number_id}:{message.lead.id}")


class Dispatcher(abc.ABC):
    """Runs the handler (the assistant and its replies) for accepted messages."""

    #: ``"inline"`` or ``"background"``.
    mode: str

    _handle: Handler | None = None

    def start(self, handle: Handler | None = None, *, store: Store | None = None) -> None:
        """Bind the connector's store, and a default function that answers one message.

        One dispatcher may serve several configurations (one connector on
        several Flask apps): each :meth:`submit` then names its own handler.
        """
        self._handle = handle

    def bind(self, name: str, core: Callable[[], Any]) -> None:
        """Learn the connector's ``name`` and ``core()``, which returns its answering core.

        Only a dispatcher whose answers run in another process needs them
        (:class:`cel_whatsapp.celery.CeleryDispatcher`: jobs carry the name,
        and the worker answers with ``core()``); the others ignore them.
        """
        return None

    @abc.abstractmethod
    def submit(self, messages: Sequence[Message], handle: Handler | None = None) -> list[Message]:
        """Accept messages for answering with ``handle``; return those refused (pool full).

        ``handle`` defaults to the one given to :meth:`start`.
        """

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every accepted message is answered; ``False`` on timeout."""
        return True

    def shutdown(self, timeout: float | None = None) -> bool:
        """Refuse new messages, finish accepted ones; ``False`` if some were left."""
        return True

    def _handler(self, handle: Handler | None) -> Handler:
        chosen = handle if handle is not None else self._handle
        if chosen is None:
            raise RuntimeError("no handler: pass one to submit() or start()")
        return chosen

    def _run(self, message: Message, handle: Handler) -> None:
        try:
            handle(message)
        except Exception:
            # The responder catches the assistant's errors itself; this is a
            # last line so one message can never stop the others.
            logger.exception(
                "answering message %s failed", message.id, extra=message_fields(message)
            )


def _date(message: Message) -> datetime:
    return message.date


class InlineDispatcher(Dispatcher):
    """Answers every message inside the webhook request, in timestamp order."""

    mode = "inline"

    def __repr__(self) -> str:
        return "InlineDispatcher()"

    def submit(self, messages: Sequence[Message], handle: Handler | None = None) -> list[Message]:
        handler = self._handler(handle)
        for message in sorted(messages, key=_date) if len(messages) > 1 else messages:
            self._run(message, handler)
        return []


@dataclass(order=True, slots=True)
class _Item:
    """One accepted message, ordered by (timestamp, arrival)."""

    timestamp: float
    seq: int
    message: Message = field(compare=False)
    lead: str = field(compare=False)
    #: Answers the message (the handler of the configuration that accepted it).
    handle: Handler = field(compare=False)
    #: Its entry in the lead's Redis queue (``None`` when queued locally only).
    member: str | None = field(compare=False, default=None)


_ENQUEUE = """
local seq = redis.call('INCR', KEYS[1])
local member = string.format('%020d', seq) .. '|' .. ARGV[2] .. '|' .. ARGV[3]
redis.call('ZADD', KEYS[2], ARGV[1], member)
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return {seq, member}
"""

# Returns 1 (the turn is ours: lease taken), 0 (wait), -1 (our entry is gone),
# or {2, head} when another entry of this same worker comes first.
_TURN = """
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[2] then return 0 end
while true do
  local head = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
  if not head then return -1 end
  if head == ARGV[1] then
    redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
    return 1
  end
  local owner = string.match(head, '^%d+|([^|]+)|')
  if owner == ARGV[2] then return {2, head} end
  if owner and redis.call('EXISTS', ARGV[4] .. owner) == 1 then return 0 end
  redis.call('ZREM', KEYS[1], head)
end
"""

_FINISH = """
redis.call('ZREM', KEYS[1], ARGV[1])
if redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
return 1
"""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


class RedisLeases:
    """Per-lead queues and leases in Redis, for ordering across workers.

    Keys (under the store's prefix): ``seq`` (arrival counter),
    ``queue:{lead}`` (a sorted set scored by message timestamp, members
    starting with the zero-padded arrival number so equal timestamps keep
    arrival order), ``lease:{lead}`` (the id of the worker answering the
    lead, with a TTL) and ``worker:{id}`` (a worker's heartbeat, with a TTL).
    The scripts read heartbeat keys they are not given, so this needs a
    single Redis server (or a primary with replicas), not Redis Cluster.
    """

    def __init__(self, store: RedisStore, *, ttl: float) -> None:
        self.store = store
        self.client = store.client
        self.errors = store.errors
        self.ttl_ms = max(1000, int(ttl * 1000))
        host = re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname())[:40]
        self.worker_id = f"{host}-{os.getpid()}-{secrets.token_hex(4)}"
        self._enqueue = self.client.register_script(_ENQUEUE)
        self._turn = self.client.register_script(_TURN)
        self._finish = self.client.register_script(_FINISH)
        self._renew = self.client.register_script(_RENEW)

    def _key(self, kind: str, name: str) -> str:
        return self.store.key(kind, name)

    def heartbeat(self, leads: Sequence[str] = ()) -> None:
        """Say this worker is alive, and renew its leases on ``leads``."""
        pipe = self.client.pipeline(transaction=False)
        pipe.set(self._key("worker", self.worker_id), b"1", px=self.ttl_ms)
        for lead in leads:
            self._renew(
                keys=[self._key("lease", lead)], args=[self.worker_id, self.ttl_ms], client=pipe
            )
        pipe.execute()

    def retire(self) -> None:
        """Remove this worker's heartbeat: its leftover entries are skipped at once."""
        self.client.delete(self._key("worker", self.worker_id))

    def enqueue(self, lead: str, message_id: str, timestamp: float) -> tuple[int, str]:
        """Add a message to its lead's queue; return (arrival number, member)."""
        seq, member = self._enqueue(
            keys=[self._key("seq", "arrivals"), self._key("queue", lead)],
            args=[repr(timestamp), self.worker_id, safe_key(message_id), 24 * 3600 * 1000],
        )
        return int(seq), member.decode() if isinstance(member, bytes) else str(member)

    def try_turns(self, heads: Sequence[tuple[str, str]]) -> list[Any]:
        """For each (lead, member): 1, 0, -1 or [2, other member] (see ``_TURN``)."""
        pipe = self.client.pipeline(transaction=False)
        prefix = self._key("worker", "")
        for lead, member in heads:
            self._turn(
                keys=[self._key("queue", lead), self._key("lease", lead)],
                args=[member, self.worker_id, self.ttl_ms, prefix],
                client=pipe,
            )
        return list(pipe.execute())

    def finish(self, lead: str, member: str) -> None:
        """Take the answered entry off the queue and give the lease back."""
        self._finish(
            keys=[self._key("queue", lead), self._key("lease", lead)],
            args=[member, self.worker_id],
        )

    def drop(self, lead: str, member: str) -> None:
        """Remove an entry from a lead's queue."""
        self.client.zrem(self._key("queue", lead), member)


_live: weakref.WeakSet[BackgroundDispatcher] = weakref.WeakSet()
_live_lock = threading.Lock()


class BackgroundDispatcher(Dispatcher):
    """Answers messages on a bounded thread pool, one at a time per lead.

    Up to ``max_workers`` threads answer, started as the answers in flight
    need them (at most 1,024); at most ``max_pending`` messages are
    accepted but unanswered; past that :meth:`submit` waits ``full_timeout``
    seconds for room, then refuses (the webhook answers 503 and Meta delivers
    again). ``lease_ttl`` is how long a dead worker's hold on a lead lasts
    (with ``RedisStore``). ``shutdown_timeout`` bounds a whole shutdown (at
    interpreter exit, or :meth:`shutdown` without a timeout). An answer
    running past ``slow_answer_after`` seconds is logged as slow (``None``:
    never). Values out of range raise ``ValueError`` at once.
    """

    mode = "background"

    def __init__(
        self,
        *,
        max_workers: int = config.DEFAULT_MAX_WORKERS,
        max_pending: int = config.DEFAULT_MAX_PENDING,
        full_timeout: float = config.DEFAULT_FULL_TIMEOUT,
        lease_ttl: float = config.DEFAULT_LEASE_TTL,
        shutdown_timeout: float = config.DEFAULT_SHUTDOWN_TIMEOUT,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        name: str = "cel-whatsapp",
        slow_answer_after: float | None = config.DEFAULT_SLOW_ANSWER_AFTER,
    ) -> None:
        _check_count("max_workers", max_workers, 1, config.MAX_WORKERS_LIMIT)
        _check_count("max_pending", max_pending, 1, None)
        _check_seconds("full_timeout", full_timeout, zero=True)
        _check_seconds("lease_ttl", lease_ttl, zero=False)
        _check_seconds("shutdown_timeout", shutdown_timeout, zero=True)
        _check_seconds("poll_interval", poll_interval, zero=False)
        self.max_workers = max_workers
        self.max_pending = max_pending
        self.full_timeout = full_timeout
        self.lease_ttl = lease_ttl
        self.shutdown_timeout = shutdown_timeout
        self.poll_interval = poll_interval
        self.name = name
        if slow_answer_after is not None:
            _check_seconds("slow_answer_after", slow_answer_after, zero=False, none=True)
        self.slow_answer_after = slow_answer_after
        self._store: Store | None = None
        self._pid: int | None = None
        self._start_lock = threading.Lock()
        self._reset()
        with _live_lock:
            _live.add(self)

    def __repr__(self) -> str:
        return (
            f"BackgroundDispatcher(max_workers={self.max_workers}, "
            f"max_pending={self.max_pending}, pending={self.pending})"
        )

    def _reset(self) -> None:
        """Fresh per-process state (also after a fork: threads do not survive it)."""
        # One lock for the state below. Threads waiting for room (submit) or
        # for the end (drain) wait on the condition, and are woken only when
        # some wait (_waiters): answering never wakes threads for nothing.
        self._cond = threading.Condition()
        self._waiters = 0
        self._queues: dict[str, list[_Item]] = {}
        self._busy: set[str] = set()  # leads whose turn is granted (queued to run or running)
        self._waiting: set[str] = set()  # leads with queued items, turn not granted (Redis)
        # Granted items not started yet, by id(item) (for the shutdown's list).
        self._ready: dict[int, _Item] = {}
        # The same items for the threads: a put wakes one idle thread, no more.
        self._inbox: SimpleQueue[_Item | None] = SimpleQueue()
        self._granted = 0  # items granted and not finished: ready or running
        self._spawn_lock = threading.Lock()
        self._unfinished = 0
        self._closed = False
        self._stopped = False
        self._threads: list[threading.Thread] = []
        self._turns: threading.Thread | None = None
        self._local_seq = itertools.count()
        self._leases: RedisLeases | None = None
        self._wake = threading.Event()
        self._redis_down_since: float | None = None
        self._shutting_down = False
        # Set when a shutdown runs out of time: retry waits in progress end.
        self._give_up = threading.Event()
        self._watch = AnswerWatch(
            threads=self.max_workers,
            slow_after=self.slow_answer_after,
            pending=lambda: self._unfinished,
            max_pending=self.max_pending,
            name=self.name,
        )

    @property
    def pending(self) -> int:
        """Messages accepted and not yet answered, in this process."""
        return self._unfinished

    @property
    def cross_worker(self) -> bool:
        """Whether per-lead order is kept across workers (a ``RedisStore`` is used)."""
        return isinstance(self._store, RedisStore)

    def start(self, handle: Handler | None = None, *, store: Store | None = None) -> None:
        self._handle = handle
        self._store = store

    # -- accepting -------------------------------------------------------------------

    def submit(self, messages: Sequence[Message], handle: Handler | None = None) -> list[Message]:
        if not messages:
            return []
        handler = self._handler(handle)
        self._ensure_started()
        accepted: list[Message] = []
        refused: list[Message] = []
        deadline = time.monotonic() + self.full_timeout
        with self._cond:
            for message in messages:
                while self._unfinished >= self.max_pending and not self._closed:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._wait(remaining)
                if self._closed or self._unfinished >= self.max_pending:
                    refused.append(message)
                else:
                    self._unfinished += 1
                    accepted.append(message)
        if refused:
            logger.warning(
                "background dispatch is full (%d pending) or shutting down: %d message(s) "
                "refused; the webhook answers 503 so Meta delivers them again",
                self.max_pending,
                len(refused),
            )
        items = [self._item(message, handler) for message in accepted]
        with self._cond:
            for item in items:
                heapq.heappush(self._queues.setdefault(item.lead, []), item)
            # Only once the whole batch is queued, so its earliest message goes first.
            for lead in dict.fromkeys(item.lead for item in items):
                if lead not in self._busy:
                    if self._leases is None or self._queues[lead][0].member is None:
                        self._grant_head(lead)
                    else:
                        self._waiting.add(lead)
        if self._leases is not None:
            self._wake.set()
        self._grow()
        return refused

    def _item(self, message: Message, handle: Handler) -> _Item:
        timestamp = message.date.timestamp()
        lead = lead_key(message)
        if self._leases is not None:
            try:
                seq, member = self._leases.enqueue(lead, message.id, timestamp)
                return _Item(timestamp, seq, message, lead, handle, member)
            except self._leases.errors as exc:
                logger.warning(
                    "could not queue message %s in Redis (%s): it is answered without "
                    "cross-worker ordering",
                    message.id,
                    type(exc).__name__,
                    extra=message_fields(message),
                )
        return _Item(timestamp, next(self._local_seq), message, lead, handle, None)

    # -- threads ---------------------------------------------------------------------

    def _ensure_started(self) -> None:
        if self._pid == os.getpid():
            return
        with self._start_lock:
            if self._pid == os.getpid():
                return
            if self._pid is not None:
                self._reset()  # forked: the parent's threads and locks are not ours
            if isinstance(self._store, RedisStore):
                leases = RedisLeases(self._store, ttl=self.lease_ttl)
                try:
                    leases.heartbeat()
                    self._leases = leases
                except leases.errors as exc:
                    logger.warning(
                        "Redis unreachable (%s): messages are ordered within this process only",
                        type(exc).__name__,
                    )
            if self._leases is not None:
                turns = threading.Thread(
                    target=self._turn_loop,
                    args=(self._leases,),
                    name=f"{self.name}-turns",
                    daemon=True,
                )
                turns.start()
                self._turns = turns
            self._watch.start()
            self._pid = os.getpid()

    def _grow(self) -> None:
        """Start threads while granted answers outnumber them (up to ``max_workers``)."""
        if self._granted <= len(self._threads) or len(self._threads) >= self.max_workers:
            return
        with self._spawn_lock:
            while (
                self._granted > len(self._threads)
                and len(self._threads) < self.max_workers
                and not self._stopped
            ):
                index = len(self._threads)
                thread = threading.Thread(
                    target=self._work, args=(index,), name=f"{self.name}-{index}", daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def _work(self, slot: int) -> None:
        inbox = self._inbox
        with stop_waiting_on(self._give_up):
            while True:
                item = inbox.get()
                with self._cond:
                    if item is None or self._stopped:
                        return  # what is still queued was logged by the shutdown
                    del self._ready[id(item)]
                    self._watch.begin(slot, item.message)
                try:
                    self._run(item.message, item.handle)
                finally:
                    self._watch.end(slot)
                    self._done(item)

    def _grant_head(self, lead: str) -> None:
        """Give ``lead``'s earliest item to the pool (caller holds the lock)."""
        item = heapq.heappop(self._queues[lead])
        self._grant(item)

    def _grant(self, item: _Item) -> None:
        """Hand ``item`` to the threads (caller holds the lock; then calls _grow)."""
        self._waiting.discard(item.lead)
        self._busy.add(item.lead)
        self._ready[id(item)] = item
        self._granted += 1
        self._inbox.put(item)

    def _wait(self, timeout: float | None) -> None:
        """Wait on the condition until notified or ``timeout`` (caller holds the lock)."""
        self._waiters += 1
        try:
            self._cond.wait(timeout)
        finally:
            self._waiters -= 1

    def _done(self, item: _Item) -> None:
        leases = self._leases
        if leases is not None and item.member is not None:
            try:
                leases.finish(item.lead, item.member)
            except leases.errors as exc:
                logger.warning(
                    "could not release the lease on a lead (%s); it expires by itself",
                    type(exc).__name__,
                )
        with self._cond:
            self._unfinished -= 1
            self._granted -= 1
            self._busy.discard(item.lead)
            queue = self._queues.get(item.lead)
            if queue:
                if leases is None or queue[0].member is None:
                    self._grant_head(item.lead)  # one out, one in: no thread to start
                else:
                    self._waiting.add(item.lead)
                    self._wake.set()
            else:
                self._queues.pop(item.lead, None)
            if self._waiters:
                self._cond.notify_all()

    def _turn_loop(self, leases: RedisLeases) -> None:
        """Ask Redis, for each waiting lead, whether its turn came; keep leases alive."""
        beat_every = leases.ttl_ms / 3000
        next_beat = time.monotonic() + beat_every
        while True:
            self._wake.wait(self.poll_interval)
            self._wake.clear()
            with self._cond:
                if self._stopped:
                    return
                heads = []
                for lead in list(self._waiting):
                    head = self._queues[lead][0]
                    if head.member is None:  # queued while Redis was unreachable
                        self._grant_head(lead)
                    else:
                        heads.append((lead, head))
                busy = list(self._busy)
            self._grow()
            try:
                if time.monotonic() >= next_beat:
                    leases.heartbeat(busy)
                    next_beat = time.monotonic() + beat_every
                results = (
                    leases.try_turns([(lead, str(item.member)) for lead, item in heads])
                    if heads
                    else []
                )
            except leases.errors as exc:
                self._redis_trouble(exc, heads)
                continue
            self._redis_down_since = None
            with self._cond:
                for (lead, item), result in zip(heads, results, strict=True):
                    self._apply_turn(leases, lead, item, result)
            self._grow()

    def _apply_turn(self, leases: RedisLeases, lead: str, item: _Item, result: Any) -> None:
        """Act on one answer of the turn script (caller holds the lock)."""
        queue = self._queues.get(lead)
        if lead in self._busy or not queue or item not in queue:
            return
        if result == 1:
            queue.remove(item)
            heapq.heapify(queue)
            self._grant(item)
        elif result == -1:
            # Our entry was dropped as if this worker had died (its heartbeat
            # lapsed): queue it again rather than lose it.
            logger.warning("a queued message lost its place in Redis; it is queued again")
            queue.remove(item)
            heapq.heapify(queue)
            try:
                seq, member = leases.enqueue(lead, item.message.id, item.timestamp)
            except leases.errors:
                seq, member = next(self._local_seq), None
            heapq.heappush(
                queue, _Item(item.timestamp, seq, item.message, lead, item.handle, member)
            )
            self._wake.set()
        elif isinstance(result, list) and len(result) == 2:
            other = result[1].decode() if isinstance(result[1], bytes) else str(result[1])
            match = [candidate for candidate in queue if candidate.member == other]
            if match:
                queue.remove(match[0])
                heapq.heapify(queue)
                self._grant(match[0])
            else:
                try:
                    leases.drop(lead, other)
                except leases.errors as exc:
                    logger.warning("could not drop a stale entry (%s)", type(exc).__name__)
                self._wake.set()

    def _redis_trouble(self, exc: BaseException, heads: list[tuple[str, _Item]]) -> None:
        now = time.monotonic()
        if self._redis_down_since is None:
            self._redis_down_since = now
            logger.warning("Redis unreachable while ordering leads (%s)", type(exc).__name__)
        if heads and now - self._redis_down_since >= self.lease_ttl:
            # Better out of order than never: leases held elsewhere have expired by now.
            logger.error(
                "Redis unreachable for %.0fs: answering %d waiting lead(s) without "
                "cross-worker ordering",
                now - self._redis_down_since,
                len(heads),
            )
            with self._cond:
                for lead, _item in heads:
                    if lead not in self._busy and self._queues.get(lead):
                        self._grant_head(lead)
            self._grow()
        time.sleep(self.poll_interval)

    # -- waiting and stopping ------------------------------------------------------------

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every accepted message is answered; ``False`` on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._unfinished > 0:
                if deadline is None:
                    self._wait(None)
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._wait(remaining)
        return True

    def shutdown(self, timeout: float | None = None) -> bool:
        """Refuse new messages, answer the accepted ones, stop the threads.

        ``timeout`` (default ``shutdown_timeout``) bounds the whole shutdown,
        stopping the threads and Redis included. Returns ``False`` if some
        accepted messages were not answered in time; their ids are logged
        (ERROR) as soon as the time to answer them is up.
        """
        timeout = self.shutdown_timeout if timeout is None else timeout
        return _shutdown([self], time.monotonic() + timeout)

    # The steps of a shutdown, run by _shutdown for one or several dispatchers.

    def _begin_shutdown(self) -> bool:
        """Refuse new messages and log what is pending; ``False`` if there is nothing to do."""
        if self._pid != os.getpid():
            return False  # never started in this process
        with self._cond:
            if self._shutting_down:
                return False
            self._shutting_down = True
            self._closed = True
            self._cond.notify_all()  # submit() calls waiting for room refuse now
            queued, running = self._left()
        if queued or running:
            logger.info(
                "shutting down: finishing %d accepted message(s), %d in progress and %d queued",
                len(queued) + len(running),
                len(running),
                len(queued),
            )
            _log_ids(logging.INFO, "shutting down: in progress", running)
            _log_ids(logging.INFO, "shutting down: queued", queued)
        return True

    def _left(self) -> tuple[list[str], list[str]]:
        """Ids of the accepted messages not answered: (queued, in progress). Caller holds the lock."""
        items = [item for queue in self._queues.values() for item in queue]
        items.extend(self._ready.values())
        queued = [item.message.id for item in sorted(items)]
        return queued, [message.id for message in self._watch.running()]

    def _abandon(self, budget: float) -> bool:
        """Stop starting answers and stop retry waits; log every message left.

        Never blocks (no join, no Redis): when this runs, the process may be
        killed any moment. Returns ``True`` if nothing was left.
        """
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
            self._release_threads()
            if self._unfinished == 0:
                return True
            queued, running = self._left()
            left = self._unfinished
        self._give_up.set()  # retry waits in progress end now
        logger.error(
            "shutdown: %d accepted message(s) were not answered within %.1fs: %d in progress "
            "(stopped; the user may have part of the answer) and %d queued (never started). "
            "Their ids follow",
            left,
            budget,
            len(running),
            len(queued),
        )
        _log_ids(logging.ERROR, "shutdown: not answered, in progress", running)
        _log_ids(logging.ERROR, "shutdown: not answered, queued", queued)
        return False

    def _stop(self, deadline: float) -> None:
        """Stop the threads and retire from Redis, giving up at ``deadline``."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
            self._release_threads()
        self._wake.set()
        # The threads are daemons: joining is only tidiness, so each join gets
        # what is left of the budget, never more. The turn loop goes first: it
        # must not renew the heartbeat after the retirement below.
        for helper in (self._turns, self._watch.stop()):
            if helper is not None:
                helper.join(max(0.0, deadline - time.monotonic()))
        if self._leases is not None:
            if time.monotonic() < deadline:
                try:
                    self._leases.retire()
                except self._leases.errors as exc:
                    logger.warning("could not retire this worker in Redis (%s)", type(exc).__name__)
            else:
                logger.warning(
                    "shutdown: no time left to retire this worker in Redis; its entries "
                    "are skipped once its heartbeat expires (%.0fs)",
                    self.lease_ttl,
                )
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))

    def _release_threads(self) -> None:
        """Wake every idle thread so that it ends (caller holds the lock).

        Blocks at most while :meth:`_grow` starts a thread: a shutdown may run
        when the process is about to be killed.
        """
        with self._spawn_lock:
            for _ in self._threads:
                self._inbox.put(None)


def _check_count(name: str, value: object, least: int, most: int | None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number, not {value!r}")
    if value < least or (most is not None and value > most):
        bound = f"from {least} to {most}" if most is not None else f"at least {least}"
        raise ValueError(f"{name} must be {bound}, not {value}")


def _check_seconds(name: str, value: object, *, zero: bool, none: bool = False) -> None:
    ok = (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and math.isfinite(value)
        and (value >= 0 if zero else value > 0)
    )
    if not ok:
        kind = "zero or more" if zero else "positive"
        extra = " (or None to turn it off)" if none else ""
        raise ValueError(f"{name} must be a number of seconds, {kind}{extra}, not {value!r}")


def _log_ids(level: int, what: str, ids: list[str]) -> None:
    """Log message ids in records of at most IDS_PER_RECORD ids."""
    for first in range(0, len(ids), IDS_PER_RECORD):
        part = ids[first : first + IDS_PER_RECORD]
        logger.log(
            level,
            "%s (%d-%d of %d): %s",
            what,
            first + 1,
            first + len(part),
            len(ids),
            " ".join(part),
        )


def _shutdown(dispatchers: Sequence[BackgroundDispatcher], deadline: float) -> bool:
    """Shut ``dispatchers`` down together, everything done by ``deadline``.

    All refuse new messages and drain at once. The drain may use the budget
    but its last tenth (at most 1 s), kept for stopping threads and Redis;
    then whatever is left is logged before anything that could block.
    """
    budget = max(0.0, deadline - time.monotonic())
    active = [dispatcher for dispatcher in dispatchers if dispatcher._begin_shutdown()]
    # One shut down before (worker_exit, then atexit): done, nothing to wait for.
    earlier = [d for d in dispatchers if d not in active and d._shutting_down]
    drain_until = deadline - min(1.0, budget / 10)
    drained = [dispatcher.drain(max(0.0, drain_until - time.monotonic())) for dispatcher in active]
    finished = all(drained) and all(dispatcher.pending == 0 for dispatcher in earlier)
    for dispatcher in active:
        finished = dispatcher._abandon(budget) and finished
    for dispatcher in active:
        dispatcher._stop(deadline)
    return finished


def shutdown_all(timeout: float | None = None) -> bool:
    """Finish the accepted messages of every background dispatcher in this process.

    Call it from gunicorn's ``worker_exit`` hook (``sample_app/gunicorn.conf.py``
    does); it also runs at interpreter exit. ``timeout`` bounds the whole
    shutdown of all of them together (default: the largest
    ``shutdown_timeout``). Messages left are logged (see
    :meth:`BackgroundDispatcher.shutdown`).
    """
    with _live_lock:
        dispatchers = list(_live)
    if not dispatchers:
        return True
    if timeout is None:
        timeout = max(dispatcher.shutdown_timeout for dispatcher in dispatchers)
    return _shutdown(dispatchers, time.monotonic() + timeout)


atexit.register(shutdown_all)


def make_dispatcher(dispatch: str | Dispatcher) -> Dispatcher:
    """``"background"``, ``"inline"`` or a :class:`Dispatcher` instance."""
    if isinstance(dispatch, Dispatcher):
        return dispatch
    if dispatch == "background":
        return BackgroundDispatcher()
    if dispatch == "inline":
        return InlineDispatcher()
    raise ValueError(
        f"dispatch must be 'background', 'inline' or a Dispatcher instance, not {dispatch!r}"
    )
