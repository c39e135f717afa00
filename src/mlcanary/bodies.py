"""Documents from outside (request bodies, policy and retrain tables) as pydantic models.

Each body is a pydantic model whose fields say what they expect (``description``), so one
definition checks the document, names the field in the error and describes the body in
the server's OpenAPI document. ``checked`` turns pydantic's errors into one
``InvalidInput`` in the project's formula: where, which field, what was expected, what
came.

>>> class Rule(Body):
...     name: str = Field(description="a string")
>>> checked(Rule, {"name": 3}, "rule 1")
Traceback (most recent call last):
...
mlcanary.errors.InvalidInput: rule 1 'name': expected a string, got 3
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from mlcanary.errors import InvalidInput

__all__ = ["Body", "Field", "checked", "json_type"]

B = TypeVar("B", bound="Body")


class Body(BaseModel):
    """A document's shape: strict types (no ``"2"`` for 2, no ``true`` for 1), no unknown
    fields, immutable once checked."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def checked(model: type[B], document: object, where: str) -> B:
    """``document`` as ``model``, or ``InvalidInput`` naming ``where`` and the field."""
    if not isinstance(document, dict):
        fields = ", ".join(f"'{name}'" for name in model.model_fields)
        raise InvalidInput(
            f"{where}: expected an object with fields {fields}, got {json_type(document)}"
        )
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise InvalidInput(_message(model, exc.errors(), where)) from None


def json_type(value: object) -> str:
    """What a JSON value is, in words: 'a list', 'a string', 'null' ..."""
    if value is None:
        return "null"
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
             int: "a number", float: "a number"}
    return names.get(type(value), type(value).__name__)


def _message(model: type[Body], errors: list[ErrorDetails], where: str) -> str:
    unknown = [str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden"]
    if unknown:
        return (f"{where}: unknown fields {sorted(unknown)}; expected some of "
                f"{sorted(model.model_fields)}")
    first = errors[0]
    loc = [part for part in first["loc"] if not _is_union_branch(part)]
    field = str(loc[0]) if loc else ""
    if first["type"] == "missing":
        return f"{where}: missing '{field}'{_wanted(model, field, ' (', ')')}"
    if not loc or first["type"] in ("value_error", "assertion_error"):
        detail = first["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        return f"{where}: {detail}" if not loc else f"{where} '{field}': {detail}"
    wanted = _wanted(model, field) or _pydantic_words(first["msg"])
    return f"{where} '{field}': expected {wanted}, got {first['input']!r}"


def _wanted(model: type[Body], field: str, before: str = "", after: str = "") -> str:
    info = model.model_fields.get(field)
    if info is None or not info.description:
        return ""
    return f"{before}{info.description}{after}"


def _is_union_branch(part: Any) -> bool:
    """pydantic adds the branch it tried (``'list[...]'``, ``'int'``) to a union's loc."""
    return isinstance(part, str) and ("[" in part or part in _BRANCHES)


_BRANCHES = frozenset({"int", "float", "str", "bool", "none", "constrained-str"})


def _pydantic_words(message: str) -> str:
    return message.removeprefix("Input should be ").removeprefix("Value should be ")
