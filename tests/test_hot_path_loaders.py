"""The compiled loaders (cel_whatsapp.core._loaders) answer exactly as marshmallow would.

A compiled loader either returns what ``Schema.load`` returns or raises
``Unsure`` (marshmallow then decides); it must never return something else,
nor succeed where marshmallow refuses. Checked on generated inputs against
synthetic schemas using every kind of field, and on mutated webhook payloads
through the whole parser.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import (
    EXCLUDE,
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    pre_load,
    validate,
    validates_schema,
)

from cel_whatsapp.core import schemas
from cel_whatsapp.core._loaders import Unsure, compile_many, compile_schema
from cel_whatsapp.core.parsing import parse_webhook
from cel_whatsapp.errors import PayloadError
from cel_whatsapp.testing import envelope, text_message
from cel_whatsapp.testing.webhooks import change_value, contact

DATA = Path(__file__).resolve().parent / "data"

# -- synthetic schemas with every kind of field ------------------------------------------


class Child(Schema):
    class Meta:
        unknown = EXCLUDE

    name = fields.String(required=True)
    tags = fields.List(fields.String(), load_default=list)


class Everything(Schema):
    class Meta:
        unknown = EXCLUDE

    text = fields.String()
    required_text = fields.String(required=True)
    nullable = fields.String(allow_none=True)
    defaulted = fields.String(load_default="default")
    flag = fields.Boolean()
    yes_no = fields.Boolean(truthy={"yes"}, falsy={"no"})
    raw = fields.Raw(load_default=None)
    mapping = fields.Dict()
    numbers = fields.Dict(values=fields.Integer())
    words = fields.List(fields.String())
    children = fields.List(fields.Nested(Child), load_default=list)
    child = fields.Nested(Child, load_default=None)
    count = fields.Integer()
    ratio = fields.Float()
    when = fields.DateTime()
    email = fields.Email()
    short = fields.String(validate=validate.Length(max=3))
    from_ = fields.String(data_key="from")
    renamed = fields.String(attribute="other_name")
    unix = schemas.UnixTime()


class WithPostLoad(Child):
    @post_load
    def to_tuple(self, data: dict[str, Any], **kwargs: Any) -> tuple[str, list[str]]:
        if data["name"] == "refuse":
            raise ValidationError("refused by post_load")
        return data["name"], data["tags"]


KEYS = [
    "text",
    "required_text",
    "nullable",
    "defaulted",
    "flag",
    "yes_no",
    "raw",
    "mapping",
    "numbers",
    "words",
    "children",
    "child",
    "count",
    "ratio",
    "when",
    "email",
    "short",
    "from",
    "renamed",
    "unix",
    "unknown_key",
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=6)
    | st.sampled_from(["yes", "no", "a@b.example", "2024-01-02T03:04:05", "1700000000", "x"])
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["name", "tags", "x"]), inner, max_size=3)
    ),
    max_leaves=6,
)


def _outcome(load: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "loaded", load()
    except ValidationError as err:
        return "refused", err.messages


def _check_same(schema: Schema, data: Any) -> None:
    loader = compile_schema(schema)
    assert loader is not None
    expected = _outcome(lambda: schema.load(data))
    try:
        got = ("loaded", loader(data))
    except Unsure:
        return  # marshmallow decides; nothing to compare
    assert got == expected


@settings(max_examples=250, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(KEYS), json_values, max_size=10))
def test_every_field_kind_loads_as_marshmallow_does(data: dict[str, Any]) -> None:
    _check_same(Everything(), data)


@settings(max_examples=200)
@given(json_values)
def test_any_json_value_loads_as_marshmallow_does(data: Any) -> None:
    _check_same(Everything(), data)
    _check_same(Child(), data)
    _check_same(WithPostLoad(), data)


def test_well_formed_input_is_loaded_without_marshmallow() -> None:
    loader = compile_schema(Everything())
    assert loader is not None
    data = {
        "text": "a",
        "required_text": "b",
        "nullable": None,
        "flag": True,
        "yes_no": "yes",
        "mapping": {"k": [1]},
        "numbers": {"n": 1},
        "words": ["x", "y"],
        "children": [{"name": "c", "tags": ["t"]}],
        "child": {"name": "d"},
        "count": 3,
        "ratio": 0.5,
        "when": "2024-01-02T03:04:05",
        "email": "a@b.example",
        "short": "abc",
        "from": "f",
        "renamed": "r",
        "unix": "1700000000",
        "unknown_key": "dropped",
    }
    loaded = loader(data)
    assert loaded == Everything().load(data)
    assert loaded["other_name"] == "r" and loaded["from_"] == "f"
    assert loaded["unix"] == datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)
    assert "unknown_key" not in loaded and loaded["defaulted"] == "default"


def test_defaults_from_factories_are_fresh_objects() -> None:
    loader = compile_schema(Child())
    assert loader is not None
    first, second = loader({"name": "a"}), loader({"name": "b"})
    assert first["tags"] == [] and first["tags"] is not second["tags"]


def test_a_copied_mapping_is_not_the_input() -> None:
    loader = compile_schema(Everything())
    assert loader is not None
    mapping = {"k": 1}
    loaded = loader({"required_text": "x", "mapping": mapping})
    assert loaded["mapping"] == mapping and loaded["mapping"] is not mapping


@pytest.mark.parametrize(
    "data",
    [
        {"name": b"bytes"},  # marshmallow decodes bytes
        {"name": "x", "tags": ("a", "b")},  # a tuple is a collection to marshmallow
        {"name": None},
        {},
        ["not", "a", "mapping"],
    ],
)
def test_unusual_input_is_left_to_marshmallow(data: Any) -> None:
    loader = compile_schema(Child())
    assert loader is not None
    with pytest.raises(Unsure):
        loader(data)


def test_post_load_runs_and_its_refusal_goes_to_marshmallow() -> None:
    loader = compile_schema(WithPostLoad())
    assert loader is not None
    assert loader({"name": "n", "tags": ["t"]}) == ("n", ["t"])
    with pytest.raises(Unsure):
        loader({"name": "refuse"})


class Raising(Child):
    class Meta:
        unknown = RAISE


class PreLoaded(Child):
    @pre_load
    def strip(self, data: Any, **kwargs: Any) -> Any:
        return data


class SchemaValidated(Child):
    @validates_schema
    def check(self, data: Any, **kwargs: Any) -> None:
        return None


class Dotted(Schema):
    class Meta:
        unknown = EXCLUDE

    name = fields.String(attribute="a.b")


@pytest.mark.parametrize(
    "schema",
    [Raising(), PreLoaded(), SchemaValidated(), Dotted(), Child(many=True), Child(partial=True)],
    ids=["unknown=RAISE", "pre_load", "validates_schema", "dotted attribute", "many", "partial"],
)
def test_features_not_mirrored_are_not_compiled(schema: Schema) -> None:
    assert compile_schema(schema) is None


class CustomLoad(Child):
    loads: int = 0

    def load(self, data: Any, **kwargs: Any) -> Any:
        type(self).loads += 1
        return super().load(data, **kwargs)


class Parent(Schema):
    class Meta:
        unknown = EXCLUDE

    child = fields.Nested(CustomLoad)


def test_a_nested_schema_with_its_own_load_keeps_it() -> None:
    loader = compile_schema(Parent())
    assert loader is not None
    assert loader({"child": {"name": "c"}}) == {"child": {"name": "c", "tags": []}}
    assert CustomLoad.loads == 1


def test_every_webhook_schema_compiles() -> None:
    # A schema change that silently turns the fast path off would put
    # marshmallow's per-load cost back on every webhook: see bench/.
    instances = {name: obj for name, obj in vars(schemas).items() if isinstance(obj, Schema)}
    assert {"ENVELOPE", "ENTRY", "CHANGE", "VALUE", "MESSAGE"} <= set(instances)
    for name, schema in instances.items():
        assert compile_schema(schema) is not None, f"schemas.{name} no longer compiles"


@settings(max_examples=150)
@given(st.lists(json_values, max_size=4) | json_values)
def test_many_loads_as_marshmallow_does(data: Any) -> None:
    single = compile_schema(Child())
    assert single is not None
    several = compile_many(Child(), single)
    assert several is not None
    expected = _outcome(lambda: Child().load(data, many=True))
    try:
        got = ("loaded", several(data))
    except Unsure:
        return
    assert got == expected


def test_many_is_left_to_marshmallow_when_post_load_may_take_the_list() -> None:
    single = compile_schema(WithPostLoad())
    assert single is not None
    assert compile_many(WithPostLoad(), single) is None


# -- the whole parser, with and without the compiled loaders -----------------------------


@contextlib.contextmanager
def _marshmallow_only() -> Iterator[None]:
    """Our schemas loading through marshmallow alone, as before the fast path."""
    fast = schemas._Base.__dict__["load"]
    schemas._Base.load = Schema.load  # type: ignore[method-assign]
    try:
        yield
    finally:
        schemas._Base.load = fast  # type: ignore[method-assign]


def _bases() -> list[dict[str, Any]]:
    reply = text_message("re", sender="16315551181", timestamp=1700000000, reply_to="wamid.P")
    hidden = text_message("hi", sender=None, user_id="US.1349120865530274191", timestamp=1)
    image = {
        "from": "16315551181",
        "id": "wamid.IMG",
        "timestamp": "1700000000",
        "type": "image",
        "image": {"caption": "look", "mime_type": "image/jpeg", "sha256": "abc", "id": "1"},
    }
    status = {"id": "wamid.S", "status": "read", "timestamp": "1700000000", "recipient_id": "1"}
    # Every webhook body under tests/data (one per message type, status and error).
    fixtures = [json.loads(path.read_text()) for path in sorted(DATA.glob("*.json"))]
    return [
        *fixtures,
        envelope(change_value([text_message("hello", timestamp=1700000000)])),
        envelope(change_value([reply, image])),
        envelope(
            change_value(
                [hidden], contacts=[contact(wa_id=None, user_id="US.13491208655302741918")]
            )
        ),
        envelope(change_value(statuses=[status])),
        envelope(change_value([text_message("x")]), field="account_update"),
    ]


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*prefix, index))


def _mutate(body: Any, path: tuple[Any, ...], action: str, value: Any) -> Any:
    if not path:
        return value if action == "replace" else body
    parent = body
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if action == "replace":
        parent[last] = value
    elif action == "delete" and isinstance(parent, dict):
        del parent[last]
    elif action == "add" and isinstance(parent, dict):
        parent["added_field"] = value
    return body


def _parse_outcome(body: Any) -> tuple[str, Any]:
    try:
        return "parsed", parse_webhook(body, phone_number_id=None)
    except PayloadError as exc:
        return "refused", str(exc)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(base=st.sampled_from(_bases()), data=st.data())
def test_parsing_is_the_same_with_and_without_compiled_loaders(
    base: dict[str, Any], data: st.DataObject
) -> None:
    body: Any = copy.deepcopy(base)
    for _ in range(data.draw(st.integers(0, 3), label="mutations")):
        path = data.draw(st.sampled_from(list(_paths(body))), label="path")
        action = data.draw(st.sampled_from(["replace", "delete", "add"]), label="action")
        body = _mutate(body, path, action, data.draw(json_values, label="value"))
    fast = _parse_outcome(copy.deepcopy(body))
    with _marshmallow_only():
        slow = _parse_outcome(copy.deepcopy(body))
    assert fast == slow
