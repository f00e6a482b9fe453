"""Hostile input: thousands of generated and mutated webhook bodies.

Properties, checked through the Flask test client (which re-raises any
exception escaping a view, since the app runs with ``TESTING``):

- nothing gets a 5xx, and no exception escapes or is logged with a traceback;
- a 4xx always carries a short JSON error;
- valid messages inside a partly broken batch are still answered, once.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cel_whatsapp import Message, WhatsappConnector
from cel_whatsapp.config import DEFAULT_MAX_ITEMS_PER_POST
from cel_whatsapp.core.signature import sign
from cel_whatsapp.testing import FakeGraphAPI, encode, envelope, text_message
from cel_whatsapp.testing.webhooks import change_value, contact

from .conftest import APP_SECRET, PHONE_NUMBER_ID, TOKEN, VERIFY_TOKEN, make_app

# A failing example may hold 100 kB strings: let hypothesis print it anyway.
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")

#: Field names WhatsApp uses, so that mutations reach deep into the parser.
FIELDS = [
    "object",
    "entry",
    "id",
    "changes",
    "field",
    "value",
    "messaging_product",
    "metadata",
    "display_phone_number",
    "phone_number_id",
    "contacts",
    "profile",
    "name",
    "wa_id",
    "user_id",
    "messages",
    "from",
    "from_user_id",
    "timestamp",
    "type",
    "text",
    "body",
    "context",
    "forwarded",
    "statuses",
    "status",
    "errors",
    "image",
    "interactive",
]

ODD_TEXT = st.sampled_from(
    [
        "",
        "\x00",
        "\ud800",  # a lone surrogate (encoded by json.dumps as \\ud800)
        "\u202eevil",
        "e\u0301" * 50,
        "🤖" * 100,
        "x" * 100_000,
        "1" * 5000,  # more digits than int() accepts from a string
        "NaN",
        "-1",
        "99999999999999999999999",
        PHONE_NUMBER_ID,
        "messages",
        "text",
    ]
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | ODD_TEXT
)
JSON = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)

_ids = itertools.count()


def _wamid(kind: str) -> str:
    """Unique across examples and replays, so deduplication never hides a message."""
    return f"wamid.{kind}{next(_ids):010d}"


def _valid_body() -> dict[str, Any]:
    return envelope(
        change_value(
            [
                text_message("hello", sender="111", id=_wamid("V")),
                text_message("again", sender="222", id=_wamid("V")),
            ]
        ),
        change_value([text_message("other change", sender="333", id=_wamid("V"))]),
    )


def _deeply_nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = {"value": [value]}
    return value


class Mutation:
    """Apply one random edit somewhere in a JSON document."""

    @staticmethod
    def paths(doc: Any, max_depth: int = 10) -> list[tuple[Any, ...]]:
        """Every path into ``doc`` down to ``max_depth`` (iterative: documents may be deep)."""
        found: list[tuple[Any, ...]] = []
        stack: list[tuple[tuple[Any, ...], Any]] = [((), doc)]
        while stack:
            path, node = stack.pop()
            found.append(path)
            if len(path) >= max_depth:
                continue
            if isinstance(node, dict):
                stack.extend(((*path, key), value) for key, value in node.items())
            elif isinstance(node, list):
                # The first few items only: a flooded list holds thousands.
                stack.extend(((*path, index), value) for index, value in enumerate(node[:20]))
        return found

    @staticmethod
    def apply(doc: Any, path: tuple[Any, ...], action: str, new: Any) -> Any:
        if not path:
            return new if action != "wrap" else [doc]
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        if action == "replace":
            parent[last] = new
        elif action == "delete":
            del parent[last]
        elif action == "wrap":
            parent[last] = [parent[last]]
        elif action == "stringify":
            parent[last] = json.dumps(parent[last])
        elif action == "nest":
            parent[last] = _deeply_nested(400)
        elif action == "flood":
            parent[last] = [{}] * (DEFAULT_MAX_ITEMS_PER_POST + 1)
        elif action == "insert" and isinstance(parent, list):
            parent.insert(last, new)
        elif action == "insert":
            parent[str(new)[:20]] = new
        return doc


@st.composite
def mutated_bodies(draw: st.DrawFn) -> dict[str, Any] | list[Any] | Any:
    doc: Any = _valid_body()
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        paths = Mutation.paths(doc)
        path = draw(st.sampled_from(paths))
        action = draw(
            st.sampled_from(["replace", "delete", "wrap", "stringify", "nest", "insert", "flood"])
        )
        if action == "delete" and not path:
            action = "replace"
        doc = Mutation.apply(doc, path, action, draw(JSON))
    return doc


def _raw(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=True, allow_nan=True).encode("ascii")


class ErrorLogs(logging.Handler):
    """Collects log records that carry a traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(record)


