"""A runnable demo bot for cel_whatsapp.

Without Meta credentials (or with ``SIMULATOR=1``) it runs on the built-in
simulator: open the app's ``/`` in a browser and chat with the bot, while
every message still goes through the real webhook, signature check, parsing,
stream modes and Graph API client. With ``WHATSAPP_TOKEN``,
``WHATSAPP_PHONE_NUMBER_ID``, ``WHATSAPP_VERIFY_TOKEN`` (and, strongly
advised, ``WHATSAPP_APP_SECRET``) it talks to the real Cloud API.

Runs under ``python -m sample_app`` and under gunicorn
(``gunicorn -c sample_app/gunicorn.conf.py "sample_app:create_app()"``).
``python -m sample_app --celery`` answers on a Celery worker instead (see
:mod:`sample_app.worker`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping

from flask import Flask, request, send_from_directory
from werkzeug.wrappers import Response

from cel_whatsapp import Store, WhatsappConnector
from cel_whatsapp.core.dispatch import Dispatcher
from cel_whatsapp.core.routing import PERSON_TYPES

from .assistant import make_assistant
from .llm import ChatModel

logger = logging.getLogger(__name__)

REQUIRED = ("WHATSAPP_TOKEN", "WHATSAPP_PHONE_NUMBER_ID", "WHATSAPP_VERIFY_TOKEN")
#: ``SIMULATOR=1`` forces the simulator even with credentials set; ``SIMULATOR=0`` forbids it.
SIMULATOR_ENV = "SIMULATOR"
#: ``CELERY=1``: answer on Celery workers (see :mod:`sample_app.worker`).
CELERY_ENV = "CELERY"
PICTURE_PATH = "/demo/picture.png"


def wants_simulator(environ: Mapping[str, str] | None = None) -> bool:
    """Whether to run on the simulator: asked for, or no Meta credentials to run without it."""
    env = os.environ if environ is None else environ
    flag = env.get(SIMULATOR_ENV, "").strip().lower()
    if flag in ("1", "true", "yes", "on"):
        return True
    if flag in ("0", "false", "no", "off"):
        return False
    return not all(env.get(key) for key in REQUIRED)


def build_connector(
    *,
    picture_url: Callable[[], str | None],
    model: ChatModel | None,
    dispatch: str | Dispatcher = "background",
    store: Store | None = None,
) -> WhatsappConnector:
    """The demo's connector: the web app and the Celery workers build the same one."""
    return WhatsappConnector(
        stream_mode=os.environ.get("WHATSAPP_STREAM_MODE", "sentence"),
        assistant=make_assistant(picture_url=picture_url, model=model),
        # The demo also thanks users for their reactions.
        assistant_types=PERSON_TYPES | {"reaction"},
        dispatch=dispatch,
        store=store,
        # Prometheus metrics, served on METRICS_PORT (see gunicorn.conf.py and __main__).
        metrics=bool(os.environ.get("METRICS_PORT")),
    )


def create_app(local: bool | None = None, *, celery: bool | None = None) -> Flask:
    """Build the demo app; ``local=None`` decides with :func:`wants_simulator`.

    ``celery=True`` (or ``CELERY=1``) publishes each message to Celery's
    broker at ``REDIS_URL`` for the workers (:mod:`sample_app.worker`) to
    answer, instead of answering on this process's thread pool.
    """
    app = Flask(__name__)
    if local is None:
        local = wants_simulator()

    @app.before_request
    def remember_public_url() -> None:
        # The demo sends its picture by link; the first request tells us our address.
        app.config.setdefault("SAMPLE_APP_URL", request.host_url)

    @app.get(PICTURE_PATH)
    def picture() -> Response:
        return send_from_directory(os.path.join(app.root_path, "static"), "picture.png")

    def picture_url() -> str | None:
        explicit = os.environ.get("DEMO_IMAGE_URL")
        if explicit:
            return explicit
        base = app.config.get("SAMPLE_APP_URL")
        return f"{base.rstrip('/')}{PICTURE_PATH}" if base else None

    model = ChatModel.from_env()
    if model is not None:
        logger.info("streamed answers from %r at %s", model.model, model.base_url)

    if local:
        from cel_whatsapp.simulator import Simulator

        # Before the connector: the simulator provides the WHATSAPP_* settings it reads.
        Simulator(app, bot_name="cel_whatsapp demo bot")
    if celery is None:
        celery = os.environ.get(CELERY_ENV, "").strip().lower() in ("1", "true", "yes", "on")
    if celery:
        # The answers run on Celery workers (celery -A sample_app.worker worker).
        from cel_whatsapp import RedisStore
        from cel_whatsapp.celery import CeleryDispatcher

        from .celery_app import make_celery, redis_url

        connector = build_connector(
            picture_url=picture_url,
            model=model,
            dispatch=CeleryDispatcher(make_celery(redis_url())),
            store=RedisStore.from_url(redis_url()),
        )
    else:
        connector = build_connector(picture_url=picture_url, model=model)
    connector.init_app(app)
    app.extensions["sample_app.connector"] = connector
    if local:
        logger.info("simulator mode: no Meta account needed, chat at the site's root /")
    return app
