"""Writing a fitted pipeline as one ONNX graph: the converter behind the ONNX runtime.

skl2onnx has no converters for the project's own transformers (``ToFloat``, ``AsText``,
``DatetimeParts``) and converts a ColumnTransformer only with per-column inputs, so the
preprocessing graph is written here, step by step, from each fitted step's parameters:

| fitted step | ONNX |
|---|---|
| median imputation + indicators | ``Imputer`` + ``IsNaN`` / ``Gather`` / ``Cast`` |
| scaling | ``Scaler`` |
| most frequent + one-hot | ``LabelEncoder`` (missing -> the fill category) + ``OneHotEncoder`` |
| most frequent + target encoding | ``LabelEncoder`` from category to encoding |
| missing indicator on categories | ``LabelEncoder`` (missing -> 1) + ``Cast`` |

The model itself comes from the converters: onnxmltools for LightGBM (the booster cut at
its early-stopped iteration first, since trees past it are kept but never used) and
skl2onnx for the linear models. The graph takes one input per ColumnTransformer branch
(see ``serve/onnx.py`` for their layouts). The class prior of a reweighted model goes
into the tree ensemble's base values (see ``_trees_alone``); after the model the graph
takes the decision (see ``_decided``), so one ``run`` answers.

This module imports scikit-learn, LightGBM and the converters; it runs once per version
(its result is kept with the version, see ``serve/kept.py``), never when a server starts
from a kept plan.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
from onnx import ModelProto, TensorProto, helper
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler, TargetEncoder

from mlcanary.dates import DATE_PARTS
from mlcanary.serve.compiled import unwrap
from mlcanary.serve.onnx import (
    FEATURES,
    LABEL,
    MISSING,
    OPSET,
    PROBABILITIES,
    VALUE,
    Input,
    InputKind,
    OnnxPlan,
)
from mlcanary.serve.runtime import Unsupported
from mlcanary.signature import Signature
from mlcanary.train.estimators import EarlyStoppedLGBMClassifier, EarlyStoppedLGBMRegressor
from mlcanary.train.transformers import AsText, DatetimeParts, ToFloat


def convert(pipeline: Any, signature: Signature) -> tuple[OnnxPlan, ModelProto]:
    """The plan the ONNX runtime serves, and the scores graph alone (preprocessing and
    estimator, without the decision: what a raw ONNX Runtime caller would run)."""
    native, model = unwrap(pipeline, signature)
    graph = _Graph()
    inputs = [
        graph.branch(f"b{index}", steps, columns)
        for index, (_, steps, columns) in enumerate(model[0].transformers_)
        if steps != "drop"
    ]
    width = graph.concat()
    scores = graph.model(_estimator(model[-1], width))
    output = "probabilities" if native.classes is not None else str(scores.graph.output[0].name)
    decided = _decided(scores, output, native.classes, native.threshold)
    plan = OnnxPlan(decided.SerializeToString(), tuple(inputs), native.threshold)
    return plan, scores


# -- preprocessing graph ---------------------------------------------------------------------


class _Graph:
    """Collects inputs, nodes and initializers; each branch ends in one float block."""

    def __init__(self, prefix: str = "prep") -> None:
        self.prefix = prefix
        self.inputs: list[Any] = []
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.blocks: list[tuple[str, int]] = []
        self._names = 0

    def name(self, hint: str) -> str:
        self._names += 1
        return f"{self.prefix}_{hint}_{self._names}"

    def node(
        self, op: str, inputs: list[str], hint: str, domain: str = "", out: str = "",
        **attrs: Any,
    ) -> str:
        out = out or self.name(hint)
        self.nodes.append(
            helper.make_node(op, inputs, [out], name=out, domain=domain, **attrs)
        )
        return out

    def constant(self, values: np.ndarray, hint: str) -> str:
        """An initializer: integers as INT64, floats as DOUBLE."""
        name = self.name(hint)
        dtype = TensorProto.INT64 if values.dtype.kind == "i" else TensorProto.DOUBLE
        self.initializers.append(
            helper.make_tensor(name, dtype, list(values.shape), values.ravel().tolist())
        )
        return name

    def branch(self, name: str, steps: Any, columns: list[str]) -> Input:
        chain = [step for _, step in steps.steps] if isinstance(steps, Pipeline) else [steps]
        first, rest = chain[0], chain[1:]
        if isinstance(first, ToFloat):
            kind: InputKind = "numbers"
            self.inputs.append(
                helper.make_tensor_value_info(name, TensorProto.FLOAT, [len(columns), None])
            )
            x = self.node("Transpose", [name], "rows", perm=[1, 0])
            self.blocks.append(self._numeric(x, rest, len(columns)))
        elif isinstance(first, DatetimeParts):
            parts, kind = first.parts, "dates"
            self._input(name, TensorProto.DOUBLE, len(columns) * len(DATE_PARTS))
            picked = [k * len(DATE_PARTS) + DATE_PARTS.index(p)
                      for k in range(len(columns)) for p in parts]
            chosen = self.node("Gather", [name, self.constant(np.asarray(picked), "parts")],
                               "parts", axis=1)
            x = self.node("Cast", [chosen], "tofloat", to=TensorProto.FLOAT)
            self.blocks.append(self._numeric(x, rest, len(picked)))
        elif isinstance(first, AsText):
            kind = "text"
            self._input(name, TensorProto.STRING, len(columns))
            self.blocks.append(self._text(name, rest, len(columns)))
        else:
            raise Unsupported(f"step {type(first).__name__}")
        return Input(name, kind, tuple(columns))

    def _input(self, name: str, dtype: int, width: int) -> None:
        self.inputs.append(helper.make_tensor_value_info(name, dtype, [None, width]))

    def _numeric(self, x: str, steps: list[Any], width: int) -> tuple[str, int]:
        for step in steps:
            if isinstance(step, SimpleImputer) and step.strategy in ("median", "mean"):
                imputed = self.node(
                    "Imputer",
                    [x],
                    "impute",
                    domain="ai.onnx.ml",
                    imputed_value_floats=step.statistics_.astype(np.float32).tolist(),
                    replaced_value_float=float("nan"),
                )
                if step.add_indicator:
                    features = step.indicator_.features_
                    indicators = self._indicators(self.node("IsNaN", [x], "isnan"), features)
                    imputed = self.node("Concat", [imputed, indicators], "cat", axis=1)
                    width += len(features)
                x = imputed
            elif isinstance(step, StandardScaler):
                x = self._scale(x, step, width)
            else:
                raise Unsupported(f"step {type(step).__name__} on numbers")
        return x, width

    def _indicators(self, mask: str, features: np.ndarray) -> str:
        index = self.constant(np.asarray(features, dtype=np.int64), "features")
        picked = self.node("Gather", [mask, index], "pick", axis=1)
        return self.node("Cast", [picked], "tofloat", to=TensorProto.FLOAT)

    def _scale(self, x: str, step: StandardScaler, width: int) -> str:
        offset = step.mean_ if step.with_mean else np.zeros(width)
        scale = 1.0 / step.scale_ if step.with_std else np.ones(width)
        return self.node(
            "Scaler",
            [x],
            "scale",
            domain="ai.onnx.ml",
            offset=np.asarray(offset, np.float32).tolist(),
            scale=np.asarray(scale, np.float32).tolist(),
        )

    def _text(self, x: str, steps: list[Any], width: int) -> tuple[str, int]:
        if steps and isinstance(steps[0], MissingIndicator) and len(steps) == 1:
            missing = [
                self._label(self._column(x, j), {MISSING: 1}, default=0)
                for j in range(width)
            ]
            mask = self.node("Concat", missing, "cat", axis=1) if width > 1 else missing[0]
            return self._indicators(mask, steps[0].features_), len(steps[0].features_)
        if len(steps) < 2 or not isinstance(steps[0], SimpleImputer) or steps[0].add_indicator:
            raise Unsupported("categorical steps other than most-frequent + encoder")
        fill = [str(v) for v in steps[0].statistics_]
        encoder, after = steps[1], steps[2:]
        if isinstance(encoder, OneHotEncoder):
            if encoder.drop_idx_ is not None or encoder.handle_unknown != "ignore" or after:
                raise Unsupported("one-hot encoder with drop or unknown-category errors")
            blocks = []
            for j, categories in enumerate(encoder.categories_):
                known = [str(c) for c in categories]
                mapping: dict[str, Any] = {c: c for c in known}
                mapping[MISSING] = fill[j]
                text = self._label(self._column(x, j, flat=True), mapping, default=MISSING)
                blocks.append(
                    self.node(
                        "OneHotEncoder", [text], "onehot", domain="ai.onnx.ml",
                        cats_strings=known, zeros=1,
                    )
                )
            out = self.node("Concat", blocks, "cat", axis=1) if len(blocks) > 1 else blocks[0]
            return out, sum(len(c) for c in encoder.categories_)
        if isinstance(encoder, TargetEncoder):
            per_feature = len(encoder.encodings_) // len(encoder.categories_)
            means = np.atleast_1d(encoder.target_mean_)
            blocks = []
            for j, categories in enumerate(encoder.categories_):
                known = [str(c) for c in categories]
                column = self._column(x, j)
                for k in range(per_feature):
                    table = encoder.encodings_[j * per_feature + k]
                    mapping = {c: float(v) for c, v in zip(known, table, strict=True)}
                    mapping[MISSING] = mapping.get(fill[j], float(means[k]))
                    blocks.append(self._label(column, mapping, default=float(means[k])))
            out = self.node("Concat", blocks, "cat", axis=1) if len(blocks) > 1 else blocks[0]
            width = len(blocks)
            for step in after:
                if not isinstance(step, StandardScaler):
                    raise Unsupported(f"step {type(step).__name__} after target encoding")
                out = self._scale(out, step, width)
            return out, width
        raise Unsupported(f"encoder {type(encoder).__name__}")

    def _column(self, x: str, j: int, flat: bool = False) -> str:
        """Column ``j`` of a [n, k] input, as [n, 1] (or [n] when ``flat``)."""
        index = self.constant(np.asarray(j if flat else [j], dtype=np.int64), "col")
        return self.node("Gather", [x, index], "col", axis=1)

    def _label(self, x: str, mapping: dict[str, Any], default: Any) -> str:
        """``LabelEncoder`` from strings to strings, floats or integers."""
        keys = list(mapping)
        values = list(mapping.values())
        attrs: dict[str, Any]
        if isinstance(default, str):
            attrs = {"values_strings": values, "default_string": default}
        elif isinstance(default, float):
            attrs = {"values_floats": values, "default_float": default}
        else:
            attrs = {"values_int64s": values, "default_int64": default}
        encoded = self.node(
            "LabelEncoder", [x], "label", domain="ai.onnx.ml", keys_strings=keys, **attrs
        )
        if isinstance(default, int):
            return self.node("Cast", [encoded], "tofloat", to=TensorProto.FLOAT)
        return encoded

    def concat(self) -> int:
        names = [name for name, _ in self.blocks]
        if len(names) == 1:
            self.nodes.append(helper.make_node("Identity", names, [FEATURES], name=FEATURES))
        else:
            self.nodes.append(helper.make_node("Concat", names, [FEATURES], name=FEATURES, axis=1))
        return sum(width for _, width in self.blocks)

    def model(self, estimator: ModelProto) -> ModelProto:
        """Preprocessing followed by the converted estimator, in one graph."""
        inner = estimator.graph
        (estimator_input,) = [i.name for i in inner.input]
        nodes = [*self.nodes]
        for node in inner.node:
            node.input[:] = [FEATURES if n == estimator_input else n for n in node.input]
            nodes.append(node)
        graph = helper.make_graph(
            nodes,
            "mlcanary",
            self.inputs,
            list(inner.output),
            initializer=[*self.initializers, *inner.initializer],
        )
        opsets = {"": OPSET, "ai.onnx.ml": 2}
        for opset in estimator.opset_import:
            opsets[opset.domain] = max(opsets.get(opset.domain, 0), opset.version)
        return helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()],
            ir_version=min(estimator.ir_version, 9) or 8,
            producer_name="mlcanary",
        )


# -- estimator ---------------------------------------------------------------------------------


def _estimator(model: Any, width: int) -> ModelProto:
    """The estimator as ONNX with a float input of ``width`` columns."""
    if isinstance(model, EarlyStoppedLGBMClassifier | EarlyStoppedLGBMRegressor):
        import lightgbm as lgb
        from onnxmltools import convert_lightgbm
        from onnxmltools.convert.common.data_types import FloatTensorType

        booster = model.model_.booster_
        cut = lgb.Booster(model_str=booster.model_to_string(num_iteration=model.n_estimators_))
        proto = convert_lightgbm(
            cut,
            initial_types=[("X", FloatTensorType([None, width]))],
            target_opset=OPSET,
            zipmap=False,
        )
        if isinstance(model, EarlyStoppedLGBMClassifier):
            return _trees_alone(proto, getattr(model, "prior_", None))
        return cast(ModelProto, proto)
    if isinstance(model, LogisticRegression | Ridge):
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType as SkFloat

        options = {id(model): {"zipmap": False}} if isinstance(model, LogisticRegression) else None
        return cast(ModelProto, convert_sklearn(
            model,
            initial_types=[("X", SkFloat([None, width]))],
            target_opset={"": OPSET, "ai.onnx.ml": 2},
            options=options,
        ))
    raise Unsupported(f"estimator {type(model).__name__}")


def _trees_alone(proto: ModelProto, prior: np.ndarray | None) -> ModelProto:
    """The converted LightGBM classifier as its one tree-ensemble node, prior included.

    onnxmltools follows the ensemble with two ``Identity`` nodes, a ``Cast`` of the label
    and a ``Mul`` of the probabilities by one: ~1 µs each per call and no effect. The class
    prior of a reweighted model (p_k proportional to p_w,k x prior_k) is a constant added to
    each class's raw score before the softmax, log(prior_k), or for a binary model's one
    logistic score log(prior_1 / prior_0): the ensemble's ``base_values`` hold it.
    """
    graph = proto.graph
    trees = [n for n in graph.node if n.op_type == "TreeEnsembleClassifier"]
    if len(trees) != 1 or len(trees[0].output) != 2:
        raise Unsupported("a LightGBM graph other than one tree-ensemble classifier")
    tree = trees[0]
    attrs = {a.name: a for a in tree.attribute}
    transform = attrs["post_transform"].s.decode() if "post_transform" in attrs else "NONE"
    if prior is not None:
        ids = sorted(set(attrs["class_ids"].ints))
        if transform == "LOGISTIC" and ids == [0] and len(prior) == 2:
            offset = np.log([prior[1] / prior[0]])
        elif transform == "SOFTMAX" and len(ids) == len(prior):
            offset = np.log(prior)
        else:
            raise Unsupported(f"class prior with {transform} over {len(ids)} scores")
        base = np.asarray(attrs["base_values"].floats if "base_values" in attrs else 0.0)
        if "base_values" in attrs:
            tree.attribute.remove(attrs["base_values"])
        tree.attribute.append(
            helper.make_attribute("base_values", (base + offset).astype(float).tolist())
        )
    tree.output[:] = [LABEL_UNUSED, "probabilities"]
    used = set(tree.input)
    del graph.node[:]
    graph.node.append(tree)
    kept = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    (probabilities,) = [o for o in graph.output if o.name == "probabilities"]
    del graph.output[:]
    graph.output.append(probabilities)
    return proto


LABEL_UNUSED = "trees_label"
"""The ensemble's own label output (argmax at 0.5): computed, never read."""


