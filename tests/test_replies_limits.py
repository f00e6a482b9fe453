"""WhatsApp's limits, one test per limit under each policy.

``"strict"`` raises ValueError naming the field, its length and the limit,
and sends nothing; ``"fit"`` (the default) cuts text with an ellipsis, turns
4 to 10 buttons into a list, drops rows past the maximum, and logs a
warning that never holds the text itself. The fake Graph API refuses
payloads over Meta's limits, so every fitted send below is one Meta accepts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from cel_whatsapp import (
    Button,
    Buttons,
    Contact,
    Contacts,
    CtaUrl,
    Document,
    Image,
    ListMenu,
    Reply,
    Row,
    Section,
    Text,
    Video,
    WhatsappConnector,
)
from cel_whatsapp.core.limits import LIMITS, check_policy, fit_reply, shorten
from cel_whatsapp.testing import FakeGraphAPI

from .conftest import MakeConnector

TO = "16505551234"
URL = "https://example.com/a"


def filler(length: int) -> str:
    """Text of exactly ``length`` characters, no spaces, easy to recognise."""
    return ("Qx7" * (length // 3 + 1))[:length]


@dataclass(frozen=True)
class TextLimit:
    """A text field with a maximum length: how to build a reply, where to read it back."""

    field: str
    limit: int
    build: Callable[[str], Reply]
    read: Callable[[dict[str, Any]], str]


def _interactive(key: str) -> Callable[[dict[str, Any]], str]:
    def read(payload: dict[str, Any]) -> str:
        value: str = payload["interactive"][key]["text"]
        return value

    return read


def _button_title(payload: dict[str, Any]) -> str:
    value: str = payload["interactive"]["action"]["buttons"][0]["reply"]["title"]
    return value


def _list_action(payload: dict[str, Any]) -> dict[str, Any]:
    action: dict[str, Any] = payload["interactive"]["action"]
    return action


def _caption(kind: str) -> Callable[[dict[str, Any]], str]:
    def read(payload: dict[str, Any]) -> str:
        value: str = payload[kind]["caption"]
        return value

    return read


TEXT_LIMITS = [
    TextLimit("Buttons.body", 1024, lambda t: Buttons(t, ["A"]), _interactive("body")),
    TextLimit(
        "Buttons.header", 60, lambda t: Buttons("b", ["A"], header=t), _interactive("header")
    ),
    TextLimit(
        "Buttons.footer", 60, lambda t: Buttons("b", ["A"], footer=t), _interactive("footer")
    ),
    TextLimit("Buttons.buttons[0].title", 20, lambda t: Buttons("b", [t]), _button_title),
    TextLimit("ListMenu.body", 4096, lambda t: ListMenu(t, "m", ["A"]), _interactive("body")),
    TextLimit(
        "ListMenu.button",
        20,
        lambda t: ListMenu("b", t, ["A"]),
        lambda p: _list_action(p)["button"],
    ),
    TextLimit(
        "ListMenu.header", 60, lambda t: ListMenu("b", "m", ["A"], header=t), _interactive("header")
    ),
    TextLimit(
        "ListMenu.footer", 60, lambda t: ListMenu("b", "m", ["A"], footer=t), _interactive("footer")
    ),
    TextLimit(
        "ListMenu.sections[0].title",
        24,
        lambda t: ListMenu("b", "m", [Section(t, ["A"])]),
        lambda p: _list_action(p)["sections"][0]["title"],
    ),
    TextLimit(
        "ListMenu.sections[0].rows[0].title",
        24,
        lambda t: ListMenu("b", "m", [Row("r1", t)]),
        lambda p: _list_action(p)["sections"][0]["rows"][0]["title"],
    ),
    TextLimit(
        "ListMenu.sections[0].rows[0].description",
        72,
        lambda t: ListMenu("b", "m", [Row("r1", "R", t)]),
        lambda p: _list_action(p)["sections"][0]["rows"][0]["description"],
    ),
    TextLimit("CtaUrl.body", 1024, lambda t: CtaUrl(t, "Go", URL), _interactive("body")),
    TextLimit(
        "CtaUrl.display_text",
        20,
        lambda t: CtaUrl("b", t, URL),
        lambda p: p["interactive"]["action"]["parameters"]["display_text"],
    ),
    TextLimit(
        "CtaUrl.header", 60, lambda t: CtaUrl("b", "Go", URL, header=t), _interactive("header")
    ),
    TextLimit(
        "CtaUrl.footer", 60, lambda t: CtaUrl("b", "Go", URL, footer=t), _interactive("footer")
    ),
    TextLimit("Image.caption", 1024, lambda t: Image(link=URL, caption=t), _caption("image")),
    TextLimit("Video.caption", 1024, lambda t: Video(media_id="1", caption=t), _caption("video")),
    TextLimit(
        "Document.caption", 1024, lambda t: Document(media_id="1", caption=t), _caption("document")
    ),
]


@pytest.fixture(params=["strict", "fit"])
def policy(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


def _connector(make_connector: MakeConnector, policy: str) -> WhatsappConnector:
    return make_connector(limits=policy)


def _payloads(graph: FakeGraphAPI) -> list[dict[str, Any]]:
    return [r.json for r in graph.sent()]


# -- text fields -----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", TEXT_LIMITS, ids=lambda c: c.field)
def test_text_at_the_limit_is_sent_unchanged(
    make_connector: MakeConnector, graph: FakeGraphAPI, policy: str, case: TextLimit
) -> None:
    value = filler(case.limit)
    _connector(make_connector, policy).send(TO, case.build(value))
    [payload] = _payloads(graph)
    assert case.read(payload) == value


@pytest.mark.parametrize("case", TEXT_LIMITS, ids=lambda c: c.field)
def test_strict_refuses_text_over_the_limit(
    make_connector: MakeConnector, graph: FakeGraphAPI, case: TextLimit
) -> None:
    connector = _connector(make_connector, "strict")
    with pytest.raises(ValueError) as info:
        connector.send(TO, case.build(filler(case.limit + 1)))
    message = str(info.value)
    assert case.field in message
    assert f"{case.limit + 1} characters" in message
    assert f"at most {case.limit}" in message
    assert graph.sent() == []


@pytest.mark.parametrize("case", TEXT_LIMITS, ids=lambda c: c.field)
def test_fit_cuts_text_with_an_ellipsis(
    make_connector: MakeConnector,
    graph: FakeGraphAPI,
    caplog: pytest.LogCaptureFixture,
    case: TextLimit,
) -> None:
    value = filler(case.limit + 7)
    with caplog.at_level(logging.WARNING, logger="cel_whatsapp"):
        _connector(make_connector, "fit").send(TO, case.build(value))
    [payload] = _payloads(graph)
    sent = case.read(payload)
    assert len(sent) == case.limit
    assert sent.endswith("…")
    assert value.startswith(sent[:-1])
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert case.field in record.getMessage()
    assert str(case.limit) in record.getMessage()
    assert value[:10] not in record.getMessage()  # private text is never logged


def test_every_documented_text_limit_is_tested() -> None:
    # Where the limits table's name differs from the field path in messages.
    paths = {
        "Button.title": "Buttons.buttons[0].title",
        "Section.title": "ListMenu.sections[0].title",
        "Row.title": "ListMenu.sections[0].rows[0].title",
        "Row.description": "ListMenu.sections[0].rows[0].description",
        "caption": "Image.caption",
    }
    # Counts, ids and text bodies that split have their own tests below.
    own_tests = {"Text.body", "Buttons.buttons", "ListMenu.sections", "ListMenu.rows"}
    own_tests |= {"Button.id", "Row.id", "Contacts.contacts"}
    tested = {c.field: c.limit for c in TEXT_LIMITS}
    for name, limit in LIMITS.items():
        if name not in own_tests:
            assert tested[paths.get(name, name)] == limit, name


# -- text messages ------------------------------------------------------------------------------------


def test_text_body_at_4096_is_one_message(
    make_connector: MakeConnector, graph: FakeGraphAPI, policy: str
) -> None:
    body = filler(4096)
    _connector(make_connector, policy).send(TO, Text(body))
    assert graph.sent_texts() == [body]


def test_strict_refuses_a_text_body_over_4096(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    with pytest.raises(ValueError, match=r"Text\.body is 4097 characters long.*at most 4096"):
        _connector(make_connector, "strict").send(TO, Text(filler(4097)))
    assert graph.sent() == []


def test_fit_splits_a_text_body_over_4096(
    make_connector: MakeConnector, graph: FakeGraphAPI, caplog: pytest.LogCaptureFixture
) -> None:
    paragraphs = [f"Paragraph {i}. " + "word " * 150 for i in range(6)]
    body = "\n\n".join(p.strip() for p in paragraphs)
    assert len(body) > 4096
    with caplog.at_level(logging.WARNING, logger="cel_whatsapp"):
        wamids = _connector(make_connector, "fit").send(
            TO, Text(body, reply_to="wamid.Q", preview_url=True)
        )
    texts = graph.sent_texts()
    assert len(texts) == len(wamids) == 2
    assert all(len(t) <= 4096 for t in texts)
    assert " ".join(" ".join(texts).split()) == " ".join(body.split())  # nothing lost
    payloads = _payloads(graph)
    assert payloads[0]["context"] == {"message_id": "wamid.Q"}
    assert "context" not in payloads[1]
    assert "sent as 2 messages" in caplog.text


# -- reply buttons: count and ids --------------------------------------------------------------------


def test_three_buttons_stay_buttons(
    make_connector: MakeConnector, graph: FakeGraphAPI, policy: str
) -> None:
    _connector(make_connector, policy).send(TO, Buttons("b", ["A", "B", "C"]))
    [payload] = _payloads(graph)
    assert payload["interactive"]["type"] == "button"
    assert len(payload["interactive"]["action"]["buttons"]) == 3


def test_strict_refuses_four_buttons(make_connector: MakeConnector, graph: FakeGraphAPI) -> None:
    with pytest.raises(ValueError, match=r"Buttons\.buttons has 4 buttons.*at most 3"):
        _connector(make_connector, "strict").send(TO, Buttons("b", ["A", "B", "C", "D"]))
    assert graph.sent() == []


def test_fit_turns_four_to_ten_buttons_into_a_list(
    make_connector: MakeConnector, graph: FakeGraphAPI, caplog: pytest.LogCaptureFixture
) -> None:
    buttons = [Button(f"id-{i}", f"Choice number {i} is long") for i in range(10)]
    with caplog.at_level(logging.WARNING, logger="cel_whatsapp"):
        _connector(make_connector, "fit").send(
            TO, Buttons("Pick", buttons, header="Head", footer="Foot", reply_to="wamid.Q")
        )
    [payload] = _payloads(graph)
    assert payload["context"] == {"message_id": "wamid.Q"}
    interactive = payload["interactive"]
    assert interactive["type"] == "list"
    assert interactive["header"] == {"type": "text", "text": "Head"}
    assert interactive["footer"] == {"text": "Foot"}
    assert interactive["body"] == {"text": "Pick"}
    [section] = interactive["action"]["sections"]
    assert [row["id"] for row in section["rows"]] == [f"id-{i}" for i in range(10)]
    # Rows allow 24 characters where buttons allow 20: the title loses less.
    assert section["rows"][3]["title"] == "Choice number 3 is long"
    assert "sent as a list" in caplog.text


def test_fit_sends_a_media_header_before_the_list(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    reply = Buttons("Pick", list("ABCD"), header=Image(media_id="55"), reply_to="wamid.Q")
    wamids = _connector(make_connector, "fit").send(TO, reply)
    image, menu = _payloads(graph)
    assert len(wamids) == 2
    assert image["image"] == {"id": "55"} and image["context"] == {"message_id": "wamid.Q"}
    assert menu["interactive"]["type"] == "list" and "header" not in menu["interactive"]


def test_fit_keeps_the_first_ten_of_more_buttons(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    _connector(make_connector, "fit").send(TO, Buttons("b", [str(i) for i in range(12)]))
    [payload] = _payloads(graph)
    rows = payload["interactive"]["action"]["sections"][0]["rows"]
    assert [row["id"] for row in rows] == [str(i) for i in range(10)]


def test_fit_keeps_cut_button_titles_unique(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    titles = ["Large pepperoni pizza A", "Large pepperoni pizza B", "Large pepperoni pizza C"]
    _connector(make_connector, "fit").send(TO, Buttons("b", titles))
    [payload] = _payloads(graph)
    sent = [b["reply"]["title"] for b in payload["interactive"]["action"]["buttons"]]
    assert sent == ["Large pepperoni piz…", "Large pepperoni pi…2", "Large pepperoni pi…3"]
    assert [b["reply"]["id"] for b in payload["interactive"]["action"]["buttons"]] == titles


@pytest.mark.parametrize("length", [256, 257])
def test_button_ids_are_never_cut(
    make_connector: MakeConnector, graph: FakeGraphAPI, policy: str, length: int
) -> None:
    connector = _connector(make_connector, policy)
    reply = Buttons("b", [Button(filler(length), "Go")])
    if length <= 256:
        connector.send(TO, reply)
        [payload] = _payloads(graph)
        assert payload["interactive"]["action"]["buttons"][0]["reply"]["id"] == filler(length)
        return
    with pytest.raises(
        ValueError, match=r"Buttons\.buttons\[0\]\.id is 257 characters.*at most 256"
    ):
        connector.send(TO, reply)
    assert graph.sent() == []


# -- lists: counts and ids --------------------------------------------------------------------------


def _sections(count: int) -> list[Section]:
    return [Section(f"S{i}", [Row(f"r{i}", f"Row {i}")]) for i in range(count)]


def test_ten_rows_in_ten_sections_are_allowed(
    make_connector: MakeConnector, graph: FakeGraphAPI, policy: str
) -> None:
    _connector(make_connector, policy).send(TO, ListMenu("b", "m", _sections(10)))
    [payload] = _payloads(graph)
    assert len(_list_action(payload)["sections"]) == 10


def test_strict_refuses_eleven_sections(make_connector: MakeConnector, graph: FakeGraphAPI) -> None:
    with pytest.raises(ValueError, match=r"ListMenu\.sections has 11 sections.*at most 10"):
        _connector(make_connector, "strict").send(TO, ListMenu("b", "m", _sections(11)))
    assert graph.sent() == []


def test_fit_keeps_the_first_ten_sections(
    make_connector: MakeConnector, graph: FakeGraphAPI, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="cel_whatsapp"):
        _connector(make_connector, "fit").send(TO, ListMenu("b", "m", _sections(11)))
    [payload] = _payloads(graph)
    assert [s["title"] for s in _list_action(payload)["sections"]] == [f"S{i}" for i in range(10)]
    assert "ListMenu.sections has 11 sections" in caplog.text


def test_strict_refuses_eleven_rows(make_connector: MakeConnector, graph: FakeGraphAPI) -> None:
    menu = ListMenu(
        "b", "m", [Section("A", ["1", "2", "3", "4", "5", "6"]), Section("B", list("abcde"))]
    )
    with pytest.raises(ValueError, match=r"ListMenu\.rows has 11 rows.*at most 10"):
        _connector(make_connector, "strict").send(TO, menu)
    assert graph.sent() == []


def test_fit_keeps_the_first_ten_rows(make_connector: MakeConnector, graph: FakeGraphAPI) -> None:
    menu = ListMenu(
        "b",
        "m",
        [
            Section("A", ["1", "2", "3", "4", "5", "6"]),
            Section("B", list("abcde")),
            Section("C", ["z"]),
        ],
    )
    _connector(make_connector, "fit").send(TO, menu)
    [payload] = _payloads(graph)
    sections = _list_action(payload)["sections"]
    assert [s["title"] for s in sections] == ["A", "B"]
    assert [r["id"] for s in sections for r in s["rows"]] == [
        "1",
        "2",
        "3",
        "4",
        "5",
        "6",
        "a",
        "b",
        "c",
        "d",
    ]


@pytest.mark.parametrize("length", [200, 201])
def test_row_ids_are_never_cut(
    make_connector: MakeConnector, graph: FakeGraphAPI, policy: str, length: int
) -> None:
    connector = _connector(make_connector, policy)
    reply = ListMenu("b", "m", [Row(filler(length), "Go")])
    if length <= 200:
        connector.send(TO, reply)
        [payload] = _payloads(graph)
        assert _list_action(payload)["sections"][0]["rows"][0]["id"] == filler(length)
        return
    with pytest.raises(ValueError, match=r"rows\[0\]\.id is 201 characters.*at most 200"):
        connector.send(TO, reply)
    assert graph.sent() == []


# -- contacts ----------------------------------------------------------------------------------------


def test_contacts_count(make_connector: MakeConnector, graph: FakeGraphAPI, policy: str) -> None:
    many = Contacts(*[Contact(f"Person {i}", phones=[f"+1650555{i:04d}"]) for i in range(258)])
    connector = _connector(make_connector, policy)
    if policy == "strict":
        with pytest.raises(ValueError, match=r"Contacts\.contacts has 258 contacts.*at most 257"):
            connector.send(TO, many)
        assert graph.sent() == []
        return
    connector.send(TO, many)
    [payload] = _payloads(graph)
    assert len(payload["contacts"]) == 257


# -- the policy itself ----------------------------------------------------------------------------------


def test_fit_is_the_default(make_connector: MakeConnector, graph: FakeGraphAPI) -> None:
    connector = make_connector()
    assert connector.limits == "fit"
    connector.send(TO, Buttons("b", [filler(30)]))
    [payload] = _payloads(graph)
    assert _button_title(payload).endswith("…")


def test_unknown_policy_is_refused(make_connector: MakeConnector) -> None:
    with pytest.raises(ValueError, match="limits must be 'fit' or 'strict'"):
        make_connector(limits="lenient")
    with pytest.raises(ValueError):
        check_policy("")


def test_fit_reply_leaves_replies_within_limits_untouched() -> None:
    reply = Buttons("b", ["A", "B"], header="h", footer="f")
    assert fit_reply(reply, "fit") == [reply]
    assert fit_reply(reply, "strict") == [reply]


def test_shorten() -> None:
    assert shorten("abc", 3) == "abc"
    assert shorten("abcd", 3) == "ab…"
    assert shorten("ab   cd", 5) == "ab…"  # no space before the ellipsis


def test_strict_checks_everything_before_sending_anything(
    make_connector: MakeConnector, graph: FakeGraphAPI
) -> None:
    # An over-long title deep in the reply: nothing at all goes out.
    menu = ListMenu("b", "m", [Section("S", ["ok", Row("r", filler(25))])])
    with pytest.raises(ValueError):
        _connector(make_connector, "strict").send(TO, menu)
    assert graph.requests == []
