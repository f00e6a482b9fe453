"""Answer WhatsApp messages on Celery workers: durable, ordered per lead, on many machines.

``WhatsappConnector(dispatch=CeleryDispatcher(celery_app), store=RedisStore...)``:
the webhook checks the signature, parses, deduplicates, and publishes one job
per new message to Celery's broker; it answers 200 only once every job of
the POST is published, and 503 when the broker cannot be reached (the
messages' dedup claims are then released, so Meta's next delivery is
answered). Workers started with ``celery -A yourmodule worker`` import the
module that builds the connector, find it by its ``name`` and answer with
its assistant, stream mode, limits and Graph API client.

What a job guarantees (see :mod:`cel_whatsapp.core.turns` for the Redis side):

- it carries plain JSON (:mod:`cel_whatsapp.core.jobs`): the message as Meta
  sent it and the connector's name, never a token;
- it is acknowledged late and rejected when its worker process dies
  (``acks_late``, ``reject_on_worker_lost``), so a message whose answer was
  cut by a SIGKILL is answered again by another worker, from the start;
- an answer that went to its end is marked done in the store before the job
  is acknowledged, so a copy of the job delivered again sends nothing;
- messages of one lead are answered one at a time in timestamp order, on
  every worker and machine; a job whose turn has not come retries after a
  short countdown instead of holding a worker slot;
- a send the Graph API holds back longer than ``defer_waits_over`` seconds
  (130429 with ``Retry-After``, 131056) is not slept in the worker: the rest
  of the answer, as the assistant produced it, is sent by a retry of the job
  with that countdown (:mod:`cel_whatsapp.core.deferral`).

The ``celery`` package is an optional dependency:
``pip install "cel_whatsapp[celery]"``.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from . import config
from .core import answering
from .core.dedup import RedisStore, StoreError, message_key, safe_key
from .core.deferral import Deferral, deferring
from .core.dispatch import Dispatcher, Handler, lead_key
from .core.jobs import job_payload, message_from_job
from .core.retry import RetryPolicy
from .core.turns import LeadTurns, Turn, new_token
from .errors import ConfigurationError, GraphAPIError, PayloadError
from .model import Message

if TYPE_CHECKING:
    from .core.engine import WhatsappCore

__all__ = ["TASK_NAME", "CeleryDispatcher"]

logger = logging.getLogger(__name__)

#: The name of the Celery task that answers one message.
TASK_NAME = "cel_whatsapp.answer"

#: How a publish is retried when the broker does not answer: once, at once.
#: The webhook must answer (503) well inside Meta's timeout, and Meta
#: delivers again anyway.
PUBLISH_RETRY_POLICY: Mapping[str, float] = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}
#: Countdown (seconds) of a job that could not reach Redis.
STORE_RETRY_COUNTDOWN = 2.0
#: Countdown of a job this worker cannot answer yet (no such connector, no settings).
CONFIG_RETRY_COUNTDOWN = 30.0


class CeleryDispatcher(Dispatcher):
    """Publishes each accepted message as a Celery job; workers answer them.

    ``celery_app``: your :class:`celery.Celery` application (its broker takes
    the jobs). ``queue``: the queue to publish to (default: the app's
    default queue). The connector's ``store`` must be a
    :class:`~cel_whatsapp.core.dedup.RedisStore`: the workers keep each lead's
    order and the done marks there. ``lease_ttl``: seconds a killed worker's
    hold on its lead lasts. ``order_timeout``: seconds after which a queued
    message whose job never started stops blocking its lead.
    ``defer_waits_over``: longer Graph API waits are deferred (see above).

    One dispatcher serves one connector: the connector gives it its name and
    core (:meth:`bind`).
    """

    mode = "celery"

    def __init__(
        self,
        celery_app: Any,
        *,
        queue: str | None = None,
        lease_ttl: float = config.DEFAULT_LEASE_TTL,
        order_timeout: float = config.DEFAULT_ORDER_TIMEOUT,
        defer_waits_over: float = config.DEFAULT_DEFER_WAITS_OVER,
    ) -> None:
        try:
            import celery  # noqa: F401 - checked now, used by the task
        except ImportError as exc:
            raise ImportError(
                'CeleryDispatcher needs the celery package: pip install "cel_whatsapp[celery]"'
            ) from exc
        if lease_ttl <= 0 or order_timeout <= 0 or defer_waits_over < 0:
            raise ValueError("lease_ttl and order_timeout must be positive, defer_waits_over >= 0")
        self.celery_app = celery_app
        self.queue = queue
        self.lease_ttl = lease_ttl
        self.order_timeout = order_timeout
        self.defer_waits_over = defer_waits_over
        self.name: str | None = None
        self._core: Callable[[], WhatsappCore] | None = None
        self._turns: LeadTurns | None = None
        self._jobs = _jobs_of(celery_app)

    def __repr__(self) -> str:
        return f"CeleryDispatcher(name={self.name!r}, queue={self.queue!r})"

    @property
    def max_countdown(self) -> float:
        """No retry waits longer: half the broker's ``visibility_timeout``.

        The Redis broker delivers a job again once it has been unacknowledged
        that long, and a job waiting for its countdown is unacknowledged too.
        Read from the Celery app's configuration when needed, so it may be
        configured after the dispatcher is built.
        """
        options = self.celery_app.conf.broker_transport_options or {}
        visibility = float(options.get("visibility_timeout", config.REDIS_VISIBILITY_TIMEOUT))
        return max(1.0, visibility / 2)

    @property
    def task(self) -> Any:
        """The Celery task that answers one message (``cel_whatsapp.answer``)."""
        return self._jobs.task

    # -- set-up ------------------------------------------------------------------------

    def start(self, handle: Handler | None = None, *, store: object | None = None) -> None:
        super().start(handle)
        if not isinstance(store, RedisStore):
            raise ConfigurationError(
                "CeleryDispatcher needs the connector's store to be a RedisStore "
                "(store=RedisStore.from_url(...)): the workers keep each lead's order, and "
                "mark answered messages done, in the Redis the webhook deduplicates with"
            )
        self._turns = LeadTurns(store, lease_ttl=self.lease_ttl, order_timeout=self.order_timeout)

    def bind(self, name: str, core: Callable[[], Any]) -> None:
        if self.name is not None and self.name != name:
            raise ConfigurationError(
                f"this CeleryDispatcher already serves the connector {self.name!r}: give each "
                "connector its own"
            )
        self.name = name
        self._core = core
        self._jobs.add(name, self)

    def _turns_or_fail(self) -> LeadTurns:
        if self._turns is None:
            raise ConfigurationError("CeleryDispatcher.start(store=RedisStore(...)) was not called")
        return self._turns

    # -- the webhook side: publishing -------------------------------------------------------

    def submit(self, messages: Sequence[Message], handle: Handler | None = None) -> list[Message]:
        """Queue each message in its lead's order, then publish its job; return those not published.

        Publishing stops at the first failure: the webhook then answers 503 and
        releases the claims of the messages returned.
        """
        if not messages:
            return []
        if self.name is None:
            raise ConfigurationError(
                "CeleryDispatcher has no connector: pass it as WhatsappConnector(dispatch=...)"
            )
        turns = self._turns_or_fail()
        ordered = sorted(messages, key=lambda message: message.date)
        payloads = [job_payload(self.name, message) for message in ordered]
        leads = [lead_key(message) for message in ordered]
        try:
            members = turns.enqueue(
                [
                    (lead, message_key(message.lead.phone_number_id, message.id), _stamp(message))
                    for lead, message in zip(leads, ordered, strict=True)
                ]
            )
        except StoreError as exc:
            logger.error("could not queue %d message(s): %s", len(ordered), exc)
            return list(ordered)
        task = self._jobs.task
        for index, (payload, member) in enumerate(zip(payloads, members, strict=True)):
            try:
                task.apply_async(
                    kwargs={"payload": payload, "member": member},
                    queue=self.queue,
                    serializer="json",
                    retry=True,
                    retry_policy=dict(PUBLISH_RETRY_POLICY),
                    # What Celery shows of the job (worker logs, Flower, events): the
                    # message id, never its text or the user's number. Also spares a
                    # costly repr of the payload on every publish.
                    argsrepr="()",
                    kwargsrepr=f"{{'message': {safe_key(ordered[index].id)!r}}}",
                )
            except Exception as exc:  # kombu's OperationalError and whatever the transport raises
                left = ordered[index:]
                logger.error(
                    "could not publish %d job(s) to Celery's broker (%s): the webhook answers "
                    "503 so Meta delivers them again",
                    len(left),
                    type(exc).__name__,
                )
                try:
                    turns.drop(list(zip(leads[index:], members[index:], strict=True)))
                except StoreError as drop_error:
                    logger.warning(
                        "could not take unpublished messages off their leads' queues (%s): "
                        "each lead waits for them until order_timeout",
                        drop_error,
                    )
                return left
        return []

    # -- the worker side: answering ---------------------------------------------------------

    def run_job(
        self,
        task: Any,
        payload: Mapping[str, Any],
        *,
        member: str | None,
        handoff: str | None,
        rest: list[Any] | None,
        deferrals: int,
    ) -> str:
        """Answer one job in a worker; what the task runs. Returns what happened.

        ``"answered"``, ``"done"`` (answered before: nothing sent) or
        ``"malformed"``; raises Celery's ``Retry`` to wait for the lead's turn
        or for the Graph API, and ``Reject(requeue=True)`` when even that retry
        cannot be published.
        """
        job = _Job(task, dict(payload), member, handoff, rest, deferrals, self.max_countdown)
        try:
            _name, message = message_from_job(payload)
        except PayloadError as exc:
            logger.error("job %s dropped: its payload is not a message (%s)", task.request.id, exc)
            return "malformed"
        # Every log line of this job names the message (answering.MessageLogFilter).
        with answering.about(message.id, message.lead.phone_number_id):
            core = self._ready_core(message, job)
            turns = self._turns_or_fail()
            key = message_key(message.lead.phone_number_id, message.id)
            lead = lead_key(message)
            token = new_token()
            try:
                if member is None:
                    member = turns.enqueue([(lead, key, _stamp(message))])[0]
                turn = turns.take(lead, member, key, _stamp(message), token, handoff)
            except StoreError as exc:
                logger.warning("job for message %s waits for Redis: %s", safe_key(message.id), exc)
                job.retry(STORE_RETRY_COUNTDOWN)
            if turn.done:
                logger.info(
                    "message %s was answered already: this copy sends nothing", safe_key(message.id)
                )
                return "done"
            if not turn.granted:
                job.retry(_poll_countdown(turn), member=turn.member)
            with turns.holding(lead, token):
                try:
                    deferral = self._answer(core, message, rest, deferrals)
                except Exception:
                    # Not the assistant (the responder catches its errors): a bug of
                    # ours. Running the job again could loop for ever; log and move on.
                    logger.exception("answering message %s failed", safe_key(message.id))
                    deferral = None
                if deferral is not None and deferral.holding:
                    self._defer(turns, lead, token, message, deferral, job, turn.member)
            _mark_done(turns, lead, turn.member, token, key, message)
            return "answered"

    def _ready_core(self, message: Message, job: _Job) -> WhatsappCore:
        """This worker's core for the connector, checked to answer ``message``'s number."""
        if self._core is None:
            raise ConfigurationError("CeleryDispatcher has no connector (bind was not called)")
        try:
            core: WhatsappCore = self._core()
            settings = core.settings.require(config.TOKEN_KEY, config.PHONE_NUMBER_ID_KEY)
            number = message.lead.phone_number_id
            if number and number not in settings.phone_number_ids:
                raise ConfigurationError(
                    f"the business number {number} is not one of this worker's "
                    f"({', '.join(settings.phone_number_ids)}): give the worker the same "
                    "WHATSAPP_PHONE_NUMBER_ID as the web app"
                )
        except ConfigurationError as exc:
            logger.error(
                "this worker cannot answer message %s (retried in %.0fs): %s",
                safe_key(message.id),
                CONFIG_RETRY_COUNTDOWN,
                exc,
            )
            job.retry(CONFIG_RETRY_COUNTDOWN)
        return core

    def _answer(
        self, core: WhatsappCore, message: Message, rest: list[Any] | None, deferrals: int
    ) -> Deferral | None:
        """Answer (or send the rest of an answer); the deferral holds what must wait."""
        policy = core.behaviour.retry or RetryPolicy()
        if deferrals + 1 >= policy.attempts:
            # Deferred as often as a send may be tried: wait in the worker, or give up,
            # as the connector's retry policy says.
            self._send(core, message, rest)
            return None
        with deferring(self.defer_waits_over) as deferral:
            self._send(core, message, rest)
        return deferral

    def _send(self, core: WhatsappCore, message: Message, rest: list[Any] | None) -> None:
        if rest is None:
            core.handle(message)  # never raises: the responder logs and reports failures
            return
        for index, item in enumerate(rest):
            number, payload = item
            try:
                core.outbox(str(number)).post(payload)
            except GraphAPIError as exc:
                logger.error(
                    "sending the rest of the answer to message %s failed after %d sent: %s",
                    safe_key(message.id),
                    index,
                    exc,
                )
                _report(core, message, exc)
                return

    def _defer(
        self,
        turns: LeadTurns,
        lead: str,
        token: str,
        message: Message,
        deferral: Deferral,
        job: _Job,
        member: str,
    ) -> NoReturn:
        countdown = min(max(deferral.wait, 0.0), self.max_countdown)
        successor = new_token()
        try:
            turns.hand_off(lead, token, successor, countdown)
        except StoreError as exc:
            logger.warning("could not hand the lead's turn to the retry: %s", exc)
        logger.info(
            "message %s: the Graph API asked for a wait of %.1fs; the %d send(s) left go in a "
            "retry of the job",
            safe_key(message.id),
            deferral.wait,
            len(deferral.kept),
        )
        job.retry(
            countdown,
            member=member,
            handoff=successor,
            rest=[[number, payload] for number, payload in deferral.kept],
            deferrals=job.deferrals + 1,
        )


class _Job:
    """One run of the task: its arguments, and how to retry it with some of them changed."""

    def __init__(
        self,
        task: Any,
        payload: dict[str, Any],
        member: str | None,
        handoff: str | None,
        rest: list[Any] | None,
        deferrals: int,
        max_countdown: float,
    ) -> None:
        self.task = task
        self.kwargs: dict[str, Any] = {
            "payload": payload,
            "member": member,
            "handoff": handoff,
            "rest": rest,
            "deferrals": deferrals,
        }
        self.deferrals = deferrals
        self.max_countdown = max_countdown

    def retry(self, countdown: float, **changes: Any) -> NoReturn:
        """Run the job again in ``countdown`` seconds (Celery's ``Retry`` is raised)."""
        from celery.exceptions import Reject

        kwargs = {**self.kwargs, **changes}
        try:
            self.task.retry(
                kwargs=kwargs, countdown=min(countdown, self.max_countdown), max_retries=None
            )
        except Reject as exc:
            # The retry could not be published (the broker is unreachable), and
            # Celery would drop the job: put it back instead.
            raise Reject(exc.reason, requeue=True) from None
        raise AssertionError("Task.retry returned")  # pragma: no cover - it always raises


def _poll_countdown(turn: Turn) -> float:
    return min(config.JOB_POLL_MAX, config.JOB_POLL_STEP * (1 + turn.ahead))


def _stamp(message: Message) -> float:
    return message.date.timestamp()


def _report(core: WhatsappCore, message: Message, error: GraphAPIError) -> None:
    handler = core.behaviour.send_error_handler()
    if handler is None:
        return
    try:
        handler(message, error)
    except Exception:
        logger.exception("the on_send_error handler raised on message %s", safe_key(message.id))


def _mark_done(
    turns: LeadTurns, lead: str, member: str, token: str, key: str, message: Message
) -> None:
    """Mark the answered message done; a few tries, as Redis may blink.

    Never raises: the answer is out, and running the job again would send it
    twice. If Redis stays unreachable the job is acknowledged all the same
    (the broker will not deliver it again); the lead's queue then waits for
    ``order_timeout``.
    """
    delay = 0.1
    for attempt in range(5):
        try:
            turns.finish(lead, member, token, key, done=True)
            return
        except StoreError as exc:
            if attempt == 4:
                logger.error(
                    "message %s was answered but could not be marked done (%s): a copy "
                    "delivered again would be answered again",
                    safe_key(message.id),
                    exc,
                )
                return
            threading.Event().wait(delay)
            delay *= 2


class _Jobs:
    """The answering task of one Celery app, and the connectors it answers for, by name."""

    def __init__(self, celery_app: Any) -> None:
        self.lock = threading.Lock()
        self.dispatchers: dict[str, CeleryDispatcher] = {}

        def answer(
            task: Any,
            payload: Mapping[str, Any],
            member: str | None = None,
            handoff: str | None = None,
            rest: list[Any] | None = None,
            deferrals: int = 0,
        ) -> str:
            return self.run(
                task, payload, member=member, handoff=handoff, rest=rest, deferrals=deferrals
            )

        # shared=False: a shared task would be copied into every Celery app
        # created later, with this app's connectors.
        self.task = celery_app.task(
            name=TASK_NAME,
            bind=True,
            shared=False,
            acks_late=True,
            reject_on_worker_lost=True,
            serializer="json",
            max_retries=None,
        )(answer)

    def add(self, name: str, dispatcher: CeleryDispatcher) -> None:
        with self.lock:
            self.dispatchers[name] = dispatcher

    def run(
        self,
        task: Any,
        payload: Mapping[str, Any],
        *,
        member: str | None,
        handoff: str | None,
        rest: list[Any] | None,
        deferrals: int,
    ) -> str:
        name = payload.get("name") if isinstance(payload, Mapping) else None
        dispatcher = self.dispatchers.get(name) if isinstance(name, str) else None
        if dispatcher is None:
            logger.error(
                "job %s names the connector %r, which this worker does not have (retried in "
                "%.0fs): does the module given to `celery -A` build it, with that name=?",
                task.request.id,
                safe_key(name) if isinstance(name, str) else name,
                CONFIG_RETRY_COUNTDOWN,
            )
            _Job(
                task, dict(payload), member, handoff, rest, deferrals, CONFIG_RETRY_COUNTDOWN
            ).retry(CONFIG_RETRY_COUNTDOWN)
        return dispatcher.run_job(
            task, payload, member=member, handoff=handoff, rest=rest, deferrals=deferrals
        )


_apps: weakref.WeakKeyDictionary[Any, _Jobs] = weakref.WeakKeyDictionary()
_apps_lock = threading.Lock()


def _jobs_of(celery_app: Any) -> _Jobs:
    """The answering task of ``celery_app``, registered on first use."""
    with _apps_lock:
        jobs = _apps.get(celery_app)
        if jobs is None:
            jobs = _apps[celery_app] = _Jobs(celery_app)
        return jobs