# -- decision ----------------------------------------------------------------------------------

def _decided(
    scores: ModelProto, output: str, classes: np.ndarray | None, threshold: float | None
) -> ModelProto:
    """``scores`` followed by what ``runtime.decide`` does, in float64 as it does it.

    Classifiers: probabilities to float64 (the class prior is in the scores already), then
    the label: probability of the second class >= the registered threshold for binary,
    argmax otherwise, as the index of the class (``predict`` looks it up, so labels keep
    their Python type). Regressors: the value as a float64 vector.
    """
    graph = _Graph(prefix="decide")
    if classes is None:
        value = graph.node("Cast", [output], "double", to=TensorProto.DOUBLE)
        flat = graph.constant(np.asarray([-1], dtype=np.int64), "shape")
        graph.node("Reshape", [value, flat], "flat", out=VALUE)
        outputs = [helper.make_tensor_value_info(VALUE, TensorProto.DOUBLE, [None])]
        return _extended(scores, graph, outputs)
    proba = graph.node("Cast", [output], "double", out=PROBABILITIES, to=TensorProto.DOUBLE)
    if threshold is not None:
        second = graph.node("Gather", [proba, graph.constant(np.asarray(1), "second")],
                            "second", axis=1)
        limit = graph.constant(np.asarray(threshold, np.float64), "threshold")
        above = graph.node("GreaterOrEqual", [second, limit], "decide")
        graph.node("Cast", [above], "index", out=LABEL, to=TensorProto.INT64)
    else:
        graph.node("ArgMax", [proba], "argmax", out=LABEL, axis=1, keepdims=0)
    outputs = [
        helper.make_tensor_value_info(LABEL, TensorProto.INT64, [None]),
        helper.make_tensor_value_info(PROBABILITIES, TensorProto.DOUBLE, [None, len(classes)]),
    ]
    return _extended(scores, graph, outputs)


def _extended(scores: ModelProto, graph: _Graph, outputs: list[Any]) -> ModelProto:
    """A copy of ``scores`` with ``graph``'s nodes appended and ``outputs`` as its outputs."""
    proto = ModelProto()
    proto.CopyFrom(scores)
    proto.graph.node.extend(graph.nodes)
    proto.graph.initializer.extend(graph.initializers)
    del proto.graph.output[:]
    proto.graph.output.extend(outputs)
    return proto
