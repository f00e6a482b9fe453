"""Checked and PlainString load as marshmallow's own fields would, in one call.

The schemas' hot fields override the public ``Field.deserialize``; these
compare them with ``fields.String`` and ``fields.Function`` on the same
inputs, through ``Schema.load``, results and error messages alike.
"""

from __future__ import annotations

from typing import Any

import pytest
from marshmallow import EXCLUDE, Schema, ValidationError, fields

from cel_whatsapp.core.checked import Checked, PlainString, string
from cel_whatsapp.core.schemas import unix_time

VALUES: list[Any] = ["", "abc", "é 🙂", 0, 12, 1.5, True, None, [], ["a"], {}, {"a": 1}]


class _Ours(Schema):
    class Meta:
        unknown = EXCLUDE

    needed = PlainString(required=True)
    maybe = PlainString(load_default=None)
    renamed = PlainString(data_key="from", load_default="x")
    stamp = Checked(unix_time, load_default=None)


class _Theirs(Schema):
    class Meta:
        unknown = EXCLUDE

    needed = fields.String(required=True)
    maybe = fields.String(load_default=None)
    renamed = fields.String(data_key="from", load_default="x")
    stamp = fields.Function(deserialize=unix_time, load_default=None)


def _load(schema: Schema, data: dict[str, Any]) -> tuple[str, Any]:
    try:
        return "ok", schema.load(data)
    except ValidationError as err:
        return "error", err.messages


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("key", ["needed", "maybe", "from"])
def test_a_plain_string_loads_as_fields_string(key: str, value: Any) -> None:
    data = {"needed": "n", key: value}
    assert _load(_Ours(), data) == _load(_Theirs(), data)


@pytest.mark.parametrize("value", ["1700000000", 1700000000, "x", -1, True, None, [], "9" * 30])
def test_a_checked_field_loads_as_fields_function(value: Any) -> None:
    data = {"needed": "n", "stamp": value}
    assert _load(_Ours(), data) == _load(_Theirs(), data)


def test_missing_fields_get_their_defaults_or_the_required_message() -> None:
    assert _Ours().load({"needed": "n"}) == {
        "needed": "n",
        "maybe": None,
        "renamed": "x",
        "stamp": None,
    }
    with pytest.raises(ValidationError) as info:
        _Ours().load({})
    assert info.value.messages == {"needed": ["Missing data for required field."]}


def test_a_callable_default_is_called_for_each_load() -> None:
    class Listing(Schema):
        items = Checked(list, load_default=list)

    first, second = Listing().load({}), Listing().load({})
    assert first == {"items": []} and first["items"] is not second["items"]


def test_null_is_refused_unless_allowed() -> None:
    class Strict(Schema):
        value = PlainString(required=True)
        lenient = PlainString(required=True, allow_none=True)

    with pytest.raises(ValidationError) as info:
        Strict().load({"value": None, "lenient": None})
    assert info.value.messages == {"value": ["Field may not be null."]}
    assert Strict().load({"value": "v", "lenient": None}) == {"value": "v", "lenient": None}


@pytest.mark.parametrize("option", ["validate", "pre_load", "post_load"])
def test_validators_and_field_hooks_are_refused_not_ignored(option: str) -> None:
    with pytest.raises(TypeError, match=option):
        Checked(string, **{option: lambda value: value})


def test_a_string_subclass_is_taken_as_a_string() -> None:
    class Named(str):
        pass

    assert _Ours().load({"needed": Named("n")}) == {
        "needed": "n",
        "maybe": None,
        "renamed": "x",
        "stamp": None,
    }
