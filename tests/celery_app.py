"""The module the Celery tests' workers import: ``celery -A tests.celery_app worker``.

:func:`build` makes the Celery app and the connector; the tests call it for
the web side, and at import this module calls it for the worker side when
``CEL_TEST_BROKER`` is set. Environment of the workers (set by the tests):
``CEL_TEST_BROKER`` and ``CEL_TEST_STORE`` (redis URLs), ``CEL_TEST_GATES``
(a directory), ``CEL_TEST_LEASE_TTL``, and the connector's
``WHATSAPP_TOKEN``, ``WHATSAPP_PHONE_NUMBER_ID`` and ``WHATSAPP_BASE_URL``
(a worker has no Flask app: the connector reads the environment).

The assistant, by message text:

- ``block <tag>``: sends ``first half of <tag>.``, notes its process id in
  the Redis list ``test:events``, waits until the file ``<gates>/<tag>``
  (or ``<gates>/all``) exists, then sends ``second half of <tag>.``;
- ``order <lead> <n>``: notes its start and end in ``test:events`` around a
  short sleep, and answers ``answer <lead> <n>``;
- anything else: ``echo: <text>``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from celery import Celery

from cel_whatsapp import Message, RateControl, RedisStore, WhatsappConnector
from cel_whatsapp.celery import CeleryDispatcher

EVENTS = "test:events"
#: A gate file that opens every gate (when the tests end).
OPEN_ALL = "all"


def make_assistant(store: RedisStore, gates: Path | None) -> Any:
    def assistant(message: Message) -> Iterator[str]:
        text = message.text or ""
        words = text.split()
        if words[:1] == ["block"] and gates is not None:
            tag = words[1]
            yield f"first half of {tag}. "
            store.client.rpush(EVENTS, json.dumps({"block": tag, "pid": os.getpid()}))
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not any(
                (gates / name).exists() for name in (tag, OPEN_ALL)
            ):
                time.sleep(0.05)
            yield f"second half of {tag}."
        elif words[:1] == ["order"]:
            lead, number = words[1], int(words[2])
            store.client.rpush(EVENTS, json.dumps({"start": lead, "n": number}))
            time.sleep(0.05)
            store.client.rpush(EVENTS, json.dumps({"end": lead, "n": number}))
            yield f"answer {lead} {number}"
        else:
            yield f"echo: {text}"

    return assistant


def build(
    broker_url: str,
    store_url: str,
    *,
    gates: Path | None = None,
    lease_ttl: float = 2.0,
    **connector_options: Any,
) -> tuple[Celery, WhatsappConnector]:
    """The Celery app and the connector (``connector_options`` go to the connector)."""
    celery_app = Celery("cel_whatsapp_tests", broker=broker_url)
    celery_app.conf.update(
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    store = RedisStore.from_url(store_url)
    connector = WhatsappConnector(
        read_receipts=False,
        # Pairs paused 3 s (not Meta's 6) after a 131056: a shorter test.
        delivery_rate_control=RateControl(pair_interval=3.0),
        stream_mode="direct",  # each chunk is one message, at once
        store=store,
        dispatch=CeleryDispatcher(celery_app, lease_ttl=lease_ttl),
        assistant=make_assistant(store, gates),
        **connector_options,
    )
    return celery_app, connector


if os.environ.get("CEL_TEST_BROKER"):
    logging.basicConfig(
        level=logging.INFO, format="%(process)d %(levelname)s %(name)s: %(message)s"
    )
    gates_dir = os.environ.get("CEL_TEST_GATES")
    app, connector = build(
        os.environ["CEL_TEST_BROKER"],
        os.environ["CEL_TEST_STORE"],
        gates=Path(gates_dir) if gates_dir else None,
        lease_ttl=float(os.environ.get("CEL_TEST_LEASE_TTL", "2")),
    )
