"""``Simulator``: the Flask extension that puts a WhatsApp-like chat page on an app."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import config
from ..errors import ConfigurationError
from .hub_client import HubClient
from .shared import HubLink, HubSettings, default_share_key, find_hub

if TYPE_CHECKING:
    from flask import Flask

    from .hub import SimulatorHub

logger = logging.getLogger(__name__)

#: ``app.extensions`` key of the per-app simulator state.
EXTENSION_KEY = "cel_whatsapp.simulator"
DEFAULT_USER_PHONE = "15551234567"
DEFAULT_USER_NAME = "Alex"
#: What the empty chat suggests typing (the demo bot answers ``menu`` with buttons).
DEFAULT_EXAMPLES = ("menu", "Hello! What can you do?")


@dataclass(frozen=True, slots=True)
class SimulatorState:
    """What one app's simulator needs at request time."""

    simulator: Simulator
    link: HubLink
    client: HubClient


class Simulator:
    """Chat with a Flask app's bot in the browser, with no Meta account.

    ``Simulator(app)`` (or ``init_app``) starts a local stand-in for Meta (see
    :class:`~cel_whatsapp.simulator.SimulatorHub`), points the app's
    ``WHATSAPP_*`` settings at it, and serves the chat page at
    ``url_prefix + "/"``. Initialise it *before* the connector, which reads
    those settings when it is registered::

        app = Flask(__name__)
        Simulator(app)
        WhatsappConnector(assistant=my_bot).init_app(app)

    Every message typed in the page reaches the bot as a signed, Meta-shaped
    webhook POST to ``webhook_path``; the bot's replies go through its real
    Graph API client to the hub and appear in the page as each is sent.

    ``share`` groups the processes of one server around one hub: ``None``
    detects gunicorn workers (see :mod:`cel_whatsapp.simulator.shared`), a
    string is an explicit group key, ``False`` keeps a private hub.

    ``examples`` are the messages the empty chat offers as one-click
    suggestions: put there what your bot understands.

    When ``WHATSAPP_BASE_URL`` (``app.config``, then the environment) is the
    address of a simulator hub already running for this user, the app joins
    that one instead: a ``flask whatsapp send`` run next to
    ``python -m sample_app`` then lands in the chat that app's page shows.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        url_prefix: str = "",
        webhook_path: str = config.DEFAULT_ENDPOINT_PREFIX,
        webhook_url: str | None = None,
        user_phone: str = DEFAULT_USER_PHONE,
        user_name: str = DEFAULT_USER_NAME,
        bot_name: str = "WhatsApp bot",
        share: str | bool | None = None,
        examples: Sequence[str] = DEFAULT_EXAMPLES,
    ) -> None:
        self.url_prefix = "/" + url_prefix.strip("/") if url_prefix.strip("/") else ""
        self.webhook_path = "/" + webhook_path.strip("/")
        self.webhook_url = webhook_url
        self.user_phone = user_phone
        self.user_name = user_name
        self.bot_name = bot_name
        self.share = share
        # A lone string is one example, not one per letter.
        self.examples = (examples,) if isinstance(examples, str) else tuple(examples)
        if app is not None:
            self.init_app(app)

    def __repr__(self) -> str:
        return f"Simulator(url_prefix={self.url_prefix!r}, webhook_path={self.webhook_path!r})"

    def init_app(self, app: Flask) -> None:
        """Start (or join) the hub, point ``WHATSAPP_*`` at it, register the page."""
        from ..flask.connector import CONNECTORS_KEY
        from .views import build_blueprint

        if app.extensions.get(CONNECTORS_KEY):
            raise ConfigurationError(
                "initialise the Simulator before registering the WhatsappConnector: the "
                "connector reads WHATSAPP_* settings, which the simulator provides, when "
                "it is registered"
            )
        if self.share is None:
            key = default_share_key()
        elif self.share is False or self.share is True:
            key = default_share_key() if self.share else None
        else:
            key = self.share
        running = self._running_hub(app)
        link = HubLink(key, join=running)
        settings = link.settings
        app.config.update(
            {
                config.TOKEN_KEY: settings.token,
                config.PHONE_NUMBER_ID_KEY: settings.phone_number_id,
                config.VERIFY_TOKEN_KEY: settings.verify_token,
                config.APP_SECRET_KEY: settings.app_secret,
                config.BASE_URL_KEY: settings.base_url,
            }
        )
        app.extensions[EXTENSION_KEY] = SimulatorState(self, link, HubClient(link))
        app.register_blueprint(build_blueprint(self))
        logger.info(
            "simulator: chat page at %s/, webhooks to %s", self.url_prefix, self.webhook_path
        )

    @staticmethod
    def _running_hub(app: Flask) -> HubSettings | None:
        url = app.config.get(config.BASE_URL_KEY) or os.environ.get(config.BASE_URL_KEY)
        if not url:
            return None
        found = find_hub(str(url))
        if found is None:
            logger.info(
                "simulator: %s is not a running simulator hub; starting one",
                config.BASE_URL_KEY,
            )
        else:
            logger.info("simulator: joining the running hub at %s", found.root_url)
        return found

    @staticmethod
    def hub_of(app: Flask) -> SimulatorHub | None:
        """The hub object when this process hosts it (handy in tests), else ``None``."""
        state: SimulatorState | None = app.extensions.get(EXTENSION_KEY)
        if state is None or not state.link.hosted_here:
            return None
        return state.link.hub
