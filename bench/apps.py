"""The WSGI apps the benchmark serves under gunicorn, one factory per scenario.

gunicorn imports ``bench.apps:build('<kind>', ...)`` in each worker. The Graph
API's address and the credentials come from the environment the bench sets
(``BENCH_GRAPH_URL``...). Each factory imports only what its row needs, so
the bare floor's memory figure is not inflated by modules it never uses.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import inspect
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from flask import Flask, request

from .constants import (
    API_VERSION,
    APP_SECRET,
    PHONE_NUMBER_ID,
    TOKEN,
    VERIFY_TOKEN,
    WEBHOOK_PATH,
)

if TYPE_CHECKING:
    from cel_whatsapp import Message


#: Messages/s per number no bench run reaches (see _connector).
UNREACHED_THROUGHPUT = 1_000_000.0

#: Scenario 2's queue bound per worker (see _connector).
BACKGROUND_MAX_PENDING = 100_000


def build(kind: str, **options: Any) -> Flask:
    """The app for one row of the table (called by gunicorn in each worker)."""
    factories = {
        "floor": _floor,
        "handwritten": _handwritten,
        "connector": _connector,
        "pywa": _pywa,
    }
    return factories[kind](**options)


def pywa_version() -> str | None:
    """pywa's version when it is installed (``pip install -e ".[bench]"``), else ``None``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pywa")
    except PackageNotFoundError:
        return None


def connector_accepts(keyword: str) -> bool:
    """Whether :class:`cel_whatsapp.WhatsappConnector` takes ``keyword`` (e.g. ``dispatch``)."""
    from cel_whatsapp import WhatsappConnector

    return keyword in inspect.signature(WhatsappConnector).parameters


def _graph_url() -> str:
    return os.environ["BENCH_GRAPH_URL"]


# -- the floor: Flask parsing the JSON and answering "OK" ----------------------


def _floor() -> Flask:
    app = Flask("bench_floor")

    @app.post(WEBHOOK_PATH)
    def receive() -> str:
        request.get_json(force=True)
        return "OK"

    return app


# -- the reference: what a careful hand-written view does ----------------------


def _handwritten(transport: str = "requests") -> Flask:
    """Signature check, a hand-walked payload, one reply per text message.

    ``transport`` says how the reply is posted: ``"requests"``, a default
    ``requests.Session`` (it re-reads proxy and ``.netrc`` settings from the
    environment on every call); ``"requests-prepared"``, the leanest use of
    requests' public API (a prepared request copied per post, the
    environment's settings given explicitly, ``Session.send``: the floor under
    the connector's own sends); ``"requests-prepared-adapter"``, the same with
    the connector's ``HTTPClientAdapter`` mounted; ``"urllib3"``, a bare urllib3 connection pool
    (what requests itself sits on); ``"http.client"``, the standard library's
    connection, one per thread. The last two show what the HTTP stack alone
    costs: no proxies, no TLS settings, no error handling to speak of.
    """
    app = Flask("bench_handwritten")
    secret = APP_SECRET.encode()
    url = f"{_graph_url()}/{PHONE_NUMBER_ID}/messages"
    post = _poster(transport, url)

    @app.post(WEBHOOK_PATH)
    def receive() -> tuple[str, int]:
        body = request.get_data()
        expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        given = request.headers.get("X-Hub-Signature-256", "")
        if not hmac.compare_digest(expected.encode(), given.encode()):
            return "bad signature", 403
        data = json.loads(body)
        for entry in data.get("entry", []):
            for change in entry.get("changes", []):
                for message in change.get("value", {}).get("messages", []):
                    if message.get("type") != "text":
                        continue
                    post(
                        {
                            "messaging_product": "whatsapp",
                            "recipient_type": "individual",
                            "to": message["from"],
                            "type": "text",
                            "text": {"body": message["text"]["body"]},
                        }
                    )
        return "OK", 200

    return app


def _poster(transport: str, url: str) -> Callable[[dict[str, Any]], None]:
    """A function posting one JSON reply to ``url`` and checking the answer."""
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    if transport == "requests":
        import requests

        session = requests.Session()
        session.headers["Authorization"] = headers["Authorization"]

        def post_requests(reply: dict[str, Any]) -> None:
            session.post(url, json=reply, timeout=(3.05, 20)).raise_for_status()

        return post_requests
    if transport in ("requests-prepared", "requests-prepared-adapter"):
        # The least requests' public API lets a post cost: the request
        # prepared once and copied, the environment's settings passed
        # explicitly, Session.send itself (what the connector's sending.py does).
        # "-adapter": the same on the transport adapter the connector's own
        # session mounts (cel_whatsapp/core/transport.py).
        import requests

        session = requests.Session()
        session.trust_env = False
        if transport == "requests-prepared-adapter":
            from cel_whatsapp.core.transport import HTTPClientAdapter

            session.mount("http://", HTTPClientAdapter())
        prepared = session.prepare_request(requests.Request("POST", url, headers=headers))

        def post_prepared(reply: dict[str, Any]) -> None:
            copy = prepared.copy()
            copy.prepare_body(None, None, reply)
            answer = session.send(
                copy, timeout=(3.05, 20), allow_redirects=False, proxies={}, verify=True
            )
            answer.raise_for_status()
            json.loads(answer.content)

        return post_prepared
    parts = urlsplit(url)
    host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path
    if transport == "urllib3":
        import urllib3

        pool = urllib3.HTTPConnectionPool(host, port, maxsize=8)
        timeout = urllib3.Timeout(connect=3.05, read=20)

        def post_urllib3(reply: dict[str, Any]) -> None:
            answer = pool.urlopen(
                "POST", path, body=json.dumps(reply), headers=headers, timeout=timeout
            )
            if answer.status != 200:
                raise RuntimeError(f"Graph answered {answer.status}")
            json.loads(answer.data)

        return post_urllib3
    local = threading.local()

    def post_http_client(reply: dict[str, Any]) -> None:
        connection = getattr(local, "connection", None)
        if connection is None:
            connection = local.connection = http.client.HTTPConnection(host, port, timeout=20)
        connection.request("POST", path, json.dumps(reply), headers)
        answer = connection.getresponse()
        data = answer.read()
        if answer.status != 200:
            raise RuntimeError(f"Graph answered {answer.status}")
        json.loads(data)

    return post_http_client