@pytest.fixture(scope="module")
def hostile() -> Iterator[tuple[FakeGraphAPI, list[str], ErrorLogs]]:
    """A fake Graph API, the ids the assistant saw, and traceback records."""
    handler = ErrorLogs()
    root = logging.getLogger()
    root.addHandler(handler)  # tracebacks are logged at ERROR, which the root passes
    with FakeGraphAPI(token=TOKEN) as graph:
        yield graph, [], handler
    root.removeHandler(handler)


def _client(
    graph: FakeGraphAPI,
    seen: list[str],
    *,
    answer: bool = False,
    max_body_bytes: int = 300_000,
    max_items: int = DEFAULT_MAX_ITEMS_PER_POST,
) -> FlaskClient:
    def assistant(message: Message) -> str | None:
        seen.append(message.id)
        return f"re {message.id}" if answer else None

    connector = WhatsappConnector(
        TOKEN,
        PHONE_NUMBER_ID,
        VERIFY_TOKEN,
        app_secret=APP_SECRET,
        base_url=graph.base_url,
        read_receipts=False,
        dispatch="inline",
        assistant=assistant,
        max_body_bytes=max_body_bytes,
        max_items=max_items,
        # Hundreds of answers to the same sender: not paced to Meta's pair rate here.
        delivery_rate_control=False,
    )
    return make_app(connector).test_client()


@pytest.fixture(scope="module")
def shared_client(hostile: tuple[FakeGraphAPI, list[str], ErrorLogs]) -> FlaskClient:
    graph, seen, _ = hostile
    return _client(graph, seen)


@pytest.fixture(scope="module")
def answering() -> tuple[list[str], list[FlaskClient]]:
    """The ids an answering client's assistant saw, and that client (made on first use)."""
    return [], []


def _post(client: FlaskClient, raw: bytes, *, content_type: str = "application/json") -> Any:
    headers = {"Content-Type": content_type, "X-Hub-Signature-256": sign(raw, APP_SECRET)}
    return client.post("/whatsapp", data=raw, headers=headers)


def _check(response: Any, errors: ErrorLogs) -> None:
    assert response.status_code < 500, response.get_data()
    assert response.status_code in (200, 400, 401, 403, 413, 415), response.status_code
    if response.status_code >= 400:
        assert response.mimetype == "application/json"
        body = response.get_json()
        assert isinstance(body["error"], str) and len(body["error"]) < 300
    assert errors.records == [], [r.getMessage() for r in errors.records]


def examples(count: int) -> settings:
    return settings(
        max_examples=count,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
    )


@examples(1000)
@given(doc=JSON)
def test_any_json_value_is_refused_or_acknowledged(
    hostile: tuple[FakeGraphAPI, list[str], ErrorLogs], shared_client: FlaskClient, doc: Any
) -> None:
    _check(_post(shared_client, _raw(doc)), hostile[2])


@examples(1500)
@given(doc=mutated_bodies())
def test_mutated_envelopes_never_break_the_webhook(
    hostile: tuple[FakeGraphAPI, list[str], ErrorLogs], shared_client: FlaskClient, doc: Any
) -> None:
    _check(_post(shared_client, _raw(doc)), hostile[2])


@examples(700)
@given(
    doc=mutated_bodies(),
    cut=st.integers(min_value=0, max_value=10_000),
    junk=st.binary(min_size=1, max_size=8),
    how=st.sampled_from(["truncate", "insert", "replace", "latin1", "utf16"]),
)
def test_mutated_bytes_never_break_the_webhook(
    hostile: tuple[FakeGraphAPI, list[str], ErrorLogs],
    shared_client: FlaskClient,
    doc: Any,
    cut: int,
    junk: bytes,
    how: str,
) -> None:
    raw = _raw(doc)
    cut %= len(raw) + 1
    if how == "truncate":
        raw = raw[:cut]
    elif how == "insert":
        raw = raw[:cut] + junk + raw[cut:]
    elif how == "replace":
        raw = raw[:cut] + junk + raw[cut + len(junk) :]
    elif how == "latin1":
        raw = json.dumps(doc, ensure_ascii=False, allow_nan=True).encode("latin-1", "replace")
    else:
        raw = json.dumps(doc, ensure_ascii=False, allow_nan=True).encode("utf-16", "surrogatepass")
    _check(_post(shared_client, raw), hostile[2])


