"""Where the access token goes when media is downloaded: Meta's hosts and the Graph API only.

Every host name resolves to a local listener here (an HTTPS one with a
certificate for Meta's media hosts, a plain one for port 80), which records
each ``Authorization`` header it receives: a URL that fools the trust check
would deliver the token to it. Refused URLs must still end in a correct
download through the lookup on the fake Graph API.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cel_whatsapp import GraphAPIError, MediaAttachment, WhatsappConnector, config
from cel_whatsapp.core._trust import token_url
from cel_whatsapp.testing import FakeGraphAPI

from .conftest import TOKEN, MakeConnector
from .listeners import Listener, certificate, listening, resolve_everything_to

PHOTO = os.urandom(70_000)
SECRET_QUERY = "oh=QUERY-SECRET-42"
# The certificate answers for these, as Meta's would (the look-alike too, so
# that a client fooled into going there would get through and show it).
NAMES = (
    "lookaside.fbsbx.com",
    "*.fbsbx.com",
    "xn--lkaside-9iga.fbsbx.com",
    "mmg.whatsapp.net",
    "*.whatsapp.net",
)


@dataclass
class Hosts:
    tls: Listener
    plain: Listener

    def authorizations(self) -> list[str]:
        return self.tls.authorizations() + self.plain.authorizations()


@pytest.fixture(scope="module")
def _certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return certificate(tmp_path_factory.mktemp("tls"), NAMES)


@pytest.fixture
def hosts(_certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[Hosts]:
    key, cert = _certificate
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # read when the client is built
    with listening(PHOTO, tls=(key, cert)) as tls, listening(PHOTO) as plain:
        resolve_everything_to(monkeypatch, plain=plain, tls=tls)
        yield Hosts(tls, plain)


@pytest.fixture
def connector(make_connector: MakeConnector) -> WhatsappConnector:
    return make_connector()


# {port}: the HTTPS listener's port, so that a URL read as 127.0.0.1 reaches it too.
REFUSED = {
    "backslash before @": "https://127.0.0.1:{port}\\@lookaside.fbsbx.com/x?{q}",
    "backslash after the host": "https://lookaside.fbsbx.com\\@127.0.0.1:{port}/x?{q}",
    "backslash in the path": "https://lookaside.fbsbx.com/x\\y?{q}",
    "%5C in userinfo": "https://127.0.0.1:{port}%5C@lookaside.fbsbx.com/x?{q}",
    "%5C after the host": "https://lookaside.fbsbx.com%5C@127.0.0.1:{port}/x?{q}",
    "percent-encoded host": "https://lookaside.fbsbx%2Ecom/x?{q}",
    "tab in the host": "https://lookaside.fbsbx.com\t/x?{q}",
    "tab inside the host": "https://looka\tside.fbsbx.com/x?{q}",
    "newline in the path": "https://lookaside.fbsbx.com/x\n?{q}",
    "CRLF and a header": "https://lookaside.fbsbx.com/x?{q}\r\nX-Injected: 1",
    "NUL": "https://lookaside.fbsbx.com\x00.127.0.0.1/x?{q}",
    "DEL": "https://lookaside.fbsbx.com/x\x7f?{q}",
    "space": "https://lookaside.fbsbx.com /x?{q}",
    "no-break space": "https://lookaside.fbsbx.com\u00a0/x?{q}",
    "@ after a Meta host": "https://lookaside.fbsbx.com@127.0.0.1:{port}/x?{q}",
    "@ in a fragment": "https://127.0.0.1:{port}#@lookaside.fbsbx.com/x",
    "@ in a query": "https://127.0.0.1:{port}?@lookaside.fbsbx.com/x",
    "empty userinfo": "https://@lookaside.fbsbx.com/x?{q}",
    "userinfo": "https://user:pass@lookaside.fbsbx.com/x?{q}",
    "userinfo with port": "https://127.0.0.1:{port}@lookaside.fbsbx.com/x?{q}",
    "trailing dot": "https://lookaside.fbsbx.com./x?{q}",
    "two trailing dots": "https://lookaside.fbsbx.com../x?{q}",
    "empty label": "https://lookaside..fbsbx.com/x?{q}",
    "Cyrillic o look-alike": "https://l\u043e\u043ekaside.fbsbx.com/x?{q}",
    "punycode look-alike": "https://xn--lkaside-9iga.fbsbx.com/x?{q}",
    "fullwidth dot before the domain": "https://lookaside\u3002fbsbx.com/x?{q}",
    "fullwidth dot in the domain": "https://lookaside.fbsbx\u3002com/x?{q}",
    "fullwidth letters": "https://\uff4cookaside.fbsbx.com/x?{q}",
    "uppercase host": "https://LOOKASIDE.FBSBX.COM/x?{q}",
    "mixed-case host": "https://Lookaside.fbsbx.com/x?{q}",
    "uppercase scheme": "HTTPS://lookaside.fbsbx.com/x?{q}",
    "port 8443": "https://lookaside.fbsbx.com:8443/x?{q}",
    "the listener's port": "https://lookaside.fbsbx.com:{port}/x?{q}",
    "empty port": "https://lookaside.fbsbx.com:/x?{q}",
    "port 0443": "https://lookaside.fbsbx.com:0443/x?{q}",
    "http scheme": "http://lookaside.fbsbx.com/x?{q}",
    "http scheme on 443": "http://lookaside.fbsbx.com:443/x?{q}",
    "no scheme": "//lookaside.fbsbx.com/x?{q}",
    "foreign host": "https://127.0.0.1:{port}/x?{q}",
    "suffix trick": "https://fbsbx.com.127.0.0.1.nip.io/x?{q}",
    "prefix trick": "https://evilfbsbx.com/x?{q}",
}

ALLOWED = {
    "lookaside": "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1&{q}",
    "explicit port 443": "https://lookaside.fbsbx.com:443/x?{q}",
    "a whatsapp.net CDN host": "https://mmg.whatsapp.net/v/t62.7118-24/x.enc?{q}",
}


def _url(template: str, hosts: Hosts) -> str:
    return template.format(port=hosts.tls.port, q=SECRET_QUERY)


@pytest.mark.parametrize("template", REFUSED.values(), ids=REFUSED.keys())
def test_a_webhook_url_that_is_not_plainly_meta_gets_no_token(
    connector: WhatsappConnector,
    graph: FakeGraphAPI,
    hosts: Hosts,
    caplog: pytest.LogCaptureFixture,
    template: str,
) -> None:
    media_id = graph.add_media(PHOTO, mime_type="image/jpeg")
    attachment = MediaAttachment("image", media_id, url=_url(template, hosts))
    with caplog.at_level(logging.DEBUG):
        media = connector.download_media(attachment)
    assert hosts.authorizations() == []
    assert hosts.tls.received == hosts.plain.received == []  # not even without the token
    assert media.content == PHOTO  # through the lookup on the Graph API
    assert len(graph.media_lookups()) == 1
    assert len(graph.media_downloads()) == 1
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert media_id in warning.getMessage()
    assert "QUERY-SECRET" not in caplog.text
    assert TOKEN not in caplog.text


@pytest.mark.parametrize("template", ALLOWED.values(), ids=ALLOWED.keys())
def test_a_meta_media_url_gets_the_token(
    connector: WhatsappConnector, graph: FakeGraphAPI, hosts: Hosts, template: str
) -> None:
    media_id = graph.add_media(PHOTO)
    media = connector.download_media(MediaAttachment("image", media_id, url=_url(template, hosts)))
    assert media.content == PHOTO
    assert graph.media_lookups() == []
    assert hosts.tls.authorizations() == [f"Bearer {TOKEN}"]
    [received] = hosts.tls.received
    assert received.host in ("lookaside.fbsbx.com", "mmg.whatsapp.net")  # no port: rebuilt
    assert SECRET_QUERY in received.path


@pytest.mark.parametrize(
    "template",
    [
        REFUSED["backslash before @"],
        REFUSED["userinfo"],
        REFUSED["uppercase host"],
        REFUSED["port 8443"],
        REFUSED["punycode look-alike"],
        REFUSED["foreign host"],
        "https://127.0.0.1:{port}/x",
    ],
)
def test_a_lookup_answering_a_url_off_meta_is_refused(
    connector: WhatsappConnector,
    graph: FakeGraphAPI,
    hosts: Hosts,
    monkeypatch: pytest.MonkeyPatch,
    template: str,
) -> None:
    media_id = graph.add_media(PHOTO)
    monkeypatch.setattr(graph, "media_url", lambda _media_id: _url(template, hosts))
    with pytest.raises(GraphAPIError, match="not on a Meta media host") as info:
        connector.download_media(media_id)
    assert "QUERY-SECRET" not in str(info.value)
    assert len(graph.media_lookups()) == 1
    assert hosts.authorizations() == []
    assert hosts.tls.received == []


def test_a_redirect_to_another_meta_host_keeps_the_token(
    connector: WhatsappConnector, graph: FakeGraphAPI, hosts: Hosts
) -> None:
    media_id = graph.add_media(PHOTO)
    hosts.tls.redirects["/hop"] = "https://mmg.whatsapp.net/final"
    hosts.tls.redirects["/final"] = "/last"  # relative: the same host
    media = connector.download_media(
        MediaAttachment("image", media_id, url="https://lookaside.fbsbx.com/hop")
    )
    assert media.content == PHOTO
    assert [(r.host, r.path) for r in hosts.tls.received] == [
        ("lookaside.fbsbx.com", "/hop"),
        ("mmg.whatsapp.net", "/final"),
        ("mmg.whatsapp.net", "/last"),
    ]
    assert hosts.tls.authorizations() == [f"Bearer {TOKEN}"] * 3


@pytest.mark.parametrize(
    "location",
    [
        "https://127.0.0.1:{port}/stolen",
        "https://127.0.0.1:{port}\\@lookaside.fbsbx.com/stolen",
        "https://lookaside.fbsbx.com:{port}/stolen",
        "http://lookaside.fbsbx.com/stolen",
        "https://user@lookaside.fbsbx.com/stolen",
    ],
)
def test_a_redirect_off_meta_is_not_followed(
    connector: WhatsappConnector, graph: FakeGraphAPI, hosts: Hosts, location: str
) -> None:
    media_id = graph.add_media(PHOTO)
    hosts.tls.redirects["/hop"] = location.format(port=hosts.tls.port)
    attachment = MediaAttachment("image", media_id, url="https://lookaside.fbsbx.com/hop")
    try:
        connector.download_media(attachment)
    except GraphAPIError as exc:
        error: GraphAPIError | None = exc
    else:
        error = None
    received = hosts.tls.received + hosts.plain.received
    assert [r.authorization for r in received if "stolen" in r.path] == []
    assert [r.path for r in received] == ["/hop"]  # to a Meta host, with the token
    assert error is not None
    assert "redirected off Meta's media hosts" in str(error)
    assert error.http_status == 302


def test_redirects_are_followed_a_few_times_only(
    connector: WhatsappConnector, graph: FakeGraphAPI, hosts: Hosts
) -> None:
    media_id = graph.add_media(PHOTO)
    hosts.tls.redirects["/loop"] = "/loop"
    with pytest.raises(GraphAPIError, match="redirected more than 3 times"):
        connector.download_media(
            MediaAttachment("image", media_id, url="https://lookaside.fbsbx.com/loop")
        )
    assert len(hosts.tls.received) == 4


BASE = "http://127.0.0.1:8000/v25.0"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        # The Graph API's own origin, exactly as written in base_url.
        ("http://127.0.0.1:8000/media/abc?mid=1", "http://127.0.0.1:8000/media/abc?mid=1"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000/"),
        ("http://127.0.0.1:8001/media/abc", None),
        ("https://127.0.0.1:8000/media/abc", None),
        ("http://localhost:8000/media/abc", None),
        ("http://127.0.0.1:8000\\@lookaside.fbsbx.com/x", None),
        ("http://u@127.0.0.1:8000/media/abc", None),
        # Meta's media hosts; the fragment is never sent, odd characters are quoted.
        ("https://lookaside.fbsbx.com/x?a=1#frag", "https://lookaside.fbsbx.com/x?a=1"),
        ("https://lookaside.fbsbx.com#@127.0.0.1/x", "https://lookaside.fbsbx.com/"),
        ('https://lookaside.fbsbx.com/x?a="{}"', "https://lookaside.fbsbx.com/x?a=%22%7B%7D%22"),
        ("https://fbsbx.com/x", "https://fbsbx.com/x"),
        ("https://scontent.xx.fbcdn.net/v/x.jpg", "https://scontent.xx.fbcdn.net/v/x.jpg"),
        ("https://www.facebook.com/x", "https://www.facebook.com/x"),
        ("https://fbsbx.com.evil.example/x", None),
        ("https://com/x", None),
        ("https://-lookaside.fbsbx.com/x", None),
        ("https://lookaside-.fbsbx.com/x", None),
        ("https://lookaside_x.fbsbx.com/x", None),
        ("https://[::1]/x", None),
        ("https://lookaside.fbsbx.com/é", None),
        ("", None),
        ("lookaside.fbsbx.com/x", None),
    ],
)
def test_token_url(url: str, expected: str | None) -> None:
    assert token_url(url, BASE) == expected


def test_token_url_on_the_real_graph_host() -> None:
    host = config.GRAPH_HOST  # Meta's real host: a pure function, nothing is contacted
    base = f"{host}/v25.0"
    assert token_url(f"{base}/123", base) == f"{base}/123"
    assert token_url(f"{host}:443/x", base) == f"{host}/x"
    assert token_url(host.replace("https://", "http://") + "/x", base) is None
