"""``WhatsappConnector``: configuration, the blueprint, and the parts wired together."""

from __future__ import annotations

import logging
import sys
import threading
from typing import TYPE_CHECKING, Any

import requests
from flask import Blueprint, Flask
from flask.sansio.blueprints import BlueprintSetupState

from .. import config
from ..core.dedup import InMemoryStore, Store
from ..core.dispatch import Dispatcher, make_dispatcher
from ..core.graph import GraphClient, Timeout
from ..core.outbox import MediaSource, Outbox
from ..core.responder import Assistant, Responder, SendErrorHandler
from ..core.retry import RetryPolicy
from ..core.routing import (
    AssistantTypes,
    ErrorCallback,
    MessageCallback,
    StatusCallback,
    UpdateCallback,
    UpdateRouter,
)
from ..core.streaming import StreamMode
from ..core.webhook import VerificationHandler, WebhookHandler
from ..errors import ConfigurationError
from ..model import Lead, MediaAttachment, Message
from .blueprint import EXTENSION_KEY, build_blueprint, normalise_prefix
from .cli import add_commands

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..core.media import MediaFile
    from ..replies import Reply

logger = logging.getLogger(__name__)

#: ``app.extensions[CONNECTORS_KEY]`` maps blueprint names to their connectors.
CONNECTORS_KEY = "cel_whatsapp.connectors"


