"""Query parameters: checked at the edge, with the limits the OpenAPI document states."""

from __future__ import annotations

import re

from mlcanary.errors import InvalidInput

MOST = 10_000
"""The most windows or events one request may ask for."""

_DIGITS = re.compile(r"[0-9]{1,9}")


def positive_int(text: str, name: str, most: int = MOST) -> int:
    """``text`` as a whole number in 1..most, or ``InvalidInput`` naming the parameter."""
    if not _DIGITS.fullmatch(text) or not 1 <= int(text) <= most:
        raise InvalidInput(
            f"query parameter '{name}': expected a whole number from 1 to {most}, got {text!r}"
        )
    return int(text)
