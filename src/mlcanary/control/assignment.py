"""Sticky traffic assignment: which variant answers a request, decided by a hash of its key.

A request's key (a user or session id, sent by the client) is hashed with the deployment's
salt to a number ``u`` uniform in [0, 1). The variants, in order of name, take consecutive
slices of [0, 1) as wide as their weights, and the key goes to the slice holding ``u``.

* Sticky: the hash is BLAKE2b, the same on every process, machine and Python version.
  Python's ``hash()`` is salted per process (PYTHONHASHSEED), so two replicas, or one
  replica after a restart, would send the same user to different models.
* Exact: over many keys each variant gets its weight's share, within binomial noise.
* Independent across rollouts: the salt (the deployment and rollout name, say) reshuffles
  keys, so the users in one experiment's challenger are not the same users every time.
* Monotone ramps: the first and the last variant in name order own slices pinned to 0 and
  to 1, so when one of them grows its new slice contains its old one and every key it
  had stays with it. With two variants (champion and challenger) both are first or last:
  ramping the challenger 5% -> 10% -> 25% -> 50% only ever moves keys from the champion
  to the challenger, never back, whatever the names. A variant between two others may
  lose keys when its neighbours change; three-way splits should keep ramps to the ends.
* Name order, not the mapping's order: a store that rewrites the weights (Postgres JSONB
  sorts keys) must not reshuffle users.

Shadow selection hashes the key again under its own personalisation, so the mirrored
share is independent of the split: a 10% shadow copies 10% of every variant's traffic.
"""

from __future__ import annotations

import hashlib
import math
import numbers
import uuid
from collections.abc import Mapping

WEIGHT_TOLERANCE = 1e-9
"""How far from 100 the sum of the weights may be: room for float rounding, not for typos."""

_ASSIGN = b"mlcanary.assign"
_SHADOW = b"mlcanary.shadow"
"""BLAKE2b personalisations: the same key and salt give unrelated numbers for each use."""


def validate_weights(weights: Mapping[str, float]) -> dict[str, float]:
    """The weights as floats in name order, or ValueError saying which one is wrong.

    Weights are percentages: each from 0 to 100, together 100 (within ``WEIGHT_TOLERANCE``).
    A variant with weight 0 is allowed (a challenger not yet ramped, a variant drained
    before removal); it receives no traffic.

    >>> validate_weights({"champion": 90, "challenger": 10})
    {'challenger': 10.0, 'champion': 90.0}
    """
    if not weights:
        raise ValueError("traffic weights: expected at least one variant, got none")
    for name, weight in weights.items():
        if not isinstance(name, str) or not name:
            raise ValueError(
                f"traffic weights: expected variant names as non-empty text, got {name!r}"
            )
        if (
            isinstance(weight, bool)
            or not isinstance(weight, numbers.Real)
            or not math.isfinite(weight)
            or not 0 <= weight <= 100
        ):
            raise ValueError(
                f"traffic weight {name!r}: expected a percentage from 0 to 100, got {weight!r}"
            )
    total = math.fsum(float(weight) for weight in weights.values())
    if abs(total - 100) > WEIGHT_TOLERANCE:
        listing = ", ".join(f"{name}={weight:g}" for name, weight in weights.items())
        raise ValueError(
            f"traffic weights: expected percentages summing to 100, got {total:g} ({listing})"
        )
    return {name: float(weights[name]) for name in sorted(weights)}


def assign(key: str, weights: Mapping[str, float], salt: str) -> str:
    """The variant that serves ``key``: the same for the same key, weights and salt.

    >>> assign("user-42", {"champion": 100, "challenger": 0}, salt="churn/rollout-1")
    'champion'
    """
    split = validate_weights(weights)
    u = _uniform(key, salt, _ASSIGN)
    edge = 0.0
    for name, weight in split.items():
        edge += weight / 100
        if u < edge:
            return name
    # Rounding left the last edge a hair below 1 and u beyond it: the last variant with
    # traffic owns the end of [0, 1).
    return next(name for name in reversed(split) if split[name] > 0)


def shadow_selected(key: str, percent: float, salt: str) -> bool:
    """Whether the request with ``key`` is copied to the shadow variant.

    Sticky and monotone like ``assign``: the keys mirrored at 5% are still mirrored at 20%.
    """
    if (
        isinstance(percent, bool)
        or not isinstance(percent, numbers.Real)
        or not 0 <= percent <= 100
    ):
        raise ValueError(f"shadow 'percent': expected a number from 0 to 100, got {percent!r}")
    return _uniform(key, salt, _SHADOW) < percent / 100


def random_key() -> str:
    """A fresh key for a request that brought none: assigned by chance, sticky for nothing."""
    return uuid.uuid4().hex


def _uniform(key: str, salt: str, person: bytes) -> float:
    """A number in [0, 1), uniform over keys, fixed by (key, salt, use).

    The salt is length-prefixed so that ("ab", "c") and ("a", "bc") differ. The top 53
    bits of a 64-bit digest fill a float's mantissa exactly, so the result is never 1.0.
    """
    framed = f"{len(salt)}:{salt}:{key}".encode("utf-8", "surrogatepass")
    digest = hashlib.blake2b(framed, digest_size=8, person=person).digest()
    return (int.from_bytes(digest, "big") >> 11) / 2.0**53
