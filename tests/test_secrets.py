"""Secrets are checked when configured, and no failure of requests carries the token out.

A token read from a file often ends with a line break: it is stripped. One
with a control character inside is refused at start-up, naming the setting
but never showing the value. Whatever requests (or urllib3 under it)
raises comes out as one of our errors, whose message, chained exceptions and
logged tracebacks never hold the token.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import urllib3
from flask import Flask
from requests.adapters import HTTPAdapter

from cel_whatsapp import (
    CelWhatsappError,
    ConfigurationError,
    GraphAPIError,
    GraphRequestError,
    GraphTransportError,
    MediaAttachment,
    Message,
    WhatsappConnector,
)
from cel_whatsapp.config import clean_secret
from cel_whatsapp.core.graph import GraphClient
from cel_whatsapp.flask.connector import CONNECTORS_KEY
from cel_whatsapp.testing import FakeGraphAPI, text_webhook

from .components import free_port
from .conftest import (
    APP_SECRET,
    PHONE_NUMBER_ID,
    TOKEN,
    VERIFY_TOKEN,
    MakeConnector,
    make_app,
    post_webhook,
)
from .listeners import Listener, certificate, listening

SECRET = "EAAG-secret-part-never-shown"
SEND = ["whatsapp", "send", "--to", "16505551234", "hello"]


def _app_from_config(graph: FakeGraphAPI, **config: str) -> Flask:
    app = Flask(__name__)
    app.config.update(
        WHATSAPP_TOKEN=TOKEN,
        WHATSAPP_PHONE_NUMBER_ID=PHONE_NUMBER_ID,
        WHATSAPP_VERIFY_TOKEN=VERIFY_TOKEN,
        WHATSAPP_APP_SECRET=APP_SECRET,
        WHATSAPP_BASE_URL=graph.base_url,
    )
    app.config.update(config)
    connector = WhatsappConnector(
        assistant=lambda message: f"You said: {message.text}", dispatch="inline"
    )
    connector.init_app(app)
    return app


def _formatted(records: list[logging.LogRecord]) -> str:
    """Every record as a handler would write it, tracebacks and chained exceptions included."""
    formatter = logging.Formatter()
    return "\n".join(formatter.format(record) for record in records)


# -- stripped at configuration -------------------------------------------------------


@pytest.mark.parametrize("around", ["\n", "\r\n", " \t", "\n\n"])
@pytest.mark.parametrize("source", ["constructor", "app.config", "environment"])
def test_secrets_with_whitespace_around_them_are_stripped_and_work(
    graph: FakeGraphAPI, monkeypatch: pytest.MonkeyPatch, source: str, around: str
) -> None:
    values = {
        "WHATSAPP_TOKEN": TOKEN + around,
        "WHATSAPP_VERIFY_TOKEN": around + VERIFY_TOKEN + around,
        "WHATSAPP_APP_SECRET": APP_SECRET + around,
    }
    app = Flask(__name__)
    app.config.update(WHATSAPP_PHONE_NUMBER_ID=PHONE_NUMBER_ID, WHATSAPP_BASE_URL=graph.base_url)
    arguments: dict[str, Any] = {}
    if source == "constructor":
        arguments = {
            "token": values["WHATSAPP_TOKEN"],
            "verify_token": values["WHATSAPP_VERIFY_TOKEN"],
            "app_secret": values["WHATSAPP_APP_SECRET"],
        }
    elif source == "app.config":
        app.config.update(values)
    else:
        for key, value in values.items():
            monkeypatch.setenv(key, value)
    connector = WhatsappConnector(
        assistant=lambda message: f"You said: {message.text}", dispatch="inline", **arguments
    )
    connector.init_app(app)
    assert (
        connector.core(app).settings.token,
        connector.core(app).settings.verify_token,
        connector.core(app).settings.app_secret,
    ) == (
        TOKEN,
        VERIFY_TOKEN,
        APP_SECRET,
    )
    client = app.test_client()
    verified = client.get(
        "/whatsapp",
        query_string={
            "hub.mode": "subscribe",
            "hub.verify_token": VERIFY_TOKEN,
            "hub.challenge": "42",
        },
    )
    assert verified.status_code == 200
    assert post_webhook(client, text_webhook("hi")).status_code == 200  # signed with APP_SECRET
    assert graph.sent_texts() == ["You said: hi"]  # the fake accepts only "Bearer " + TOKEN
    assert {r.headers["authorization"] for r in graph.requests} == {f"Bearer {TOKEN}"}


def test_the_cli_works_with_a_token_from_a_file(
    graph: FakeGraphAPI, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret_file = tmp_path / "token"
    secret_file.write_text(TOKEN + "\n", encoding="utf-8")  # as `echo $TOKEN > file` writes it
    monkeypatch.setenv("WHATSAPP_TOKEN", secret_file.read_text(encoding="utf-8"))
    app = _app_from_config(graph, WHATSAPP_TOKEN="")  # "" in app.config: read the environment
    result = app.test_cli_runner().invoke(args=SEND)
    assert result.exit_code == 0, result.output
    assert graph.sent_texts() == ["hello"]


def test_a_blank_token_counts_as_missing(graph: FakeGraphAPI) -> None:
    with pytest.raises(ConfigurationError, match="missing required settings") as info:
        _app_from_config(graph, WHATSAPP_TOKEN=" \n")
    assert "WHATSAPP_TOKEN" in str(info.value)


# -- refused at configuration --------------------------------------------------------

INSIDE = {
    "line break": "\n",
    "carriage return": "\r",
    "NUL": "\x00",
    "tab": "\t",
    "escape": "\x1b",
    "DEL": "\x7f",
    "C1 next line": "\x85",
}
NOT_ASCII = {"Latin-1 letter": "é", "Cyrillic": "ж", "no-break space": "\u00a0x", "emoji": "🔑"}


def _secret_with(character: str) -> str:
    return SECRET[:10] + character + SECRET[10:]


def _assert_never_shown(error: BaseException) -> None:
    text = "".join(traceback.format_exception(error))
    assert SECRET[:10] not in text
    assert SECRET[10:] not in text


@pytest.mark.parametrize("character", INSIDE.values(), ids=INSIDE.keys())
@pytest.mark.parametrize("key", ["WHATSAPP_TOKEN", "WHATSAPP_VERIFY_TOKEN", "WHATSAPP_APP_SECRET"])
def test_a_control_character_inside_a_secret_fails_registration(
    graph: FakeGraphAPI, key: str, character: str
) -> None:
    with pytest.raises(ConfigurationError, match=key) as info:
        _app_from_config(graph, **{key: _secret_with(character)})
    assert "control character" in str(info.value)
    _assert_never_shown(info.value)


IN_ENVIRONMENT = {name: c for name, c in INSIDE.items() if c != "\x00"}  # no NUL in os.environ


@pytest.mark.parametrize("character", IN_ENVIRONMENT.values(), ids=IN_ENVIRONMENT.keys())
def test_a_control_character_inside_an_environment_token_fails_registration(
    graph: FakeGraphAPI, monkeypatch: pytest.MonkeyPatch, character: str
) -> None:
    monkeypatch.setenv("WHATSAPP_TOKEN", _secret_with(character) + "\n")
    with pytest.raises(ConfigurationError, match="WHATSAPP_TOKEN") as info:
        _app_from_config(graph, WHATSAPP_TOKEN="")
    _assert_never_shown(info.value)


@pytest.mark.parametrize("character", NOT_ASCII.values(), ids=NOT_ASCII.keys())
def test_a_token_that_is_not_ascii_fails_registration(graph: FakeGraphAPI, character: str) -> None:
    with pytest.raises(ConfigurationError, match=r"WHATSAPP_TOKEN.*printable ASCII") as info:
        _app_from_config(graph, WHATSAPP_TOKEN=_secret_with(character))
    _assert_never_shown(info.value)


def test_the_verify_token_may_be_any_text_without_control_characters(graph: FakeGraphAPI) -> None:
    app = _app_from_config(graph, WHATSAPP_VERIFY_TOKEN="vérifié ✓")
    answer = app.test_client().get(
        "/whatsapp",
        query_string={
            "hub.mode": "subscribe",
            "hub.verify_token": "vérifié ✓",
            "hub.challenge": "7",
        },
    )
    assert answer.get_data(as_text=True) == "7"


@pytest.mark.parametrize("keyword", ["token", "verify_token", "app_secret"])
def test_a_bad_constructor_argument_is_refused_at_once(keyword: str) -> None:
    with pytest.raises(ConfigurationError, match="WHATSAPP_") as info:
        WhatsappConnector(**{keyword: _secret_with("\n")})  # type: ignore[arg-type]
    _assert_never_shown(info.value)


@pytest.mark.parametrize(
    "character", [*INSIDE.values(), *NOT_ASCII.values()], ids=[*INSIDE, *NOT_ASCII]
)
def test_graph_client_refuses_a_bad_token(character: str) -> None:
    with pytest.raises(ConfigurationError, match="GraphClient's token") as info:
        GraphClient(_secret_with(character), "https://graph.example.invalid/v25.0")
    _assert_never_shown(info.value)


def test_graph_client_strips_the_token(graph: FakeGraphAPI) -> None:
    client = GraphClient(f" {TOKEN}\r\n", graph.base_url)
    payload = {"messaging_product": "whatsapp", "to": "1", "type": "text", "text": {"body": "hi"}}
    client.send_message(PHONE_NUMBER_ID, payload)
    assert graph.requests[0].headers["authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize("token", ["", " ", "\n"])
def test_graph_client_refuses_an_empty_token(token: str) -> None:
    with pytest.raises(ConfigurationError, match="needs an access token"):
        GraphClient(token, "https://graph.example.invalid/v25.0")


def test_clean_secret_refuses_what_is_not_text() -> None:
    with pytest.raises(ConfigurationError, match="WHATSAPP_TOKEN must be a string, not bytes"):
        clean_secret("WHATSAPP_TOKEN", b"EAAG")


# -- failures with the token past validation, through the CLI and the webhook ---------


@pytest.fixture(scope="module")
def _untrusted_certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return certificate(tmp_path_factory.mktemp("tls"), ["graph.example.invalid"])


@pytest.fixture
def untrusted_tls(_untrusted_certificate: tuple[Path, Path]) -> Iterator[Listener]:
    """An HTTPS server whose certificate nobody vouches for."""
    with listening(b"{}", tls=_untrusted_certificate) as listener:
        yield listener


def _broken(make_connector: MakeConnector, mode: str, untrusted: Listener, **kwargs: Any) -> Flask:
    """An app whose connector's sends fail the way ``mode`` says."""
    if mode == "unreachable":
        kwargs["base_url"] = f"http://127.0.0.1:{free_port()}/v25.0"
    elif mode == "tls":
        kwargs["base_url"] = f"{untrusted.root_url}/v25.0"
    connector = make_connector(retry_attempts=1, **kwargs)
    app = make_app(connector)
    if mode in ("header", "not latin-1"):
        # Past the configuration check, as a user's own code could do it:
        # on the session the client built, whose requests are prepared once.
        suffix = "\n" if mode == "header" else "ж"
        connector.core(app).graph.session.headers["Authorization"] = f"Bearer {TOKEN}{suffix}"
    return app


