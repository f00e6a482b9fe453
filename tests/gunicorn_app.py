"""The app the gunicorn tests serve: ``gunicorn "tests.gunicorn_app:create_app()"``.

Configured by environment variables set by the tests:
``CEL_TEST_GRAPH_URL`` (the fake Graph API), ``CEL_TEST_REDIS_URL`` (use a
RedisStore and count assistant calls there; else an InMemoryStore),
``CEL_TEST_DELAY`` (seconds the assistant takes), ``CEL_TEST_METRICS`` (turn
Prometheus metrics on, without rate control). A message text of the
form ``sleep=0.3`` makes that one answer take 0.3 s.
"""

from __future__ import annotations

import logging
import os
import time

from flask import Flask

from cel_whatsapp import InMemoryStore, Message, RedisStore, Store, WhatsappConnector

from .conftest import APP_SECRET, PHONE_NUMBER_ID, TOKEN, VERIFY_TOKEN

CALLS_KEY = "test:assistant-calls"


def create_app() -> Flask:
    logging.basicConfig(
        level=logging.WARNING, format="%(process)d %(levelname)s %(name)s: %(message)s"
    )
    redis_url = os.environ.get("CEL_TEST_REDIS_URL")
    delay = float(os.environ.get("CEL_TEST_DELAY", "0"))
    store: Store
    if redis_url:
        redis_store = RedisStore.from_url(redis_url)
        store = redis_store
        counter = redis_store.client
    else:
        store, counter = InMemoryStore(), None

    def assistant(message: Message) -> str:
        text = message.text or ""
        time.sleep(float(text[6:]) if text.startswith("sleep=") else delay)
        if counter is not None:
            counter.hincrby(CALLS_KEY, message.id, 1)
        return f"re {message.id}"

    connector = WhatsappConnector(
        TOKEN,
        PHONE_NUMBER_ID,
        VERIFY_TOKEN,
        app_secret=APP_SECRET,
        base_url=os.environ["CEL_TEST_GRAPH_URL"],
        read_receipts=False,
        store=store,
        assistant=assistant,
        **(
            {"metrics": True, "delivery_rate_control": False}
            if os.environ.get("CEL_TEST_METRICS")
            else {}
        ),
    )
    app = Flask(__name__)
    connector.init_app(app)
    return app
