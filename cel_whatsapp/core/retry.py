"""When to send a Graph API request again, and how long to wait first.

The decision follows Meta's numeric error code, not the HTTP status alone
(https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes):

- the transience of each code is read from :data:`cel_whatsapp.errors.META_CODES`,
  the table that also picks the exception class; no other list of codes exists;
- transient codes (throttling, temporary or unknown server trouble), HTTP 5xx,
  and a connection that failed before the request left are retried with
  exponential backoff and jitter, honouring ``Retry-After``;
- 131056, too many messages to one user in a short time (Meta's pair rate
  limit, about one message every 6 seconds after a burst), holds back that
  recipient only, then retries;
- every other error is permanent: sending the same request again would fail
  the same way, so it is raised at once;
- a read timeout after the request was sent is never retried: WhatsApp may
  have delivered the message already, and ``POST /messages`` has no
  idempotency key, so a retry could send it twice.

No Flask and no HTTP here: :class:`Retrier` runs any callable that raises
:class:`~cel_whatsapp.errors.GraphAPIError`.

Waits can be cut short: inside ``with stop_waiting_on(event):`` a wait ends as
soon as ``event`` is set, and the request fails with its last error instead of
trying again; once it is set no request starts at all. The background
dispatcher runs its threads that way, so a shutdown that has run out of time
neither sits out backoffs nor sends anything more.
"""

from __future__ import annotations

import enum
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TypeVar

from ..config import DEFAULT_RETRY_ATTEMPTS, DEFAULT_RETRY_TOTAL_TIME
from ..errors import GraphAPIError, GraphTransportError, RateLimitError, Transience, code_info
from .deferral import check_wait
from .rates import Pacer

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Pair rate limit: too many messages from this number to the same user.
PAIR_RATE_CODE = 131056
#: Throughput exceeded: too many messages from this number right now.
THROUGHPUT_CODE = 130429

_VERDICTS = {
    Transience.TRANSIENT: "retry",
    Transience.RECIPIENT: "recipient",
    Transience.PERMANENT: "permanent",
}


#: The attribute of the log record of each retry wait that holds its :class:`RetryWait`.
RETRY_WAIT = "cel_whatsapp_retry_wait"


@dataclass(frozen=True, slots=True)
class RetryWait:
    """A wait before a Graph API call is tried again, as logged when it starts."""

    #: Why the last try failed: Meta's code, the HTTP status, or what went wrong.
    reason: str
    #: The try that follows the wait (2 for the first retry).
    attempt: int
    #: How many tries the policy allows in all.
    attempts: int
    #: Seconds of the wait.
    seconds: float


class Verdict(str, enum.Enum):
    """What to do after a failed request."""

    #: Send it again after a backoff.
    RETRY = "retry"
    #: Send it again once the recipient's pair rate limit has cooled down.
    RECIPIENT = "recipient"
    #: Do not send it again: it would fail the same way.
    PERMANENT = "permanent"
    #: It may have been delivered; sending again could duplicate it.
    UNCERTAIN = "uncertain"


def classify(error: GraphAPIError) -> Verdict:
    """Decide whether ``error`` may be retried, by Meta's code first."""
    if isinstance(error, GraphTransportError):
        return Verdict.UNCERTAIN if error.request_sent else Verdict.RETRY
    # Meta's code decides, read from the one table of codes (cel_whatsapp.errors).
    info = code_info(error.code)
    if info is not None:
        return Verdict(_VERDICTS[info.transience])
    status = error.http_status or 0
    if status >= 500 or (status == 429 and error.code is None):
        return Verdict.RETRY
    return Verdict.PERMANENT


def is_retryable(error: GraphAPIError) -> bool:
    """True when sending the same request again may succeed."""
    return classify(error) in (Verdict.RETRY, Verdict.RECIPIENT)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How many times, and how patiently, a failed request is sent again.

    ``attempts`` counts every try, the first one included; ``total_time`` caps
    the seconds all tries and waits of one request may take together (a wait
    that would end past it is not started). The wait before try ``n + 1`` is
    ``base_delay * 2 ** (n - 1)``, at most ``max_delay``, of which a random
    half is jitter; a ``Retry-After`` header replaces it. After error 131056
    the recipient is held back ``pair_rate_delay`` seconds (or ``Retry-After``).
    """

    attempts: int = DEFAULT_RETRY_ATTEMPTS
    total_time: float = DEFAULT_RETRY_TOTAL_TIME
    base_delay: float = 0.5
    max_delay: float = 20.0
    pair_rate_delay: float = 6.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be at least 1 (1 means no retry)")
        if self.total_time < 0 or self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("RetryPolicy times must not be negative")

    def backoff(self, attempt: int, rand: float) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based); ``rand`` in [0, 1)."""
        ceiling: float = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return ceiling / 2 + ceiling / 2 * rand


