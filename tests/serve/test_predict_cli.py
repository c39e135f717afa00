"""`mlcanary predict` scores a file through the server's validation and runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tests.conftest import cli_runner
from tests.serve.conftest import Server


def test_predict_writes_labels_and_probabilities(server: Server, tmp_path: Path) -> None:
    data = tmp_path / "new.csv"
    server.rows.head(300).assign(churned=0).to_csv(data, index=False)  # a target column is kept
    out = tmp_path / "scored.parquet"
    result = cli_runner(server.home)("predict", "churn", str(data), "--out", str(out))
    assert result.code == 0, result.stderr
    scored = pd.read_parquet(out)
    assert list(scored.columns[-3:]) == ["predict", "probability_0", "probability_1"]
    expected = server.pipeline.predict_proba(server.rows.head(300))
    # The fastest verified runtime scores the file: ONNX's float32 bound is the loosest.
    np.testing.assert_allclose(scored[["probability_0", "probability_1"]], expected, atol=1e-5)
    np.testing.assert_array_equal(scored["predict"], server.pipeline.predict(server.rows.head(300)))


def test_predict_names_missing_columns(server: Server, tmp_path: Path) -> None:
    data = tmp_path / "partial.csv"
    server.rows.head(5).drop(columns=["plan"]).to_csv(data, index=False)
    result = cli_runner(server.home)("predict", "churn", str(data))
    assert result.code == 2
    assert result.stderr.strip() == (
        "error: data: missing columns ['plan']; expected every column the model was trained on"
    )
