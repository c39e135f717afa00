"""Sticky assignment: same key, same variant, in any process; exact splits; monotone ramps.

Split tolerances: over n keys a variant of share w gets Binomial(n, w) of them if the hash
behaves like a uniform draw; the tests allow Z = 4 standard deviations, sqrt(n w (1-w)),
a two-sided chance of 6e-5 per count, so a sound hash never fails them.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections import Counter

import pytest

from mlcanary.control.assignment import (
    assign,
    random_key,
    shadow_selected,
    validate_weights,
)
from mlcanary.control.srm import srm_test

Z = 4.0
KEYS = [f"user-{i}" for i in range(100_000)]
SALT = "churn/rollout-7"


def within_binomial(count: int, n: int, share: float) -> bool:
    return abs(count - n * share) <= Z * math.sqrt(n * share * (1 - share))


def test_same_key_same_variant_in_another_process() -> None:
    """A fresh interpreter with a different PYTHONHASHSEED agrees key for key: the hash is
    not Python's salted ``hash()``."""
    weights = {"champion": 70, "challenger": 20, "shadowed": 10}
    keys = KEYS[:500]
    here = [assign(key, weights, SALT) for key in keys]
    assert here == [assign(key, weights, SALT) for key in keys]
    code = (
        "import json, sys\n"
        "from mlcanary.control.assignment import assign\n"
        "keys, weights, salt = json.load(sys.stdin)\n"
        "print(json.dumps([assign(k, weights, salt) for k in keys]))\n"
    )
    for seed in ("1", "2"):
        there = subprocess.run(
            [sys.executable, "-c", code],
            input=json.dumps([keys, weights, SALT]),
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
            timeout=60,
        )
        assert json.loads(there.stdout) == here


@pytest.mark.parametrize(
    "weights",
    [{"champion": 90, "challenger": 10}, {"a": 50, "b": 30, "c": 20}, {"x": 99.5, "y": 0.5}],
)
def test_split_of_100_000_keys_follows_the_weights(weights: dict[str, float]) -> None:
    counts = Counter(assign(key, weights, SALT) for key in KEYS)
    for name, weight in weights.items():
        assert within_binomial(counts[name], len(KEYS), weight / 100), (name, counts)
    check = srm_test(dict(counts), weights)
    assert not check.mismatch, check


def test_weight_0_gets_nothing_and_100_gets_everything() -> None:
    weights = {"champion": 100, "challenger": 0}
    assert {assign(key, weights, SALT) for key in KEYS[:5000]} == {"champion"}


@pytest.mark.parametrize(("grower", "other"), [("challenger", "champion"), ("a-new", "z-old")])
def test_ramping_up_never_takes_a_key_back(grower: str, other: str) -> None:
    """Two variants: whichever side of the cut the grower's name puts it, its keys stay."""
    previous: set[str] = set()
    for percent in (5, 10, 25, 50):
        weights = {other: 100 - percent, grower: percent}
        on = {key for key in KEYS if assign(key, weights, SALT) == grower}
        assert previous <= on, f"{len(previous - on)} keys left {grower} at {percent}%"
        assert within_binomial(len(on), len(KEYS), percent / 100)
        previous = on


def test_three_way_ramps_keep_keys_of_the_first_and_last_names() -> None:
    """The documented limit: the first and last variant in name order own slices pinned at
    0 and 1, so they keep their keys as they grow."""
    keys = KEYS[:20_000]
    before = {"a": 5, "b": 85, "c": 10}
    after = {"a": 10, "b": 70, "c": 20}
    for grower in ("a", "c"):
        was = {key for key in keys if assign(key, before, SALT) == grower}
        now = {key for key in keys if assign(key, after, SALT) == grower}
        assert was <= now


def test_another_salt_reshuffles_the_keys() -> None:
    """Independent rollouts: at 50/50 the two salts' challenger sets overlap on a quarter."""
    weights = {"champion": 50, "challenger": 50}
    first = {key for key in KEYS if assign(key, weights, "rollout-1") == "challenger"}
    second = {key for key in KEYS if assign(key, weights, "rollout-2") == "challenger"}
    assert within_binomial(len(first & second), len(KEYS), 0.25)


def test_shadow_mirrors_its_share_of_every_variant() -> None:
    """10% mirrored overall and within the challenger's keys (the hashes are independent);
    the keys mirrored at 5% are still mirrored at 20%."""
    mirrored = {key for key in KEYS if shadow_selected(key, 10, SALT)}
    assert within_binomial(len(mirrored), len(KEYS), 0.10)
    weights = {"champion": 80, "challenger": 20}
    challenger = [key for key in KEYS if assign(key, weights, SALT) == "challenger"]
    assert within_binomial(sum(key in mirrored for key in challenger), len(challenger), 0.10)
    few = {key for key in KEYS[:20_000] if shadow_selected(key, 5, SALT)}
    assert few <= {key for key in KEYS[:20_000] if shadow_selected(key, 20, SALT)}
    assert not any(shadow_selected(key, 0, SALT) for key in KEYS[:1000])
    assert all(shadow_selected(key, 100, SALT) for key in KEYS[:1000])


def test_random_keys_are_fresh() -> None:
    keys = {random_key() for _ in range(1000)}
    assert len(keys) == 1000 and all(len(key) == 32 for key in keys)


def test_weights_come_back_in_name_order_so_the_mapping_ignores_file_order() -> None:
    assert list(validate_weights({"z": 60, "a": 40})) == ["a", "z"]
    assert [assign(k, {"z": 60, "a": 40}, SALT) for k in KEYS[:300]] == [
        assign(k, {"a": 40, "z": 60}, SALT) for k in KEYS[:300]
    ]
    # Thirds do not add up to exactly 100 in floating point; within 1e-9 they do.
    assert validate_weights({"a": 100 / 3, "b": 100 / 3, "c": 100 / 3})


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({}, r"traffic weights: expected at least one variant, got none"),
        ({"champion": 90, "challenger": 5}, r"summing to 100, got 95 \(champion=90, challe"),
        ({"champion": 110, "challenger": -10}, r"weight 'champion': expected a percentage fr"),
        ({"champion": math.nan}, r"weight 'champion': expected a percentage from 0 to 100, got"),
        ({"champion": True}, r"weight 'champion': expected a percentage .* got True"),
        ({"champion": "100"}, r"weight 'champion': expected a percentage .* got '100'"),
        ({"": 100}, r"expected variant names as non-empty text, got ''"),
    ],
)
def test_bad_weights_are_refused_with_the_field_named(
    weights: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        assign("user-1", weights, SALT)


@pytest.mark.parametrize("percent", [-1, 100.5, math.nan])
def test_bad_shadow_percent_is_refused(percent: float) -> None:
    with pytest.raises(ValueError, match=r"shadow 'percent': expected a number from 0 to 100"):
        shadow_selected("user-1", percent, SALT)
