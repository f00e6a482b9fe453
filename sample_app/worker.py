"""The sample bot's Celery workers: ``celery -A sample_app.worker worker``.

A worker has no Flask app: the connector reads its settings from the
environment, the same ``WHATSAPP_TOKEN``, ``WHATSAPP_PHONE_NUMBER_ID`` (and
``WHATSAPP_BASE_URL``) as the web app's, plus ``REDIS_URL`` and, for the
picture demo, ``DEMO_IMAGE_URL``. ``python -m sample_app --celery`` starts
one with all of them set, the simulator's included.
"""

from __future__ import annotations

import os

from cel_whatsapp import RedisStore
from cel_whatsapp.celery import CeleryDispatcher

from . import build_connector
from .celery_app import make_celery, redis_url
from .llm import ChatModel

celery_app = make_celery(redis_url())
connector = build_connector(
    picture_url=lambda: os.environ.get("DEMO_IMAGE_URL"),
    model=ChatModel.from_env(),
    dispatch=CeleryDispatcher(celery_app),
    store=RedisStore.from_url(redis_url()),
)
