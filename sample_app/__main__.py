"""``python -m sample_app``: run the demo bot on http://127.0.0.1:5000/ (``PORT``, ``HOST``).

``python -m sample_app --celery`` answers on a Celery worker started beside
the web server (``celery -A sample_app.worker worker``), with Redis as
broker and store: ``REDIS_URL``, or a redis-server started here on a free
local port when it is not set.

With ``METRICS_PORT`` set, Prometheus metrics are served on that port too
(``METRICS_ADDR``, default 127.0.0.1), apart from the site.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from flask import Flask

from cel_whatsapp import WhatsappConnector
from cel_whatsapp.config import BASE_URL_KEY
from cel_whatsapp.simulator.extension import DEFAULT_USER_PHONE

from . import create_app, wants_simulator
from .celery_app import REDIS_URL_ENV

logger = logging.getLogger("sample_app")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sample_app", description=__doc__)
    parser.add_argument(
        "--celery", action="store_true", help="answer on a Celery worker (Redis: REDIS_URL)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "5000"))
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 - only a display name
    if args.celery:
        # A SIGTERM ends the web server like Ctrl-C, so the worker and redis-server stop too.
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
        with _redis() as url, _celery_worker(url, shown, port) as start_worker:
            app = create_app(celery=True)
            start_worker(app.extensions["sample_app.connector"], app)
            _serve(app, host, port, shown)
    else:
        _serve(create_app(), host, port, shown)


def _serve(app: Flask, host: str, port: int, shown: str) -> None:
    if wants_simulator():
        logger.info("open http://%s:%d/ in a browser to chat with the bot", shown, port)
        # The CLI loads the app in a process of its own: the address joins this chat.
        logger.info(
            "send into that chat from a terminal: flask --app sample_app whatsapp send "
            "--base-url %s --to %s hello",
            app.config[BASE_URL_KEY],
            DEFAULT_USER_PHONE,
        )
    else:
        logger.info("webhook at http://%s:%d/whatsapp (put it behind HTTPS for Meta)", shown, port)
    metrics_port = os.environ.get("METRICS_PORT")
    if metrics_port:
        from cel_whatsapp.core.metrics import serve_metrics

        metrics_host = os.environ.get("METRICS_ADDR", "127.0.0.1")
        serve_metrics(int(metrics_port), metrics_host)
        logger.info("metrics at http://%s:%s/metrics", metrics_host, metrics_port)
    # threaded: the simulator page long-polls, and each webhook gets its own thread.
    app.run(host=host, port=port, threaded=True)


@contextmanager
def _redis() -> Iterator[str]:
    """``REDIS_URL``; else a throwaway redis-server on a free local port."""
    url = os.environ.get(REDIS_URL_ENV)
    if url:
        yield url
        return
    executable = shutil.which("redis-server")
    if executable is None:
        raise SystemExit(
            f"--celery needs Redis: set {REDIS_URL_ENV}, or install redis-server "
            "(apt-get install redis-server) and it is started for you"
        )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        redis_port = sock.getsockname()[1]
    server = subprocess.Popen(  # noqa: S603 - a fixed argv, no shell
        [executable, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", ""],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{redis_port}/0"
    try:
        _wait_for_port(redis_port, server)
        logger.info("redis-server started at %s (broker and store)", url)
        os.environ[REDIS_URL_ENV] = url
        yield url
    finally:
        os.environ.pop(REDIS_URL_ENV, None)
        server.terminate()
        server.wait(10)


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("redis-server did not start")


@contextmanager
def _celery_worker(
    url: str, shown: str, port: int
) -> Iterator[Callable[[WhatsappConnector, Flask], None]]:
    """Yields ``start(connector, app)``, which starts a worker answering for that connector.

    The worker gets the app's resolved settings (the simulator's made-up ones
    included) through its environment, since it has no Flask app.
    """
    workers: list[subprocess.Popen[bytes]] = []

    def start(connector: WhatsappConnector, app: Flask) -> None:
        settings = connector.core(app).settings
        env = {
            **os.environ,
            REDIS_URL_ENV: url,
            "WHATSAPP_TOKEN": settings.token or "",
            "WHATSAPP_PHONE_NUMBER_ID": ",".join(settings.phone_number_ids),
            "WHATSAPP_BASE_URL": settings.base_url,
        }
        env.setdefault("DEMO_IMAGE_URL", f"http://{shown}:{port}/demo/picture.png")
        concurrency = os.environ.get("CELERY_CONCURRENCY", "4")
        workers.append(
            subprocess.Popen(  # noqa: S603 - a fixed argv, no shell
                [
                    *(sys.executable, "-m", "celery", "-A", "sample_app.worker", "worker"),
                    *("--loglevel", "INFO", "--concurrency", concurrency),
                ],
                env=env,
            )
        )
        logger.info("celery worker started (%s processes)", concurrency)

    try:
        yield start
    finally:
        for worker in workers:
            worker.terminate()
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()


if __name__ == "__main__":
    main()