MODES = ["header", "not latin-1", "unreachable", "tls"]


@pytest.mark.parametrize("mode", MODES)
def test_the_cli_never_prints_or_logs_the_token(
    make_connector: MakeConnector,
    graph: FakeGraphAPI,
    untrusted_tls: Listener,
    caplog: pytest.LogCaptureFixture,
    mode: str,
) -> None:
    runner = _broken(make_connector, mode, untrusted_tls).test_cli_runner()
    with caplog.at_level(logging.DEBUG):
        result = runner.invoke(args=SEND)
    assert result.exit_code == 1
    assert result.output.startswith("Error: ")
    assert TOKEN not in result.output
    assert TOKEN not in result.stderr
    assert TOKEN not in _formatted(caplog.records)
    assert graph.sent() == []


@pytest.mark.parametrize("mode", MODES)
def test_a_webhook_whose_answer_fails_never_logs_the_token(
    make_connector: MakeConnector,
    graph: FakeGraphAPI,
    untrusted_tls: Listener,
    caplog: pytest.LogCaptureFixture,
    mode: str,
) -> None:
    failures: list[GraphAPIError] = []

    def record(message: Message, error: GraphAPIError) -> None:
        failures.append(error)

    app = _broken(make_connector, mode, untrusted_tls, assistant=lambda message: "an answer")
    app.extensions[CONNECTORS_KEY]["whatsapp"].on_send_error(record)
    client = app.test_client()
    with caplog.at_level(logging.DEBUG):
        assert post_webhook(client, text_webhook("hi")).status_code == 200
    [error] = failures  # a Graph error, handed to on_send_error as documented
    expected = GraphRequestError if mode in ("header", "not latin-1") else GraphTransportError
    assert isinstance(error, expected)
    assert TOKEN not in "".join(traceback.format_exception(error))
    logged = _formatted(caplog.records)
    assert "sending the answer to message" in logged
    assert TOKEN not in logged


