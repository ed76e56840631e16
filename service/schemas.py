"""Base classes shared by every domain's pydantic schemas."""

from __future__ import annotations

import types
import unicodedata
from typing import Any, ClassVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

# Line breaks and tabs, allowed only in the fields a schema names as multi-line text.
_LAYOUT = frozenset("\n\t")


def _is_bool_field(annotation: Any) -> bool:
    if annotation is bool:
        return True
    if get_origin(annotation) in (Union, types.UnionType):
        return bool in get_args(annotation)
    return False


def _bad_character(text: str, allowed: frozenset[str]) -> str | None:
    """The first control character (NUL included) or lone surrogate that a text
    field may not hold, if any."""
    for char in text:
        if char in allowed:
            continue
        if unicodedata.category(char) in ("Cc", "Cs"):
            return f"U+{ord(char):04X}"
    return None


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple | frozenset | set):
        return [v for v in value if isinstance(v, str)]
    return []


class StrictInput(BaseModel):
    """Request bodies: unknown properties are refused (mass assignment, B11), and the
    parsed input is immutable.

    Two rules hold for every field of every input (SECURITY-TESTS G: bad input gets
    a 422 that lists each problem, never a 500 and never a stored surprise):
    booleans are JSON booleans (`0` or `"true"` is refused, not read as one), and
    text holds no control characters (NUL, carriage return, escape, ...) and no lone
    surrogates; line breaks and tabs only in the
    fields a schema lists in `multiline`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    multiline: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _strict_booleans(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        is_bool = field is not None and _is_bool_field(field.annotation)
        if is_bool and value is not None and not isinstance(value, bool):
            raise ValueError("must be a JSON boolean (true or false)")
        return value

    @field_validator("*", mode="after")
    @classmethod
    def _plain_text(cls, value: Any, info: ValidationInfo) -> Any:
        allowed = _LAYOUT if info.field_name in cls.multiline else frozenset()
        for text in _strings(value):
            bad = _bad_character(text, allowed)
            if bad is not None:
                raise ValueError(f"must not contain the control character {bad}")
        return value
