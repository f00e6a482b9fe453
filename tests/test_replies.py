"""Each reply type's JSON, as the fake Graph API records it, against Meta's reference.

Payload shapes follow Meta's Cloud API pages for each message type
(https://developers.facebook.com/docs/whatsapp/cloud-api/messages): the
fake also refuses what Meta refuses (nulls, missing parts, over-long text),
so every test here is a send Meta would accept.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import cel_whatsapp
from cel_whatsapp import (
    Audio,
    Button,
    Buttons,
    Contact,
    Contacts,
    CtaUrl,
    Document,
    Image,
    ListMenu,
    Location,
    React,
    Reply,
    Row,
    Section,
    Sticker,
    Template,
    Text,
    Video,
    WhatsappConnector,
)
from cel_whatsapp.testing import FakeGraphAPI

from .conftest import MakeConnector

TO = "16505551234"
ENVELOPE = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": TO}


@pytest.fixture
def connector(make_connector: MakeConnector) -> WhatsappConnector:
    return make_connector()


def nulls(value: Any, where: str = "") -> Iterator[str]:
    """Where ``value`` holds a ``None``, as dotted paths."""
    if value is None:
        yield where
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from nulls(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from nulls(item, f"{where}[{index}]")


def sent_json(connector: WhatsappConnector, graph: FakeGraphAPI, reply: Reply) -> dict[str, Any]:
    """Send ``reply`` over the fake; return the one payload it recorded."""
    wamids = connector.send(TO, reply)
    [request] = graph.sent()
    assert len(wamids) == 1 and wamids[0].startswith("wamid.")
    assert list(nulls(request.json)) == []
    payload: dict[str, Any] = request.json
    return payload


def test_every_reply_type_is_exported_at_the_top_level() -> None:
    names = [
        "Text",
        "Buttons",
        "Button",
        "ListMenu",
        "Row",
        "Section",
        "Image",
        "Video",
        "Audio",
        "Document",
        "Sticker",
        "Location",
        "Contacts",
        "CtaUrl",
        "React",
        "Template",
    ]
    for name in names:
        assert getattr(cel_whatsapp, name) is getattr(cel_whatsapp.replies, name)
        assert name in cel_whatsapp.__all__


# -- text ----------------------------------------------------------------------------


def test_text(connector: WhatsappConnector, graph: FakeGraphAPI) -> None:
    assert sent_json(connector, graph, Text("Hi!")) == {
        **ENVELOPE,
        "type": "text",
        "text": {"body": "Hi!"},
    }


def test_text_with_preview_and_quote(connector: WhatsappConnector, graph: FakeGraphAPI) -> None:
    reply = Text("See https://example.com", preview_url=True, reply_to="wamid.QUOTED")
    assert sent_json(connector, graph, reply) == {
        **ENVELOPE,
        "type": "text",
        "text": {"body": "See https://example.com", "preview_url": True},
        "context": {"message_id": "wamid.QUOTED"},
    }


# -- reply buttons ---------------------------------------------------------------------


def test_buttons_from_plain_titles(connector: WhatsappConnector, graph: FakeGraphAPI) -> None:
    assert sent_json(connector, graph, Buttons("Shall we?", ["Yes", "No"])) == {
        **ENVELOPE,
        "type": "interactive",
        "interactive": {
            "type": "button",
            "body": {"text": "Shall we?"},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": "Yes", "title": "Yes"}},
                    {"type": "reply", "reply": {"id": "No", "title": "No"}},
                ]
            },
        },
    }


def test_buttons_with_every_part(connector: WhatsappConnector, graph: FakeGraphAPI) -> None:
    reply = Buttons(
        "Your workshop is at 9am tomorrow.",
        [Button("change", "Change"), Button("cancel", "Cancel")],
        header="Workshop",
        footer="Lucky Shrub",
        reply_to="wamid.Q",
    )
    assert sent_json(connector, graph, reply) == {
        **ENVELOPE,
        "type": "interactive",
        "interactive": {
            "type": "button",
            "header": {"type": "text", "text": "Workshop"},
            "body": {"text": "Your workshop is at 9am tomorrow."},
            "footer": {"text": "Lucky Shrub"},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": "change", "title": "Change"}},
                    {"type": "reply", "reply": {"id": "cancel", "title": "Cancel"}},
                ]
            },
        },
        "context": {"message_id": "wamid.Q"},
    }


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            Image(media_id="2762702990552401"),
            {"type": "image", "image": {"id": "2762702990552401"}},
        ),
        (
            Video(link="https://example.com/v.mp4"),
            {"type": "video", "video": {"link": "https://example.com/v.mp4"}},
        ),
        (
            Document(link="https://example.com/menu.pdf", filename="menu.pdf"),
            {
                "type": "document",
                "document": {"link": "https://example.com/menu.pdf", "filename": "menu.pdf"},
            },
        ),
    ],
)
def test_buttons_with_a_media_header(
    connector: WhatsappConnector, graph: FakeGraphAPI, header: Any, expected: dict[str, Any]
) -> None:
    payload = sent_json(connector, graph, Buttons("Pick one", ["A"], header=header))
    assert payload["interactive"]["header"] == expected


def test_long_titles_keep_their_whole_text_as_id(
    connector: WhatsappConnector, graph: FakeGraphAPI
) -> None:
    # The Cel.ai connector used the cut title as id, so these two collided.
    titles = ["Large pepperoni pizza with olives", "Large pepperoni pizza with onions"]
    payload = sent_json(connector, graph, Buttons("Which?", titles))
    replies = [b["reply"] for b in payload["interactive"]["action"]["buttons"]]
    assert [r["id"] for r in replies] == titles
    assert all(len(r["title"]) <= 20 for r in replies)
    assert replies[0]["title"] != replies[1]["title"]


# -- lists ---------------------------------------------------------------------------------


def test_list_from_rows(connector: WhatsappConnector, graph: FakeGraphAPI) -> None:
    reply = ListMenu(
        "Which shipping option?",
        "Shipping",
        [Row("priority", "Priority Mail", "Next day"), Row("ground", "Ground"), "Pickup"],
    )
    assert sent_json(connector, graph, reply) == {
        **ENVELOPE,
        "type": "interactive",
        "interactive": {
            "type": "list",
            "body": {"text": "Which shipping option?"},
            "action": {
                "button": "Shipping",
                "sections": [
                    {
                        "rows": [
                            {"id": "priority", "title": "Priority Mail", "description": "Next day"},
                            {"id": "ground", "title": "Ground"},
                            {"id": "Pickup", "title": "Pickup"},
                        ]
                    }
                ],
            },
        },
    }


def test_list_from_sections_with_header_and_footer(
    connector: WhatsappConnector, graph: FakeGraphAPI
) -> None:
    reply = ListMenu(
        "Pick a dish",
        "Menu",
        [
            Section("Pizza", [Row("p1", "Margherita"), Row("p2", "Pepperoni")]),
            Section("Pasta", [Row("a1", "Carbonara", "With guanciale")]),
        ],
        header="Today",
        footer="Prices include VAT",
    )
    assert sent_json(connector, graph, reply)["interactive"] == {
        "type": "list",
        "header": {"type": "text", "text": "Today"},
        "body": {"text": "Pick a dish"},
        "footer": {"text": "Prices include VAT"},
        "action": {
            "button": "Menu",
            "sections": [
                {
                    "title": "Pizza",
                    "rows": [
                        {"id": "p1", "title": "Margherita"},
                        {"id": "p2", "title": "Pepperoni"},
                    ],
                },
                {
                    "title": "Pasta",
                    "rows": [{"id": "a1", "title": "Carbonara", "description": "With guanciale"}],
                },
            ],
        },
    }


# -- call to action ------------------------------------------------------------------------


def test_cta_url(connector: WhatsappConnector, graph: FakeGraphAPI) -> None:
    reply = CtaUrl("Tap to see dates.", "See Dates", "https://example.com/dates?x=1")
    assert sent_json(connector, graph, reply)["interactive"] == {
        "type": "cta_url",
        "body": {"text": "Tap to see dates."},
        "action": {
            "name": "cta_url",
            "parameters": {"display_text": "See Dates", "url": "https://example.com/dates?x=1"},
        },
    }


def test_cta_url_with_header_and_footer(connector: WhatsappConnector, graph: FakeGraphAPI) -> None:
    reply = CtaUrl(
        "Tap to see dates.",
        "See Dates",
        "https://example.com",
        header=Image(link="https://example.com/banner.png"),
        footer="Dates may change.",
    )
    interactive = sent_json(connector, graph, reply)["interactive"]
    assert interactive["header"] == {
        "type": "image",
        "image": {"link": "https://example.com/banner.png"},
    }
    assert interactive["footer"] == {"text": "Dates may change."}


# -- media ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "kind", "media"),
    [
        (Image(link="https://example.com/a.png"), "image", {"link": "https://example.com/a.png"}),
        (
            Image(media_id="1013859600285441", caption="The best succulent ever?"),
            "image",
            {"id": "1013859600285441", "caption": "The best succulent ever?"},
        ),
        (
            Video(link="https://example.com/v.mp4", caption="Watch"),
            "video",
            {"link": "https://example.com/v.mp4", "caption": "Watch"},
        ),
        (Audio(media_id="42"), "audio", {"id": "42"}),
        (
            Audio(link="https://example.com/n.ogg", voice=True),
            "audio",
            {
                "link": "https://example.com/n.ogg",
                "voice": True,
            },
        ),
        (
            Document(media_id="7", caption="Your invoice", filename="invoice.pdf"),
            "document",
            {"id": "7", "caption": "Your invoice", "filename": "invoice.pdf"},
        ),
        (
            Document(link="https://example.com/x.pdf"),
            "document",
            {"link": "https://example.com/x.pdf"},
        ),
        (Sticker(media_id="99"), "sticker", {"id": "99"}),
        (
            Sticker(link="https://example.com/s.webp"),
            "sticker",
            {"link": "https://example.com/s.webp"},
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_media(
    connector: WhatsappConnector,
    graph: FakeGraphAPI,
    reply: Reply,
    kind: str,
    media: dict[str, Any],
) -> None:
    assert sent_json(connector, graph, reply) == {**ENVELOPE, "type": kind, kind: media}


def test_media_can_quote(connector: WhatsappConnector, graph: FakeGraphAPI) -> None:
    payload = sent_json(connector, graph, Sticker(media_id="99", reply_to="wamid.Q"))
    assert payload["context"] == {"message_id": "wamid.Q"}


# -- location, contacts, reaction, template ---------------------------------------------------------


def test_location(connector: WhatsappConnector, graph: FakeGraphAPI) -> None:
    reply = Location(
        37.44216251868683,
        -122.16153582049394,
        name="Philz Coffee",
        address="101 Forest Ave, Palo Alto, CA 94301",
    )
    assert sent_json(connector, graph, reply) == {
        **ENVELOPE,
        "type": "location",
        "location": {
            "latitude": 37.44216251868683,
            "longitude": -122.16153582049394,
            "name": "Philz Coffee",
            "address": "101 Forest Ave, Palo Alto, CA 94301",
        },
    }


def test_location_without_name(connector: WhatsappConnector, graph: FakeGraphAPI) -> None:
    payload = sent_json(connector, graph, Location(0, 0))
    assert payload["location"] == {"latitude": 0, "longitude": 0}


def test_contacts(connector: WhatsappConnector, graph: FakeGraphAPI) -> None:
    reply = Contacts(
        Contact(
            "Barbara J. Johnson",
            first_name="Barbara",
            last_name="Johnson",
            phones=[{"phone": "+16505559999", "type": "Landline", "wa_id": "16505559999"}],
            emails=["bjohnson@example.com"],
            urls=[{"url": "https://www.luckyshrub.com", "type": "Company"}],
            addresses=[{"street": "1 Lucky Shrub Way", "city": "Menlo Park", "zip": "94025"}],
            company="Lucky Shrub",
            title="Lead Counsel",
            birthday="1999-01-23",
        ),
        Contact("Ana Díaz", phones=["+5491155550000"]),
    )
    assert sent_json(connector, graph, reply) == {
        **ENVELOPE,
        "type": "contacts",
        "contacts": [
            {
                "name": {
                    "formatted_name": "Barbara J. Johnson",
                    "first_name": "Barbara",
                    "last_name": "Johnson",
                },
                "org": {"company": "Lucky Shrub", "title": "Lead Counsel"},
                "phones": [{"phone": "+16505559999", "type": "Landline", "wa_id": "16505559999"}],
                "emails": [{"email": "bjohnson@example.com"}],
                "urls": [{"url": "https://www.luckyshrub.com", "type": "Company"}],
                "addresses": [
                    {"street": "1 Lucky Shrub Way", "city": "Menlo Park", "zip": "94025"}
                ],
                "birthday": "1999-01-23",
            },
            {
                # Meta wants a name part besides formatted_name: the name is reused.
                "name": {"formatted_name": "Ana Díaz", "first_name": "Ana Díaz"},
                "phones": [{"phone": "+5491155550000"}],
            },
        ],
    }


def test_reaction(connector: WhatsappConnector, graph: FakeGraphAPI) -> None:
    assert sent_json(connector, graph, React("👍", "wamid.HBgL")) == {
        **ENVELOPE,
        "type": "reaction",
        "reaction": {"message_id": "wamid.HBgL", "emoji": "👍"},
    }


def test_empty_reaction_removes(connector: WhatsappConnector, graph: FakeGraphAPI) -> None:
    payload = sent_json(connector, graph, React("", message_id="wamid.HBgL"))
    assert payload["reaction"] == {"message_id": "wamid.HBgL", "emoji": ""}


def test_template_without_components(connector: WhatsappConnector, graph: FakeGraphAPI) -> None:
    assert sent_json(connector, graph, Template("hello_world")) == {
        **ENVELOPE,
        "type": "template",
        "template": {"name": "hello_world", "language": {"code": "en_US"}},
    }


def test_template_with_components(connector: WhatsappConnector, graph: FakeGraphAPI) -> None:
    components = [
        {
            "type": "header",
            "parameters": [{"type": "image", "image": {"link": "https://e.x/a.png"}}],
        },
        {
            "type": "body",
            "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "42"}],
        },
        {
            "type": "button",
            "sub_type": "quick_reply",
            "index": "0",
            "parameters": [{"type": "payload", "payload": "STOP"}],
        },
    ]
    payload = sent_json(connector, graph, Template("order_update", "es_AR", components))
    assert payload["template"] == {
        "name": "order_update",
        "language": {"code": "es_AR"},
        "components": components,
    }


def test_template_with_body_params(connector: WhatsappConnector, graph: FakeGraphAPI) -> None:
    payload = sent_json(connector, graph, Template.with_body("order_update", ["Ana", "42"]))
    assert payload["template"]["components"] == [
        {
            "type": "body",
            "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "42"}],
        }
    ]


def test_template_components_never_carry_nulls(
    connector: WhatsappConnector, graph: FakeGraphAPI
) -> None:
    reply = Template(
        "t",
        components=[
            {
                "type": "body",
                "parameters": [None, {"type": "text", "text": "x", "parameter_name": None}],
            }
        ],
    )  # type: ignore[list-item]
    payload = sent_json(connector, graph, reply)
    assert payload["template"]["components"] == [
        {"type": "body", "parameters": [{"type": "text", "text": "x"}]}
    ]


# -- omitted parts are left out, never null -------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "absent"),
    [
        (Buttons("b", ["x"], header=None, footer=None), ("header", "footer")),
        (Buttons("b", ["x"], header="", footer=""), ("header", "footer")),
        (ListMenu("b", "menu", [Row("a", "A", None)], header=None), ("header", "description")),
        (CtaUrl("b", "go", "https://example.com", header=None, footer=None), ("header", "footer")),
        (Image(link="https://example.com/a.png", caption=None), ("caption",)),
        (Document(media_id="1", caption=None, filename=None), ("caption", "filename")),
        (Location(1, 2, name=None, address=None), ("name", "address")),
        (Text("x", reply_to=None), ("preview_url",)),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Reply) else "",
)
def test_omitted_optional_parts_are_absent(
    connector: WhatsappConnector, graph: FakeGraphAPI, reply: Reply, absent: tuple[str, ...]
) -> None:
    payload = sent_json(connector, graph, reply)
    text = repr(payload)
    assert "None" not in text
    for key in absent:
        assert f"'{key}'" not in text
    assert "context" not in payload


# -- what the constructors refuse ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Text("  "), "Text.body"),
        (lambda: Image(), "exactly one of link= (a URL) or media_id="),
        (lambda: Image(link="https://e.x/a.png", media_id="1"), "exactly one"),
        (lambda: Video(link="ftp://e.x/v.mp4"), "Video.link must be an http(s) URL"),
        (lambda: Buttons("b", []), "at least one button"),
        (lambda: Buttons("b", ["Yes", "Yes"]), "button id 'Yes' is used twice"),
        (lambda: Buttons("b", [Button("1", "Same"), Button("2", "Same")]), "button title"),
        (lambda: Buttons("", ["x"]), "Buttons.body"),
        (
            lambda: Buttons("b", ["x"], header=Image(link="https://e.x/a.png", caption="c")),
            "caption",
        ),
        (lambda: ListMenu("b", "m", []), "at least one row"),
        (lambda: ListMenu("b", "m", [Section(None, ["a"]), Section("S", ["b"])]), "needs a title"),
        (lambda: ListMenu("b", "m", [Row("a", "A"), Row("a", "B")]), "row id 'a'"),
        (lambda: CtaUrl("b", "go", "javascript:alert(1)"), "CtaUrl.url"),
        (lambda: Location(91, 0), "latitude must be between -90 and 90"),
        (lambda: Location(0, -181), "longitude must be between -180 and 180"),
        (lambda: Contacts(), "at least one Contact"),
        (lambda: Template("t", components=[{"parameters": []}]), "components[0]"),
        (lambda: Template(""), "Template.name"),
    ],
)
def test_constructors_refuse_what_whatsapp_cannot_show(build: Any, message: str) -> None:
    with pytest.raises(ValueError) as info:
        build()
    assert message in str(info.value)


@pytest.mark.parametrize(
    "build",
    [
        lambda: Buttons("b", "Yes"),
        lambda: Buttons("b", [1]),
        lambda: ListMenu("b", "m", [Section("S", ["a"]), Row("b", "B")]),
        lambda: ListMenu("b", "m", ["a"], header=Image(link="https://e.x/a.png")),
        lambda: Location("1", 2),
        lambda: Contacts({"name": "x"}),
        lambda: React(None),
    ],
)
def test_constructors_refuse_wrong_types(build: Any) -> None:
    with pytest.raises(TypeError):
        build()


def test_replies_are_immutable_values() -> None:
    reply = Buttons("b", ["x", Button("y", "Y")])
    assert reply == Buttons("b", [Button("x", "x"), Button("y", "Y")])
    assert reply.buttons == (Button("x", "x"), Button("y", "Y"))
    with pytest.raises(AttributeError):
        reply.body = "other"  # type: ignore[misc]
