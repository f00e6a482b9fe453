"""Whose turn it is to answer a lead, when job workers on many machines answer.

A job queue hands messages to whichever worker is free, so two messages of
one user could be answered at once, or the later one first. :class:`LeadTurns`
keeps them in order in Redis (the :class:`~cel_whatsapp.core.dedup.RedisStore`
the webhook deduplicates with):

- the webhook puts each message in its lead's queue (a sorted set scored by
  the message timestamp; members start with a zero-padded arrival number, so
  equal timestamps keep arrival order) *before* publishing its job;
- a job may answer only when its message is at the head of the queue and no
  other job holds the lead's lease: it then takes the lease (a key with a
  TTL, renewed while it answers, holding a token of this one run). A job
  whose turn has not come is asked to try again shortly (a Celery retry with
  a countdown), so no worker slot waits;
- a finished answer marks its message done on its dedup key (``"1"``
  becomes ``"done"``, keeping its TTL), leaves the queue and gives the lease
  back, in one script, before the job is acknowledged. A copy of a done job
  (a broker's redelivery) sends nothing;
- a job that must wait for the Graph API hands the lease to its own retry
  (:meth:`hand_off`), so the rest of its answer still goes before the lead's
  next message;
- a run that dies (SIGKILL, OOM) stops renewing: its lease expires after
  ``lease_ttl`` and the broker's redelivered copy answers the message again,
  from the start;
- a head entry whose message is done, or that was queued more than
  ``order_timeout`` seconds ago and has no lease (its job was purged or lost
  by hand), is skipped, so it cannot block its lead for ever.

Keys, under the store's prefix: ``jobs:arrivals`` (the arrival counter),
``jobqueue:{lead}``, ``joblease:{lead}``, and the dedup keys
``dedup:{message key}``. The scripts read dedup keys they are not given, so
this needs a single Redis server (or a primary with replicas), not Redis
Cluster.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .dedup import RedisStore, StoreError

logger = logging.getLogger(__name__)

#: Value of a dedup key once its message has been answered to the end.
DONE = b"done"
#: How long a lead's queue lives after its last new entry.
QUEUE_TTL_MS = 24 * 3600 * 1000

_ENQUEUE = """
local seq = redis.call('INCR', KEYS[1])
local member = string.format('%020d', seq) .. '|' .. ARGV[2] .. '|' .. ARGV[3]
redis.call('ZADD', KEYS[2], ARGV[1], member)
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return member
"""

# KEYS: queue, lease, the message's dedup key. ARGV: member, score, token,
# handoff ('' for none), lease ms, now ms, order timeout ms, dedup key prefix,
# queue ms. Returns {granted (1), waiting (0) or done (2), rank, skipped heads,
# member (renewed if queued again)}.
_TAKE = """
local member = ARGV[1]
if redis.call('GET', KEYS[3]) == 'done' then
  -- Answered before (this is a copy): leave the queue, and a lease left to us.
  redis.call('ZREM', KEYS[1], member)
  if ARGV[4] ~= '' and redis.call('GET', KEYS[2]) == ARGV[4] then
    redis.call('DEL', KEYS[2])
  end
  return {2, 0, 0, member}
end
if not redis.call('ZSCORE', KEYS[1], member) then
  -- Our entry is gone (skipped as stale, or its queue expired): queue it
  -- again at its timestamp, as a fresh entry.
  local seq, key = string.match(member, '^(%d+)|%d+|(.*)$')
  member = seq .. '|' .. ARGV[6] .. '|' .. key
  redis.call('ZADD', KEYS[1], ARGV[2], member)
  redis.call('PEXPIRE', KEYS[1], ARGV[9])
end
local holder = redis.call('GET', KEYS[2])
if holder then
  if ARGV[4] ~= '' and holder == ARGV[4] then
    redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[5])
    return {1, 0, 0, member}
  end
  return {0, redis.call('ZRANK', KEYS[1], member), 0, member}
end
local ours = string.match(member, '^%d+|%d+|(.*)$')
local skipped = 0
while true do
  local head = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
  if head == member then
    redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[5])
    return {1, 0, skipped, member}
  end
  local queued, key = string.match(head, '^%d+|(%d+)|(.*)$')
  local done = key and redis.call('GET', ARGV[8] .. key) == 'done'
  local stale = (not queued) or (tonumber(ARGV[6]) - tonumber(queued) > tonumber(ARGV[7]))
  -- An older entry of this same message (queued twice) never blocks it.
  local twin = key == ours
  if not (done or stale or twin) then
    return {0, redis.call('ZRANK', KEYS[1], member), skipped, member}
  end
  redis.call('ZREM', KEYS[1], head)
  if stale and not (done or twin) then skipped = skipped + 1 end
