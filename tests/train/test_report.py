"""The HTML training report: content per task, offline plotly, escaping, and a real browser."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from plotly.offline import get_plotlyjs
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris

from mlcanary.config import Settings
from mlcanary.train import report
from mlcanary.train.fit import TrainResult, train
from mlcanary.train.report import render_report
from mlcanary.train.spec import TrainSpec

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CLASSIFICATION_CHARTS = [
    "ROC curve",
    "Precision-recall curve",
    "Confusion matrix",
    "Calibration",
    "Learning curve",
    "Feature importance",
]
REGRESSION_CHARTS = [
    "Predicted vs actual",
    "Residuals",
    "Learning curve",
    "Feature importance",
]
EXPECTED = {
    "binary": CLASSIFICATION_CHARTS,
    "multiclass": CLASSIFICATION_CHARTS,
    "regression": REGRESSION_CHARTS,
}
LOADERS: dict[str, Callable[..., Any]] = {
    "binary": load_breast_cancer,
    "multiclass": load_iris,
    "regression": load_diabetes,
}
EXTERNAL = re.compile(
    r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*[\"']?\s*(?:https?:)?//", re.I
)
"""A tag that would load something over the network (http, https or protocol-relative)."""


def _train(tmp: Path, kind: str) -> TrainResult:
    frame: pd.DataFrame = LOADERS[kind](as_frame=True).frame
    data = tmp / f"{kind}.csv"
    frame.to_csv(data, index=False)
    return train(TrainSpec.parse(data=data, target="target"), Settings(home=tmp / "home"))


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TrainResult]:
    tmp = tmp_path_factory.mktemp("report")
    return {kind: _train(tmp, kind) for kind in EXPECTED}


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_report_has_the_task_charts_and_embeds_plotly_once(
    results: dict[str, TrainResult], kind: str
) -> None:
    result = results[kind]
    page = render_report(result, title=f"demo-{kind}")

    # The page is ~5 MB: compare counts and lists, never the page itself, so that a
    # failure does not make pytest diff megabytes of JavaScript.
    assert page[:15] == "<!DOCTYPE html>"
    assert page.count(get_plotlyjs()[:500]) == 1
    assert page.count('class="plotly-graph-div"') == len(EXPECTED[kind])
    assert [t for t in EXPECTED[kind] if f"{t}" not in page] == []
    assert EXTERNAL.findall(page) == []
    ours = page.replace(get_plotlyjs(), "")  # the bundle names URLs for geo maps, unused
    assert len(ours) < len(page) - 1_000_000
    assert (ours.count("http://"), ours.count("https://")) == (0, 0)
    wanted = [
        '<span class="verdict',
        result.diagnosis.verdict,
        *(f"<td>{name} " for name in result.metrics),
        *(f"<code>{c.name}</code>" for c in result.signature.columns),
    ]
    if kind == "binary":
        assert result.threshold is not None
        wanted += ["Threshold", result.threshold.rule, "Confusion matrix (threshold"]
    assert [w for w in wanted if w not in page] == []


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_report_skips_rows_without_out_of_fold_prediction(
    results: dict[str, TrainResult], kind: str
) -> None:
    """Time splits leave the earliest rows unscored (NaN): the charts use the others."""
    result = results[kind]
    oof = result.oof.copy()
    oof[: len(oof) // 3] = np.nan
    page = render_report(dataclasses.replace(result, oof=oof), title="early rows unscored")
    assert page.count('class="plotly-graph-div"') == len(EXPECTED[kind])


def test_report_subsamples_large_scatter(
    results: dict[str, TrainResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report, "MAX_POINTS", 100)
    page = render_report(results["regression"], title="sampled")
    assert page.count("Predicted vs actual (100 of 442 rows)") == 1


def test_report_escapes_user_strings(results: dict[str, TrainResult]) -> None:
    result = results["binary"]
    evil = "<script>alert(1)</script>"
    columns = [dataclasses.replace(c) for c in result.signature.columns]
    first = columns[0].name
    columns[0].name, columns[0].note = evil, evil
    signature = dataclasses.replace(result.signature, columns=columns, target=evil)
    importance = {(evil if c == first else c): v for c, v in result.importance.items()}
    tampered = dataclasses.replace(result, signature=signature, importance=importance, plan=evil)

    page = render_report(tampered, title=evil)

    assert page.count(evil) == 0  # not `evil not in page`: pytest would diff 5 MB
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 4


@pytest.mark.browser
@pytest.mark.parametrize("kind", list(EXPECTED))
def test_report_renders_in_chromium(
    results: dict[str, TrainResult], kind: str, tmp_path: Path
) -> None:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} not found; install Chromium to run the browser tests"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    report = tmp_path / f"report-{kind}.html"
    report.write_text(render_report(results[kind], title=f"demo-{kind}"), encoding="utf-8")
    console_errors: list[str] = []
    page_errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on(
                "console", lambda m: console_errors.append(m.text) if m.type == "error" else None
            )
            page.on("pageerror", lambda exc: page_errors.append(str(exc)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(report.as_uri(), wait_until="load")
            page.wait_for_load_state("load")
            rendered = page.evaluate(
                "() => [...document.querySelectorAll('.plotly-graph-div')]"
                ".filter(d => d.querySelector('.main-svg')).length"
            )
            page.screenshot(path=str(tmp_path / f"report-{kind}.png"), full_page=True)
        finally:
            browser.close()

    assert not page_errors, page_errors
    assert not console_errors, console_errors
    assert [u for u in requests if not u.startswith(("file:", "data:", "blob:"))] == []
    assert rendered == len(EXPECTED[kind])
