"""The examples in the control modules' docstrings run, so they cannot rot."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

from mlcanary.control import assignment, sequential, srm


@pytest.mark.parametrize("module", [assignment, srm, sequential], ids=lambda m: m.__name__)
def test_docstring_examples(module: ModuleType) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
