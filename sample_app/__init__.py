"""A runnable demo bot for cel_whatsapp.

With ``WHATSAPP_TOKEN``, ``WHATSAPP_PHONE_NUMBER_ID``, ``WHATSAPP_VERIFY_TOKEN``
(and, strongly advised, ``WHATSAPP_APP_SECRET``) in the environment it talks to
the real WhatsApp Cloud API. Without them it runs on a local fake of the Graph
API, and ``/`` serves a small page to chat with the bot.
"""

from __future__ import annotations

import logging
import os
import secrets

from flask import Flask

from cel_whatsapp import WhatsappConnector

from .assistant import demo_assistant

logger = logging.getLogger(__name__)

REQUIRED = ("WHATSAPP_TOKEN", "WHATSAPP_PHONE_NUMBER_ID", "WHATSAPP_VERIFY_TOKEN")


def create_app(local: bool | None = None) -> Flask:
    """Build the demo app; ``local=None`` picks local mode when credentials are missing."""
    app = Flask(__name__)
    if local is None:
        local = not all(os.environ.get(key) for key in REQUIRED)
    connector = WhatsappConnector(
        stream_mode=os.environ.get("WHATSAPP_STREAM_MODE", "sentence"),
        assistant=demo_assistant,
        # The local chat page shows the answer as soon as its POST returns.
        dispatch="inline" if local else "background",
    )
    if local:
        from .local import start_local_graph

        secret = secrets.token_hex(16)
        graph = start_local_graph()
        app.config.update(
            WHATSAPP_TOKEN=graph.token,
            WHATSAPP_PHONE_NUMBER_ID=graph.phone_number_id,
            WHATSAPP_VERIFY_TOKEN=secrets.token_hex(8),
            WHATSAPP_APP_SECRET=secret,
            WHATSAPP_BASE_URL=graph.fake.base_url,
        )
        connector.init_app(app)
        from .local import chat_blueprint

        app.register_blueprint(chat_blueprint(graph, secret))
        logger.info("local mode: no Meta credentials, replies go to %s", graph.fake.base_url)
    else:
        connector.init_app(app)
    app.extensions["sample_app.connector"] = connector
    return app