def test_a_bad_header_is_not_sent_again(make_connector: MakeConnector, graph: FakeGraphAPI) -> None:
    connector = make_connector()  # retries on: 5 attempts
    connector.core().graph.session.headers["Authorization"] = f"Bearer {TOKEN}\n"
    with pytest.raises(GraphRequestError) as info:
        connector.send("16505551234", "hi")
    assert info.value.request_sent is False
    assert info.value.retryable is False
    assert info.value.__cause__ is None  # InvalidHeader's text is the header: not chained
    assert graph.requests == []
    # Nor tried again by the retry policy, which would fail the same way.
    session = requests.Session()
    adapter = RaisingAdapter(requests.exceptions.InvalidHeader("bad"))
    session.mount("http://", adapter)
    with pytest.raises(GraphRequestError):
        make_connector(session=session).send("16505551234", "hi")
    assert adapter.sends == 1


# -- every exception of requests comes out as ours -----------------------------------


def _requests_exceptions() -> list[type[Exception]]:
    found = {
        value
        for value in vars(requests.exceptions).values()
        if isinstance(value, type) and issubclass(value, requests.RequestException)
    }
    return sorted(found, key=lambda cls: cls.__name__)


MARKER = "text-of-the-original-exception"


def _instance(cls: type[BaseException]) -> BaseException:
    if issubclass(cls, UnicodeEncodeError):
        return cls("latin-1", f"Bearer {TOKEN}ж", 33, 34, MARKER)
    if issubclass(cls, requests.exceptions.JSONDecodeError):
        return cls(MARKER, "{", 1)
    return cls(MARKER)


