"""``WhatsappConnector``: the Flask extension.

It holds what is the same for every app it serves (the assistant, the
callbacks, the options passed to the constructor) and keeps each app's own
state (resolved settings, Graph client, webhook handler: a
:class:`~cel_whatsapp.core.engine.WhatsappCore`) in ``app.extensions``, so
one module-level connector serves any number of apps, as the app-factory
pattern needs. All the work is done by :mod:`cel_whatsapp.core`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import requests
from flask import Blueprint, Flask, current_app, has_app_context
from flask.sansio.app import App
from flask.sansio.blueprints import BlueprintSetupState

from .. import config
from ..core.dedup import InMemoryStore, Store
from ..core.dispatch import Dispatcher, make_dispatcher
from ..core.engine import Behaviour, WhatsappCore, answering_core
from ..core.graph import Timeout
from ..core.metrics import Metrics, make_metrics
from ..core.outbox import MediaSource
from ..core.rates import Pacer, RateControl, make_pacer
from ..core.responder import Assistant, SendErrorHandler
from ..core.retry import RetryPolicy
from ..core.routing import (
    AssistantTypes,
    ErrorCallback,
    MessageCallback,
    StatusCallback,
    UpdateCallback,
    UpdateRouter,
)
from ..core.settings import Settings, clean, clean_tokens, phone_number_ids, resolve_settings
from ..core.streaming import StreamMode
from ..core.webhook import VerificationHandler
from ..errors import ConfigurationError
from ..model import Lead, MediaAttachment, Message
from .blueprint import EXTENSION_KEY, build_blueprint, normalise_prefix
from .cli import add_commands, for_command_line

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from ..core.media import MediaFile
    from ..replies import Reply

logger = logging.getLogger(__name__)

#: ``app.extensions[CONNECTORS_KEY]`` maps blueprint names to their connectors.
CONNECTORS_KEY = "cel_whatsapp.connectors"

#: The explicit settings a connector may be given, by constructor argument name.
_SETTING_KEYS = {
    "token": config.TOKEN_KEY,
    "phone_number_id": config.PHONE_NUMBER_ID_KEY,
    "verify_token": config.VERIFY_TOKEN_KEY,
    "app_secret": config.APP_SECRET_KEY,
    "api_version": config.API_VERSION_KEY,
    "base_url": config.BASE_URL_KEY,
}
_REQUIRED = (config.TOKEN_KEY, config.PHONE_NUMBER_ID_KEY, config.VERIFY_TOKEN_KEY)


class WhatsappConnector:
    """Puts an assistant on WhatsApp through the Cloud API.

    The first three arguments may be left out and supplied by ``app.config``
    (``WHATSAPP_TOKEN``, ``WHATSAPP_PHONE_NUMBER_ID``, ``WHATSAPP_VERIFY_TOKEN``,
    ``WHATSAPP_APP_SECRET``) or by environment variables of the same names:
    each app the connector is registered on resolves its own.

    >>> connector = WhatsappConnector("EAAG...", "1234567890", "my-verify-token")
    >>> @connector.assistant
    ... def echo(message):
    ...     return message.text
    >>> connector.init_app(app)  # doctest: +SKIP
    """

    def __init__(
        self,
        token: str | None = None,
        phone_number_id: str | Sequence[str] | None = None,
        verify_token: str | None = None,
        endpoint_prefix: str = config.DEFAULT_ENDPOINT_PREFIX,
        stream_mode: StreamMode | str = StreamMode.SENTENCE,
        *,
        assistant: Assistant | None = None,
        tokens: Mapping[str, str] | None = None,
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
        delivery_rate_control: bool | RateControl = True,
        metrics: bool | CollectorRegistry | Metrics = False,
        app: Flask | None = None,
    ) -> None:
        # Explicit settings, checked now (a bad secret fails here, not later);
        # None means "look it up in app.config, then the environment".
        self._explicit: dict[str, Any] = {}
        self._standalone: WhatsappCore | None = None
        self._standalone_lock = threading.Lock()
        self.token = token
        self.phone_number_id = phone_number_id
        # Checked now; which numbers they name is checked once the numbers are known.
        self._explicit["tokens"] = clean_tokens(tokens)
        self.verify_token = verify_token
        self.app_secret = app_secret
        self.api_version = api_version
        self.base_url = base_url
        self.endpoint_prefix = normalise_prefix(endpoint_prefix) or "/"
        self.stream_mode = StreamMode(stream_mode)
        self.read_receipts = read_receipts
        self.timeout = timeout
        self.max_body_bytes = _at_least_one("max_body_bytes", max_body_bytes)
        #: Webhook bodies holding more items (entries, changes, updates...) get 413;
        #: ``None``: no cap but ``max_body_bytes``.
        self.max_items = None if max_items is None else _at_least_one("max_items", max_items)
        self.name = name
        #: ``"fit"`` or ``"strict"``: what happens to replies over WhatsApp's limits.
        self.limits = config.check_policy(limits)
        self.verification_handler: VerificationHandler | None = None
        self._assistant: Assistant | None = assistant
        self._session = session
        self._blueprint: Blueprint | None = None
        #: Remembers handled message ids (``InMemoryStore()`` unless given).
        self.store: Store = store if store is not None else InMemoryStore()
        #: Runs the assistant: in the request (``"inline"``) or on a pool (``"background"``).
        self.dispatcher: Dispatcher = make_dispatcher(dispatch)
        self.dispatcher.start(store=self.store)
        # Job workers (Celery) find this connector by name, and answer with its core.
        self.dispatcher.bind(name, self.core)
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
        #: Paces sends to Meta's throughput and pair rate (``None``: off); shared by
        #: every worker through a ``RedisStore``, else per process.
        self.rate_control: Pacer | None = make_pacer(delivery_rate_control, self.store)
        #: Prometheus series this connector records into (``None``: metrics are off).
        self.metrics: Metrics | None = make_metrics(metrics)
        if app is not None:
            self.init_app(app)

    # -- settings: the current app's, else the explicit ones and the environment -------

    def _explicit_setting(self, argument: str, value: Any) -> None:
        key = _SETTING_KEYS[argument]
        kept: Any
        if argument == "phone_number_id":
            kept = phone_number_ids(value) or None
        elif argument == "app_secret" and value == "":
            kept = ""  # explicitly no signature check
        elif argument == "base_url" and value:
            kept = str(value).strip().rstrip("/") or None
        else:
            kept = clean(key, value)
        self._explicit[argument] = kept
        with self._standalone_lock:
            old, self._standalone = self._standalone, None
        if old is not None:
            old.close()

    @property
    def settings(self) -> Settings:
        """The settings in force: the current app's inside an app context, else the
        constructor's arguments completed from the environment."""
        return self._core().settings

    @property
    def token(self) -> str | None:
        """The access token sent to the Graph API (never shown in reprs)."""
        return self.settings.token

    @token.setter
    def token(self, value: str | None) -> None:
        self._explicit_setting("token", value)

    @property
    def phone_number_id(self) -> str | None:
        """The business phone number's id (not the number itself); with several, the
        first, which is the default sender."""
        return self.settings.phone_number_id

    @phone_number_id.setter
    def phone_number_id(self, value: str | Sequence[str] | None) -> None:
        self._explicit_setting("phone_number_id", value)

    @property
    def phone_number_ids(self) -> tuple[str, ...]:
        """Every business number whose updates this connector answers (the default first)."""
        return self.settings.phone_number_ids

    @property
    def verify_token(self) -> str | None:
        """The token Meta echoes when it verifies the webhook (never shown in reprs)."""
        return self.settings.verify_token

    @verify_token.setter
    def verify_token(self, value: str | None) -> None:
        self._explicit_setting("verify_token", value)

    @property
    def app_secret(self) -> str | None:
        """The app secret used to check ``X-Hub-Signature-256`` (never shown in reprs)."""
        return self.settings.app_secret

    @app_secret.setter
    def app_secret(self, value: str | None) -> None:
        self._explicit_setting("app_secret", value)

    @property
    def api_version(self) -> str | None:
        """The Graph API version asked for (``None``: the default, or ``base_url``'s)."""
        return self.settings.api_version

    @api_version.setter
    def api_version(self, value: str | None) -> None:
        self._explicit_setting("api_version", value)

    @property
    def base_url(self) -> str:
        """The Graph API root with its version, e.g. ``https://graph.facebook.com/v25.0``."""
        return self.settings.base_url

    @base_url.setter
    def base_url(self, value: str | None) -> None:
        self._explicit_setting("base_url", value)

    @property
    def url(self) -> str:
        """Where messages are sent: ``{base_url}/{phone_number_id}/messages``."""
        return self.settings.url

    def __repr__(self) -> str:
        return (
            f"WhatsappConnector(name={self.name!r}, endpoint_prefix={self.endpoint_prefix!r}, "
            f"stream_mode={self.stream_mode.value!r}, token=***, verify_token=***, "
            "app_secret=***)"
        )

    # -- decorators ------------------------------------------------------------------

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

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every accepted message is answered; ``False`` on timeout.

        With ``dispatch="inline"`` there is never anything pending.
        """
        return self.dispatcher.drain(timeout)

    # -- registration ------------------------------------------------------------------

    @property
    def blueprint(self) -> Blueprint:
        """The Flask blueprint with the webhook's GET and POST views.

        The same blueprint may be registered on several apps; each resolves its
        own settings when it is registered.
        """
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

        ``app``'s settings are resolved now (explicit arguments, then
        ``app.config``, then the environment) and kept in ``app.extensions``.
        This also adds the ``flask whatsapp send`` and ``send-template``
        commands (the group is named after the blueprint).
        """
        app.register_blueprint(self.blueprint)

    def _on_register(self, state: BlueprintSetupState) -> None:
        # The name the views find it under: request.blueprint (name= and nesting count).
        name = f"{state.name_prefix}.{state.name}".lstrip(".")
        try:
            settings = resolve_settings(**self._explicit, app_config=state.app.config)
            self._install(state.app, name, settings)
        except ConfigurationError as exc:
            # Under a `flask` command: one line and exit status 2, not a traceback.
            converted = for_command_line(exc)
            if converted is exc:
                raise
            raise converted from None  # same message; `flask --help` prints one traceback

    def configure_app(self, app: Flask, **overrides: str | None) -> WhatsappCore:
        """Replace ``app``'s settings: ``overrides`` (``token=``, ``phone_number_id=``,
        ``verify_token=``, ``app_secret=``, ``api_version=``, ``base_url=``) win over
        the settings the app resolved at registration.

        For tools that point an app under test at a fake Graph API (the testing
        kit does). Returns the app's new core.
        """
        unknown = set(overrides) - set(_SETTING_KEYS)
        if unknown:
            raise TypeError(f"configure_app() got unknown settings: {', '.join(sorted(unknown))}")
        name = self._registered_name(app)
        explicit = {**self._explicit}
        explicit.update({key: value for key, value in overrides.items() if value is not None})
        settings = resolve_settings(**explicit, app_config=app.config)
        # The old core is not closed: messages it accepted are still answered
        # with the settings they arrived under.
        return self._install(app, name, settings)

    def _registered_name(self, app: Flask) -> str:
        for name, connector in app.extensions.get(CONNECTORS_KEY, {}).items():
            if connector is self:
                return str(name)
        raise ConfigurationError("this connector is not registered on that app: call init_app")

    def _install(self, app: App, name: str, settings: Settings) -> WhatsappCore:
        settings.require(*_REQUIRED)
        if not settings.app_secret:
            logger.warning(
                "no app secret configured (WHATSAPP_APP_SECRET): webhook POSTs to %s are "
                "NOT authenticated; anyone who finds the URL can post fake messages",
                self.endpoint_prefix,
            )
        core = WhatsappCore(settings, self._behaviour(), owner=self)
        # Build the webhook handler now, so a bad option fails at start-up.
        core.webhook  # noqa: B018
        app.extensions.setdefault(EXTENSION_KEY, {})[name] = core
        # Lets tools (the testing kit, the simulator) find the app's connectors.
        app.extensions.setdefault(CONNECTORS_KEY, {})[name] = self
        return core

    def _behaviour(self) -> Behaviour:
        return Behaviour(
            assistant=lambda: self._assistant,
            router=self._router,
            verification_handler=lambda: self.verification_handler,
            send_error_handler=lambda: self.send_error_handler,
            stream_mode=self.stream_mode,
            read_receipts=self.read_receipts,
            limits=self.limits,
            fallback_text=self.fallback_text,
            max_messages_per_answer=self.max_messages_per_answer,
            store=self.store,
            dispatcher=self.dispatcher,
            retry=self.retry,
            timeout=self.timeout,
            session=self._session,
            max_items=self.max_items,
            rates=self.rate_control,
            metrics=self.metrics,
        )

    # -- the core in force ------------------------------------------------------------------

    def core(self, app: Flask | None = None) -> WhatsappCore:
        """The :class:`~cel_whatsapp.core.engine.WhatsappCore` in force.

        That of ``app`` when given; else the one answering a message on this
        thread (the assistant runs on a pool thread, with no app context); else
        the current app's; else one built from the constructor's arguments and
        the environment, for scripts and job workers.
        """
        return self._core(app)

    def _core(self, app: Flask | None = None) -> WhatsappCore:
        if app is None:
            answering = answering_core()
            if answering is not None and answering.owner is self:
                return answering
        extensions: dict[str, Any] | None = None
        if app is not None:
            extensions = app.extensions
        elif has_app_context():
            extensions = current_app.extensions
        if extensions is not None:
            for name, connector in extensions.get(CONNECTORS_KEY, {}).items():
                if connector is self:
                    core: WhatsappCore = extensions[EXTENSION_KEY][name]
                    return core
        with self._standalone_lock:
            if self._standalone is None:
                self._standalone = WhatsappCore(
                    resolve_settings(**self._explicit), self._behaviour(), owner=self
                )
            return self._standalone

    # -- sending outside a webhook --------------------------------------------------------

    def send(
        self, to: str | Lead, reply_or_text: Reply | str, phone_number_id: str | None = None
    ) -> list[str]:
        """Send a message outside a webhook; return the wamids sent, in order.

        ``to`` is a phone number in E.164 with or without ``+``, a
        business-scoped user id (``"US.13491208655302741918"``), or a
        :class:`~cel_whatsapp.Lead`. ``reply_or_text`` is a ``str`` (split
        if over 4096 characters) or any reply object. Usually one wamid;
        several when a long text or a fitted reply needed more messages.
        Inside an app context the app's settings are used; elsewhere the
        constructor's arguments and the environment.

        Outside the user's 24-hour customer-service window only a
        :class:`~cel_whatsapp.Template` is delivered; anything else raises
        :class:`~cel_whatsapp.OutsideWindowError` (Meta's code 131047).

        ``phone_number_id`` picks the business number it is sent from, one of
        :attr:`phone_number_ids`; by default the number a :class:`Lead`
        wrote to, else the first. Another id raises :class:`ValueError`
        before any request.
        """
        return self._core().send(to, reply_or_text, phone_number_id=phone_number_id)

    def mark_read(
        self, message_id: str, typing: bool = False, phone_number_id: str | None = None
    ) -> None:
        """Mark a received message read; ``typing=True`` also shows the typing indicator.

        ``phone_number_id``: the number that received it (default: the first).
        """
        self._core().mark_read(message_id, typing=typing, phone_number_id=phone_number_id)

    def upload_media(
        self,
        file_or_bytes: MediaSource,
        mime_type: str,
        filename: str | None = None,
        phone_number_id: str | None = None,
    ) -> str:
        """Upload a file (bytes, a path or a binary file object); return its media id.

        Use the id as ``media_id=`` of :class:`~cel_whatsapp.Image`,
        :class:`~cel_whatsapp.Document` and the other media replies, sent from
        the same ``phone_number_id`` (default: the first number).
        """
        return self._core().upload_media(
            file_or_bytes, mime_type, filename, phone_number_id=phone_number_id
        )

    def download_media(
        self,
        media_id: str | MediaAttachment,
        *,
        max_bytes: int = config.DEFAULT_MEDIA_MAX_BYTES,
        sha256: str | None = None,
        phone_number_id: str | None = None,
    ) -> MediaFile:
        """Download a media file a user sent: pass ``attachment.media_id`` (or the attachment).

        ``phone_number_id``: the number it was sent to, whose token is used
        (default: inside an answer, the number answering; else the first).

        Raises :class:`~cel_whatsapp.GraphAPIError` when Meta refuses, and
        :class:`~cel_whatsapp.MediaDownloadError` when the file is larger than
        ``max_bytes`` or fails its SHA-256 check. See
        :func:`cel_whatsapp.core.media.download_media`.
        """
        return self._core().download_media(
            media_id, max_bytes=max_bytes, sha256=sha256, phone_number_id=phone_number_id
        )

    def handle(self, message: Message) -> list[str]:
        """Answer ``message`` now, as the webhook would; return the sent wamids."""
        return self._core().handle(message)


def _at_least_one(name: str, value: int) -> int:
    """``value`` when it is a whole number of at least 1; a :class:`ConfigurationError` if not."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name} must be a whole number of at least 1, not {value!r}")
    return value


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
