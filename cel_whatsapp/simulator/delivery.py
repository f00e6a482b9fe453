"""Deliver webhooks to the bot the way Meta does: signed POSTs over HTTP.

One background thread posts them in the order they were queued, so the bot
sees a user's messages in order; the page never waits for the bot.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from ..testing.webhooks import encode, signed_headers

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """How the bot answered one webhook: ``status`` is ``None`` when it could not be reached."""

    status: int | None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200


OnDelivered = Callable[[DeliveryResult], None]

_STOP = object()


class WebhookSender:
    """A queue of webhook bodies and the thread that posts them.

    ``timeout`` is generous: with inline dispatch the bot answers the POST
    only after sending its whole reply.
    """

    def __init__(self, app_secret: str | None, *, timeout: tuple[float, float] = (3.05, 120.0)):
        self._app_secret = app_secret
        self.timeout = timeout
        self._queue: queue.Queue[Any] = queue.Queue()
        self._session = requests.Session()
        # Never route the bot's own address through a proxy from the environment.
        self._session.trust_env = False
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"WebhookSender(pending={self._queue.qsize()}, app_secret=***)"

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="simulator-webhooks", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout)
            self._thread = None
        self._session.close()

    def submit(
        self, url: str, body: Mapping[str, Any], on_delivered: OnDelivered | None = None
    ) -> None:
        """Queue one webhook body for ``url``."""
        self._queue.put((url, encode(body), on_delivered))

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until every queued webhook was posted (for tests)."""
        done = threading.Event()
        self._queue.put((None, b"", lambda _result: done.set()))
        return done.wait(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            url, raw, on_delivered = item
            result = self._post(url, raw) if url else DeliveryResult(None, "marker")
            if on_delivered is not None:
                try:
                    on_delivered(result)
                except Exception:
                    logger.exception("simulator: a delivery callback failed")

    def _post(self, url: str, raw: bytes) -> DeliveryResult:
        try:
            response = self._session.post(
                url, data=raw, headers=signed_headers(raw, self._app_secret), timeout=self.timeout
            )
        except requests.RequestException as exc:
            logger.warning("simulator: could not deliver a webhook to %s: %s", url, exc)
            return DeliveryResult(None, f"{type(exc).__name__}: the bot could not be reached")
        if response.status_code != 200:
            logger.warning(
                "simulator: the bot answered a webhook with HTTP %d", response.status_code
            )
            return DeliveryResult(response.status_code, response.text[:200])
        return DeliveryResult(200)
