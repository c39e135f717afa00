"""`mlcanary demo` tells its story end to end on generated data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mlcanary.demo import make_churn
from tests.conftest import Result


def test_generated_churn_table_is_seeded_and_holds_every_column_kind() -> None:
    a, b = make_churn(500, seed=1), make_churn(500, seed=1)
    assert a.equals(b)
    assert 0.05 < a["churned"].mean() < 0.3
    assert a["data_usage_gb"].isna().any() and a["country"].nunique() == 1


@pytest.mark.slow
def test_demo_trains_registers_and_reports(cli: Callable[..., Result], home: Path) -> None:
    result = cli("demo", timeout=300)
    assert result.code == 0, result.stderr
    assert "registered churn version 1 (champion)" in result.stdout
    assert (home / "reports" / "churn-v1.html").exists()
    assert "Traceback" not in result.stderr
