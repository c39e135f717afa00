"""Reading the user's table and fingerprinting it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mlcanary.errors import InvalidInput, NotFound

SUFFIXES = {".csv": "csv", ".txt": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet"}


@dataclass(frozen=True)
class Fingerprint:
    """Identifies the exact training data: content hash and shape."""

    sha256: str
    rows: int
    columns: int

    def as_dict(self) -> dict[str, object]:
        return {"sha256": self.sha256, "rows": self.rows, "columns": self.columns}


def read_table(path: Path, text_columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """Read a CSV, TSV or Parquet file into a DataFrame, or say why it cannot be read.

    ``text_columns`` are read from CSV as text as written (ids like ``007`` or ``1e5``
    must not become numbers).

    >>> read_table(Path("missing.csv"))  # doctest: +SKIP
    NotFound: data file 'missing.csv' does not exist
    """
    if not path.exists():
        raise NotFound(f"data file '{path}': does not exist")
    if path.is_dir():
        raise InvalidInput(f"data file '{path}': expected a CSV or Parquet file, got a directory")
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise InvalidInput(
            f"data file '{path}': expected a .csv, .tsv or .parquet file, "
            f"got suffix '{path.suffix or '(none)'}'"
        )
    if path.stat().st_size == 0:
        raise InvalidInput(f"data file '{path}': is empty (0 bytes); expected a header and rows")
    try:
        if kind == "parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(
                path,
                sep="\t" if kind == "tsv" else ",",
                low_memory=False,
                dtype=dict.fromkeys(text_columns, str),
            )
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidInput(f"data file '{path}': cannot be read as {kind} ({reason})") from exc
    if frame.shape[1] == 0:
        raise InvalidInput(f"data file '{path}': has no columns; expected a header row")
    if len(frame) == 0:
        raise InvalidInput(f"data file '{path}': has a header but no rows")
    frame.columns = [str(c) for c in frame.columns]
    duplicated = frame.columns[frame.columns.duplicated()].tolist()
    if duplicated:
        raise InvalidInput(f"data file '{path}': column names must be unique, got {duplicated}")
    return frame


def fingerprint(path: Path, frame: pd.DataFrame) -> Fingerprint:
    """Hash the file's bytes (streamed) and record the table's shape."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return Fingerprint(sha256=digest.hexdigest(), rows=len(frame), columns=frame.shape[1])
