"""Fast ``Schema.load`` for well-formed payloads, compiled from the schemas' own fields.

marshmallow does a fixed amount of bookkeeping on every load: an error store,
hook look-ups, and for every field a validator object built anew, whether or
not the field has validators. A text webhook takes nine nested loads (the
envelope, an entry, a change, its value, the metadata, a contact, its
profile, the message, its text), so that bookkeeping came to about 150 us
per webhook, several times the work itself.

:func:`compile_schema` reads a schema's declared fields once and returns a
loader doing only the work those fields ask for. It handles what our schemas
use (``String``, ``Boolean``, ``Raw``, plain ``Dict``, ``List``, ``Nested``,
and any other field without validators through its own ``_deserialize``,
``post_load`` hooks) and gives up, by raising :class:`Unsure`, on anything
else: a value of an unexpected type, a missing required field, ``None`` where
it is not allowed, a validator that fails. The caller then runs marshmallow's
own ``load``, so results and error messages are marshmallow's by
construction; the compiled loader only ever answers when marshmallow would
have answered the same (``tests/test_hot_path_loaders.py`` checks this on
generated payloads).

Schemas it does not mirror (``pre_load`` or validation hooks, ``unknown``
other than ``EXCLUDE``, ``many``, ``partial``, dotted ``attribute`` names)
compile to ``None`` and always take marshmallow's path.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, cast

from marshmallow import EXCLUDE, Schema, ValidationError, fields, missing

__all__ = ["Unsure", "compile_many", "compile_schema", "same_as_compiled"]

Loader = Callable[[Any], dict[str, Any]]
# A field's value loader: (value, key in the input, the input mapping) -> value.
ValueLoader = Callable[[Any, Any, Any], Any]


class Unsure(Exception):  # noqa: N818 - a signal, not an error
    """The compiled loader cannot vouch for this input: let marshmallow load it."""


# How a field's value is turned into the loaded value (inlined in _load for speed).
_RAW, _STRING, _BOOLEAN, _DICT, _CALL = range(5)
# What a missing key gives.
_REQUIRED, _SKIP, _FACTORY, _CONSTANT = range(4)


def _inline(value: Any, key: Any, data: Any) -> Any:
    """The loader slot of the kinds handled inline; never called."""
    raise Unsure


_UNSUPPORTED_HOOKS = frozenset({"pre_load", "validates", "validates_schema"})


# ``Schema.load`` and overrides that return what the compiled loader would
# (ours in schemas.py): a nested schema with another ``load`` is left to it.
_TRANSPARENT_LOADS: set[Callable[..., Any]] = {Schema.load}


def same_as_compiled(load: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a ``Schema.load`` override that gives the same results as the compiled loader."""
    _TRANSPARENT_LOADS.add(load)
    return load


def compile_schema(schema: Schema) -> Loader | None:
    """A function equivalent to ``schema.load(data)`` for the inputs it accepts, or ``None``.

    The function raises :class:`Unsure` for inputs it does not accept.
    """
    return _compile(schema, compiling=set())


def compile_many(schema: Schema, single: Loader) -> Callable[[Any], list[Any]] | None:
    """``schema.load(data, many=True)`` from the compiled ``single`` loader, or ``None``.

    ``None`` when the schema has ``post_load`` hooks: with ``many=True``
    marshmallow hands a hook taking the collection the whole list at once.
    """
    if "post_load" in _hook_tags(schema):
        return None

    def load_many(data: Any) -> list[Any]:
        if type(data) is not list:
            raise Unsure
        return [single(item) for item in data]

    return load_many


def _hook_tags(schema: Schema) -> set[str]:
    # marshmallow 4 keys the hooks by tag, marshmallow 3 by (tag, pass_many).
    tags = set()
    for key, hooks in schema._hooks.items():
        if hooks:
            tags.add(key[0] if isinstance(key, tuple) else key)
    return tags


def _compile(schema: Schema, compiling: set[int]) -> Loader | None:
    if id(schema) in compiling:
        return None  # a schema nested in itself: leave it to marshmallow
    hooks = _hook_tags(schema)
    cls = type(schema)
    if (
        cls._do_load is not Schema._do_load
        or cls._deserialize is not Schema._deserialize
        or schema.many
        or schema.partial
        or schema.unknown != EXCLUDE
        or getattr(schema, "dict_class", dict) is not dict
        or hooks & _UNSUPPORTED_HOOKS
    ):
        return None
    compiling = compiling | {id(schema)}
    plan: list[tuple[str, str, bool, int, Any, int, ValueLoader]] = []
    for attr_name, field in schema.load_fields.items():
        key_in = field.data_key if field.data_key is not None else attr_name
        key_out = field.attribute or attr_name
        if "." in key_out:
            return None
        plan.append(
            (
                key_in,
                key_out,
                field.allow_none,
                *_missing_plan(field),
                *_value_plan(field, compiling),
            )
        )
    steps = tuple(plan)

    def load(data: Any) -> dict[str, Any]:
        if type(data) is not dict:
            raise Unsure
        out: dict[str, Any] = {}
        get = data.get
        for key_in, key_out, allow_none, on_missing, default, kind, loader in steps:
            value = get(key_in, missing)
            if value is missing:
                if on_missing == _SKIP:
                    continue
                if on_missing == _REQUIRED:
                    raise Unsure
                out[key_out] = default() if on_missing == _FACTORY else default
            elif value is None:
                if not allow_none:
                    raise Unsure
                out[key_out] = None
            elif kind == _STRING:
                if type(value) is not str:
                    raise Unsure
                out[key_out] = value
            elif kind == _RAW:
                out[key_out] = value
            elif kind == _BOOLEAN:
                if value is not True and value is not False:
                    raise Unsure
                out[key_out] = value
            elif kind == _DICT:
                if type(value) is not dict:
                    raise Unsure
                out[key_out] = dict(value)
            else:
                out[key_out] = loader(value, key_in, data)
        return out

    if "post_load" in hooks:
        return _with_post_load(schema, load)
    return load