@examples(100)
@given(
    content_type=st.sampled_from(
        [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
            "",
            "json",
            "application/json; charset=utf-16",
            "application/json;;;",
            "\x7f/\x7f",
        ]
    ),
    signature=st.sampled_from(["none", "garbage", "wrong", "upper"]),
)
def test_headers_are_checked_before_the_body(
    hostile: tuple[FakeGraphAPI, list[str], ErrorLogs],
    shared_client: FlaskClient,
    content_type: str,
    signature: str,
) -> None:
    _, seen, errors = hostile
    raw = _raw(_valid_body())
    headers = {"Content-Type": content_type} if content_type else {}
    if signature == "garbage":
        headers["X-Hub-Signature-256"] = "sha256=\u00e9\u00e9"
    elif signature == "wrong":
        headers["X-Hub-Signature-256"] = sign(raw + b" ", APP_SECRET)
    elif signature == "upper":
        headers["X-Hub-Signature-256"] = sign(raw, APP_SECRET).upper()
    before = len(seen)
    response = shared_client.post("/whatsapp", data=raw, headers=headers)
    _check(response, errors)
    if not content_type.startswith("application/json"):
        assert response.status_code == 415  # a missing Content-Type too: Meta always sends it
    if signature in ("none", "garbage", "wrong"):
        assert response.status_code in (401, 403, 415)
        assert len(seen) == before  # nothing was parsed or answered


@st.composite
def partly_broken_batches(draw: st.DrawFn) -> tuple[dict[str, Any], list[str]]:
    """A batch of valid text messages among broken entries, changes and messages."""
    valid = [
        text_message(f"valid {index}", sender=f"1555000{index:04d}", id=_wamid("GOOD"))
        for index in range(draw(st.integers(min_value=1, max_value=4)))
    ]
    broken_messages = []
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        junk = text_message("junk", sender="19990000000", id=_wamid("JUNK"))
        path = draw(st.sampled_from(Mutation.paths(junk)))
        action = draw(st.sampled_from(["replace", "delete", "wrap", "stringify", "nest"]))
        if not path:
            action = "replace"
        broken_messages.append(Mutation.apply(junk, path, action, draw(JSON)))
    items: list[Any] = [*valid, *broken_messages]
    order = draw(st.permutations(range(len(items))))
    value = change_value(
        [items[i] for i in order],
        contacts=[contact(wa_id=m["from"]) for m in valid],
    )
    body = envelope(value)
    junk_changes = draw(st.lists(JSON, max_size=3))
    body["entry"][0]["changes"].extend(junk_changes)
    junk_entries = draw(st.lists(JSON, max_size=3))
    body["entry"].extend(junk_entries)
    return body, [m["id"] for m in valid]


@examples(300)
@given(batch=partly_broken_batches())
def test_valid_messages_in_a_partly_broken_batch_are_answered(
    hostile: tuple[FakeGraphAPI, list[str], ErrorLogs],
    answering: tuple[list[str], list[FlaskClient]],
    batch: tuple[dict[str, Any], list[str]],
) -> None:
    graph, _, errors = hostile
    seen, clients = answering
    if not clients:  # one client for every example: ids never repeat (see _wamid)
        clients.append(_client(graph, seen, answer=True, max_body_bytes=3_500_000))
    client = clients[0]
    body, valid_ids = batch
    seen.clear()
    graph.reset()
    response = _post(client, encode(body))
    _check(response, errors)
    assert response.status_code == 200
    assert sorted(i for i in seen if "GOOD" in i) == sorted(valid_ids)  # each one, once
    replies = {r.json["text"]["body"] for r in graph.sent()}
    assert {f"re {i}" for i in valid_ids} <= replies
    # Meta delivering the same broken batch again answers nothing twice.
    seen.clear()
    _check(_post(client, encode(body)), errors)
    assert [i for i in seen if "GOOD" in i] == []


# -- amplification: many items, each cheap to send and costly to handle -----------------

#: The item cap of the amplification client: low, so that examples stay quick.
SMALL_CAP = 300