end
"""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_HAND_OFF = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""

# KEYS: queue, lease, dedup key. ARGV: member, token, dedup ms, '1' to mark done.
_FINISH = """
if ARGV[4] == '1' then
  local ttl = redis.call('PTTL', KEYS[3])
  if ttl < 1 then ttl = ARGV[3] end
  redis.call('SET', KEYS[3], 'done', 'PX', ttl)
end
redis.call('ZREM', KEYS[1], ARGV[1])
if redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
return 1
"""


def new_token() -> str:
    """A token naming one run of a job (what a lease holds)."""
    return secrets.token_hex(16)


@dataclass(frozen=True, slots=True)
class Turn:
    """What :meth:`LeadTurns.take` found."""

    #: Whether the lease was taken: the job answers now.
    granted: bool
    #: Whether the message was answered before (a copy of its job): nothing to do.
    done: bool
    #: How many entries come before the job's own in its lead's queue (0 when granted).
    ahead: int
    #: The job's entry in the queue (a new one if it had to be queued again).
    member: str
    #: Head entries skipped because they were queued longer than ``order_timeout`` ago.
    skipped: int = 0


class LeadTurns:
    """Per-lead order and done marks for job workers, in a :class:`RedisStore`.

    ``lease_ttl``: seconds a run's hold on its lead lasts unless renewed (a
    dead run blocks its lead that long at most). ``order_timeout``: seconds
    after which a queued message whose job never came is skipped.
    """

    def __init__(self, store: RedisStore, *, lease_ttl: float, order_timeout: float) -> None:
        if lease_ttl <= 0 or order_timeout <= 0:
            raise ValueError("lease_ttl and order_timeout must be positive")
        self.store = store
        self.client = store.client
        self.errors = store.errors
        self.lease_ttl = lease_ttl
        self.lease_ms = max(1000, int(lease_ttl * 1000))
        self.order_timeout_ms = int(order_timeout * 1000)
        self._enqueue = self.client.register_script(_ENQUEUE)
        self._take = self.client.register_script(_TAKE)
        self._renew = self.client.register_script(_RENEW)
        self._hand_off = self.client.register_script(_HAND_OFF)
        self._finish = self.client.register_script(_FINISH)

    def __repr__(self) -> str:
        return f"LeadTurns({self.store!r}, lease_ttl={self.lease_ttl!r})"

    def _queue(self, lead: str) -> str:
        return self.store.key("jobqueue", lead)

    def _lease(self, lead: str) -> str:
        return self.store.key("joblease", lead)

    def _done_key(self, message_key: str) -> str:
        return self.store.key("dedup", message_key)

    def enqueue(self, entries: Sequence[tuple[str, str, float]]) -> list[str]:
        """Queue ``(lead, message key, timestamp)`` entries, in order; return their members.

        One round trip for all of them. Raises :class:`StoreError`.
        """
        if not entries:
            return []
        now = str(_now_ms())
        calls = [
            (
                [self.store.key("jobs", "arrivals"), self._queue(lead)],
                [repr(timestamp), now, message_key, QUEUE_TTL_MS],
            )
            for lead, message_key, timestamp in entries
        ]
        try:
            if len(calls) == 1:
                # Most POSTs hold one message; a pipeline costs more to build
                # (redis-py copies its response callbacks) than the call itself.
                keys, args = calls[0]
                return [_text(self._enqueue(keys=keys, args=args))]
            pipe = self.client.pipeline(transaction=False)
            for keys, args in calls:
                self._enqueue(keys=keys, args=args, client=pipe)
            return [_text(member) for member in pipe.execute()]
        except self.errors as exc:
            raise StoreError(
                f"could not reach Redis to queue messages ({type(exc).__name__})"
            ) from exc

    def drop(self, entries: Sequence[tuple[str, str]]) -> None:
        """Take ``(lead, member)`` entries off their queues (their jobs were not published)."""
        if not entries:
            return
        pipe = self.client.pipeline(transaction=False)
        for lead, member in entries:
            pipe.zrem(self._queue(lead), member)
        try:
            pipe.execute()
        except self.errors as exc:
            raise StoreError(
                f"could not reach Redis to unqueue messages ({type(exc).__name__})"
            ) from exc

    def is_done(self, message_key: str) -> bool:
        """Whether the message was answered to the end (its dedup key says ``done``)."""
        try:
            value = self.client.get(self._done_key(message_key))
        except self.errors as exc:
            raise StoreError(f"could not reach Redis ({type(exc).__name__})") from exc
        return bool(value == DONE)

    def take(
        self,
        lead: str,
        member: str,
        message_key: str,
        timestamp: float,
        token: str,
        handoff: str | None = None,
    ) -> Turn:
        """Take ``lead``'s lease for the run ``token`` if ``member`` is at the head.

        ``handoff``: the token an earlier run of the same job left the lease
        under (:meth:`hand_off`); it is taken whatever the queue says. A
        message already done is not queued nor given the lease
        (``Turn.done``): checked in the same script, so a copy of a job never
        answers a message another copy finished meanwhile.
        """
        try:
            state, ahead, skipped, renewed = self._take(
                keys=[self._queue(lead), self._lease(lead), self._done_key(message_key)],
                args=[
                    member,
                    repr(timestamp),
                    token,
                    handoff or "",
                    self.lease_ms,
                    _now_ms(),
                    self.order_timeout_ms,
                    self.store.key("dedup", ""),
                    QUEUE_TTL_MS,
                ],
            )
        except self.errors as exc:
            raise StoreError(
                f"could not reach Redis to order a lead ({type(exc).__name__})"
            ) from exc
        turn = Turn(state == 1, state == 2, int(ahead or 0), _text(renewed), int(skipped or 0))
        if turn.skipped:
            logger.warning(
                "%d message(s) of a lead waited more than %.0fs at the head of its queue "
                "without their job coming (purged?): skipped in that lead's order",
                turn.skipped,
                self.order_timeout_ms / 1000,
            )
        return turn

    def renew(self, lead: str, token: str) -> bool:
        """Extend the lease of run ``token``; ``False`` if it no longer holds it."""
        try:
            return bool(self._renew(keys=[self._lease(lead)], args=[token, self.lease_ms]))
        except self.errors as exc:
            raise StoreError(f"could not reach Redis ({type(exc).__name__})") from exc

    def hand_off(self, lead: str, token: str, new: str, seconds: float) -> bool:
        """Leave the lease to the run ``new`` (a retry in ``seconds``), holding it meanwhile."""
        ms = max(1000, int(seconds * 1000)) + self.lease_ms
        try:
            return bool(self._hand_off(keys=[self._lease(lead)], args=[token, new, ms]))
        except self.errors as exc:
            raise StoreError(f"could not reach Redis ({type(exc).__name__})") from exc

    def finish(self, lead: str, member: str, token: str, message_key: str, *, done: bool) -> None:
        """Leave the queue and give the lease back; ``done``: mark the message answered first.

        One script: the done mark never exists without the rest, nor the
        other way round.
        """
        try:
            self._finish(
                keys=[self._queue(lead), self._lease(lead), self._done_key(message_key)],
                args=[member, token, max(1000, int(self.store.ttl * 1000)), "1" if done else "0"],
            )
        except self.errors as exc:
            raise StoreError(
                f"could not reach Redis to finish an answer ({type(exc).__name__})"
            ) from exc

    @contextmanager
    def holding(self, lead: str, token: str) -> Iterator[None]:
        """Renew run ``token``'s lease on ``lead`` until the block ends.

        One thread per process renews every lease held in it, every third of
        ``lease_ttl``: a run costs no thread of its own.
        """
        self._renewals.add(token, lead)
        try:
            yield
        finally:
            self._renewals.discard(token)

    @property
    def _renewals(self) -> _Renewals:
        renewals = self.__dict__.get("_renewals_of_pid")
        if renewals is None or renewals.pid != os.getpid():
            with _RENEWALS_LOCK:  # made again after a fork: threads do not survive it
                renewals = self.__dict__.get("_renewals_of_pid")
                if renewals is None or renewals.pid != os.getpid():
                    renewals = self.__dict__["_renewals_of_pid"] = _Renewals(self)
        return renewals


_RENEWALS_LOCK = threading.Lock()


class _Renewals:
    """The leases held in this process, renewed by one daemon thread."""

    def __init__(self, turns: LeadTurns) -> None:
        self.turns = turns
        self.pid = os.getpid()
        self.held: dict[str, str] = {}  # token -> lead
        self.lock = threading.Lock()
        self.lost: set[str] = set()
        self.thread = threading.Thread(target=self._run, name="cel-whatsapp-leases", daemon=True)
        self.thread.start()

    def add(self, token: str, lead: str) -> None:
        with self.lock:
            self.held[token] = lead

    def discard(self, token: str) -> None:
        with self.lock:
            self.held.pop(token, None)
            self.lost.discard(token)

    def _run(self) -> None:
        while True:
            time.sleep(self.turns.lease_ttl / 3)
            with self.lock:
                held = list(self.held.items())
            for token, lead in held:
                try:
                    renewed = self.turns.renew(lead, token)
                except StoreError as exc:
                    logger.warning("could not renew the lease on a lead: %s", exc)
                    break
                if not renewed and token not in self.lost:
                    with self.lock:
                        self.lost.add(token)
                    logger.warning(
                        "an answer outlived its lease on the lead (%.0fs without renewal): "
                        "another message of that lead may be answered meanwhile",
                        self.turns.lease_ttl,
                    )


def _now_ms() -> int:
    return int(time.time() * 1000)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