#: A policy that never retries.
NO_RETRY = RetryPolicy(attempts=1)


@dataclass(slots=True)
class RecipientPacer:
    """Remembers recipients hit by the pair rate limit, and until when to wait.

    Thread-safe. Only the recipient that was refused waits; sends to everyone
    else go on.
    """

    clock: Callable[[], float] = time.monotonic
    _not_before: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def hold(self, recipient: str, seconds: float) -> None:
        """Make sends to ``recipient`` wait ``seconds`` from now."""
        now = self.clock()
        with self._lock:
            for key in [k for k, until in self._not_before.items() if until <= now]:
                del self._not_before[key]  # keep the table as small as the set of held users
            self._not_before[recipient] = max(self._not_before.get(recipient, 0.0), now + seconds)

    def wait_time(self, recipient: str) -> float:
        """Seconds left before ``recipient`` may be sent to (0 when free)."""
        # Asked before every send: one dict lookup, atomic on its own, so no
        # lock (a lock taken by every sending thread costs more than the send's
        # own bookkeeping under gunicorn's gthread workers). hold() still
        # takes the lock for its read-modify-write.
        until = self._not_before.get(recipient)
        return max(0.0, until - self.clock()) if until is not None else 0.0


_stop_event: ContextVar[threading.Event | None] = ContextVar(
    "cel_whatsapp_retry_stop_event", default=None
)


@contextmanager
def stop_waiting_on(event: threading.Event) -> Iterator[None]:
    """Within this block (in this thread), retry waits end as soon as ``event`` is set.

    The request being retried then fails with its last error, and requests
    started after that fail at once, unsent. Used by
    :class:`~cel_whatsapp.dispatch.BackgroundDispatcher` when its shutdown
    runs out of time.
    """
    token = _stop_event.set(event)
    try:
        yield
    finally:
        _stop_event.reset(token)