RAISED = [
    *_requests_exceptions(),
    urllib3.exceptions.HTTPError,
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.LocationParseError,
    UnicodeEncodeError,
]


class RaisingAdapter(HTTPAdapter):
    """Raises ``exception`` from every send, as a failing transport would."""

    def __init__(self, exception: BaseException) -> None:
        super().__init__()
        self.exception = exception
        self.sends = 0

    def send(self, *args: Any, **kwargs: Any) -> requests.Response:
        self.sends += 1
        raise self.exception


def _upload(connector: WhatsappConnector, graph: FakeGraphAPI) -> object:
    return connector.upload_media(b"\x89PNG", "image/png")


def _send(connector: WhatsappConnector, graph: FakeGraphAPI) -> object:
    return connector.send("16505551234", "hi")


def _download(connector: WhatsappConnector, graph: FakeGraphAPI) -> object:
    media_id = graph.add_media(b"bytes")
    # The URL saves the lookup: the download's own GET is the one that fails.
    return connector.download_media(
        MediaAttachment("image", media_id, url=graph.media_url(media_id))
    )


@pytest.mark.parametrize("call", [_send, _upload, _download], ids=["send", "upload", "download"])
@pytest.mark.parametrize("raised", RAISED, ids=[cls.__name__ for cls in RAISED])
def test_any_error_of_the_transport_comes_out_as_ours(
    make_connector: MakeConnector,
    graph: FakeGraphAPI,
    raised: type[BaseException],
    call: Any,
) -> None:
    session = requests.Session()
    adapter = RaisingAdapter(_instance(raised))
    session.mount("http://", adapter)
    connector = make_connector(session=session, retry_attempts=1)
    with pytest.raises(CelWhatsappError) as info:
        call(connector, graph)
    error = info.value
    assert isinstance(error, GraphAPIError)
    assert not isinstance(error, requests.RequestException)
    assert raised.__name__ in str(error)  # what failed, by name
    assert MARKER not in str(error)  # never the text, which may hold a header value
    assert adapter.sends == 1


@pytest.mark.parametrize(
    ("raised", "expected", "sent"),
    [
        (requests.exceptions.InvalidHeader, GraphRequestError, False),
        (requests.exceptions.InvalidURL, GraphRequestError, False),
        (requests.exceptions.MissingSchema, GraphRequestError, False),
        (requests.exceptions.InvalidJSONError, GraphRequestError, False),
        (UnicodeEncodeError, GraphRequestError, False),
        (requests.exceptions.ConnectTimeout, GraphTransportError, False),
        (requests.exceptions.ReadTimeout, GraphTransportError, True),
        (requests.exceptions.SSLError, GraphTransportError, True),
        (requests.exceptions.ChunkedEncodingError, GraphTransportError, True),
        (requests.exceptions.RequestException, GraphTransportError, True),
        (urllib3.exceptions.ProtocolError, GraphTransportError, True),
    ],
)
def test_request_sent_says_whether_the_request_may_have_left(
    make_connector: MakeConnector,
    graph: FakeGraphAPI,
    raised: type[BaseException],
    expected: type[GraphAPIError],
    sent: bool,
) -> None:
    session = requests.Session()
    session.mount("http://", RaisingAdapter(_instance(raised)))
    connector = make_connector(session=session, retry_attempts=1)
    with pytest.raises(expected) as info:
        connector.send("16505551234", "hi")
    assert info.value.request_sent is sent  # type: ignore[attr-defined]


def test_an_invalid_header_is_never_chained_nor_shown(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    session = requests.Session()
    header = requests.exceptions.InvalidHeader(f"Invalid header value: 'Bearer {TOKEN}\\n'")
    session.mount("http://", RaisingAdapter(header))
    connector = make_connector(session=session, retry_attempts=1)
    with pytest.raises(GraphRequestError) as info:
        connector.send("16505551234", "hi")
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__
    assert TOKEN not in "".join(traceback.format_exception(info.value))
