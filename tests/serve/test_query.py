"""Query parameters are whole numbers in range, or a 400 naming the parameter."""

from __future__ import annotations

import pytest

from mlcanary.errors import InvalidInput
from mlcanary.serve.query import MOST, positive_int


@pytest.mark.parametrize("text", ["0", "-3", "", "2.5", "ten", "²", "٣", str(MOST + 1),
                                  "50817437365766390284288"])
def test_a_bad_count_names_the_parameter_and_the_range(text: str) -> None:
    with pytest.raises(InvalidInput, match=f"query parameter 'last': expected a whole number "
                                           f"from 1 to {MOST}, got"):
        positive_int(text, "last")


@pytest.mark.parametrize(("text", "value"), [("1", 1), ("050", 50), (str(MOST), MOST)])
def test_a_count_in_range_is_read(text: str, value: int) -> None:
    assert positive_int(text, "last") == value
