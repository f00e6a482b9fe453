"""A marshmallow field whose value one function checks and converts: :class:`Checked`.

marshmallow's own fields load a value in several steps on every load: the
required and null checks, the type's conversion, then a validator chain
built anew for the call (an ``And`` of the field's validators, even when it
has none); about six Python calls a field. A JSON string from Meta needs one
type check. :class:`Checked` overrides the public ``Field.deserialize``
(which ``Schema.load`` calls for each field) to do the required and null
checks and then call its function, with marshmallow's own error messages;
everything around it (``data_key``, ``load_default``, ``unknown``, the
error messages collected per field, ``post_load``) stays marshmallow's.

On the echo bench this took the connector's modelled CPU per answered
webhook from 0.82x to 0.80x pywa's (``python -m bench --only instructions``,
docs/performance.rst).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from marshmallow import ValidationError, fields, missing

__all__ = ["Checked", "PlainString", "string"]


class Checked(fields.Field[Any]):
    """A field loaded by ``check(value)``, which returns the loaded value or raises
    :class:`~marshmallow.ValidationError`.

    ``required``, ``load_default``, ``allow_none`` and ``data_key`` work as on
    any field; validators (``validate=``) and per-field hooks are not run, so
    they are refused. Loading only: the schemas here never dump.
    """

    def __init__(self, check: Callable[[Any], Any], **kwargs: Any) -> None:
        refused = {"validate", "pre_load", "post_load"} & kwargs.keys()
        if refused:
            raise TypeError(f"Checked does not run {', '.join(sorted(refused))}: put it in check")
        super().__init__(**kwargs)
        self.check = check

    def deserialize(
        self,
        value: Any,
        attr: str | None = None,
        data: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        if value is missing:
            if self.required:
                raise self.make_error("required")
            default = self.load_default
            return default() if callable(default) else default
        if value is None:
            if self.allow_none:
                return None
            raise self.make_error("null")
        return self.check(value)


def string(value: Any) -> str:
    """A JSON string, as ``fields.String`` loads one (which also takes bytes, never in JSON)."""
    if not isinstance(value, str):
        raise ValidationError("Not a valid string.")
    return value


class PlainString(Checked):
    """``Checked(string)``, a present string taken in the one call (ids, types, numbers)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(string, **kwargs)

    def deserialize(self, value: Any, *args: Any, **kwargs: Any) -> Any:
        if type(value) is str:
            return value
        return super().deserialize(value, *args, **kwargs)
