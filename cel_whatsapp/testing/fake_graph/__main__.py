"""``python -m cel_whatsapp.testing.fake_graph``: the fake Graph API as a server of its own.

For trying a deployment without Meta: point the app's ``WHATSAPP_BASE_URL``
at it, post a signed webhook with curl, and read what the app sent back on
this program's standard output, one line per request::

    python -m cel_whatsapp.testing.fake_graph --port 8089
    WHATSAPP_BASE_URL=http://127.0.0.1:8089/v25.0 gunicorn ... "myproject:create_app()"

It answers like :class:`~cel_whatsapp.testing.FakeGraphAPI` in tests (Meta's
shapes, Meta's refusals of malformed sends). Any access token is accepted
unless ``--token`` names the one to require. Headers are never printed, so
the token does not end up in a terminal's scrollback; message bodies are.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any

from ...config import DEFAULT_API_VERSION
from . import FakeGraphAPI, RecordedRequest

#: The port used when none is given (the one the deployment docs' curl examples use).
DEFAULT_PORT = 8089
#: The first line printed once the server listens; tools wait for it.
READY = "fake Graph API listening:"


class ConsoleFakeGraphAPI(FakeGraphAPI):
    """A :class:`FakeGraphAPI` that writes one line per request it answers to stdout."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._output = threading.Lock()

    def answer(self, request: RecordedRequest) -> tuple[int, dict[str, Any], dict[str, str]]:
        status, body, headers = super().answer(request)
        self.show(f"{request.method} {request.path} {status} {_describe(request, status, body)}")
        return status, body, headers

    def show(self, line: str) -> None:
        """Write ``line`` to stdout at once (a pipe would otherwise hold it back)."""
        with self._output:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()


def _describe(request: RecordedRequest, status: int, body: dict[str, Any]) -> str:
    if request.json is not None:
        sent = json.dumps(request.json, ensure_ascii=False)
    elif request.body:
        sent = f"({len(request.body)} bytes, {request.headers.get('content-type', 'no type')})"
    else:
        sent = "(no body)"
    if status >= 400:
        return f"{sent} => {json.dumps(body, ensure_ascii=False)}"
    return sent


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m cel_whatsapp.testing.fake_graph",
        description=(
            "A local fake of the WhatsApp Cloud API (Graph API) for trying a deployment "
            "without Meta. Prints one line per request it receives."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (%(default)s)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="port to listen on, 0 for any (%(default)s)"
    )
    parser.add_argument(
        "--token", default=None, help="the only access token to accept (default: any)"
    )
    parser.add_argument(
        "--api-version", default=DEFAULT_API_VERSION, help="Graph API version (%(default)s)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        fake = ConsoleFakeGraphAPI(
            host=args.host, port=args.port, api_version=args.api_version, token=args.token
        )
    except OSError as exc:
        sys.stderr.write(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror}\n")
        return 2
    stopped = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    fake.start()
    accepts = "only the --token given" if args.token else "any token"
    fake.show(f"{READY} WHATSAPP_BASE_URL={fake.base_url} (accepts {accepts}; Ctrl+C stops)")
    try:
        # A timeout keeps the main thread responsive to signals on every platform.
        while not stopped.wait(0.5):
            pass
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
