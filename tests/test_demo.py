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


def test_drift_is_a_price_rise_with_the_same_table_at_zero() -> None:
    calm, drifted = make_churn(4000, seed=3), make_churn(4000, seed=3, drift=1.0)
    assert calm.equals(make_churn(4000, seed=3, drift=0.0))
    assert drifted["monthly_charges"].mean() > calm["monthly_charges"].mean() + 15
    assert drifted["tenure_months"].mean() < 0.7 * calm["tenure_months"].mean()
    assert (drifted["plan"] == "premium").mean() > 2 * (calm["plan"] == "premium").mean()
    assert drifted["churned"].mean() > calm["churned"].mean()


@pytest.mark.slow
@pytest.mark.longest
def test_demo_tells_the_whole_loop(cli: Callable[..., Result], home: Path) -> None:
    result = cli("demo", timeout=660)
    assert result.code == 0, result.stderr + _story({}, result.stdout, home)
    assert "Traceback" not in result.stderr
    out = result.stdout
    assert "registered churn version 1 (champion)" in out
    # drift is flagged, the policy retrains, the canary promotes, the broken one goes back
    order = ["DRIFT", "retraining started", "retrained: version 2", "canary of version 2",
             "PROMOTED version 2", "canary of version 3", "ROLLED BACK version 3"]
    positions = [out.find(text) for text in order]
    found = dict(zip(order, positions, strict=True))
    assert -1 not in positions and positions == sorted(positions), _story(found, out, home)
    assert " 0 requests failed; champion is now version 2" in out, _story(found, out, home)
    demo = home / "demo"
    for report in ("churn-v1.html", "churn-v2.html", "churn-v3.html", "churn-drift.html"):
        assert (demo / "reports" / report).exists(), report
    assert f"MLCANARY_HOME={demo} mlcanary status churn" in out.replace("\n", "")


def _story(found: dict[str, int], out: str, home: Path) -> str:
    """What a failed run told and what its server logged, besides the requests."""
    log = home / "demo" / "server.log"
    lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    told = [line for line in lines if "mlcanary.access" not in line]
    return f"{found}\n--- the demo told:\n{out[-6000:]}\n--- its server logged:\n" + "\n".join(
        told[-40:]
    )