class Retrier:
    """Runs a request under a :class:`RetryPolicy`.

    ``sleep``, ``clock`` and ``rand`` (uniform in [0, 1), for the jitter) are
    injectable for tests.
    """

    def __init__(
        self,
        policy: RetryPolicy | None = None,
        *,
        pacer: RecipientPacer | None = None,
        rates: Pacer | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.policy = policy if policy is not None else RetryPolicy()
        self.pacer = pacer if pacer is not None else RecipientPacer(clock=clock)
        #: Delivery rate control (:mod:`cel_whatsapp.core.rates`), for sends that name
        #: their business number and recipient; ``None``: only ``pacer``'s holds.
        self.rates = rates
        self._sleep = sleep
        self._clock = clock
        self._random = rand

    def __repr__(self) -> str:
        return f"Retrier({self.policy!r})"

    def call(
        self, send: Callable[[], T], *, recipient: str | None = None, number: str | None = None
    ) -> T:
        """Return ``send()``, trying again while the error says a retry may help.

        The last error is raised when the policy gives up or the error is
        permanent or uncertain. A message send names its ``recipient`` and the
        business ``number`` it goes from: with rate control each try first
        waits for its turn, and a 130429 or 131056 answer pauses the number
        or the pair for every sender sharing the control.
        """
        rates = self.rates if recipient is not None and number is not None else None
        stop = _stop_event.get()
        if stop is not None and stop.is_set():
            raise GraphAPIError("not sent: sending was stopped (shutting down)")
        policy = self.policy
        deadline = self._clock() + policy.total_time
        attempt = 0
        while True:
            attempt += 1
            if rates is not None:
                self._take_turn(rates, str(number), str(recipient), deadline)
            elif recipient is not None:
                held = self.pacer.wait_time(recipient)
                if held > 0:
                    if self._clock() + held > deadline:
                        raise RateLimitError(
                            "recipient still held back by the pair rate limit (131056) "
                            "when the retry time ran out",
                            code=PAIR_RATE_CODE,
                        )
                    if self._wait(held):
                        raise GraphAPIError(
                            "recipient held back by the pair rate limit (131056) when "
                            "waiting was stopped (shutting down)",
                            code=PAIR_RATE_CODE,
                        )
            try:
                return send()
            except GraphAPIError as error:
                verdict = classify(error)
                if verdict in (Verdict.PERMANENT, Verdict.UNCERTAIN):
                    raise
                if attempt >= policy.attempts:
                    logger.warning("giving up after %d attempt(s): %s", attempt, error)
                    raise
                delay = self._delay(verdict, attempt, error, rates, number, recipient)
                if self._clock() + delay > deadline:
                    logger.warning(
                        "giving up after %d attempt(s): the next wait (%.2fs) would pass the "
                        "retry time limit: %s",
                        attempt,
                        delay,
                        error,
                    )
                    raise
                logger.info(
                    "Graph API call failed (%s); attempt %d of %d in %.2fs",
                    _short(error),
                    attempt + 1,
                    policy.attempts,
                    delay,
                    # For tools that show the wait their own way (flask whatsapp send).
                    extra={
                        RETRY_WAIT: RetryWait(_short(error), attempt + 1, policy.attempts, delay)
                    },
                )
                if rates is not None and error.code in (THROUGHPUT_CODE, PAIR_RATE_CODE):
                    pass  # paused in the shared control; waited at the top of the loop
                elif verdict is Verdict.RECIPIENT and recipient is not None:
                    self.pacer.hold(recipient, delay)  # waited at the top of the loop
                elif self._wait(delay):
                    logger.warning(
                        "giving up after %d attempt(s): waiting was stopped (shutting down): %s",
                        attempt,
                        error,
                    )
                    raise

    def _take_turn(self, rates: Pacer, number: str, recipient: str, deadline: float) -> None:
        """Wait until rate control lets one message go from ``number`` to ``recipient``."""
        while True:
            wait = rates.try_acquire(number, recipient)
            if wait <= 0:
                return
            if self._clock() + wait > deadline:
                raise RateLimitError(
                    f"not sent: delivery rate control would hold this message {wait:.1f}s more, "
                    "past the retry time limit",
                    code=THROUGHPUT_CODE if rates.paused_for(number, "") > 0 else None,
                )
            if self._wait(wait):
                raise GraphAPIError("not sent: waiting for its turn was stopped (shutting down)")

    def _wait(self, seconds: float) -> bool:
        """Wait ``seconds``; ``True`` if the wait was stopped (see :func:`stop_waiting_on`).

        A job worker's long wait is not slept: it raises
        :class:`~cel_whatsapp.core.deferral.SendDeferredError` (see that module).
        """
        check_wait(seconds)
        event = _stop_event.get()
        if event is None:
            self._sleep(seconds)
            return False
        return event.wait(seconds)

    def _delay(
        self,
        verdict: Verdict,
        attempt: int,
        error: GraphAPIError,
        rates: Pacer | None = None,
        number: str | None = None,
        recipient: str | None = None,
    ) -> float:
        retry_after = (
            error.retry_after if error.retry_after is not None and error.retry_after >= 0 else None
        )
        if rates is not None and number is not None and recipient is not None:
            # Every sender sharing the control pauses, not only this thread.
            if error.code == THROUGHPUT_CODE:
                pause = (
                    retry_after
                    if retry_after is not None
                    else rates.control.pause_after_throughput_error
                )
                rates.pause_number(number, pause)
                return pause
            if error.code == PAIR_RATE_CODE:
                return rates.pause_pair(number, recipient, retry_after)
        if error.retry_after is not None and error.retry_after >= 0:
            return error.retry_after
        if verdict is Verdict.RECIPIENT:
            return self.policy.pair_rate_delay
        return self.policy.backoff(attempt, self._random())


def _short(error: GraphAPIError) -> str:
    if error.code is not None:
        return f"code {error.code}"
    if error.http_status is not None:
        return f"HTTP {error.http_status}"
    if isinstance(error, GraphTransportError):
        # Names the URL and the failure ("could not reach ... (ConnectionError)"), no header.
        return error.message
    return type(error).__name__
