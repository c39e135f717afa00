"""A LightGBM model's trees as flat arrays, for ``kernels``' tree walk.

``Booster.dump_model`` gives each tree as nested splits. Here every split and every leaf
becomes one node, numbered depth first so that a split's left child is always the next
node: ``values`` holds a split's threshold or a leaf's value, ``links`` its feature (-1
for a leaf) and its right child, ``flags`` LightGBM's missing-value type of the split and
whether missing values go left. A node is 16 bytes in two arrays read in step, so a walk
down a tree touches few cache lines. ``plain`` says every split treats a missing value
as 0, as LightGBM does when training saw none (the usual case behind an imputer): the
walk is then a bare comparison per node. Only what the walk reproduces exactly is read:
numeric splits (``<=``); categorical splits, linear trees, averaged (random forest)
output and objectives other than regression, binary and multiclass raise
``Unsupported``.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from mlcanary.serve.runtime import Unsupported

_MISSING = {"None": 0, "Zero": 1, "NaN": 2}
_IDENTITY_OBJECTIVES = ("regression", "regression_l1", "huber", "fair", "quantile", "mape")
IDENTITY, SIGMOID, SOFTMAX = range(3)
"""How raw scores become the answer (as ``kernels`` reads them)."""


class Forest:
    """The trees of the first ``iterations`` boosting rounds, and how scores are read."""

    def __init__(self, booster: Any, iterations: int) -> None:
        dump = booster.dump_model(num_iteration=iterations)
        if dump.get("average_output"):
            raise Unsupported("averaged (random forest) output")
        self.per = int(dump["num_tree_per_iteration"])
        self.width = int(dump["max_feature_idx"]) + 1
        self.transform, self.sigmoid = _transform(str(dump["objective"]), self.per)
        values: list[float] = []
        links: list[tuple[int, int]] = []
        flags: list[int] = []

        def add(node: dict[str, Any]) -> int:
            i = len(values)
            if "leaf_value" in node:
                if "leaf_const" in node:  # a linear tree's leaf: a regression, not a value
                    raise Unsupported("linear trees")
                values.append(float(node["leaf_value"]))
                links.append((-1, 0))
                flags.append(0)
                return i
            if node.get("decision_type") != "<=":
                raise Unsupported(f"a {node.get('decision_type')!r} split (categorical)")
            values.append(float(node["threshold"]))
            links.append((0, 0))
            flags.append(_MISSING[node["missing_type"]] << 1 | bool(node["default_left"]))
            add(node["left_child"])  # at i + 1
            links[i] = (int(node["split_feature"]), add(node["right_child"]))
            return i

        roots = []
        for tree in dump["tree_info"][: iterations * self.per]:
            roots.append(add(tree["tree_structure"]))
        self.values = np.array(values, dtype=np.float64)
        self.links = np.array(links, dtype=np.int32).reshape(len(links), 2)
        self.flags = np.array(flags, dtype=np.uint8)
        self.roots = np.array(roots, dtype=np.int32)
        self.plain = not any(flag >> 1 for flag in flags)
        """Every split sends a missing value where 0 goes (LightGBM's missing type None)."""


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
