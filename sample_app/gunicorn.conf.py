"""gunicorn settings for the sample bot, with graceful shutdown.

Run: ``gunicorn -c sample_app/gunicorn.conf.py "sample_app:create_app()"``

How a restart or stop stays lossless: gunicorn sends each worker SIGTERM; the
worker stops taking requests, finishes the one in hand, and leaves its loop.
``worker_exit`` below then lets the background dispatcher answer every
message it already accepted (and acknowledged to Meta with 200) before the
process ends. gunicorn kills a worker still alive ``graceful_timeout``
seconds after the SIGTERM, so the drain is given a little less than that.
Set ``graceful_timeout`` above your slowest answer (assistant time plus
sends and their retries); orchestrators that send SIGKILL after their own
grace period (Kubernetes' ``terminationGracePeriodSeconds``, systemd's
``TimeoutStopSec``) must allow at least as long.
"""

import os
from typing import Any

bind = os.environ.get("BIND", "127.0.0.1:8000")
# Sync workers are enough: the webhook only checks, parses and queues, then
# answers 200; each worker answers messages on its own thread pool. With
# several workers (or machines), give the connector a RedisStore so copies of
# a webhook landing on different workers are still answered once.
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "sync"
# A worker whose request loop is stuck this long is killed and restarted.
# Background answers do not block the loop, so this bounds only the webhook
# itself (Meta wants an answer within a few seconds).
timeout = 30
# On SIGTERM (stop, restart, deploy): time given to each worker to finish the
# answers it accepted before gunicorn kills it.
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", "30"))
accesslog = os.environ.get("ACCESS_LOG", "-")
loglevel = "info"


def worker_exit(server: Any, worker: Any) -> None:
    """Answer every accepted message before this worker process ends."""
    from cel_whatsapp.core.dispatch import shutdown_all

    if not shutdown_all(timeout=max(1.0, graceful_timeout - 2.0)):
        server.log.error("worker %s exited with unanswered messages", worker.pid)