def _missing_plan(field: fields.Field) -> tuple[int, Any]:  # type: ignore[type-arg,unused-ignore]
    if field.required:
        return _REQUIRED, None
    default = field.load_default
    if default is missing:
        return _SKIP, None
    if callable(default):
        return _FACTORY, default
    return _CONSTANT, default


def _plain(field: fields.Field) -> bool:  # type: ignore[type-arg,unused-ignore]
    """No validators and marshmallow's own ``deserialize``: only ``_deserialize`` matters."""
    cls = type(field)
    return (
        not field.validators
        and cls.deserialize is fields.Field.deserialize
        and cls._validate is fields.Field._validate
    )


def _value_plan(
    field: fields.Field,  # type: ignore[type-arg,unused-ignore]
    compiling: set[int],
) -> tuple[int, ValueLoader]:
    """How to load a present, non-``None`` value of ``field``."""
    if not _plain(field):
        return _CALL, _full(field)
    cls = type(field)
    if cls is fields.String:
        return _STRING, _inline
    if cls is fields.Raw:
        return _RAW, _inline
    if cls is fields.Boolean:
        boolean = cast(fields.Boolean, field)
        # True and False load as themselves unless truthy/falsy were customised.
        if not boolean.truthy or (True in boolean.truthy and False in boolean.falsy):
            return _BOOLEAN, _inline
        return _CALL, _own(field)
    if cls is fields.Dict:
        mapping = cast(fields.Dict, field)  # type: ignore[type-arg,unused-ignore]
        if mapping.key_field is None and mapping.value_field is None:
            return _DICT, _inline
        return _CALL, _own(field)
    if cls is fields.List:
        return _list_plan(cast(fields.List, field), compiling)  # type: ignore[type-arg,unused-ignore]
    if cls is fields.Nested:
        return _nested_plan(cast(fields.Nested, field), compiling)
    return _CALL, _own(field)


def _full(field: fields.Field) -> ValueLoader:  # type: ignore[type-arg,unused-ignore]
    """Any field: marshmallow's whole ``deserialize``, validators included."""

    def load(value: Any, key: Any, data: Any) -> Any:
        try:
            return field.deserialize(value, key, data)
        except ValidationError as exc:
            raise Unsure from exc

    return load


def _own(field: fields.Field) -> ValueLoader:  # type: ignore[type-arg,unused-ignore]
    """A plain field of another kind (ours included): its ``_deserialize``."""
    deserialize = field._deserialize

    def load(value: Any, key: Any, data: Any) -> Any:
        try:
            return deserialize(value, key, data)
        except ValidationError as exc:
            raise Unsure from exc

    return load


def _list_plan(
    field: fields.List,  # type: ignore[type-arg,unused-ignore]
    compiling: set[int],
) -> tuple[int, ValueLoader]:
    inner = field.inner
    kind, inner_loader = _value_plan(inner, compiling)
    allow_none = inner.allow_none

    if kind == _RAW:

        def load_raw(value: Any, key: Any, data: Any) -> Any:
            # ``None in value`` may also match an odd object equal to None:
            # that only sends the input to marshmallow, never a wrong answer.
            if type(value) is not list or (not allow_none and None in value):
                raise Unsure
            return list(value)

        return _CALL, load_raw

    def load(value: Any, key: Any, data: Any) -> Any:
        if type(value) is not list:
            raise Unsure
        return [_element(each, kind, inner_loader, allow_none) for each in value]

    return _CALL, load


def _element(value: Any, kind: int, loader: ValueLoader, allow_none: bool) -> Any:
    """One list element, as ``inner.deserialize(value)`` would load it."""
    if value is None:
        if not allow_none:
            raise Unsure
        return None
    if kind == _RAW:
        return value
    if kind == _STRING:
        if type(value) is not str:
            raise Unsure
        return value
    if kind == _BOOLEAN:
        if value is not True and value is not False:
            raise Unsure
        return value
    if kind == _DICT:
        if type(value) is not dict:
            raise Unsure
        return dict(value)
    return loader(value, None, None)


def _nested_plan(
    field: fields.Nested,
    compiling: set[int],
) -> tuple[int, ValueLoader]:
    if field.many or (field.unknown is not None and field.unknown != EXCLUDE):
        return _CALL, _full(field)
    schema = field.schema
    if schema.many or type(schema).load not in _TRANSPARENT_LOADS:
        return _CALL, _full(field)
    loader = _compile(schema, compiling)
    if loader is None:
        return _CALL, _full(field)

    def load(value: Any, key: Any, data: Any) -> Any:
        return loader(value)

    return _CALL, load


def _with_post_load(schema: Schema, load: Loader) -> Loader:
    # marshmallow 4 passes ``unknown`` to processors, marshmallow 3 does not.
    invoke = schema._invoke_load_processors
    extra: dict[str, Any] = {}
    if "unknown" in inspect.signature(invoke).parameters:
        extra["unknown"] = schema.unknown

    def load_and_process(data: Any) -> Any:
        result = load(data)
        try:
            return invoke(
                "post_load", result, many=False, original_data=data, partial=None, **extra
            )
        except ValidationError as exc:
            raise Unsure from exc

    return load_and_process
