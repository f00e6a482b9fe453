"""``tests.gunicorn_app``, plus a line on stderr when the worker process ends on its own.

The atexit handler is registered before cel_whatsapp is imported, so it runs
last: after ``worker_exit`` and the dispatcher's own exit handler. A worker
killed by gunicorn never prints it.
"""

from __future__ import annotations

import atexit
import os
import sys

ENDED = "worker process ended on its own"


def _ended() -> None:
    sys.stderr.write(f"{os.getpid()} {ENDED}\n")
    sys.stderr.flush()


atexit.register(_ended)

from .gunicorn_app import create_app  # noqa: E402 - after the handler, on purpose

__all__ = ["create_app"]
