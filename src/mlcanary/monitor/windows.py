"""Cutting the prediction log into windows: by row count, or by time when traffic is slow.

A window is a run of consecutive requests of one model, variant and version, never a
request split in two (its rows were answered together and are labelled together). It
closes when it holds ``rows`` rows, or, with ``seconds`` set, when its first request is
that old and it holds at least ``min_rows`` rows: a quiet model is still watched, but
never judged on a handful of rows (the tests would have no power and the chart no shape).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlcanary.store.records import ID_COLUMN, TS_COLUMN


@dataclass(frozen=True)
class Window:
    """Rows of consecutive requests, with the bounds that name them."""

    frame: pd.DataFrame
    start_ts: float
    end_ts: float
    last_id: str

    @property
    def rows(self) -> int:
        return len(self.frame)


def after(frame: pd.DataFrame, cursor: tuple[float, str]) -> pd.DataFrame:
    """Rows of requests later than ``cursor`` (ts, id), in log order."""
    ts, last_id = cursor
    ts_values = frame[TS_COLUMN].to_numpy()
    keep = (ts_values > ts) | ((ts_values == ts) & (frame[ID_COLUMN].to_numpy() > last_id))
    out: pd.DataFrame = frame.loc[keep]
    return out


def cut(
    frame: pd.DataFrame, *, rows: int, seconds: float | None, min_rows: int, now: float
) -> list[Window]:
    """Closed windows of ``frame`` (one group's rows, in log order); the rest waits."""
    if frame.empty:
        return []
    ids = frame[ID_COLUMN].to_numpy()
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])  # first row of each request
    ends = np.r_[starts[1:], len(frame)]
    ts = frame[TS_COLUMN].to_numpy()
    windows: list[Window] = []
    begin = 0  # first row of the open window
    for end in ends:
        if end - begin >= rows:
            windows.append(_window(frame, begin, int(end), ts))
            begin = int(end)
    pending = len(frame) - begin
    if seconds is not None and pending >= min_rows and now - ts[begin] >= seconds:
        windows.append(_window(frame, begin, len(frame), ts))
    return windows


def _window(frame: pd.DataFrame, begin: int, end: int, ts: np.ndarray) -> Window:
    part = frame.iloc[begin:end]
    return Window(part, float(ts[begin]), float(ts[end - 1]), str(part[ID_COLUMN].iloc[-1]))