class WhatsappConnector:
    """Puts an assistant on WhatsApp through the Cloud API.

    The first three arguments may be left out and supplied by ``app.config``
    (``WHATSAPP_TOKEN``, ``WHATSAPP_PHONE_NUMBER_ID``, ``WHATSAPP_VERIFY_TOKEN``,
    ``WHATSAPP_APP_SECRET``) or by environment variables of the same names when
    the blueprint is registered.

    >>> connector = WhatsappConnector("EAAG...", "1234567890", "my-verify-token")
    >>> @connector.assistant
    ... def echo(message):
    ...     return message.text
    >>> connector.init_app(app)  # doctest: +SKIP
    """

    def __init__(
        self,
        token: str | None = None,
        phone_number_id: str | None = None,
        verify_token: str | None = None,
        endpoint_prefix: str = config.DEFAULT_ENDPOINT_PREFIX,
        stream_mode: StreamMode | str = StreamMode.SENTENCE,
        *,
        assistant: Assistant | None = None,
        app_secret: str | None = None,
        api_version: str | None = None,
        base_url: str | None = None,
        read_receipts: bool = True,
        timeout: Timeout = config.DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
        max_body_bytes: int = config.DEFAULT_MAX_BODY_BYTES,
        max_items: int | None = config.DEFAULT_MAX_ITEMS_PER_POST,
        name: str = config.DEFAULT_BLUEPRINT_NAME,
        limits: str = config.DEFAULT_POLICY,
        store: Store | None = None,
        dispatch: str | Dispatcher = "background",
        fallback_text: str | None = None,
        retry_attempts: int = config.DEFAULT_RETRY_ATTEMPTS,
        retry_total_time: float = config.DEFAULT_RETRY_TOTAL_TIME,
        assistant_types: AssistantTypes = None,
        max_messages_per_answer: int = config.DEFAULT_MAX_MESSAGES_PER_ANSWER,
        app: Flask | None = None,
    ) -> None:
        self._token: str | None = None
        self._verify_token: str | None = None
        self._app_secret: str | None = None
        self.token = token
        self.phone_number_id = str(phone_number_id) if phone_number_id is not None else None
        self.verify_token = verify_token
        self.app_secret = app_secret
        self.endpoint_prefix = normalise_prefix(endpoint_prefix) or "/"
        self.stream_mode = StreamMode(stream_mode)
        self.read_receipts = read_receipts
        self.timeout = timeout
        self.max_body_bytes = max_body_bytes
        #: The most items (entries, changes, updates and the lists inside them)
        #: one POST may hold; a POST holding more is answered 413 unparsed.
        #: ``None``: no cap but ``max_body_bytes``.
        self.max_items = None if max_items is None else _at_least_one("max_items", max_items)
        self.name = name
        #: ``"fit"`` or ``"strict"``: what happens to replies over WhatsApp's limits.
        self.limits = config.check_policy(limits)
        self._graph_lock = threading.Lock()
        self._explicit_base_url = base_url.rstrip("/") if base_url else None
        self.api_version = api_version
        self.verification_handler: VerificationHandler | None = None
        self._assistant: Assistant | None = assistant
        self._session = session
        self._blueprint: Blueprint | None = None
        self._graph: GraphClient | None = None
        self._responder: Responder | None = None
        #: Remembers handled message ids (``InMemoryStore()`` unless given).
        self.store: Store = store if store is not None else InMemoryStore()
        #: Runs the assistant: in the request (``"inline"``) or on a pool (``"background"``).
        self.dispatcher: Dispatcher = make_dispatcher(dispatch)
        if fallback_text is not None and not (0 < len(fallback_text.strip()) <= config.TEXT_LIMIT):
            raise ConfigurationError(
                f"fallback_text must be a non-empty text of at most {config.TEXT_LIMIT} characters"
            )
        self.fallback_text = fallback_text
        self.retry = RetryPolicy(attempts=retry_attempts, total_time=retry_total_time)
        self.send_error_handler: SendErrorHandler | None = None
        #: The most messages one answer sends; the rest is dropped with a warning.
        self.max_messages_per_answer = _at_least_one(
            "max_messages_per_answer", max_messages_per_answer
        )
        self._router = UpdateRouter(assistant_types=assistant_types)
        if app is not None:
            self.init_app(app)

    # -- the Cel.ai connector's attributes ------------------------------------

    @property
    def base_url(self) -> str:
        """The Graph API root with its version, e.g. ``https://graph.facebook.com/v25.0``."""
        if self._explicit_base_url:
            return self._explicit_base_url
        return config.graph_base_url(self.api_version or config.DEFAULT_API_VERSION)

    @base_url.setter
    def base_url(self, value: str | None) -> None:
        self._explicit_base_url = value.rstrip("/") if value else None

    @property
    def url(self) -> str:
        """Where messages are sent: ``{base_url}/{phone_number_id}/messages``."""
        return f"{self.base_url}/{self.phone_number_id}/messages"

    @property
    def token(self) -> str | None:
        """The access token sent to the Graph API (never shown in reprs)."""
        return self._token

    @token.setter
    def token(self, value: str | None) -> None:
        self._token = _secret(config.TOKEN_KEY, value, header=True)

    @property
    def verify_token(self) -> str | None:
        """The token Meta echoes when it verifies the webhook (never shown in reprs)."""
        return self._verify_token

    @verify_token.setter
    def verify_token(self, value: str | None) -> None:
        self._verify_token = _secret(config.VERIFY_TOKEN_KEY, value)

    @property
    def app_secret(self) -> str | None:
        """The app secret used to check ``X-Hub-Signature-256`` (never shown in reprs)."""
        return self._app_secret

    @app_secret.setter
    def app_secret(self, value: str | None) -> None:
        # An explicit "" stays "": no signature check, and no look-up either.
        self._app_secret = (
            None if value is None else config.clean_secret(config.APP_SECRET_KEY, value)
        )

    def __repr__(self) -> str:
        return (
            f"WhatsappConnector(phone_number_id={self.phone_number_id!r}, "
            f"endpoint_prefix={self.endpoint_prefix!r}, stream_mode={self.stream_mode.value!r}, "
            f"base_url={self.base_url!r}, token=***, verify_token=***, app_secret=***)"
        )

    # -- registration ----------------------------------------------------------

    def assistant(self, fn: Assistant) -> Assistant:
        """Decorator: set the callable that answers messages."""
        self._assistant = fn
        return fn

    def on_verification(self, fn: VerificationHandler) -> VerificationHandler:
        """Decorator: run ``fn`` on every GET to the webhook.

        ``fn`` receives the echoed challenge when verification succeeded, and
        ``False`` when it was refused.
        """
        self.verification_handler = fn
        return fn

    def on_send_error(self, fn: SendErrorHandler) -> SendErrorHandler:
        """Decorator: run ``fn(message, error)`` when a reply cannot be sent.

        Called for permanent Graph API errors (131047 outside the 24-hour
        window, 131026 undeliverable, 190 expired token...), transient ones
        that outlived the retries, and read timeouts (``GraphTransportError``
        with ``request_sent=True``: the reply may or may not have arrived).
        Every such error is also logged.
        """
        self.send_error_handler = fn
        return fn

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every accepted message is answered; ``False`` on timeout.

        With ``dispatch="inline"`` there is never anything pending.
        """
        return self.dispatcher.drain(timeout)

    def on_reaction(self, fn: MessageCallback) -> MessageCallback:
        """Decorator: ``fn(message)`` for each reaction (``message.reaction``) a user sends."""
        self._router.on_reaction = fn
        return fn

    def on_system(self, fn: MessageCallback) -> MessageCallback:
        """Decorator: ``fn(message)`` for system notices (a user changed number or user id)."""
        self._router.on_system = fn
        return fn

    def on_status(self, fn: StatusCallback) -> StatusCallback:
        """Decorator: ``fn(status_event)`` when a message we sent is sent, delivered, read,
        played or failed."""
        self._router.on_status = fn
        return fn

    def on_error(self, fn: ErrorCallback) -> ErrorCallback:
        """Decorator: ``fn(webhook_error)`` for account or app errors (``value.errors``)."""
        self._router.on_error = fn
        return fn

    def on_update(self, fn: UpdateCallback) -> UpdateCallback:
        """Decorator: ``fn(update)`` for every parsed message (any type) and status, first."""
        self._router.on_update = fn
        return fn

    @property
    def blueprint(self) -> Blueprint:
        """The Flask blueprint with the webhook's GET and POST views."""
        if self._blueprint is None:
            blueprint = build_blueprint(
                self.name,
                self.endpoint_prefix,
                max_body_bytes=lambda: self.max_body_bytes,
            )
            blueprint.record_once(self._on_register)
            # `flask <name> send` and `send-template`, registered with the blueprint.
            add_commands(blueprint.cli, self)
            self._blueprint = blueprint
        return self._blueprint

    def init_app(self, app: Flask) -> None:
        """Register the blueprint on ``app`` (app-factory friendly).

        This also adds the ``flask whatsapp send`` and ``send-template``
        commands (the group is named after the blueprint).
        """
        app.register_blueprint(self.blueprint)

    def _on_register(self, state: BlueprintSetupState) -> None:
        app = state.app
        self._configure(app.config)
        handlers: dict[str, WebhookHandler] = app.extensions.setdefault(EXTENSION_KEY, {})
        handlers[state.name] = self._make_handler()
        # Lets tools (the testing kit, the simulator) find the app's connectors.
        app.extensions.setdefault(CONNECTORS_KEY, {})[state.name] = self

    def _configure(self, app_config: Mapping[str, Any] | None) -> None:
        """Fill missing values from ``app.config`` then the environment; fail if still missing."""
        self._fill_missing(app_config)
        missing = [
            key
            for key, value in (
                (config.TOKEN_KEY, self.token),
                (config.PHONE_NUMBER_ID_KEY, self.phone_number_id),
                (config.VERIFY_TOKEN_KEY, self.verify_token),
            )
            if not value
        ]
        if missing:
            lines = [f"  {key}: {config.WHERE_TO_FIND[key]}" for key in missing]
            raise ConfigurationError(
                "WhatsappConnector is missing required settings. Pass them to the "
                "constructor, or set them in app.config or the environment:\n" + "\n".join(lines)
            )
        if not self._app_secret:
            logger.warning(
                "no app secret configured (WHATSAPP_APP_SECRET): webhook POSTs to %s are "
                "NOT authenticated; anyone who finds the URL can post fake messages",
                self.endpoint_prefix,
            )

    def _make_handler(self) -> WebhookHandler:
        if not (self.token and self.phone_number_id and self.verify_token):
            raise ConfigurationError("token, phone_number_id and verify_token are required")
        self._responder = Responder(
            graph=self._graph_client(),
            phone_number_id=self.phone_number_id,
            assistant=lambda: self._assistant,
            stream_mode=self.stream_mode,
            read_receipts=self.read_receipts,
            limits=self.limits,
            fallback_text=self.fallback_text,
            on_send_error=lambda: self.send_error_handler,
            max_messages_per_answer=self.max_messages_per_answer,
        )
        self.dispatcher.start(self.handle, store=self.store)
        return WebhookHandler(
            verify_token=self.verify_token,
            phone_number_id=self.phone_number_id,
            app_secret=self._app_secret or None,
            on_updates=lambda parsed: self._router.route(parsed, self._dispatch),
            verification_handler=lambda: self.verification_handler,
            store=self.store,
            # No cap: one that no body can reach, so that items are never counted.
            max_items=sys.maxsize if self.max_items is None else self.max_items,
        )

    def _graph_client(self) -> GraphClient:
        """The Graph client for the current token and base URL, built once."""
        with self._graph_lock:
            if self._graph is None or self._graph.base_url != self.base_url:
                if not self.token:
                    raise ConfigurationError(
                        f"WhatsappConnector has no access token: set {config.TOKEN_KEY} "
                        f"({config.WHERE_TO_FIND[config.TOKEN_KEY]})"
                    )
                self._graph = GraphClient(
                    self.token,
                    self.base_url,
                    timeout=self.timeout,
                    session=self._session,
                    retry=self.retry,
                )
            return self._graph

    # -- sending outside a webhook ---------------------------------------------------

    def _fill_missing(self, app_config: Mapping[str, Any] | None) -> None:
        """Fill values the constructor did not get from ``app_config``, then the environment.

        Outside a registered app (a script, a worker) ``app_config`` is ``None``
        and only the environment is read.
        """
        # Each value is checked (see _secret) once, when it is set.
        if not self._token:
            self.token = config.lookup(config.TOKEN_KEY, app_config)
        if self.phone_number_id is None:
            self.phone_number_id = config.lookup(config.PHONE_NUMBER_ID_KEY, app_config)
        if not self._verify_token:
            self.verify_token = config.lookup(config.VERIFY_TOKEN_KEY, app_config)
        if self._app_secret is None:
            self.app_secret = config.lookup(config.APP_SECRET_KEY, app_config)
        if self.api_version is None:
            self.api_version = config.lookup(config.API_VERSION_KEY, app_config)
        if self._explicit_base_url is None:
            self.base_url = config.lookup(config.BASE_URL_KEY, app_config)

    def _outbox(self) -> Outbox:
        """An outbox for proactive sends; settings missing so far come from the environment."""
        self._fill_missing(None)
        if not self.phone_number_id:
            key = config.PHONE_NUMBER_ID_KEY
            raise ConfigurationError(
                f"WhatsappConnector has no phone number id: set {key} ({config.WHERE_TO_FIND[key]})"
            )
        return Outbox(self._graph_client(), self.phone_number_id, limits=self.limits)

    def send(self, to: str | Lead, reply_or_text: Reply | str) -> list[str]:
        """Send a message outside a webhook; return the wamids sent, in order.

        ``to`` is a phone number in E.164 with or without ``+``, a
        business-scoped user id (``"US.13491208655302741918"``), or a
        :class:`~cel_whatsapp.Lead`. ``reply_or_text`` is a ``str`` (split
        if over 4096 characters) or any reply object. Usually one wamid;
        several when a long text or a fitted reply needed more messages.

        Outside the user's 24-hour customer-service window only a
        :class:`~cel_whatsapp.Template` is delivered; anything else raises
        :class:`~cel_whatsapp.GraphAPIError` (Meta's code 131047).
        """
        return self._outbox().send(to, reply_or_text)

    def mark_read(self, message_id: str, typing: bool = False) -> None:
        """Mark a received message read; ``typing=True`` also shows the typing indicator."""
        self._outbox().mark_read(message_id, typing=typing)

    def upload_media(
        self, file_or_bytes: MediaSource, mime_type: str, filename: str | None = None
    ) -> str:
        """Upload a file (bytes, a path or a binary file object); return its media id.

        Use the id as ``media_id=`` of :class:`~cel_whatsapp.Image`,
        :class:`~cel_whatsapp.Document` and the other media replies.
        """
        return self._outbox().upload_media(file_or_bytes, mime_type, filename)

    def download_media(
        self,
        media_id: str | MediaAttachment,
        *,
        max_bytes: int = config.DEFAULT_MEDIA_MAX_BYTES,
        sha256: str | None = None,
    ) -> MediaFile:
        """Download a media file a user sent: pass ``attachment.media_id`` (or the attachment).

        Raises :class:`~cel_whatsapp.GraphAPIError` when Meta refuses, and
        :class:`~cel_whatsapp.MediaDownloadError` when the file is larger than
        ``max_bytes`` or fails its SHA-256 check. See :func:`cel_whatsapp.core.media.download_media`.
        """
        from ..core.media import download_media  # loaded by the apps that download media

        self._fill_missing(None)
        graph = self._graph_client()
        return download_media(graph, media_id, max_bytes=max_bytes, sha256=sha256)

    # -- work ------------------------------------------------------------------

    def _dispatch(self, messages: list[Message]) -> list[Message]:
        return self.dispatcher.submit(messages)

    def handle(self, message: Message) -> list[str]:
        """Answer ``message`` now, as the webhook would; return the sent wamids."""
        if self._responder is None:
            raise ConfigurationError("register the connector's blueprint before handling messages")
        return self._responder.handle(message)


def _at_least_one(name: str, value: int) -> int:
    """``value`` when it is a whole number of at least 1; a :class:`ConfigurationError` if not."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name} must be a whole number of at least 1, not {value!r}")
    return value


def _secret(key: str, value: str | None, *, header: bool = False) -> str | None:
    """``value`` checked by :func:`config.clean_secret`; ``None`` when missing or blank."""
    if value is None:
        return None
    return config.clean_secret(key, value, header=header) or None


def whatsapp_blueprint(
    token: str | None,
    phone_number_id: str | None,
    verify_token: str | None,
    prefix: str = config.DEFAULT_ENDPOINT_PREFIX,
    *,
    assistant: Assistant,
    stream_mode: StreamMode | str = StreamMode.SENTENCE,
    app_secret: str | None = None,
    **options: Any,
) -> Blueprint:
    """Build the webhook blueprint in one call: ``app.register_blueprint(whatsapp_blueprint(...))``.

    ``options`` are :class:`WhatsappConnector`'s keyword arguments.
    """
    connector = WhatsappConnector(
        token,
        phone_number_id,
        verify_token,
        prefix,
        stream_mode,
        assistant=assistant,
        app_secret=app_secret,
        **options,
    )
    return connector.blueprint
