"""The sample bot's Celery side: the Celery app, and where Redis is.

One Redis serves as Celery's broker and as the connector's
:class:`~cel_whatsapp.RedisStore` (deduplication, each lead's order, the
done marks). ``REDIS_URL`` says where; ``python -m sample_app --celery``
starts a local redis-server when it is not set.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from celery import Celery

REDIS_URL_ENV = "REDIS_URL"
#: Seconds a job may stay unacknowledged before the Redis broker delivers it
#: again (Celery's default): more than the longest answer, and more than
#: twice the longest Graph API wait the jobs defer (the dispatcher keeps its
#: countdowns under half of it).
VISIBILITY_TIMEOUT = 3600


def redis_url() -> str:
    """``REDIS_URL``, or a message saying to set it."""
    url = os.environ.get(REDIS_URL_ENV)
    if not url:
        raise SystemExit(
            f"set {REDIS_URL_ENV} (e.g. redis://127.0.0.1:6379/0): the Celery mode needs Redis "
            "as broker and store"
        )
    return url


def make_celery(url: str) -> Celery:
    """The Celery app of the sample bot, with Redis at ``url`` as its broker."""
    from celery import Celery  # the celery extra: only the Celery mode needs it

    app = Celery("sample_app", broker=url)
    app.conf.update(
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT},
        # A worker takes one job per process at a time, so a slow answer does
        # not hold others back in its prefetch buffer.
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
    )
    return app
