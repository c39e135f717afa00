"""Calendar parts at serving time equal training's, whichever path reads them."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest

from mlcanary.dates import DateCache
from mlcanary.signature import ColumnSpec, Signature
from mlcanary.train.transformers import DatetimeParts

PARTS = ("month", "day", "day_of_week", "hour", "minute")


def training(values: list[object], parts: tuple[str, ...] = PARTS) -> np.ndarray:
    frame = pd.DataFrame({"x": pd.Series(values, dtype=object)})
    return np.asarray(DatetimeParts(parts).fit(frame).transform(frame))


def column(values: list[object]) -> np.ndarray:
    return np.asarray(values, dtype=object)


def random_stamps(n: int, seed: int) -> list[object]:
    rng = np.random.default_rng(seed)
    seconds = rng.integers(1_500_000_000, 1_800_000_000, n)
    stamps = pd.to_datetime(seconds, unit="s")
    texts: list[object] = [
        s.strftime(["%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S"][i % 3])
        for i, s in enumerate(stamps)
    ]
    for i in range(0, n, 7):
        texts[i] = None if i % 2 else float("nan")
    return texts


CASES = {
    "iso dates, times and gaps, repeated": random_stamps(300, 1) * 2,
    "fractions of a second": ["2024-03-01T10:11:12.123456", "2024-03-01 23:59:59.5"],
    "not ISO: pandas reads it as training does": ["03/01/2024", "2024-03-01"],
    "with a zone: pandas reads it as training does": ["2024-03-01T10:11:12+02:00"],
    "second 60: missing, as training reads it": ["2024-03-01T10:11:60", "2024-03-01"],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_parts_equal_training(case: str) -> None:
    values, cache = CASES[case], DateCache()
    np.testing.assert_array_equal(cache.calendar_parts(column(values), PARTS), training(values))
    # a second read comes from the cache and must not differ
    np.testing.assert_array_equal(cache.calendar_parts(column(values), PARTS), training(values))


@pytest.mark.parametrize("case", sorted(CASES))
def test_all_parts_equal_training(case: str) -> None:
    values, cache = CASES[case], DateCache()
    for _ in range(2):  # the second read looks every text up in the cache
        np.testing.assert_array_equal(cache.all_parts(column(values)), training(values))


def test_one_part_row_gives_a_value_read_before_as_training_reads_it() -> None:
    values = [v for v in random_stamps(16, 5) if isinstance(v, str)]
    cache = DateCache()
    assert all(cache.one_part_row(v) is None for v in values)
    cache.calendar_parts(column(values), PARTS)
    got = np.array([cache.one_part_row(v) for v in values], dtype=np.float64)
    np.testing.assert_array_equal(got, training(values))


def test_one_part_row_leaves_what_is_not_plain_iso_to_pandas() -> None:
    cache = DateCache()
    for values in (["03/01/2024"], ["2024-02-30"], ["2024-03-01T10:11+02:00"],
                   [b"2024-03-01"], ["2024-03-01T10:11:60"]):
        cache.calendar_parts(column(values), PARTS)  # read by pandas: never cached
        assert cache.one_part_row(values[0]) is None


def test_parts_are_given_in_the_order_asked() -> None:
    values, cache = random_stamps(50, 2), DateCache()
    parts = ("minute", "month")
    got = cache.calendar_parts(column(values), parts)
    np.testing.assert_array_equal(got, training(values, parts))


def test_a_full_cache_is_replaced_and_answers_stay_right() -> None:
    cache = DateCache(limit=16)
    values = random_stamps(200, 3)
    first = cache.known
    np.testing.assert_array_equal(cache.calendar_parts(column(values), PARTS), training(values))
    assert cache.known is not first and cache.known.size <= 17
    np.testing.assert_array_equal(cache.calendar_parts(column(values), PARTS), training(values))


def test_threads_reading_while_the_cache_turns_over_get_right_answers() -> None:
    cache = DateCache(limit=64)
    batches = [random_stamps(100, seed) for seed in range(8)]
    want = [training(b) for b in batches]
    wrong: list[int] = []

    def read(k: int) -> None:
        for _ in range(20):
            if not np.array_equal(cache.calendar_parts(column(batches[k]), PARTS), want[k],
                                  equal_nan=True):
                wrong.append(k)

    threads = [threading.Thread(target=read, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


def test_impossible_dates_fall_back_to_pandas() -> None:
    cache = DateCache()
    for values in (["2024-02-30"], ["2024-03-01", "2024-13-01"]):
        np.testing.assert_array_equal(cache.calendar_parts(column(values), PARTS), training(values))


def test_each_signature_has_its_own_cache_that_its_runtime_fills() -> None:
    from mlcanary.serve.tensors import Tensor
    from mlcanary.serve.validation import columns_from_tensors

    def signature() -> Signature:
        return Signature([ColumnSpec("joined", "datetime", nullable=True)], "y", "regression")

    texts = ["2024-01-31", "2023-12-01 10:00"]
    one, other = signature(), signature()
    assert one.date_cache() is one.date_cache() and one.date_cache() is not other.date_cache()
    one.date_cache().all_parts(column(texts))  # as one's runtime reads them
    assert one.date_cache().all_known(column(texts))  # one's validation looks them up
    assert not other.date_cache().all_known(column(texts))
    for contract in (one, other):  # either way they are valid
        request = [Tensor("joined", "BYTES", [2], [t.encode() for t in texts])]
        assert columns_from_tensors(request, contract)["joined"].tolist() == texts