class WarningCount(logging.Handler):
    """Counts the records at WARNING and above."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


@pytest.fixture(scope="module")
def small_cap(
    hostile: tuple[FakeGraphAPI, list[str], ErrorLogs],
) -> tuple[FlaskClient, list[str]]:
    """A client whose webhook takes at most SMALL_CAP items, and the ids its assistant saw."""
    graph, _, _ = hostile
    seen: list[str] = []
    client = _client(graph, seen, max_body_bytes=3_500_000, max_items=SMALL_CAP)
    assert client.application.extensions["cel_whatsapp"]["whatsapp"].webhook.max_items == SMALL_CAP
    return client, seen


def _item(kind: str, index: int) -> Any:
    """One element of a value array: valid, empty, null, or of the wrong type."""
    if kind == "text":
        return text_message("amplified", sender=f"1555{index:07d}", id=_wamid("AMP"))
    if kind == "status":
        return {"id": _wamid("OUT"), "status": "read", "timestamp": "1700000000"}
    return {"empty": {}, "null": None, "junk": [1], "wrong": {"id": 1, "timestamp": "x"}}[kind]


@st.composite
def amplified_bodies(draw: st.DrawFn) -> tuple[dict[str, Any], int]:
    """Many entries, changes and updates, or long lists inside one update; and their count."""
    many = [SMALL_CAP // 4, SMALL_CAP - 3, SMALL_CAP, 2 * SMALL_CAP]
    kinds = st.sampled_from(["text", "status", "empty", "null", "junk", "wrong"])
    # One dimension grows at a time, so that generating a body stays quick.
    entry_count = draw(st.sampled_from([1, 1, 2, 5, SMALL_CAP // 2, SMALL_CAP + 1]))
    change_counts = [0, 1] if entry_count > 5 else [0, 1, 1, 3, SMALL_CAP + 1]
    entries: list[Any] = []
    items = 0
    for _ in range(entry_count):
        changes: list[Any] = []
        change_count = draw(st.sampled_from(change_counts))
        sizes = st.sampled_from([0, 1, 2] if entry_count * change_count > 5 else [0, 1, 10, *many])
        for _ in range(change_count):
            value = change_value()
            for array in ("messages", "statuses", "errors", "contacts", "message_echoes"):
                count = draw(sizes) if draw(st.integers(0, 4)) == 0 else 0
                kind = draw(kinds)
                value[array] = [_item(kind, index) for index in range(count)]
                items += count
            changes.append({"field": "messages", "value": value})
        entries.append({"id": "1", "changes": changes})
        items += 1 + len(changes)
    inner = draw(st.sampled_from(["none", "cards", "errors", "order", "phones"]))
    if inner != "none" and entries and entries[0]["changes"]:
        count = draw(st.sampled_from([1, 10, *many]))
        message = text_message("inner", id=_wamid("INNER"))
        if inner == "cards":
            message.update(type="contacts", contacts=[{}] * count)
        elif inner == "errors":
            message["errors"] = [{"code": 1}] * count
        elif inner == "order":
            message.update(type="order", order={"product_items": [{}] * count})
        else:
            message.update(type="contacts", contacts=[{"phones": [{}] * count}])
            count += 1
        entries[0]["changes"][0]["value"]["messages"].append(message)
        items += 1 + count
    return {"object": "whatsapp_business_account", "entry": entries}, items


@examples(150)
@given(batch=amplified_bodies())
def test_many_items_are_refused_or_handled_with_a_line_or_two(
    hostile: tuple[FakeGraphAPI, list[str], ErrorLogs],
    small_cap: tuple[FlaskClient, list[str]],
    batch: tuple[dict[str, Any], int],
) -> None:
    client, seen = small_cap
    body, items = batch
    counter = WarningCount()
    # The webhook's own lines (routing, downstream, still logs each value.errors item).
    loggers = [logging.getLogger(f"cel_whatsapp.{name}") for name in ("webhook", "parsing")]
    for logger in loggers:
        logger.addHandler(counter)
    seen.clear()
    try:
        response = _post(client, _raw(body))
    finally:
        for logger in loggers:
            logger.removeHandler(counter)
    _check(response, hostile[2])
    if items > SMALL_CAP:
        assert response.status_code == 413
        assert seen == []  # nothing of a refused body reaches the assistant
    else:
        assert response.status_code == 200
    # One refusal line, or one summary of what was skipped; never one per item.
    assert counter.count <= 2


def test_oversized_body_without_content_length_is_413_unread(
    hostile: tuple[FakeGraphAPI, list[str], ErrorLogs], shared_client: FlaskClient
) -> None:
    import io

    class Counting(io.BytesIO):
        def __init__(self, data: bytes) -> None:
            super().__init__(data)
            self.consumed = 0

        def read(self, size: int | None = -1) -> bytes:
            chunk = super().read(size)
            self.consumed += len(chunk)
            return chunk

        def readline(self, size: int | None = -1) -> bytes:
            chunk = super().readline(size)
            self.consumed += len(chunk)
            return chunk

    stream = Counting(b'{"entry": ["' + b"x" * 2_000_000 + b'"]}')
    response = shared_client.post(
        "/whatsapp",
        input_stream=stream,
        headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},  # as gunicorn sets for chunked bodies
    )
    assert response.status_code == 413
    assert stream.consumed <= 300_000 + 64 * 1024  # the cap, plus at most one buffer


def test_deep_nesting_and_huge_numbers_are_400(
    hostile: tuple[FakeGraphAPI, list[str], ErrorLogs], shared_client: FlaskClient
) -> None:
    for raw in (
        b'{"entry": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
        b'{"entry": [' + b"1" * 5000 + b"]}",
        b'{"entry": [{"changes": [' + b'{"a":' * 3000 + b"1" + b"}" * 3000 + b"]}]}",
    ):
        response = _post(shared_client, raw)
        assert response.status_code in (200, 400)
        _check(response, hostile[2])
