"""``WhatsappCore``: everything one configuration needs to answer WhatsApp, no web framework.

A :class:`WhatsappCore` joins one :class:`~cel_whatsapp.core.settings.Settings`
(token, number, verify token, app secret, Graph API address) to one
:class:`Behaviour` (the assistant, callbacks, stream mode, store,
dispatcher...). It answers the webhook's GET and POST as plain values
(:class:`~cel_whatsapp.core.webhook.HttpResult`), answers one message, and
sends outside a webhook. The Flask extension keeps one per app in
``app.extensions``; a job worker or a script builds one from explicit
settings or the environment.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import requests

from .. import config
from ..model import Lead, MediaAttachment, Message
from . import answering, tracing
from .dedup import Store
from .dispatch import BackgroundDispatcher, Dispatcher, InlineDispatcher
from .graph import GraphClient, Timeout
from .metrics import Metrics
from .outbox import MediaSource, Outbox
from .rates import Pacer
from .responder import Assistant, Responder, SendErrorHandler
from .retry import NO_RETRY, Retrier, RetryPolicy
from .routing import UpdateRouter
from .settings import Settings
from .streaming import StreamMode
from .webhook import HttpResult, VerificationHandler, WebhookHandler

if TYPE_CHECKING:
    from ..replies import Reply
    from .media import MediaFile


def _none() -> None:
    return None


#: The core answering a message in this thread or task, while it does.
_answering: ContextVar[WhatsappCore | None] = ContextVar("cel_whatsapp_answering", default=None)


def answering_core() -> WhatsappCore | None:
    """The core whose :meth:`WhatsappCore.handle` is running here (``None`` outside one).

    Code the assistant calls (``connector.send``, ``download_media``) uses it
    to send with the settings of the configuration answering, on a pool
    thread with no app context as inside a request.
    """
    return _answering.get()


@dataclass(frozen=True, slots=True, kw_only=True)
class Behaviour:
    """How messages are answered: the same for every configuration a connector serves.

    Handlers are read through callables so that decorators applied after
    registration (``@connector.assistant``) still take effect.
    """

    assistant: Callable[[], Assistant | None]
    router: UpdateRouter = field(default_factory=UpdateRouter)
    verification_handler: Callable[[], VerificationHandler | None] = _none
    send_error_handler: Callable[[], SendErrorHandler | None] = _none
    stream_mode: StreamMode = StreamMode.SENTENCE
    read_receipts: bool = True
    limits: str = config.DEFAULT_POLICY
    fallback_text: str | None = None
    max_messages_per_answer: int = config.DEFAULT_MAX_MESSAGES_PER_ANSWER
    store: Store | None = None
    dispatcher: Dispatcher = field(default_factory=InlineDispatcher)
    retry: RetryPolicy | None = None
    timeout: Timeout = config.DEFAULT_TIMEOUT
    session: requests.Session | None = None
    max_items: int | None = config.DEFAULT_MAX_ITEMS_PER_POST
    #: Delivery rate control shared by every sender of this behaviour (``None``: off).
    rates: Pacer | None = None
    #: Prometheus series to record into (``None``: off, and nothing is recorded).
    metrics: Metrics | None = None


class WhatsappCore:
    """Webhook handling, answering and sending for one :class:`Settings`.

    Parts are built on first use: a core made only to send needs no verify
    token, and one that only verifies needs no Graph client.
    """

    def __init__(
        self, settings: Settings, behaviour: Behaviour, *, owner: object | None = None
    ) -> None:
        self.settings = settings
        self.behaviour = behaviour
        #: What built this core (the Flask connector), so it can find it again.
        self.owner = owner
        # Re-entrant: building the responder builds the Graph client too.
        self._lock = threading.RLock()
        self._graph: GraphClient | None = None
        #: Clients of numbers with their own token (``Settings.tokens``), by token.
        self._graphs: dict[str, GraphClient] = {}
        self._outboxes: dict[str, Outbox] = {}
        self._responder: Responder | None = None
        self._webhook: WebhookHandler | None = None

    def __repr__(self) -> str:
        return f"WhatsappCore({self.settings!r})"

    # -- parts -----------------------------------------------------------------------

    @property
    def graph(self) -> GraphClient:
        """The Graph API client, with this configuration's token (built once)."""
        with self._lock:
            if self._graph is None:
                self._graph = self._new_graph(self.settings.value(config.TOKEN_KEY))
            return self._graph

    def graph_for(self, phone_number_id: str) -> GraphClient:
        """The Graph API client with the token of ``phone_number_id`` (built once per token)."""
        token = self.settings.tokens.get(phone_number_id)
        if token is None:
            return self.graph
        with self._lock:
            client = self._graphs.get(token)
            if client is None:
                client = self._graphs[token] = self._new_graph(token)
            return client

    def _new_graph(self, token: str) -> GraphClient:
        behaviour = self.behaviour
        retry: RetryPolicy | Retrier | None = behaviour.retry
        if behaviour.rates is not None:
            retry = Retrier(behaviour.retry or NO_RETRY, rates=behaviour.rates)
        return GraphClient(
            token,
            self.settings.base_url,
            timeout=behaviour.timeout,
            session=behaviour.session,
            retry=retry,
            metrics=behaviour.metrics,
        )

    def outbox(self, phone_number_id: str | None = None) -> Outbox:
        """Sending from ``phone_number_id`` (one of the settings' numbers), else the default.

        Raises :class:`ValueError` for a number this configuration does not have.
        """
        number = self.settings.sender(phone_number_id)
        with self._lock:
            outbox = self._outboxes.get(number)
            if outbox is None:
                outbox = Outbox(self.graph_for(number), number, limits=self.behaviour.limits)
                self._outboxes[number] = outbox
            return outbox

    @property
    def responder(self) -> Responder:
        """Answers one message: the assistant, its stream, the sends (built once)."""
        # Read once built without the lock: it is set once and never replaced
        # (close() drops it, and a later use builds a new one under the lock).
        responder = self._responder
        if responder is not None:
            return responder
        with self._lock:
            if self._responder is None:
                behaviour = self.behaviour
                self._responder = Responder(
                    graph=self.graph,
                    phone_number_id=self.settings.value(config.PHONE_NUMBER_ID_KEY),
                    outbox_for=self.outbox,
                    assistant=behaviour.assistant,
                    stream_mode=behaviour.stream_mode,
                    read_receipts=behaviour.read_receipts,
                    limits=behaviour.limits,
                    fallback_text=behaviour.fallback_text,
                    on_send_error=behaviour.send_error_handler,
                    max_messages_per_answer=behaviour.max_messages_per_answer,
                    metrics=behaviour.metrics,
                )
            return self._responder

    @property
    def webhook(self) -> WebhookHandler:
        """The webhook protocol (GET verification, POST delivery) for this configuration."""
        webhook = self._webhook
        if webhook is not None:  # read on every webhook: no lock once built
            return webhook
        with self._lock:
            if self._webhook is None:
                settings = self.settings.require(config.TOKEN_KEY)
                behaviour = self.behaviour
                self._webhook = WebhookHandler(
                    verify_token=settings.value(config.VERIFY_TOKEN_KEY),
                    phone_number_id=settings.require(config.PHONE_NUMBER_ID_KEY).phone_number_ids,
                    app_secret=settings.app_secret or None,
                    on_updates=lambda parsed: behaviour.router.route(parsed, self.dispatch),
                    verification_handler=behaviour.verification_handler,
                    store=behaviour.store,
                    max_items=behaviour.max_items,
                    metrics=behaviour.metrics,
                )
            return self._webhook

    # -- the webhook -------------------------------------------------------------------

    def verify(self, params: Mapping[str, str]) -> HttpResult:
        """Answer Meta's subscription GET."""
        return self.webhook.verify(params)

    def receive(self, body: bytes, signature: str | None) -> HttpResult:
        """Check, parse, deduplicate and dispatch one webhook POST."""
        return self.webhook.receive(body, signature)

    def dispatch(self, messages: Sequence[Message]) -> list[Message]:
        """Hand accepted messages to the dispatcher; return those it refused.

        Each message is answered in the OpenTelemetry context of the webhook
        (taken to the pool's threads), timed from now for the first-reply
        metric, and counted in ``whatsapp_dispatch_pending`` until answered.
        """
        dispatcher = self.behaviour.dispatcher
        received_at = time.monotonic()
        trace_context = tracing.current_context()
        # Only dispatchers that answer in this process say when an answer ends.
        metrics = (
            self.behaviour.metrics
            if isinstance(dispatcher, (InlineDispatcher, BackgroundDispatcher))
            else None
        )

        def handle(message: Message) -> list[str]:
            try:
                if trace_context is None:
                    return self._answer(message, received_at)
                with tracing.carried(trace_context):
                    return self._answer(message, received_at)
            finally:
                if metrics is not None:
                    metrics.pending_changed(-1)

        if metrics is not None:
            metrics.pending_changed(len(messages))
        refused = dispatcher.submit(messages, handle)
        if metrics is not None and refused:
            metrics.pending_changed(-len(refused))
        return refused

    def handle(self, message: Message) -> list[str]:
        """Answer ``message`` now; return the wamids sent."""
        return self._answer(message, time.monotonic())

    def _answer(self, message: Message, received_at: float) -> list[str]:
        token = _answering.set(self)
        try:
            about = answering.begin(message.id, message.lead.phone_number_id, received_at)
            try:
                return self.responder.handle(message)
            finally:
                answering.end(about)
        finally:
            _answering.reset(token)

    # -- sending outside a webhook ---------------------------------------------------------

    def send(
        self, to: str | Lead, reply_or_text: Reply | str, *, phone_number_id: str | None = None
    ) -> list[str]:
        """Send a message from ``phone_number_id`` (default: the first number); return the wamids.

        A :class:`Lead` is answered from the number it wrote to, unless
        ``phone_number_id`` says otherwise.
        """
        if phone_number_id is None and isinstance(to, Lead) and to.phone_number_id:
            phone_number_id = to.phone_number_id
        return self.outbox(phone_number_id).send(to, reply_or_text)

    def mark_read(
        self, message_id: str, typing: bool = False, *, phone_number_id: str | None = None
    ) -> None:
        """Mark a received message read; ``typing=True`` also shows the typing indicator."""
        self.outbox(phone_number_id).mark_read(message_id, typing=typing)

    def upload_media(
        self,
        file_or_bytes: MediaSource,
        mime_type: str,
        filename: str | None = None,
        *,
        phone_number_id: str | None = None,
    ) -> str:
        """Upload a file for sending from ``phone_number_id``; return its media id."""
        return self.outbox(phone_number_id).upload_media(file_or_bytes, mime_type, filename)

    def download_media(
        self,
        media_id: str | MediaAttachment,
        *,
        max_bytes: int = config.DEFAULT_MEDIA_MAX_BYTES,
        sha256: str | None = None,
        phone_number_id: str | None = None,
    ) -> MediaFile:
        """Download a media file a user sent to ``phone_number_id``.

        The number's token is used (it matters when numbers have tokens of
        their own); by default, inside an answer, the number that received
        the message being answered, else the first number.
        """
        from .media import download_media

        if phone_number_id is None and _answering.get() is self:
            state = answering.current()
            phone_number_id = state.phone_number_id if state is not None else None
        # Only a token is needed: without a number, the default token.
        graph = (
            self.graph
            if phone_number_id is None
            else self.graph_for(self.settings.sender(phone_number_id))
        )
        return download_media(graph, media_id, max_bytes=max_bytes, sha256=sha256)

    def close(self) -> None:
        """Close the Graph client's connections (a user's own session is left open)."""
        with self._lock:
            graphs = [self._graph, *self._graphs.values()]
            self._graph, self._graphs, self._outboxes = None, {}, {}
            self._responder = None
        if self.behaviour.session is None:
            for graph in graphs:
                if graph is not None:
                    graph.close()
