"""A LightGBM model's trees as flat arrays, for ``kernels``' tree walk.

The booster's text model (``model_to_string``: per tree, one line per node field) is read
into flat arrays: every split and every leaf becomes one node, numbered depth first so
that a split's left child is always the next node. ``values`` holds a split's threshold
or a leaf's value, ``links`` its feature (-1 for a leaf) and its right child, ``flags``
LightGBM's missing-value type of the split and whether missing values go left. A node is
16 bytes in two arrays read in step, so a walk down a tree touches few cache lines.
``plain`` says every split treats a missing value as 0, as LightGBM does when training
saw none (the usual case behind an imputer): the walk is then a bare comparison per
node. The text model is read rather than ``dump_model``'s JSON, which takes ~0.5 s per
thousand trees; numbers are written there with 17 digits, so they read back exactly.
Only what the walk reproduces exactly is read: numeric splits; categorical splits,
linear trees, averaged (random forest) output and objectives other than regression,
binary and multiclass raise ``Unsupported``.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from mlcanary.serve.runtime import Unsupported

_IDENTITY_OBJECTIVES = ("regression", "regression_l1", "huber", "fair", "quantile", "mape")
IDENTITY, SIGMOID, SOFTMAX = range(3)
"""How raw scores become the answer (as ``kernels`` reads them)."""


class Forest:
    """The trees of the first ``iterations`` boosting rounds, and how scores are read."""

    def __init__(self, booster: Any, iterations: int) -> None:
        head, trees = _read(booster.model_to_string(num_iteration=iterations))
        if "average_output" in head:
            raise Unsupported("averaged (random forest) output")
        self.per = int(head["num_tree_per_iteration"])
        self.width = int(head["max_feature_idx"]) + 1
        self.transform, self.sigmoid = _transform(head["objective"], self.per)
        values: list[float] = []
        links: list[list[int]] = []
        flags: list[int] = []
        roots = []
        for tree in trees[: iterations * self.per]:
            roots.append(len(values))
            _add(tree, values, links, flags)
        self.values = np.array(values, dtype=np.float64)
        self.links = np.array(links, dtype=np.int32).reshape(len(links), 2)
        self.flags = np.array(flags, dtype=np.uint8)
        self.roots = np.array(roots, dtype=np.int32)
        self.plain = not any(flag >> 1 for flag in flags)
        """Every split sends a missing value where 0 goes (LightGBM's missing type None)."""


_CATEGORICAL, _DEFAULT_LEFT = 1, 2
"""Bits of LightGBM's ``decision_type``; bits 2-3 are the missing-value type."""


def _read(text: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    """The text model's header fields and each tree's fields (``key=value`` lines)."""
    head: dict[str, str] = {}
    trees: list[dict[str, str]] = []
    current = head
    for line in text.splitlines():
        if line == "end of trees":
            break
        if line.startswith("Tree="):
            current = {}
            trees.append(current)
        key, _, value = line.partition("=")
        current[key] = value
    return head, trees


def _add(tree: dict[str, str], values: list[float], links: list[list[int]],
         flags: list[int]) -> None:
    """Append one tree's nodes, depth first (LightGBM numbers splits 0.., leaves ~0..)."""
    if tree.get("is_linear", "0") != "0":
        raise Unsupported("linear trees")
    leaves = [float(v) for v in tree["leaf_value"].split()]
    if int(tree["num_leaves"]) == 1:
        values.append(leaves[0])
        links.append([-1, 0])
        flags.append(0)
        return
    feature = [int(v) for v in tree["split_feature"].split()]
    threshold = [float(v) for v in tree["threshold"].split()]
    decision = [int(v) for v in tree["decision_type"].split()]
    left = [int(v) for v in tree["left_child"].split()]
    right = [int(v) for v in tree["right_child"].split()]
    if any(d & _CATEGORICAL for d in decision):
        raise Unsupported("a categorical split")
    stack = [(0, -1)]  # (LightGBM's node, the node whose right child it is)
    while stack:
        node, parent = stack.pop()
        i = len(values)
        if parent >= 0:
            links[parent][1] = i
        if node < 0:
            values.append(leaves[~node])
            links.append([-1, 0])
            flags.append(0)
            continue
        values.append(threshold[node])
        links.append([feature[node], 0])
        flags.append((decision[node] >> 2 & 3) << 1 | bool(decision[node] & _DEFAULT_LEFT))
        stack.append((right[node], i))
        stack.append((left[node], -1))  # popped next: the left child is node i + 1


def _transform(objective: str, per: int) -> tuple[int, float]:
    name = objective.split()[0]
    if name == "binary" and per == 1:
        found = re.search(r"sigmoid:(\S+)", objective)
        return SIGMOID, float(found.group(1)) if found else 1.0
    if name in ("multiclass", "softmax") and per > 1:
        return SOFTMAX, 0.0
    if name in _IDENTITY_OBJECTIVES and per == 1:
        return IDENTITY, 0.0
    raise Unsupported(f"objective {objective!r}")
