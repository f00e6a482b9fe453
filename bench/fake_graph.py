"""A lean fake of the Graph API's ``POST /{id}/messages`` for load tests.

:class:`cel_whatsapp.testing.FakeGraphAPI` parses every request with
``http.server`` (a thread per connection, headers through the ``email``
package): fine for tests, but at thousands of replies per second it would
compete with the gunicorn workers for the two cores and become the
bottleneck. This one is a single asyncio loop with keep-alive and a minimal
HTTP/1.1 parser, run in its own process (``python -m bench.fake_graph``).

It answers like Meta (``{"messaging_product", "contacts", "messages":
[{"id": wamid}]}``), refuses requests without a bearer token or without
``messaging_product``, and records for each message received the
``CLOCK_MONOTONIC`` arrival time (shared by all processes of the machine) and,
when the text carries a ``(end <ns>)`` marker, the time the assistant
finished that sentence. ``GET /_stats`` returns what it recorded as JSON and
``POST /_reset`` forgets it, except the totals by the replies' first two
words (``POST /_reset_totals``), which tell rows apart when several servers
reply at once. ``--delay SECONDS`` makes every ``/messages`` call wait that
long before its answer, as the real Graph API does (100-300 ms); the arrival
is recorded at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import sys
import time
from typing import Any

_MARKER = re.compile(r"\(end (\d+)\)")


class Recorder:
    """What the fake has received since the last reset."""

    def __init__(self) -> None:
        self.totals: dict[str, list[int]] = {}
        self.reset()

    def reset(self) -> None:
        """Forget what was received, except :attr:`totals`."""
        self.messages = 0
        self.rejected = 0
        self.arrivals: list[int] = []
        # (arrival ns, sentence end ns, start of the text)
        self.sentences: list[tuple[int, int, str]] = []

    def count(self, text: str, now: int) -> None:
        """Add to the totals by the text's first two words: [count, first ns, last ns]."""
        key = " ".join(text.split()[:2])
        total = self.totals.get(key)
        if total is None:
            self.totals[key] = [1, now, now]
        else:
            total[0] += 1
            total[2] = now

    def stats(self) -> dict[str, Any]:
        return {
            "totals": self.totals,
            "messages": self.messages,
            "rejected": self.rejected,
            "arrivals": self.arrivals,
            "sentences": self.sentences,
        }


def _answer(status: int, body: bytes) -> bytes:
    reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}[status]
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


def _error(status: int, code: int, message: str) -> bytes:
    body = {"error": {"message": message, "type": "OAuthException", "code": code}}
    return _answer(status, json.dumps(body).encode())


class FakeGraph:
    """The asyncio server; one instance per process."""

    def __init__(self, delay: float = 0.0) -> None:
        self.recorder = Recorder()
        self.delay = delay
        self._ids = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    name, sep, value = line.partition(":")
                    if sep:
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length") or 0)
                body = await reader.readexactly(length) if length else b""
                answer = self.respond(method, path, headers, body)
                if self.delay and path.endswith("/messages"):
                    await asyncio.sleep(self.delay)
                writer.write(answer)
                if headers.get("connection", "").lower() == "close":
                    await writer.drain()
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            with contextlib.suppress(ConnectionError):
                writer.close()

    def respond(self, method: str, path: str, headers: dict[str, str], body: bytes) -> bytes:
        now = time.monotonic_ns()
        recorder = self.recorder
        if path == "/_stats":
            return _answer(200, json.dumps(recorder.stats()).encode())
        if path == "/_reset":
            recorder.reset()
            return _answer(200, b"{}")
        if path == "/_reset_totals":
            recorder.totals.clear()
            return _answer(200, b"{}")
        if method != "POST" or not path.endswith("/messages"):
            return _error(404, 100, "Unsupported request")
        if not headers.get("authorization", "").startswith("Bearer "):
            recorder.rejected += 1
            return _error(401, 190, "Invalid OAuth access token.")
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        if not isinstance(payload, dict) or payload.get("messaging_product") != "whatsapp":
            recorder.rejected += 1
            return _error(400, 100, "(#100) The parameter messaging_product is required.")
        if payload.get("status") == "read":
            return _answer(200, b'{"success":true}')
        text = payload.get("text")
        if payload.get("type") != "text" or not isinstance(text, dict) or not text.get("body"):
            recorder.rejected += 1
            return _error(400, 100, "(#100) The parameter text['body'] is required.")
        recorder.messages += 1
        recorder.arrivals.append(now)
        recorder.count(text["body"], now)
        marker = _MARKER.search(text["body"])
        if marker is not None:
            recorder.sentences.append((now, int(marker.group(1)), text["body"][:80]))
        self._ids += 1
        to = str(payload.get("to") or payload.get("recipient") or "")
        answer = (
            f'{{"messaging_product":"whatsapp","contacts":[{{"input":"{to}","wa_id":"{to}"}}],'
            f'"messages":[{{"id":"wamid.BENCH{self._ids:08d}"}}]}}'
        )
        return _answer(200, answer.encode())


async def serve(port: int, delay: float = 0.0) -> None:
    fake = FakeGraph(delay)
    server = await asyncio.start_server(fake.handle, "127.0.0.1", port, backlog=512)
    bound = server.sockets[0].getsockname()[1]
    # The parent process reads this line to learn the port.
    sys.stdout.write(f"READY {bound}\n")
    sys.stdout.flush()
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--delay", type=float, default=0.0, help="seconds before each /messages answer"
    )
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, args.delay))


if __name__ == "__main__":
    main()