# -- the connector ----------------------------------------------------------------


def _echo(message: Message) -> str | None:
    return message.text


def _silent(message: Message) -> None:
    return None


def _slow(message: Message) -> str:
    time.sleep(2.0)
    return f"Thought hard about: {message.text}"


def _streaming(message: Message) -> Iterator[str]:
    """Three sentences over 1.5 s, the way a language model streams them.

    Each sentence carries ``(end <CLOCK_MONOTONIC ns>)``: the moment its last
    chunk was produced, so the fake can tell how long the send took.
    """
    yield f"Answer to {message.text} is"
    for words in (" the first", " part of", " my answer"):
        time.sleep(0.1)
        yield words
    time.sleep(0.2)
    yield f" (end {time.monotonic_ns()}). Then"
    for words in (" comes", " a second", " one"):
        time.sleep(0.1)
        yield words
    time.sleep(0.2)
    yield f" (end {time.monotonic_ns()})! "
    for words in ("And the", " last", " sentence"):
        time.sleep(0.1)
        yield words
    time.sleep(0.2)
    yield f" (end {time.monotonic_ns()})."


_ASSISTANTS = {"echo": _echo, "silent": _silent, "slow": _slow, "streaming": _streaming}


def _connector(
    assistant: str = "echo",
    stream_mode: str = "full",
    dispatch: str | None = None,
    defaults: bool = False,
    throughput: float | None = None,
) -> Flask:
    """The connector; ``defaults=True`` keeps the background dispatcher as shipped.

    ``throughput`` sets the business number's messages per second for the
    delivery rate control, where the connector has one. ``None``: a rate no
    run reaches, so the rows count the pacer's work (a token from the
    number's bucket and the user's, for every send) but never its waits:
    Meta's default 80 messages/s per number would otherwise be what they
    measure.
    """
    from cel_whatsapp import WhatsappConnector

    options: dict[str, Any] = {}
    if connector_accepts("delivery_rate_control"):
        from cel_whatsapp.core.rates import RateControl

        rate = throughput if throughput is not None else UNREACHED_THROUGHPUT
        options["delivery_rate_control"] = RateControl(messages_per_second=rate)
    if dispatch == "background" and defaults:
        options["dispatch"] = "background"
    elif dispatch == "background":
        # Raised queue bound: the row measures acks while thousands of
        # 2-second answers wait, not the back-pressure policy that refuses
        # webhooks (503) past the default 1,000 pending per worker.
        from cel_whatsapp.core.dispatch import BackgroundDispatcher

        options["dispatch"] = BackgroundDispatcher(max_pending=BACKGROUND_MAX_PENDING)
    elif dispatch is not None:
        # The bench only asks for a dispatch mode the connector knows; the
        # runner skips the row otherwise (see connector_accepts).
        options["dispatch"] = dispatch
    app = Flask("bench_connector")
    WhatsappConnector(
        TOKEN,
        PHONE_NUMBER_ID,
        VERIFY_TOKEN,
        WEBHOOK_PATH,
        stream_mode,
        assistant=_ASSISTANTS[assistant],
        app_secret=APP_SECRET,
        base_url=_graph_url(),
        read_receipts=False,
        app=app,
        **options,
    )
    return app


# -- pywa: the reference library ----------------------------------------------------


def _pywa() -> Flask:
    """pywa's ``WhatsApp`` on a Flask app, echoing text messages like row 1.

    Same webhook path, credentials and signature check (``app_secret`` with
    pywa's default ``validate_updates=True``) as the connector's echo row. On
    a Flask server pywa's sync client runs the handlers inside the request,
    so the reply is posted before the webhook is answered, as with our
    ``dispatch="inline"``. Its defaults stay as a user gets them (duplicate
    updates skipped, updates of other numbers filtered out); no
    ``callback_url`` is given, so nothing is registered with Meta at
    start-up, and no read receipt is sent.

    pywa 4.5 sets the base URL of the ``httpx.Client`` it is given to
    ``https://graph.facebook.com/v<api_version>`` and has no option for
    another host. The client is ours, so once pywa has it, its public
    ``base_url`` setter points it at the fake; pywa's requests are relative
    to it. Replies go to the phone number (``wa_id``) first, as ours do,
    rather than pywa's default of the business-scoped user id.
    """
    import httpx
    from pywa import WhatsApp, filters, types
    from pywa.utils import UserIdentifier

    app = Flask("bench_pywa")
    session = httpx.Client()
    wa = WhatsApp(
        phone_id=PHONE_NUMBER_ID,
        token=TOKEN,
        session=session,
        server=app,
        webhook_endpoint=WEBHOOK_PATH,
        verify_token=VERIFY_TOKEN,
        app_secret=APP_SECRET,
        api_version=API_VERSION.removeprefix("v"),
        user_identifier_priority=(
            UserIdentifier.WA_ID,
            UserIdentifier.BSUID,
            UserIdentifier.PARENT_BSUID,
        ),
    )
    session.base_url = httpx.URL(_graph_url())

    @wa.on_message(filters.text)
    def echo(_: WhatsApp, message: types.Message) -> None:
        message.reply_text(message.text)

    return app
