"""Delivery rate control: pacing sends to what Meta lets one business number send.

Meta limits sending in two ways that matter to an assistant
(https://developers.facebook.com/docs/whatsapp/throughput and the pair rate
limit under https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes):

- **throughput**: each business number may send 80 messages per second by
  default (up to 1,000 after Meta's automatic upgrade; 20 for numbers shared
  with the WhatsApp Business app). Above it the API answers error 130429;
- **pair rate**: one number may send one user about one message every 6
  seconds, with bursts of up to 45 messages borrowed from the time that
  follows. Above it the API answers 131056.

:class:`RateControl` holds those figures. A :class:`Pacer` applies them with
two token buckets per send: the number's and the (number, recipient) pair's.
A send takes one token of each, or waits until both have one; a bucket holds
at most its burst, so a short streamed answer to one user goes out at full
speed. A 130429 or 131056 answer pauses the number or the pair for every
sender sharing the pacer.

:class:`LocalPacer` keeps the buckets in this process. :class:`RedisPacer`
keeps them in Redis, one Lua script taking both tokens atomically on the
server's clock, so every worker and machine using that Redis shares one
budget per number and per pair.

Sends of one answer go out one after another from one thread, so waiting
for a token never reorders them.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from typing import Any, Protocol

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_RATE_CONTROL",
    "LocalPacer",
    "Pacer",
    "RateControl",
    "RedisPacer",
    "make_pacer",
]

#: Meta's default throughput per business number, messages per second.
META_DEFAULT_THROUGHPUT = 80.0
#: Meta's pair rate: one message to one user every this many seconds...
META_PAIR_INTERVAL = 6.0
#: ...with bursts of up to this many messages.
META_PAIR_BURST = 45


@dataclass(frozen=True, slots=True, kw_only=True)
class RateControl:
    """How fast one business number may send, overall and to one user.

    The defaults are Meta's published figures (see the module docstring).
    ``burst`` defaults to one second's worth of ``messages_per_second``.
    ``pause_after_throughput_error`` is how long a number pauses after a
    130429 without ``Retry-After``; after a 131056 the pair pauses
    ``pair_interval`` seconds times 4 to the power of the number of 131056 in
    a row (Meta's advice: 1, 4, 16... units), at most ``max_pair_pause``.
    """

    messages_per_second: float = META_DEFAULT_THROUGHPUT
    burst: float | None = None
    pair_interval: float = META_PAIR_INTERVAL
    pair_burst: int = META_PAIR_BURST
    pause_after_throughput_error: float = 1.0
    max_pair_pause: float = 300.0

    def __post_init__(self) -> None:
        if not self.messages_per_second > 0:
            raise ValueError("RateControl.messages_per_second must be positive")
        if self.burst is not None and self.burst < 1:
            raise ValueError("RateControl.burst must be at least 1 message")
        if not self.pair_interval > 0:
            raise ValueError("RateControl.pair_interval must be positive (seconds)")
        if self.pair_burst < 1:
            raise ValueError("RateControl.pair_burst must be at least 1 message")
        if self.pause_after_throughput_error < 0 or self.max_pair_pause < 0:
            raise ValueError("RateControl pauses must not be negative")

    @property
    def number_capacity(self) -> float:
        """How many messages one number may send at once after a quiet moment."""
        return self.burst if self.burst is not None else max(1.0, self.messages_per_second)

    @property
    def pair_rate(self) -> float:
        """Messages per second to one user, in the long run."""
        return 1.0 / self.pair_interval

    def pair_pause(self, strikes: int) -> float:
        """Seconds a pair pauses after its ``strikes``-th 131056 in a row (1-based)."""
        return min(self.max_pair_pause, self.pair_interval * 4.0 ** max(0, strikes - 1))


#: The figures used when ``delivery_rate_control=True``.
DEFAULT_RATE_CONTROL = RateControl()


class Pacer(Protocol):
    """Where the buckets and pauses live: this process, or a shared Redis."""

    control: RateControl

    def try_acquire(self, number: str, recipient: str) -> float:
        """Take a token for one message; return 0, or the seconds to wait before asking again."""

    def pause_number(self, number: str, seconds: float) -> None:
        """Stop every send from ``number`` for ``seconds`` (after a 130429)."""

    def pause_pair(self, number: str, recipient: str, retry_after: float | None) -> float:
        """Pause sends from ``number`` to ``recipient`` after a 131056; return the pause."""

    def paused_for(self, number: str, recipient: str) -> float:
        """Seconds before a message from ``number`` to ``recipient`` may go (0: now)."""


_LEEWAY = 1e-9


class _Figures:
    """A :class:`RateControl`'s figures, as :meth:`LocalPacer.try_acquire` reads them.

    A bucket is kept as one float, the time it is full again (the "generic
    cell rate" form of a token bucket): its level at ``now`` is
    ``capacity - max(0, full_at - now) * rate``, so it holds a token while
    ``full_at - now <= slack``, with ``slack = (capacity - 1) / rate``, and
    taking one moves ``full_at`` on by ``1 / rate`` from ``max(full_at, now)``.
    """

    __slots__ = (
        "capacity",
        "control",
        "interval",
        "pair_burst",
        "pair_interval",
        "pair_slack",
        "slack",
    )

    def __init__(self, control: RateControl) -> None:
        self.control = control
        self.capacity = control.number_capacity
        self.interval = 1.0 / control.messages_per_second
        self.slack = (self.capacity - 1) * self.interval
        self.pair_burst = float(control.pair_burst)
        self.pair_interval = control.pair_interval
        self.pair_slack = (control.pair_burst - 1) * control.pair_interval


def _rescaled(
    full_at: float, now: float, old: tuple[float, float], new: tuple[float, float]
) -> float:
    """A bucket's full-again time under new figures (capacity, interval), its level kept.

    The level is capped at the new capacity, as a token bucket's is.
    """
    (old_capacity, old_interval), (capacity, interval) = old, new
    level = old_capacity - max(0.0, full_at - now) / old_interval
    return now + (capacity - min(capacity, level)) * interval


class LocalPacer:
    """Token buckets and pauses in this process's memory (thread-safe).

    Pair buckets are kept for users recently sent to: a pair left alone
    refills completely, so forgetting it loses nothing once it is full.
    Full ones are dropped as later sends go by, the least recently used
    first, and at most ``max_pairs`` are kept whatever their level.
    """

    def __init__(
        self,
        control: RateControl = DEFAULT_RATE_CONTROL,
        *,
        max_pairs: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.control = control
        self.max_pairs = max_pairs
        self._clock = clock
        self._lock = threading.Lock()
        # Each bucket is the time it is full again (see _Figures).
        self._numbers: dict[str, float] = {}
        self._pairs: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._paused: dict[tuple[str, str], float] = {}
        self._strikes: dict[tuple[str, str], tuple[int, float]] = {}
        self._figures = _Figures(control)
        self._origin = clock()

    def __repr__(self) -> str:
        return f"LocalPacer({self.control!r})"

    def _new_figures(self, now: float) -> _Figures:
        """Take up a ``control`` set since the last send; the buckets keep their levels."""
        old, new = self._figures, _Figures(self.control)
        now -= self._origin
        numbers = ((old.capacity, old.interval), (new.capacity, new.interval))
        for number, full_at in self._numbers.items():
            self._numbers[number] = _rescaled(full_at, now, *numbers)
        pairs = ((old.pair_burst, old.pair_interval), (new.pair_burst, new.pair_interval))
        for key, full_at in list(self._pairs.items()):
            full_at = _rescaled(full_at, now, *pairs)
            if full_at > now:
                self._pairs[key] = full_at
            else:
                del self._pairs[key]  # full: as if never sent to
        self._figures = new
        return new

    def try_acquire(self, number: str, recipient: str) -> float:
        # On the path of every send: written out rather than split into calls
        # (python -m bench --only instructions). See _Figures for the buckets.
        with self._lock:
            now = self._clock()
            figures = self._figures
            if figures.control is not self.control:
                figures = self._new_figures(now)
            if self._paused:
                wait = self._paused_for(number, recipient, now)
                if wait > 0:
                    return wait
            # Bucket times count from the pacer's start, where floats are
            # finest: time.monotonic() counts from boot, and a sum of many
            # 1/80 s intervals on a clock of 3e7 s rounds the same way each time.
            now -= self._origin
            own = self._numbers.get(number, now)
            pairs = self._pairs
            pair_key = (number, recipient)
            pair = pairs.get(pair_key)
            own_wait = own - now - figures.slack
            pair_wait = 0.0 if pair is None else pair - now - figures.pair_slack
            # A nanosecond of leeway: the intervals added up are not exact in
            # binary (ten sends of 0.1 s are 0.9999999999999999 s).
            if own_wait > _LEEWAY or pair_wait > _LEEWAY:
                return max(own_wait, pair_wait)
            self._numbers[number] = max(own, now) + figures.interval
            if pair is None:
                pairs[pair_key] = now + figures.pair_interval
            else:
                pairs[pair_key] = max(pair, now) + figures.pair_interval
                pairs.move_to_end(pair_key)
            while len(pairs) > self.max_pairs:
                pairs.popitem(last=False)
            # Forget up to two of the least recently used pairs once they have
            # refilled. A full bucket is what a pair nobody wrote to starts
            # with, so it need not be kept: the pairs held are those sent to in
            # the last few pair intervals (6 s each by default), not the last
            # max_pairs users.
            for key in list(islice(pairs, 2)):
                if pairs[key] > now:
                    break
                del pairs[key]
            return 0.0

    def pause_number(self, number: str, seconds: float) -> None:
        self._pause((number, ""), seconds)

    def pause_pair(self, number: str, recipient: str, retry_after: float | None) -> float:
        key = (number, recipient)
        with self._lock:
            now = self._clock()
            forget_after = self.control.max_pair_pause
            for stale in [k for k, (_, end) in self._strikes.items() if now >= end + forget_after]:
                del self._strikes[stale]
            # Strikes count 131056 answers in a row: they are forgotten once the
            # last pause is well over.
            strikes, _ = self._strikes.get(key, (0, 0.0))
            strikes += 1
            seconds = self.control.pair_pause(strikes)
            if retry_after is not None:
                seconds = max(seconds, retry_after)
            self._strikes[key] = (strikes, now + seconds)
        self._pause(key, seconds)
        return seconds

    def paused_for(self, number: str, recipient: str) -> float:
        with self._lock:
            return self._paused_for(number, recipient, self._clock())

    def _pause(self, key: tuple[str, str], seconds: float) -> None:
        with self._lock:
            now = self._clock()
            for stale in [k for k, until in self._paused.items() if until <= now]:
                del self._paused[stale]
            self._paused[key] = max(self._paused.get(key, 0.0), now + seconds)

    def _paused_for(self, number: str, recipient: str, now: float) -> float:
        if not self._paused:
            return 0.0
        until = max(self._paused.get((number, ""), 0.0), self._paused.get((number, recipient), 0.0))
        return max(0.0, until - now)


# Both buckets and both pauses in one atomic step, on the Redis server's clock.
# KEYS: number bucket, pair bucket, number pause, pair pause.
# ARGV: number rate (per ms), number capacity, pair rate (per ms), pair capacity.
# Returns 0 (both tokens taken) or the milliseconds to wait.
_ACQUIRE = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local paused = math.max(redis.call('PTTL', KEYS[3]), redis.call('PTTL', KEYS[4]), 0)
if paused > 0 then return paused end
local function level(key, rate, capacity)
  local state = redis.call('HMGET', key, 'tokens', 'stamp')
  local tokens, stamp = tonumber(state[1]), tonumber(state[2])
  if tokens == nil or stamp == nil then return capacity end
  return math.min(capacity, tokens + math.max(0, now - stamp) * rate)
end
local r1, c1 = tonumber(ARGV[1]), tonumber(ARGV[2])
local r2, c2 = tonumber(ARGV[3]), tonumber(ARGV[4])
local own, pair = level(KEYS[1], r1, c1), level(KEYS[2], r2, c2)
if own < 1 or pair < 1 then
  local wait = 1
  if own < 1 then wait = math.max(wait, math.ceil((1 - own) / r1)) end
  if pair < 1 then wait = math.max(wait, math.ceil((1 - pair) / r2)) end
  return wait
end
own, pair = own - 1, pair - 1
redis.call('HSET', KEYS[1], 'tokens', tostring(own), 'stamp', now)
redis.call('PEXPIRE', KEYS[1], math.ceil((c1 - own) / r1) + 1000)
redis.call('HSET', KEYS[2], 'tokens', tostring(pair), 'stamp', now)
redis.call('PEXPIRE', KEYS[2], math.ceil((c2 - pair) / r2) + 1000)
return 0
"""

# A pause that only ever grows: KEYS[1] the pause key; ARGV[1] milliseconds.
_PAUSE = """
local ms = tonumber(ARGV[1])
if ms > redis.call('PTTL', KEYS[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ms)
end
return 0
"""

# 131056 strikes: KEYS[1] the counter; ARGV[1] how long it is remembered (ms).
_STRIKE = """
local strikes = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
return strikes
"""


class RedisPacer:
    """Token buckets and pauses in Redis, shared by every worker and machine using it.

    Built from a :class:`~cel_whatsapp.core.dedup.RedisStore`'s client and
    prefix. Keys are ``{prefix}rate:...``; each expires once its bucket
    would be full again, so idle pairs cost nothing.

    While Redis cannot be reached (``errors``: the exceptions meaning so), the
    budgets are kept in this process instead (a :class:`LocalPacer`), with a
    warning at most once a minute: answers are paced per worker, not lost.
    """

    def __init__(
        self,
        client: Any,
        control: RateControl = DEFAULT_RATE_CONTROL,
        *,
        prefix: str,
        errors: tuple[type[BaseException], ...] = (),
    ) -> None:
        self.control = control
        self.client = client
        self.prefix = prefix
        self.errors = errors
        self.fallback = LocalPacer(control)
        self._warned_at = -math.inf
        self._acquire = client.register_script(_ACQUIRE)
        self._pause = client.register_script(_PAUSE)
        self._strike = client.register_script(_STRIKE)

    def __repr__(self) -> str:
        return f"RedisPacer(prefix={self.prefix!r}, {self.control!r})"

    def _keys(self, number: str, recipient: str) -> list[str]:
        base = f"{self.prefix}rate:{number}"
        return [
            f"{base}:bucket",
            f"{base}:pair:{recipient}:bucket",
            f"{base}:pause",
            f"{base}:pair:{recipient}:pause",
        ]

    def _unreachable(self, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._warned_at >= 60.0:
            self._warned_at = now
            logger.warning(
                "delivery rate control: Redis unreachable (%s); pacing in this process "
                "until it is back",
                type(exc).__name__,
            )

    def try_acquire(self, number: str, recipient: str) -> float:
        control = self.control
        try:
            wait_ms = self._acquire(
                keys=self._keys(number, recipient),
                args=[
                    repr(control.messages_per_second / 1000.0),
                    repr(control.number_capacity),
                    repr(control.pair_rate / 1000.0),
                    repr(float(control.pair_burst)),
                ],
            )
        except self.errors as exc:
            self._unreachable(exc)
            return self.fallback.try_acquire(number, recipient)
        return int(wait_ms) / 1000.0

    def pause_number(self, number: str, seconds: float) -> None:
        self.fallback.pause_number(number, seconds)
        try:
            self._pause(keys=[self._keys(number, "")[2]], args=[_ms(seconds)])
        except self.errors as exc:
            self._unreachable(exc)

    def pause_pair(self, number: str, recipient: str, retry_after: float | None) -> float:
        keys = self._keys(number, recipient)
        remember = _ms(2 * self.control.max_pair_pause)
        try:
            strikes = int(self._strike(keys=[keys[3] + ":strikes"], args=[remember]))
        except self.errors as exc:
            self._unreachable(exc)
            return self.fallback.pause_pair(number, recipient, retry_after)
        seconds = self.control.pair_pause(strikes)
        if retry_after is not None:
            seconds = max(seconds, retry_after)
        try:
            self._pause(keys=[keys[3]], args=[_ms(seconds)])
        except self.errors as exc:
            self._unreachable(exc)
            self.fallback.pause_pair(number, recipient, retry_after)
        return seconds

    def paused_for(self, number: str, recipient: str) -> float:
        keys = self._keys(number, recipient)
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.pttl(keys[2])
            pipe.pttl(keys[3])
            return max(0, *(int(ms) for ms in pipe.execute())) / 1000.0
        except self.errors as exc:
            self._unreachable(exc)
            return self.fallback.paused_for(number, recipient)


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


def make_pacer(setting: bool | RateControl, store: object = None) -> Pacer | None:
    """The pacer for ``delivery_rate_control=setting``: in Redis when ``store`` is a
    :class:`~cel_whatsapp.core.dedup.RedisStore`, else in this process; ``None`` when off."""
    if setting is False:
        return None
    if setting is True:
        control = DEFAULT_RATE_CONTROL
    elif isinstance(setting, RateControl):
        control = setting
    else:
        raise TypeError(
            f"delivery_rate_control must be True, False or a RateControl, not {setting!r}"
        )
    from .dedup import RedisStore

    if isinstance(store, RedisStore):
        return RedisPacer(store.client, control, prefix=store.prefix, errors=store.errors)
    return LocalPacer(control)
