"""gunicorn settings for the sample bot, with graceful shutdown.

Run: ``gunicorn -c sample_app/gunicorn.conf.py "sample_app:create_app()"``

The graceful-shutdown hooks and timeouts come from the package
(:mod:`cel_whatsapp.gunicorn_conf`, usable on its own as
``gunicorn -c python:cel_whatsapp.gunicorn_conf``): on SIGTERM each worker
answers the messages it already accepted before it ends, within
``graceful_timeout``. With ``METRICS_PORT`` set, the sample's connector
records Prometheus metrics and the master serves every worker's sum on that
port (see that module). This file adds the sample's address, worker count
and logging, read from the environment.
"""

import os

from cel_whatsapp.gunicorn_conf import (
    child_exit,
    on_starting,
    post_worker_init,
    timeout,
    when_ready,
    worker_exit,
    worker_int,
)

__all__ = [
    "child_exit",
    "on_starting",
    "post_worker_init",
    "timeout",
    "when_ready",
    "worker_exit",
    "worker_int",
]

bind = os.environ.get("BIND", "127.0.0.1:8000")
# Sync workers are enough: the webhook only checks, parses and queues, then
# answers 200; each worker answers messages on its own thread pool. With
# several workers (or machines), give the connector a RedisStore so copies of
# a webhook landing on different workers are still answered once.
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "sync"
# On SIGTERM (stop, restart, deploy): time given to each worker to finish the
# answers it accepted before gunicorn kills it (keep `timeout` at least as long).
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", "30"))
accesslog = os.environ.get("ACCESS_LOG", "-")
loglevel = "info"
