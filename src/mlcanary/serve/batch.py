"""Scoring a whole file through the same validation and runtime as the server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from mlcanary.errors import InvalidInput
from mlcanary.serve.repository import ServedModel
from mlcanary.serve.validation import Unseen, rows_from_tensors, tensors_from_frame

CHUNK_ROWS = 10_000


def score_frame(
    frame: pd.DataFrame,
    model: ServedModel,
    unseen: Unseen,
    on_chunk: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """The input rows with ``predict`` and, for classifiers, ``probability_<class>`` columns."""
    parts = []
    for start in range(0, len(frame), CHUNK_ROWS):
        chunk = frame.iloc[start : start + CHUNK_ROWS]
        try:
            rows = rows_from_tensors(
                tensors_from_frame(chunk, model.signature), model.signature, unseen
            )
        except InvalidInput as exc:
            raise InvalidInput(f"rows {start}-{start + len(chunk) - 1}: {exc}") from exc
        prediction = model.runtime.predict(rows)
        scored = pd.DataFrame({"predict": prediction.predicted}, index=chunk.index)
        if prediction.proba is not None:
            for k, label in enumerate(model.signature.classes or []):
                scored[f"probability_{label}"] = prediction.proba[:, k]
        parts.append(scored)
        if on_chunk is not None:
            on_chunk(len(chunk))
    return pd.concat([frame, pd.concat(parts)], axis=1)


def write_table(frame: pd.DataFrame, path: Path) -> None:
    if path.suffix.lower() in (".parquet", ".pq"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False, sep="\t" if path.suffix.lower() == ".tsv" else ",")
