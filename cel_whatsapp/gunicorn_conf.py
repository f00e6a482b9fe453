"""gunicorn settings that stop workers without losing accepted answers.

Use them as the config file, with whatever else on the command line::

    gunicorn -c python:cel_whatsapp.gunicorn_conf -w 2 -b 0.0.0.0:8000 "myproject:create_app()"
    gunicorn -c python:cel_whatsapp.gunicorn_conf -k gthread --threads 4 "myproject:create_app()"
    gunicorn -c python:cel_whatsapp.gunicorn_conf -k gevent "myproject:create_app()"

or from a config file of your own (``from cel_whatsapp.gunicorn_conf import *``
brings the hooks and the two timeouts; the command line still wins over both).

How a restart or stop stays lossless: gunicorn sends each worker SIGTERM; the
worker stops taking requests, finishes the one in hand, and leaves its loop.
:func:`worker_exit` then lets the background dispatcher answer every message
it already accepted (and acknowledged to Meta with 200) before the process
ends. gunicorn kills a worker still alive ``graceful_timeout`` seconds after
the SIGTERM, and ``worker_exit`` runs only once the request in hand is done,
so the time left is measured from the SIGTERM itself (noted by
:func:`post_worker_init`'s handler, which then calls gunicorn's own). What
cannot be answered in that time is logged message id by message id before the
kill. A quick stop (SIGINT, SIGQUIT) answers nothing more and logs the ids at
once. Set ``graceful_timeout`` above your slowest answer (assistant time plus
sends and their retries); orchestrators that send SIGKILL after their own
grace period (Kubernetes' ``terminationGracePeriodSeconds``, systemd's
``TimeoutStopSec``) must allow at least as long. On a reload (SIGHUP) the old
workers are killed after ``timeout`` without a heartbeat instead, so keep
``timeout`` at least ``graceful_timeout``.

Prometheus metrics added up across workers (``pip install "cel_whatsapp[metrics]"``,
``WhatsappConnector(metrics=True)``), in prometheus_client's multiprocess
mode: with ``PROMETHEUS_MULTIPROC_DIR`` set, :func:`on_starting` empties
that directory of a previous run's files and :func:`child_exit` tells
prometheus_client each worker that ends (its live gauges stop counting; its
counters still add up). With ``METRICS_PORT`` set, :func:`when_ready` serves
the sum of every worker's figures from the master at
``http://METRICS_ADDR:METRICS_PORT/metrics`` (``METRICS_ADDR`` defaults to
127.0.0.1: an internal port, never the public webhook's), and
:func:`on_starting` makes a temporary ``PROMETHEUS_MULTIPROC_DIR`` if none is
set. Without the two variables these hooks do nothing.

The hooks work the same under sync, gthread and gevent workers. Nothing here
imports gunicorn: the hooks receive gunicorn's objects as arguments.
"""

from __future__ import annotations

import os
import signal
import tempfile
import time
from types import FrameType
from typing import Any

__all__ = [
    "EXIT_MARGIN",
    "child_exit",
    "graceful_timeout",
    "on_starting",
    "post_worker_init",
    "shutdown_budget",
    "timeout",
    "when_ready",
    "worker_exit",
    "worker_int",
]

# A worker whose request loop is stuck this long is killed and restarted.
# Background answers do not block the loop, so this bounds only the webhook
# itself (Meta wants an answer within a few seconds).
timeout = 30
# On SIGTERM (stop, restart, deploy): time given to each worker to finish the
# answers it accepted before gunicorn kills it.
graceful_timeout = 30

#: Seconds kept after the dispatcher's budget for the worker process to end
#: (log flushing, interpreter exit) before gunicorn's kill.
EXIT_MARGIN = 1.0

# When this worker was told to stop ("term" or "quick"), by time.monotonic().
# Per process: each worker is a fork with its own copy.
_stop_signal: dict[str, float] = {}


def post_worker_init(worker: Any) -> None:
    """Note when SIGTERM arrives, then let gunicorn's handler run as before."""
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        _stop_signal.setdefault("term", time.monotonic())
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)
    # signal.signal() makes the signal interrupt system calls again; gunicorn
    # turns that off so a SIGTERM does not break the request in hand.
    signal.siginterrupt(signal.SIGTERM, False)


def worker_int(worker: Any) -> None:
    """SIGINT or SIGQUIT: gunicorn's quick shutdown; pending answers are not waited for."""
    _stop_signal.setdefault("quick", time.monotonic())


def shutdown_budget(now: float, graceful: float, timeout: float) -> float:
    """Seconds the dispatchers may take, from ``now``, before gunicorn kills the worker."""
    if "quick" in _stop_signal:
        return 0.0
    limit = min(graceful, timeout) if timeout else graceful
    since = _stop_signal.get("term", now)
    return max(0.0, limit - (now - since) - EXIT_MARGIN)


def worker_exit(server: Any, worker: Any) -> None:
    """Answer every accepted message the time allows before this worker process ends."""
    from .core.dispatch import shutdown_all

    cfg = server.cfg
    budget = shutdown_budget(time.monotonic(), cfg.graceful_timeout, cfg.timeout)
    if not shutdown_all(timeout=budget):
        server.log.error("worker %s exited with unanswered messages", worker.pid)


# -- Prometheus metrics, added up across workers (prometheus_client's multiprocess mode)

#: The port (and address) the master serves every worker's metrics on, when set.
METRICS_PORT_VARIABLE = "METRICS_PORT"
METRICS_ADDR_VARIABLE = "METRICS_ADDR"


def on_starting(server: Any) -> None:
    """Before any worker: an empty ``PROMETHEUS_MULTIPROC_DIR`` (made when only the port is set)."""
    from .core.metrics import MULTIPROC_DIR_VARIABLE, clear_multiprocess_dir

    if os.environ.get(METRICS_PORT_VARIABLE) and not os.environ.get(MULTIPROC_DIR_VARIABLE):
        # Set before any worker (or this master) imports prometheus_client.
        os.environ[MULTIPROC_DIR_VARIABLE] = tempfile.mkdtemp(prefix="cel-whatsapp-metrics-")
    removed = clear_multiprocess_dir()
    if removed:
        server.log.info("removed %d metrics file(s) of an earlier run", removed)


def when_ready(server: Any) -> None:
    """Serve every worker's metrics, added up, on the internal metrics port (``METRICS_PORT``)."""
    port = os.environ.get(METRICS_PORT_VARIABLE)
    if not port:
        return
    from .core.metrics import serve_metrics

    address = os.environ.get(METRICS_ADDR_VARIABLE, "127.0.0.1")
    serve_metrics(int(port), address)
    server.log.info("metrics served at http://%s:%s/metrics", address, port)


def child_exit(server: Any, worker: Any) -> None:
    """A worker ended: its live gauges (``whatsapp_dispatch_pending``) stop counting."""
    from .core.metrics import mark_process_dead

    mark_process_dead(worker.pid)
