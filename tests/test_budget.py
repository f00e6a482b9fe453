"""The item budget, the skip summary and the contact look-up, one piece at a time."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import Schema, fields

from cel_whatsapp.core import content, schemas
from cel_whatsapp.core._skips import SkipLog, field_names
from cel_whatsapp.core.budget import ItemBudget, TooManyItemsError, fits_without_counting
from cel_whatsapp.core.parsing import parse_webhook
from cel_whatsapp.core.webhook import WebhookHandler
from cel_whatsapp.errors import PayloadError
from cel_whatsapp.testing import envelope
from cel_whatsapp.testing.webhooks import change_value

#: Every list a schema loads item by item, and who counts it.
COUNTED_LISTS = {
    ("ContactCardSchema", "phones"): "spend_message (contacts)",
    ("ContactCardSchema", "emails"): "spend_message (contacts)",
    ("OrderSchema", "product_items"): "spend_message (order)",
    ("StatusSchema", "errors"): "spend_status",
}


def _schemas_reachable() -> Iterator[Schema]:
    """Every schema instance parsing loads with, the nested ones included."""
    roots = [getattr(schemas, name) for name in schemas.__all__]
    todo = [s for s in roots if isinstance(s, Schema)] + list(content._SCHEMAS.values())
    seen: set[int] = set()
    while todo:
        schema = todo.pop()
        if id(schema) in seen:
            continue
        seen.add(id(schema))
        yield schema
        for field in schema.fields.values():
            inner = field.inner if isinstance(field, fields.List) else field
            if isinstance(inner, fields.Nested):
                todo.append(inner.schema)


def test_every_list_a_schema_loads_is_counted() -> None:
    # A list field added to a schema without counting it in budget.py would
    # let one body hold a million items again.
    found = set()
    for schema in _schemas_reachable():
        for field_name, field in schema.fields.items():
            if isinstance(field, fields.List) or (isinstance(field, fields.Nested) and field.many):
                found.add((type(schema).__name__, field_name))
    assert found == set(COUNTED_LISTS)


class Untouchable(Mapping[str, Any]):
    """An entry that fails the test if the count looks inside it."""

    def __getitem__(self, key: str) -> Any:
        raise AssertionError("looked inside an entry")

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("looked inside an entry")

    def __len__(self) -> int:
        raise AssertionError("looked inside an entry")


def test_a_list_longer_than_the_budget_is_refused_before_it_is_walked() -> None:
    budget = ItemBudget(5)
    with pytest.raises(TooManyItemsError) as caught:
        budget.spend_envelope({"entry": [Untouchable()] * 6})
    assert caught.value.limit == 5
    assert isinstance(caught.value, PayloadError)  # callers catching PayloadError still do


def test_the_envelope_count_covers_entries_changes_and_update_arrays() -> None:
    value = {
        "messages": [{}, {}],
        "statuses": [{}],
        "errors": [{}],
        "contacts": [{}],
        "message_echoes": [{}],
        "metadata": {"x": [1, 2, 3]},  # not an update array: not counted
        "other": [{}] * 50,
    }
    body = {"entry": [{"changes": [{"value": value}, None, {"value": "x"}]}, None, {}]}
    budget = ItemBudget(100)
    budget.spend_envelope(body)
    assert budget.left == 100 - 3 - 3 - 6
    for odd in ({}, {"entry": "x"}, {"entry": [{"changes": {"a": 1}}]}):
        budget = ItemBudget(100)
        budget.spend_envelope(odd)
        assert budget.left in (100, 99)


def test_lists_inside_a_message_are_counted_by_its_type() -> None:
    budget = ItemBudget(100)
    card = {"phones": [{}] * 3, "emails": [{}] * 2, "urls": [{}] * 40}
    budget.spend_message({"errors": [{}], "contacts": [card, card, "junk"]}, "contacts")
    assert budget.left == 100 - 1 - 3 - 2 * 5
    budget = ItemBudget(100)
    budget.spend_message({"contacts": [{}] * 50}, "text")  # not a contacts message
    budget.spend_message({"order": {"product_items": [{}] * 7}}, "order")
    inner = {"type": "contacts", "contacts": [{}] * 4}
    budget.spend_message({"edit": {"message": inner}}, "edit")
    budget.spend_message(
        {"edit": {"message": {"type": "edit", "edit": {"message": inner}}}}, "edit"
    )
    budget.spend_status({"errors": [{}] * 2})
    budget.spend_status("junk")
    assert budget.left == 100 - 7 - 4 - 2


@settings(max_examples=200, deadline=None, database=None)
@given(
    limit=st.integers(min_value=1, max_value=60),
    count=st.integers(min_value=0, max_value=70),
    spaces=st.booleans(),
)
def test_bodies_too_short_to_hold_too_many_items_skip_the_count(
    limit: int, count: int, spaces: bool
) -> None:
    # The densest items there are: one-digit entries. Counted or not, a body
    # is refused exactly when it holds more than the limit.
    separator = ", " if spaces else ","
    raw = ('{"entry":[' + separator.join(["0"] * count) + "]}").encode()
    if fits_without_counting(len(raw), limit):
        assert count <= limit
    handler = WebhookHandler(verify_token="v", phone_number_id="1", max_items=limit)
    assert handler.receive(raw, None).status == (413 if count > limit else 200)


def test_field_names_never_hold_values_and_stay_short() -> None:
    assert field_names({"id": ["Missing."], "timestamp": ["Not valid."]}) == ["id", "timestamp"]
    many = {index: {"code": ["Not a valid integer."]} for index in range(10_000)}
    assert field_names(many) == ["[].code"]
    assert field_names({0: ["Invalid input type."]}) == ["[]"]
    assert field_names(["Invalid."]) == ["body"]
    wide = {f"field{index}": ["x"] for index in range(100)}
    assert len(field_names(wide)) == 8


def test_the_summary_is_bounded_whatever_was_skipped() -> None:
    log = SkipLog()
    assert not log
    for index in range(1000):
        log.skip("status", f"entry[0].changes[0].value.statuses[{index}]", [f"f{index}"])
    log.leave_out("message's errors", "entry[0].changes[0].value.messages[0]", ["[].code"])
    summary = log.summary()
    assert summary.startswith("1000 malformed item(s) skipped: status x1000 (f0, f1, ")
    assert ", ...; first at entry[0].changes[0].value.statuses[0])" in summary
    assert summary.endswith(
        "kept without a part: message's errors x1 "
        "([].code; first at entry[0].changes[0].value.messages[0])"
    )
    assert len(summary) < 400


def _linear_lead_name(
    sender: str | None, user_id: str | None, contacts: list[dict[str, Any]]
) -> str | None:
    """The contact look-up as it was: the first contact matching, else the only one."""
    found = None
    for candidate in contacts:
        if (sender and candidate.get("wa_id") == sender) or (
            user_id and candidate.get("user_id") == user_id
        ):
            found = candidate
            break
    if found is None and len(contacts) == 1:
        found = contacts[0]
    return found["profile"]["name"] if found is not None else None


IDS = st.sampled_from(["1", "2", "3", ""]) | st.none()


@settings(max_examples=300, deadline=None, database=None)
@given(
    contacts=st.lists(st.fixed_dictionaries({"wa_id": IDS, "user_id": IDS}), max_size=6),
    senders=st.lists(st.tuples(IDS, IDS), min_size=1, max_size=4),
)
def test_the_contact_look_up_finds_what_a_linear_search_found(
    contacts: list[dict[str, Any]], senders: list[tuple[str | None, str | None]]
) -> None:
    named = [
        {**{k: v for k, v in c.items() if v is not None}, "profile": {"name": f"c{index}"}}
        for index, c in enumerate(contacts)
    ]
    messages = []
    for index, (sender, user_id) in enumerate(senders):
        message: dict[str, Any] = {"id": f"m{index}", "timestamp": "1", "type": "text"}
        if sender is not None:
            message["from"] = sender
        if user_id is not None:
            message["from_user_id"] = user_id
        messages.append(message)
    value = change_value(contacts=named)
    value["messages"] = messages
    parsed = parse_webhook(envelope(value), phone_number_id=None)
    names = {m.id: m.lead.name for m in parsed.messages}
    for message, (sender, user_id) in zip(messages, senders, strict=True):
        expected = _linear_lead_name(sender or None, user_id or None, named)
        if message["id"] in names:
            assert names[message["id"]] == expected
        else:  # skipped: no sender id, neither its own nor its contact's
            assert not (sender or user_id)
