"""Export a fitted estimator to ONNX: the raw columns in, per-task predictions out.

One file holds the whole estimator: the categorical vocabularies (an
``ai.onnx.ml`` ``LabelEncoder`` per column) and hashing, the fitted numeric
encoding, the network (exported by :func:`torch.onnx.export`) and the
mapping of its outputs to probabilities, labels or targets. A serving
runtime (onnxruntime in Java, C++, C#, JavaScript, ...) then needs nothing
re-implemented by hand.

Needs the ``onnx`` extra (``pip install ".[onnx]"`` in the repository): onnx, onnxruntime,
onnxscript (which torch's exporter uses) and skl2onnx (for :func:`register`).
"""

import contextlib
import copy
import json
import logging
import numbers
import warnings

import numpy as np
import pandas as pd
import torch

try:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("skmtl.onnx needs the 'onnx' extra: pip install '.[onnx]' in the "
                      "repository.") from exc
from sklearn.utils.validation import check_is_fitted

from . import __version__
from ._base import GateWeightsMixin, MultiTaskEstimatorBase, MultiTaskRegressorBase
from ._encoding import UNKNOWN_CODE, check_features
from ._encoding._categorical import is_arrow_dictionary
from ._encoding._common import column, column_arrays
from ._encoding._numeric import coarser_float, float_precision
from ._encoding._tabular import _holds_dates_or_bytes, is_date_dtype
from ._funnel import FunnelClassifierBase

__all__ = ["expected_outputs", "onnx_inputs", "register", "save_onnx", "to_onnx"]

# torch's exporter writes operator sets from 18 on (and hashing needs
# BitwiseXor, new in 18).
MIN_OPSET = 18
_ML_DOMAIN = "ai.onnx.ml"
# pandas' hash_array finishes every 64-bit value with these shifts and
# multipliers (the finaliser of splitmix64).
_HASH_MIX = ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB), (31, None))


def to_onnx(estimator, X_sample, *, target_opset=None):
    """The fitted estimator as one ONNX model, from raw columns to per-task outputs.

    Parameters
    ----------
    estimator : fitted skmtl estimator
    X_sample : DataFrame or array-like of shape (n_samples, n_features)
        Rows like those the model will serve (a few suffice). Its columns
        must be those seen in ``fit``; their dtypes set the inputs' types.
    target_opset : int, optional
        Version of the default ONNX operator set (at least 18); by default
        the one torch's exporter writes.

    Returns
    -------
    model : onnx.ModelProto
        Inputs: one per column of ``X``, named as the column (``x0``,
        ``x1``, ... for an array), of shape ``(n, 1)``: strings for a string
        or ``category`` column of strings, else numbers of the column's
        dtype. A missing value of a string column is any string outside
        the fitted categories, e.g. ``""``; of a number column that can hold
        one, NaN, encoded as ``predict`` encodes it (:func:`onnx_inputs`
        builds the inputs of a DataFrame, and refuses infinity in numeric
        columns as ``predict`` does; the model itself would serve NaN).
        Outputs, per task:

        - classifiers: ``proba_<task>`` (n, n_classes) float, as
          ``predict_proba``, and ``label_<task>`` (n,), as ``predict``;
        - ESMM and AITM: also ``conditional_proba_<task>``, as
          ``predict_conditional_proba``;
        - regressors: ``prediction_<task>`` (n, 1) double, as ``predict``;
        - models with gates: ``gate_weights`` (n, n_gates, n_experts), as
          ``gate_weights``; for PLE ``gate_weights_<level>``, one per level.

    Raises
    ------
    NotImplementedError
        For a column hashed from strings or floats (``hash_buckets``):
        ONNX has no operator to reproduce pandas' hash of them.

    Examples
    --------
    >>> import numpy as np
    >>> import onnxruntime
    >>> from skmtl import ESMMClassifier
    >>> from skmtl.datasets import make_entire_space
    >>> from skmtl.onnx import onnx_inputs, to_onnx
    >>> data = make_entire_space(2000, random_state=0)
    >>> model = ESMMClassifier(max_epochs=2, random_state=0).fit(data.data, data.target)
    >>> exported = to_onnx(model, data.data.head())
    >>> [i.name for i in exported.graph.input][:3], exported.graph.output[2].name
    (['num_0', 'num_1', 'num_2'], 'proba_click')
    >>> session = onnxruntime.InferenceSession(exported.SerializeToString())
    >>> proba_click = session.run(["proba_click"], onnx_inputs(session, data.data))[0]
    >>> bool(np.abs(proba_click - model.predict_proba(data.data)[0]).max() < 1e-5)
    True
    """
    _check_exportable(estimator)
    X = check_features(X_sample, type(estimator).__name__)
    encoder = estimator._encoder
    if encoder.feature_names_in_ is not None and not isinstance(X, pd.DataFrame):
        raise ValueError(f"{type(estimator).__name__} was fitted on a DataFrame; X_sample must "
                         "be a DataFrame with the same columns (they name the model's inputs).")
    encoder._check_columns(X)
    encoder.transform(X)  # the errors predict would raise on these rows
    names = (list(encoder.feature_names_in_) if encoder.feature_names_in_ is not None
             else [f"x{j}" for j in range(X.shape[1])])
    hashed = {j for j, n_buckets in zip(encoder.categorical_indices_, encoder.hash_buckets_)
              if n_buckets}
    sources = [(name, _column_type(column(X, j), name, j in hashed,
                                   numeric=not encoder.is_categorical_[j]), 1)
               for j, name in enumerate(names)]
    return _estimator_model(estimator, sources, target_opset)


def save_onnx(estimator, path, X_sample, *, target_opset=None):
    """Write :func:`to_onnx`'s model of ``estimator`` to ``path``; return the model.

    Parameters
    ----------
    estimator : fitted skmtl estimator
    path : str or path-like
        The ``.onnx`` file to write.
    X_sample : DataFrame or array-like of shape (n_samples, n_features)
        Rows like those the model will serve (see :func:`to_onnx`).
    target_opset : int, optional
        Version of the default ONNX operator set (see :func:`to_onnx`).

    Returns
    -------
    model : onnx.ModelProto

    Examples
    --------
    >>> import os, tempfile
    >>> import onnx
    >>> from skmtl import SharedBottomRegressor
    >>> from skmtl.datasets import make_multitask
    >>> from skmtl.onnx import save_onnx
    >>> data = make_multitask(500, random_state=0)
    >>> model = SharedBottomRegressor(max_epochs=1, random_state=0)
    >>> model.fit(data.data, data.target_scores)
    SharedBottomRegressor(max_epochs=1, random_state=0)
    >>> path = os.path.join(tempfile.mkdtemp(), "model.onnx")
    >>> _ = save_onnx(model, path, data.data.head())
    >>> [output.name for output in onnx.load(path).graph.output]
    ['prediction_task_0', 'prediction_task_1']
    """
    model = to_onnx(estimator, X_sample, target_opset=target_opset)
    onnx.save_model(model, path)
    return model


def onnx_inputs(model, X):
    """The inputs of an exported model for the rows of ``X``, for onnxruntime's ``run``.

    Parameters
    ----------
    model : onnx.ModelProto or onnxruntime.InferenceSession
        A model written by :func:`to_onnx`.
    X : DataFrame or array-like of shape (n_samples, n_features)

    Returns
    -------
    inputs : dict
        ``{input name: (n_samples, 1) array}`` of the input's type; missing
        values of a string column become ``""`` (or, when ``""`` is one of
        its categories, the string the model records for them). Give the
        numbers in the precision of ``X_sample``'s columns: a graph whose
        input is a double compares a column's frequent values
        (``frequent_values``) in float64, where ``predict`` compares those of
        a float32 column in float32.

    Raises
    ------
    ValueError
        As ``predict`` does, for infinity in a numeric column (and NaN,
        for models that refuse it: ``numeric_encoding="passthrough"``, or
        saved before missing values were learned); also for a value an
        integer input cannot hold (missing, or not whole).

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from skmtl import MMOEClassifier
    >>> from skmtl.onnx import onnx_inputs, to_onnx
    >>> X = pd.DataFrame({"city": ["Paris", "Oslo", None, "Oslo"] * 50, "age": np.arange(200.0)})
    >>> Y = pd.DataFrame({"bought": np.arange(200) % 2, "returned": np.arange(200) % 3 == 0})
    >>> model = MMOEClassifier(max_epochs=1, random_state=0).fit(X, Y)
    >>> onnx_inputs(to_onnx(model, X.head()), X.head(3))
    {'city': array([['Paris'], ['Oslo'], ['']], dtype=object),
     'age': array([[0.], [1.], [2.]])}
    """
    specs = _input_specs(model)
    metadata = _metadata(model)
    missing_strings = json.loads(metadata.get("skmtl_missing_strings", "{}"))
    numeric_inputs = set(json.loads(metadata.get("skmtl_numeric_inputs", "[]")))
    categorical_inputs = set(json.loads(metadata.get("skmtl_categorical_inputs", "[]")))
    hashed_inputs = set(json.loads(metadata.get("skmtl_hashed_inputs", "[]")))
    # (models fitted before 3.0 hashed as 3 have no such entry)
    floats_apart = not json.loads(metadata.get("skmtl_hash_whole_floats_as_integers", "false"))
    X = check_features(X, "onnx_inputs")
    if X.shape[1] != len(specs):
        raise ValueError(f"X has {X.shape[1]} columns; the model has {len(specs)} inputs "
                         f"{[name for name, _ in specs]}.")
    names = X.columns.tolist() if isinstance(X, pd.DataFrame) else []
    if names and all(isinstance(c, str) for c in names):
        differ = [(c, name) for c, (name, _) in zip(names, specs) if c != name]
        if differ:
            raise ValueError(f"The columns of X differ from the model's inputs (column, input): "
                             f"{differ}.")
    inputs = {name: _input_values(values, name, dtype, missing_strings.get(name, ""),
                                  name in categorical_inputs, name in hashed_inputs,
                                  floats_apart, name in numeric_inputs)
              for (name, dtype), values in zip(specs, column_arrays(X))}
    # as predict refuses them: the exported model would serve NaN for infinity, and
    # models without missing_levels_ (older, or passthrough) for NaN
    accepts_missing = json.loads(metadata.get("skmtl_numeric_missing_values", "false"))
    refused = [name for name in inputs if name in numeric_inputs
               and inputs[name].dtype.kind == "f" and not (
                   np.isfinite(inputs[name]) | (accepts_missing & np.isnan(inputs[name]))).all()]
    if refused:
        raise ValueError(f"Numeric columns {refused} contain infinite values"
                         + ("" if accepts_missing else " or NaN") + ", which predict refuses.")
    return {name: values.reshape(-1, 1) for name, values in inputs.items()}


def _input_values(values, name, dtype, missing="", categorical=False, hashed=False,
                  floats_apart=False, numeric=False):
    """One column's values as the 1-D array its input of ``dtype`` takes.

    A categorical column of numbers refuses text, which its input would parse
    as a number where predict reads an unknown category; a hashed one of
    booleans refuses numbers, which predict hashes apart from booleans, and
    with ``floats_apart`` (a model fitted before ``3.0`` hashed as ``3``) one
    of integers refuses floats. An integer or bool input refuses numbers it
    cannot hold (it would wrap them round).
    In a string input, a value that is not text (3, b"a") becomes ``missing``
    as a missing value does: predict reads it as an unknown category too,
    where the input would have read its text ("3"). In the string input of a
    ``numeric`` column (skl2onnx types object columns as text), which the
    graph parses, numbers become their text and missing values ``"nan"``.
    """
    values = _decoded(values)  # (a column's array: a Series per column costs more than the rest)
    if dtype.kind == "O" and numeric:
        return np.array([v if isinstance(v, str) else "nan" if pd.isna(v) else repr(float(v))
                         for v in values.tolist()], dtype=object)
    if dtype.kind == "O":
        if isinstance(values.dtype, pd.CategoricalDtype):
            # the categories once, then the codes: far faster than value by value
            categories = np.append(_text_or(values.categories, missing), missing)
            return categories.take(values.codes, mode="wrap")
        return _text_or(values, missing)
    if categorical:
        held = values.categories if isinstance(values.dtype, pd.CategoricalDtype) else values
        kind = pd.api.types.infer_dtype(held, skipna=True)
        if kind not in ("integer", "boolean", "floating", "mixed-integer-float", "empty"):
            other = next((v for v in held if not isinstance(v, (int, float, np.number))
                          and not pd.isna(v)), None)
            raise ValueError(
                f"Categorical column {name!r} holds values that are not numbers (e.g. "
                f"{other!r}), but the model learned numbers for it: predict reads such a value "
                f"as an unknown category, which its {dtype} input would read as a number "
                "or not hold" + (": give NaN instead." if dtype.kind == "f" else "."))
        if hashed and dtype.kind == "b" and kind not in ("boolean", "empty"):
            raise ValueError(
                f"Hashed column {name!r} holds numbers, but the model hashes booleans ({dtype} "
                "input): predict puts 1 in another bucket than True. Give the column as "
                "booleans.")
        if hashed and floats_apart and dtype.kind in "iu" and \
                kind in ("floating", "mixed-integer-float"):
            raise ValueError(
                f"Hashed column {name!r} holds floats, but the model hashes integers ({dtype} "
                "input): predict puts 3.0 in another bucket than 3. Give the column as "
                "integers.")
    if dtype.kind == "f":
        return _floats(values, name, dtype)
    if values.dtype.kind in "OUS" and not isinstance(values.dtype, pd.CategoricalDtype):
        # text such as "3" (ids read from a CSV), which predict reads as the number
        values = _floats(values, name, dtype, np.float64)
    if pd.isna(values).any():
        raise ValueError(f"Column {name!r} has missing values, which its {dtype} input "
                         "cannot hold.")
    array = values if isinstance(values, np.ndarray) else values.to_numpy()
    if array.dtype.kind == "f" and not np.array_equal(array, np.round(array)):
        raise ValueError(f"Column {name!r} holds numbers that are not whole, which its "
                         f"{dtype} input cannot hold.")
    if dtype.kind == "b":
        if not np.isin(array, (0, 1)).all():
            raise ValueError(f"Column {name!r} holds numbers other than 0 and 1, which its "
                             "bool input cannot hold.")
    elif len(array) and (array.min() < np.iinfo(dtype).min or array.max() > np.iinfo(dtype).max):
        raise ValueError(f"Column {name!r} holds numbers beyond its {dtype} input's range "
                         f"[{np.iinfo(dtype).min}, {np.iinfo(dtype).max}].")
    return array.astype(dtype)


def _floats(values, name, dtype, as_dtype=None):
    """``values`` as floats of ``as_dtype`` (default ``dtype``), each read as predict reads
    it (``float()``: "NaN" is missing, "1_000" is 1000); a ValueError naming the column
    of input ``dtype`` if one is no number."""
    as_dtype = dtype if as_dtype is None else as_dtype
    try:
        if _dates_or_bytes(values):  # as predict: numpy would make them numbers
            raise TypeError
        if isinstance(values, pd.api.extensions.ExtensionArray):
            return values.to_numpy(dtype=as_dtype, na_value=np.nan)
        if values.dtype.kind in "biuf":
            return values.astype(as_dtype)
        # (dtype=object: from a bare array, pandas would infer dates anew)
        return pd.Series(values, dtype=object, copy=False).to_numpy(dtype=as_dtype,
                                                                  na_value=np.nan)
    except (TypeError, ValueError):
        raise _not_numbers(values, name, dtype) from None


def _not_numbers(values, name, dtype):
    """The ValueError of a column whose values are not all numbers, naming one that is not."""
    values = pd.Series(values, dtype=values.dtype if isinstance(
        values, pd.api.extensions.ExtensionArray) else object, copy=False)
    numbers = pd.to_numeric(values, errors="coerce")
    others = values[numbers.isna() & values.notna()]
    other = others.iloc[0] if len(others) else values.iloc[0]
    return ValueError(
        f"Column {name!r} holds values that are not numbers (e.g. {other!r}), which its "
        f"{dtype} input cannot hold; predict refuses such a value in a numeric column, "
        "and in a categorical one reads it as an unknown category, as the model reads "
        "NaN: give NaN there.")


def _dates_or_bytes(values):
    """Whether a column holds dates, durations or bytes, which ``predict`` refuses as
    numbers (and NumPy would cast to some)."""
    if is_date_dtype(values.dtype):
        return True
    return isinstance(values, np.ndarray) and values.dtype.kind == "O" and \
        _holds_dates_or_bytes(values)


def _text_or(values, missing):
    """``values`` as an object array, every value that is not a string replaced by ``missing``."""
    values = np.array(values, dtype=object)
    values[~np.fromiter((isinstance(v, str) for v in values), bool, count=len(values))] = missing
    return values


def _metadata(model):
    """The custom metadata of a model or an onnxruntime session, as a dict."""
    if isinstance(model, onnx.ModelProto):
        return {entry.key: entry.value for entry in model.metadata_props}
    return dict(model.get_modelmeta().custom_metadata_map)


def expected_outputs(estimator, X):
    """The estimator's own predictions for ``X``, named as the exported model's outputs.

    What onnxruntime should give for the same rows, to check an export
    against: ``proba_<task>`` and ``label_<task>`` (classifiers),
    ``conditional_proba_<task>`` (ESMM, AITM), ``prediction_<task>``
    (regressors, ``(n, 1)``), ``gate_weights`` or ``gate_weights_<level>``.

    Parameters
    ----------
    estimator : fitted skmtl estimator
    X : DataFrame or array-like of shape (n_samples, n_features)

    Returns
    -------
    outputs : dict
        ``{output name: ndarray}``.

    Examples
    --------
    >>> import numpy as np
    >>> import onnxruntime
    >>> from skmtl import PLERegressor
    >>> from skmtl.datasets import make_multitask
    >>> from skmtl.onnx import expected_outputs, onnx_inputs, to_onnx
    >>> data = make_multitask(1000, random_state=0)
    >>> model = PLERegressor(max_epochs=2, random_state=0).fit(data.data, data.target_scores)
    >>> session = onnxruntime.InferenceSession(to_onnx(model, data.data).SerializeToString())
    >>> served = dict(zip([o.name for o in session.get_outputs()],
    ...                   session.run(None, onnx_inputs(session, data.data))))
    >>> expected = expected_outputs(model, data.data)
    >>> sorted(expected) == sorted(served)
    True
    >>> all(np.allclose(served[name], expected[name], atol=1e-5) for name in expected)
    True
    """
    _check_exportable(estimator)
    tasks = estimator.task_names_
    expected = {}
    if hasattr(estimator, "predict_proba"):
        probas = estimator.predict_proba(X)
        probas = [probas] if estimator._single_output else probas
        labels = np.asarray(estimator.predict(X)).reshape(len(probas[0]), -1)
        for t, task in enumerate(tasks):
            expected[f"proba_{task}"], expected[f"label_{task}"] = probas[t], labels[:, t]
    else:
        predictions = np.asarray(estimator.predict(X))
        predictions = predictions.reshape(len(predictions), -1)
        for t, task in enumerate(tasks):
            expected[f"prediction_{task}"] = predictions[:, t:t + 1]
    if hasattr(estimator, "predict_conditional_proba"):
        for task, proba in zip(tasks, estimator.predict_conditional_proba(X)):
            expected[f"conditional_proba_{task}"] = proba
    if hasattr(estimator, "gate_weights"):
        weights = estimator.gate_weights(X)
        if isinstance(weights, list):
            expected.update((f"gate_weights_{level}", w) for level, w in enumerate(weights))
        else:
            expected["gate_weights"] = weights
    return expected


def register():
    """Register skmtl's estimators with skl2onnx, so that pipelines ending in one convert.

    After it, ``skl2onnx.to_onnx(pipeline, X_sample)`` converts a
    :class:`~sklearn.pipeline.Pipeline` whose last step is a skmtl estimator
    (with, say, a :class:`~sklearn.compose.ColumnTransformer` of
    ``OrdinalEncoder`` and ``StandardScaler`` in front). The model's outputs
    are those of :func:`to_onnx`; skl2onnx's usual ``label`` and
    ``probabilities`` outputs do not apply to several tasks. Ordinal codes
    arrive as floats: declare those columns in ``categorical_features``
    (by position).

    Examples
    --------
    >>> import skl2onnx
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> import skmtl.onnx
    >>> from skmtl import MMOEClassifier
    >>> from skmtl.datasets import make_multitask
    >>> skmtl.onnx.register()
    >>> data = make_multitask(500, random_state=0)
    >>> pipeline = make_pipeline(StandardScaler(), MMOEClassifier(max_epochs=1, random_state=0))
    >>> exported = skl2onnx.to_onnx(pipeline.fit(data.data, data.target), data.data.head())
    >>> [output.name for output in exported.graph.output]
    ['label_task_0', 'label_task_1', 'proba_task_0', 'proba_task_1', 'gate_weights']
    """
    from skl2onnx import update_registered_converter

    import skmtl

    for name in skmtl.__all__:
        estimator_class = getattr(skmtl, name)
        if isinstance(estimator_class, type) and issubclass(estimator_class,
                                                            MultiTaskEstimatorBase):
            update_registered_converter(estimator_class, f"Skmtl{name}", _skl2onnx_shapes,
                                        _skl2onnx_convert, parser=_skl2onnx_parse)


# -- the whole model ---------------------------------------------------------------

def _check_exportable(estimator):
    if not isinstance(estimator, MultiTaskEstimatorBase):
        raise TypeError(
            f"to_onnx exports a skmtl estimator; got {type(estimator).__name__}. For a "
            "scikit-learn Pipeline ending in one, call skmtl.onnx.register() and convert it "
            "with skl2onnx.to_onnx.")
    check_is_fitted(estimator)


def _estimator_model(estimator, sources, target_opset, float32_computed=False):
    """The ONNX model of a fitted estimator whose ``X`` arrives as ``sources``.

    ``sources``: ``[(input name, ONNX element type, width), ...]``; their
    columns, in order, are the columns of ``X``. ``float32_computed``: float32
    inputs were computed in float32 from values the estimator saw in float64 (a
    pipeline's steps before it, in skl2onnx).
    """
    if target_opset is not None and (isinstance(target_opset, bool)
                                     or not isinstance(target_opset, numbers.Integral)):
        raise TypeError(f"target_opset must be an integer; got {target_opset!r}.")
    if target_opset is not None and target_opset < MIN_OPSET:
        raise ValueError(f"target_opset must be at least {MIN_OPSET} (torch's ONNX exporter "
                         f"writes no older operator set); got {target_opset}.")
    encoder = estimator._encoder
    width = sum(w for _, _, w in sources)
    if width != encoder.n_features_in_:
        raise ValueError(f"The inputs hold {width} columns; {type(estimator).__name__} was "
                         f"fitted on {encoder.n_features_in_}.")
    network = _ServedNetwork(estimator)
    network_model = network.export(target_opset)
    opset = _default_opset(network_model)
    if target_opset is not None and opset != target_opset:
        # torch's exporter logs its failure to convert and keeps its own operator set
        raise ValueError(f"torch's ONNX exporter could not write operator set {target_opset} "
                         f"(it wrote {opset}); give a lower target_opset, at least "
                         f"{MIN_OPSET}.")

    graph = _Graph(reserved=[name for name, _, _ in sources])
    columns = []
    for name, elem_type, source_width in sources:
        graph.inputs.append(helper.make_tensor_value_info(name, elem_type, [None, source_width]))
        if source_width == 1:
            columns.append((name, elem_type))
        else:
            parts = graph.node("Split", [name, graph.constant(np.ones(source_width, np.int64))],
                               n_outputs=source_width, axis=1)
            columns += [(part, elem_type) for part in parts]
    network_inputs = []
    if len(encoder.cardinalities):
        network_inputs.append(_codes(graph, encoder, columns, float32_computed))
    if len(encoder.numeric_indices_):
        network_inputs.append(_numeric_inputs(graph, encoder, columns))
    outputs = graph.inline(network_model, network_inputs)
    _served_outputs(graph, estimator, network, outputs)

    model = helper.make_model(
        helper.make_graph(graph.nodes, f"skmtl_{type(estimator).__name__}", graph.inputs,
                          graph.outputs, initializer=graph.initializers),
        opset_imports=[helper.make_opsetid("", opset)] + (
            [helper.make_opsetid(_ML_DOMAIN, graph.ml_opset)] if graph.ml_opset else []),
        ir_version=network_model.ir_version, producer_name="skmtl",
        producer_version=__version__,
        doc_string=f"{type(estimator).__name__} exported by skmtl.onnx.to_onnx")
    if any(i.name == "" for i in graph.inputs):  # ONNX's name of an omitted input
        raise ValueError("A column has the empty name '', which an ONNX input cannot have; "
                         "rename it to export.")
    clash = sorted({i.name for i in graph.inputs} & {o.name for o in graph.outputs})
    if clash:
        raise ValueError(f"Columns {clash} have the names of the model's outputs; rename them "
                         "to export.")

    def input_names(columns):  # of one-column inputs only
        return ([sources[j][0] for j in columns] if len(sources) == encoder.n_features_in_
                else [])

    helper.set_model_props(model, {
        "skmtl_estimator": type(estimator).__name__,
        "skmtl_tasks": json.dumps([str(name) for name in estimator.task_names_]),
        # what onnx_inputs needs beyond the inputs' types (single-column inputs)
        "skmtl_numeric_inputs": json.dumps(input_names(encoder.numeric_indices_)),
        "skmtl_categorical_inputs": json.dumps(input_names(encoder.categorical_indices_)),
        "skmtl_hashed_inputs": json.dumps(input_names(
            [j for j, n in zip(encoder.categorical_indices_, encoder.hash_buckets_) if n])),
        "skmtl_missing_strings": json.dumps(_missing_strings(encoder, sources)),
        "skmtl_hash_whole_floats_as_integers": json.dumps(
            encoder.hashes_whole_floats_as_integers),
        "skmtl_numeric_missing_values": json.dumps(encoder.numeric_.accepts_missing),
    })
    onnx.checker.check_model(model)
    return model


def _missing_strings(encoder, sources):
    """``{input: string}`` for string inputs whose categories hold ``""``: what stands for missing.

    Any string outside a column's categories is read as missing; ``""`` is
    the usual one, unless it is a category.
    """
    if len(sources) != encoder.n_features_in_:
        return {}
    missing = {}
    for j, categories in zip(encoder.categorical_indices_, encoder.categories_):
        name, elem_type, _ = sources[j]
        known = {c for c in categories.tolist() if isinstance(c, str)}
        if elem_type == TensorProto.STRING and "" in known:
            sentinel = "\x00missing"
            while sentinel in known:
                sentinel += "\x00"
            missing[name] = sentinel
    return missing


def _default_opset(model):
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def _served_outputs(graph, estimator, network, tensors):
    """The model's outputs from the network's: probabilities and labels, or targets."""
    by_name = dict(zip(network.output_names, tensors))
    if isinstance(estimator, MultiTaskRegressorBase):
        standardised = graph.node("Cast", [by_name.pop("standardised")], to=TensorProto.DOUBLE)
        # float64 as predict: a target's mean may be far larger than its spread
        targets = graph.node("Add", [graph.node("Mul", [standardised, graph.constant(
            estimator._target_scale)]), graph.constant(estimator._target_mean)])
        n_tasks = len(estimator.task_names_)
        parts = graph.node("Split", [targets, graph.constant(np.ones(n_tasks, np.int64))],
                           n_outputs=n_tasks, axis=1)
        for task, part in zip(estimator.task_names_, parts):
            graph.output(graph.node("Identity", [part], output=f"prediction_{task}"),
                         TensorProto.DOUBLE, [None, 1])
    else:
        for task, classes in zip(estimator.task_names_, estimator._classes_list()):
            proba = by_name[f"proba_{task}"]
            index = graph.node("ArgMax", [proba], axis=1, keepdims=0)
            labels = _label_array(classes)
            graph.output(graph.node("Gather", [graph.constant(labels), index],
                                    output=f"label_{task}"), _onnx_type(labels.dtype), [None])
    for name, tensor in by_name.items():
        graph.output(graph.node("Identity", [tensor], output=name), TensorProto.FLOAT,
                     [None] + network.output_shapes[name])


def _label_array(classes):
    """The classes as an array of an ONNX type that keeps what ``predict`` returns."""
    classes = np.asarray(classes)
    if classes.dtype.kind in "biuf":
        return classes
    values = classes.tolist()
    for kind, dtype in (((str,), object), ((bool, np.bool_), bool),
                        ((int, np.integer), np.int64), ((float, np.floating), np.float64)):
        if all(isinstance(v, kind) for v in values):
            return np.array(values, dtype=dtype)
    kinds = sorted({type(v).__name__ for v in values})
    raise NotImplementedError(
        f"Classes {values!r} are of type(s) {kinds}; an ONNX label output holds strings, "
        "booleans, integers or floats, of one type. Give the labels one of those types (e.g. "
        "strings) to export.")


# -- the network ----------------------------------------------------------------------

class _ServedNetwork(torch.nn.Module):
    """The fitted network with the outputs the model serves, for torch's exporter.

    Its inputs are the categorical codes (int64) and the encoded numeric
    columns (float32), each only when ``X`` has such columns; its outputs,
    in order, those named in ``output_names``.
    """

    def __init__(self, estimator):
        super().__init__()
        module = estimator.net_.module_
        on_cpu = torch.device(estimator.net_.device).type == "cpu"
        self.module = (module if on_cpu else copy.deepcopy(module).cpu()).eval()
        encoder = estimator._encoder
        self.n_categorical = len(encoder.cardinalities)  # (the coded frequent values too)
        self.n_numeric = len(encoder.numeric_indices_)
        self.regression = isinstance(estimator, MultiTaskRegressorBase)
        self.funnel = isinstance(estimator, FunnelClassifierBase)
        # as predict runs it: a funnel's counterfactual extra towers are trained, not served
        self.forward_options = dict(estimator._PREDICT_FORWARD)
        self.gates = isinstance(estimator, GateWeightsMixin)
        # One row of zeros (unknown categories) names and shapes the outputs.
        with torch.no_grad():
            outputs = self(*self.example_inputs(1))
        tasks = estimator.task_names_
        names = (["standardised"] if self.regression else [f"proba_{t}" for t in tasks])
        if self.funnel:
            names += [f"conditional_proba_{t}" for t in tasks]
        if self.gates:  # the rest: one output, or one per level
            names += (["gate_weights"] if not estimator._GATE_WEIGHTS_PER_LEVEL else
                      [f"gate_weights_{level}" for level in range(len(outputs) - len(names))])
        self.output_names = names
        self.output_shapes = {name: list(o.shape[1:]) for name, o in zip(names, outputs)}

    def example_inputs(self, n_rows):
        inputs = []
        if self.n_categorical:
            inputs.append(torch.zeros(n_rows, self.n_categorical, dtype=torch.long))
        if self.n_numeric:
            inputs.append(torch.zeros(n_rows, self.n_numeric, dtype=torch.float32))
        return tuple(inputs)

    def forward(self, *inputs):
        inputs = list(inputs)
        categorical = inputs.pop(0) if self.n_categorical else None
        numeric = inputs.pop(0) if self.n_numeric else None
        logits = self.module(categorical, numeric, **self.forward_options)
        if self.regression:
            outputs = [torch.cat(logits, dim=1)]
        else:
            outputs = list(self.module.predict_proba(logits))
            if self.funnel:
                outputs += self.module.predict_conditional_proba(logits)
        if self.gates:
            weights = self.module.gate_weights(categorical, numeric)
            outputs += weights if isinstance(weights, list) else [weights]
        return tuple(outputs)

    def export(self, opset):
        """The network as an ONNX model with a dynamic number of rows."""
        input_names = ["categorical"] * bool(self.n_categorical) + ["numeric"] * bool(
            self.n_numeric)
        batch = torch.export.Dim("batch")
        with _quiet_exporter(), torch.no_grad():
            program = torch.onnx.export(
                self, self.example_inputs(3), dynamo=True, opset_version=opset,
                input_names=input_names, output_names=self.output_names,
                dynamic_shapes=(tuple({0: batch} for _ in input_names),), verbose=False)
        model = program.model_proto
        if len(model.functions):
            model = onnx.inliner.inline_local_functions(model)
        _exact_sigmoids(model.graph)
        return model


def _exact_sigmoids(graph):
    """Write every ``Sigmoid`` as ``1 / (1 + exp(-x))``.

    onnxruntime's Sigmoid is exact to about 1e-7 in absolute terms but not
    in relative ones (off by several times its value below 1e-8): AITM's
    conditional probabilities, ratios of two sigmoids, then differed from
    torch's by 1e-5. Its Exp is exact to float32 precision, as torch's
    sigmoid is.
    """
    one = "skmtl_sigmoid_one"
    nodes = []
    for node in graph.node:
        if node.op_type != "Sigmoid" or node.domain not in ("", "ai.onnx"):
            nodes.append(node)
            continue
        (x,), (y,) = node.input, node.output
        nodes += [helper.make_node("Neg", [x], [f"{y}_negated"], name=f"{y}_neg"),
                  helper.make_node("Exp", [f"{y}_negated"], [f"{y}_exp"], name=f"{y}_exp"),
                  helper.make_node("Add", [f"{y}_exp", one], [f"{y}_denominator"],
                                   name=f"{y}_add"),
                  helper.make_node("Reciprocal", [f"{y}_denominator"], [y],
                                   name=f"{y}_reciprocal")]
    if len(nodes) != len(graph.node):
        graph.initializer.append(numpy_helper.from_array(np.array(1.0, np.float32), one))
        del graph.node[:]
        graph.node.extend(nodes)


@contextlib.contextmanager
def _quiet_exporter():
    """Silence the exporter's progress and its warnings about torch internals.

    onnxscript's version converter logs the traceback of an operator set it
    cannot write; the export then keeps its own, which ``export`` reports.
    """
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


# -- the encoding of X -------------------------------------------------------------------

def _codes(graph, encoder, columns, float32_computed=False):
    """``(n, n_codes)`` int64 codes of the categorical columns, then of the numeric columns'
    frequent values, as the encoder reads them (see :func:`_frequent_value_codes`)."""
    codes = []
    for j, categories, n_buckets in zip(encoder.categorical_indices_, encoder.categories_,
                                        encoder.hash_buckets_):
        name, elem_type = columns[j]
        label = encoder._label(j)
        if n_buckets:
            codes.append(_hashed_codes(graph, name, elem_type, n_buckets, label))
        else:
            codes.append(_vocabulary_codes(graph, name, elem_type, categories, label))
    numeric = encoder.numeric_
    for i in numeric.value_columns:
        codes.append(_frequent_value_codes(graph, *columns[encoder.numeric_indices_[i]],
                                           numeric, i, float32_computed))
    return codes[0] if len(codes) == 1 else graph.node("Concat", codes, axis=1)


def _frequent_value_codes(graph, name, elem_type, encoding, i, float32_computed=False):
    """``k + 1`` where the ``(n, 1)`` numeric input is the ``k``-th frequent value of the
    ``i``-th numeric column of ``encoding`` (a :class:`NumericEncoding`), else the reserved
    code.

    Standard operators (a comparison with every value, at most 255), not an ``ai.onnx.ml``
    ``LabelEncoder``: its double keys need ``ai.onnx.ml`` 4, which skl2onnx refuses in a
    pipeline. The input is compared as ``predict`` compares it: exactly, in the coarser of
    its own precision (float32 for a float input, float64 for a double or an integer)
    and the column's in fit. Except with
    ``float32_computed``: a pipeline through skl2onnx hands its estimator float32 values
    computed in float32 (a StandardScaler's output differs from scikit-learn's float64 in
    the last bits, more where subtracting the mean cancels); they match a value within 4
    float32 steps of it plus 4 of the column's largest value (of several, the last).
    """
    if float32_computed and elem_type in (TensorProto.FLOAT, TensorProto.FLOAT16):
        keys = np.asarray(encoding.frequent_values_[i], dtype=np.float32).reshape(1, -1)
        value = graph.node("Cast", [name], to=TensorProto.FLOAT)
        distance = graph.node("Abs", [graph.node("Sub", [value, graph.constant(keys)])])
        tolerance = 4 * (np.spacing(np.abs(keys)) + np.spacing(np.abs(keys).max()))
        matches = graph.node("LessOrEqual", [distance, graph.constant(tolerance)])
    else:
        input_dtype = helper.tensor_dtype_to_np_dtype(elem_type)
        precision = coarser_float(encoding.frequent_dtypes[i],
                                  input_dtype if input_dtype.kind == "f" else np.float64)
        keys = encoding.frequent_keys(i, precision).copy()
        # of keys that rounding made equal, the first one's code (as predict's binary search);
        # none matches beyond the precision's range
        keys[1:][keys[1:] == keys[:-1]] = np.nan
        keys[np.isinf(keys)] = np.nan
        if precision == np.float64:
            value = graph.node("Cast", [name], to=TensorProto.DOUBLE)
        else:  # rounded to the precision, then compared as float32 (float16 exactly so)
            keys = keys.astype(np.float32)
            value = graph.node("Cast", [name], to=helper.np_dtype_to_tensor_dtype(precision))
            if precision != np.float32:
                value = graph.node("Cast", [value], to=TensorProto.FLOAT)
        keys = keys.reshape(1, -1)
        matches = graph.node("Equal", [value, graph.constant(keys)])
    numbered = graph.node("Mul", [graph.node("Cast", [matches], to=TensorProto.INT64),
                                  graph.constant(np.arange(1, keys.shape[1] + 1,
                                                           dtype=np.int64).reshape(1, -1))])
    return graph.node("ReduceMax", [numbered, graph.constant(np.array([1], np.int64))],
                      keepdims=1)


def _vocabulary_codes(graph, name, elem_type, categories, label):
    """A LabelEncoder from the categories to ``1..K``; anything else to the reserved code."""
    kinds = {_value_kind(value) for value in np.asarray(categories, dtype=object)}
    if "bytes" in kinds:
        raise TypeError(f"Column {label!r}: the model learned bytes categories, which have no "
                        "ONNX input type; fit it on strings (e.g. X[col].str.decode('utf-8')).")
    # fit refuses strings beside numbers; a float among integers makes them all floats
    kind = next((k for k in ("string", "float", "integer") if k in kinds), None)
    codes = np.arange(1, len(categories) + 1, dtype=np.int64)
    if elem_type == TensorProto.STRING:
        if kind not in ("string", None):
            raise TypeError(f"Column {label!r} of X_sample holds strings, but the model learned "
                            f"{kind} categories for it.")
        keys = [str(c) for c in categories] or [""]  # no category: a key to the reserved code
        return graph.node("LabelEncoder", [name], domain=_ML_DOMAIN, keys_strings=keys,
                          values_int64s=codes.tolist() or [UNKNOWN_CODE],
                          default_int64=UNKNOWN_CODE)
    if kind == "string":
        raise TypeError(f"Column {label!r} of X_sample holds numbers, but the model learned "
                        "string categories for it.")
    if kind in ("integer", None) or _integral(categories):
        keys = _int64_keys(categories, kind)
        # the categories' own sizes: keys of uint64 beyond int64's range wrap round
        largest = max((int(c) for c in categories), key=abs, default=0)
        if _is_float(elem_type) and abs(largest) > 2 ** 53:
            raise ValueError(
                f"Column {label!r} has integer categories beyond 2**53 (e.g. "
                f"{largest}), which its input cannot hold exactly: a "
                "double, as the column may hold missing values (a category, nullable or object "
                "column). Give X_sample, and the rows to serve, that column as NumPy int64 or "
                "uint64 (without missing values) or as strings.")
        integer = graph.node("Cast", [name], to=TensorProto.INT64)
        codes = graph.node("LabelEncoder", [integer], domain=_ML_DOMAIN,
                           keys_int64s=keys.tolist() or [0],
                           values_int64s=codes.tolist() or [UNKNOWN_CODE],
                           default_int64=UNKNOWN_CODE)
        if not _is_float(elem_type):
            return codes
        # A float matches an integer key only if it is that integer (NaN is none).
        whole = graph.node("Equal", [graph.node("Cast", [integer], to=elem_type), name])
        return graph.node("Mul", [codes, graph.node("Cast", [whole], to=TensorProto.INT64)])
    # Other floats: the tensor keys of LabelEncoder 4 hold doubles (NaN matches no key).
    graph.ml_opset = max(graph.ml_opset, 4)
    keys = np.asarray(categories, dtype=np.float64)
    return graph.node(
        "LabelEncoder", [graph.node("Cast", [name], to=TensorProto.DOUBLE)], domain=_ML_DOMAIN,
        keys_tensor=numpy_helper.from_array(keys if len(keys) else np.zeros(1)),
        values_tensor=numpy_helper.from_array(codes if len(codes) else np.zeros(1, np.int64)),
        default_tensor=numpy_helper.from_array(np.array([UNKNOWN_CODE], np.int64)))


def _hashed_codes(graph, name, elem_type, n_buckets, label):
    """``1 + hash % n_buckets`` with the hash of :func:`pandas.util.hash_array` of integers."""
    dtype = helper.tensor_dtype_to_np_dtype(elem_type) if elem_type != TensorProto.STRING \
        else np.dtype(object)
    if dtype.kind not in "biu":
        kind = ("float values (or integers of a column that may hold missing values, served "
                "as doubles)" if dtype.kind == "f" else "string (or mixed) values")
        raise NotImplementedError(
            f"Column {label!r} is hashed (hash_buckets) from {kind}, which cannot be "
            "exported to ONNX yet: ONNX has no operator to reproduce pandas' hash of them. "
            "Hash integer ids (a NumPy integer column) instead, or give the column a "
            f"vocabulary with categories={{{label!r}: [...]}}.")
    # As the encoder: signed integers as int64, whose bits hash_array reads as
    # uint64 (unsigned ones and booleans zero-extended to it), then mixed.
    if dtype.kind == "i":
        name = graph.node("Cast", [name], to=TensorProto.INT64)
    hashed = graph.node("Cast", [name], to=TensorProto.UINT64)
    for shift, multiplier in _HASH_MIX:
        shifted = graph.node("BitShift", [hashed, graph.constant(np.uint64(shift))],
                             direction="RIGHT")
        hashed = graph.node("BitwiseXor", [hashed, shifted])
        if multiplier is not None:
            hashed = graph.node("Mul", [hashed, graph.constant(np.uint64(multiplier))])
    bucket = graph.node("Mod", [hashed, graph.constant(np.uint64(n_buckets))])
    return graph.node("Add", [graph.node("Cast", [bucket], to=TensorProto.INT64),
                              graph.constant(np.int64(1))])


def _numeric_inputs(graph, encoder, columns):
    """``(n, n_numeric)`` float32 network inputs of the numeric columns, as the encoder's."""
    encoding = encoder.numeric_
    # in float64, then float32, as predict computes them: a column of timestamps
    # centred in float32 would lose its spread
    values = [graph.node("Cast", [columns[j][0]], to=TensorProto.DOUBLE)
              for j in encoder.numeric_indices_]
    values = values[0] if len(values) == 1 else graph.node("Concat", values, axis=1)
    if encoding.accepts_missing:  # NaN as predict encodes it, the others as they are
        missing = graph.node("IsNaN", [values])
        values = graph.node("Where", [missing, graph.constant(np.zeros(1)), values])
    if encoding.is_affine:
        encoded = graph.node("Div", [graph.node("Sub", [values, graph.constant(
            encoding.mean_.astype(np.float64))]), graph.constant(
            encoding.scale_.astype(np.float64))])
    else:
        encoded = _interpolated(graph, values, encoding.knots_, encoding.levels_)
    if encoding.accepts_missing:
        encoded = graph.node("Where", [missing, graph.constant(
            encoding.missing_inputs.astype(np.float64)), encoded])
    return graph.node("Cast", [encoded], to=TensorProto.FLOAT)


def _interpolated(graph, x, knots, levels):
    """``np.interp(x[:, i], knots[i], levels[i])`` for every column ``i`` of ``(n, F)`` ``x``.

    A value's segment ``k`` (the number of inner knots at or below it) comes
    from a tree ensemble with one binary search tree per column; then the
    value, clipped to the knots' range, gives ``levels[k] + slope[k] * (x -
    knots[k])``, as NumPy computes it.
    """
    segment = graph.node("Cast", [_segments(graph, x, knots)], to=TensorProto.INT64)
    # segment k of column i is row starts[i] + k of the flat tables
    n_segments = [max(len(k) - 1, 1) for k in knots]
    starts = np.concatenate([[0], np.cumsum(n_segments)[:-1]]).astype(np.int64)
    index = graph.node("Add", [segment, graph.constant(starts)])
    with np.errstate(over="ignore"):   # knots further apart than float64's maximum
        tables = [np.concatenate([k[:n] for k, n in zip(knots, n_segments)]),
                  np.concatenate([v[:n] for v, n in zip(levels, n_segments)]),
                  np.concatenate([np.diff(v) / np.diff(k) if len(k) > 1 else np.zeros(1)
                                  for k, v in zip(knots, levels)])]
        wide = any(not np.isfinite(np.diff(k)).all() for k in knots)
    start, level, slope = (graph.node("Gather", [graph.constant(table), index])
                           for table in tables)
    clipped = graph.node("Max", [
        graph.node("Min", [x, graph.constant(np.array([k[-1] for k in knots]))]),
        graph.constant(np.array([k[0] for k in knots]))])
    interpolated = graph.node("Add", [graph.node("Mul", [
        slope, graph.node("Sub", [clipped, start])]), level])
    if not wide:
        return interpolated
    # Knots further apart than float64's maximum: their slope is 0 and a value's
    # distance from the start may be inf (0 * inf = NaN). NumPy then measures
    # from the segment's end; so does the graph (only for such columns' models).
    ends, next_levels = (np.concatenate([k[1:n + 1] if len(k) > 1 else k for k, n in zip(
        table, n_segments)]) for table in (knots, levels))
    end, next_level = (graph.node("Gather", [graph.constant(table), index])
                       for table in (ends, next_levels))
    from_end = graph.node("Add", [graph.node("Mul", [
        slope, graph.node("Sub", [clipped, end])]), next_level])
    return graph.node("Where", [graph.node("IsNaN", [interpolated]), from_end, interpolated])


def _segments(graph, x, knots):
    """``(n, F)`` float: per column, how many of its inner knots are at or below the value.

    ``TreeEnsembleRegressor`` with one balanced tree per column over its
    inner knots (double thresholds): a binary search per value, not a
    comparison with every knot.
    """
    attributes = {name: [] for name in (
        "nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_modes", "nodes_values",
        "nodes_truenodeids", "nodes_falsenodeids", "target_treeids", "target_nodeids",
        "target_ids", "target_weights")}
    for tree, column_knots in enumerate(knots):  # tree i reads and writes column i
        for node, (mode, threshold, true_node, false_node) in enumerate(
                _search_tree(column_knots[1:-1])):
            for name, value in (("treeids", tree), ("nodeids", node), ("featureids", tree),
                                ("modes", mode), ("values", threshold),
                                ("truenodeids", true_node), ("falsenodeids", false_node)):
                attributes[f"nodes_{name}"].append(value)
            if mode == "LEAF":
                for name, value in (("treeids", tree), ("nodeids", node), ("ids", tree),
                                    ("weights", threshold)):
                    attributes[f"target_{name}"].append(value)
    thresholds = np.array(attributes.pop("nodes_values"), dtype=np.float64)
    graph.ml_opset = max(graph.ml_opset, 3)
    return graph.node("TreeEnsembleRegressor", [x], domain=_ML_DOMAIN, n_targets=len(knots),
                      aggregate_function="SUM", post_transform="NONE",
                      nodes_values_as_tensor=numpy_helper.from_array(thresholds), **attributes)


def _search_tree(thresholds):
    """A balanced binary search tree counting the sorted ``thresholds`` at or below a value.

    Nodes ``(mode, threshold or count, true node, false node)`` in
    depth-first order, the root first; a leaf holds the count.
    """
    nodes = []

    def grow(low, high):  # the values with low..high thresholds at or below them
        node = len(nodes)
        if low == high:
            nodes.append(("LEAF", float(low), 0, 0))
            return node
        middle = (low + high + 1) // 2
        nodes.append(None)
        below = grow(low, middle - 1)
        nodes[node] = ("BRANCH_GTE", float(thresholds[middle - 1]), grow(middle, high), below)
        return node

    grow(0, len(thresholds))
    return nodes


def _decoded(values):
    """A pyarrow dictionary column (``dtype_backend="pyarrow"``) as the column of its values."""
    if is_arrow_dictionary(values.dtype):
        return values.astype(pd.ArrowDtype(values.dtype.pyarrow_dtype.value_type))
    return values


def _column_type(values, name, hashed=False, numeric=False):
    """The ONNX element type of a column's input, from its values in X_sample.

    NumPy numbers keep their type. Numbers in a column that can also hold
    missing values (a ``category``, nullable or object column) are doubles,
    so that NaN can say "missing"; except in a hashed column, whose hash
    depends on the values' integer type, and in a numeric column of float32
    (or float16) numbers, nullable, Arrow or sparse, which keeps its float
    type. A ``numeric`` column without a known value in the sample is
    doubles too, not text.
    """
    values = _decoded(values)
    dtype = values.dtype
    precision = float_precision(dtype)
    if numeric and precision.itemsize < 8:
        # a float32 (or float16) column, nullable, Arrow or sparse too: NaN says "missing"
        # in its own type, the precision predict compares its frequent values in
        return helper.np_dtype_to_tensor_dtype(precision)
    if isinstance(dtype, pd.CategoricalDtype):
        values, dtype = dtype.categories, dtype.categories.dtype
        if isinstance(dtype, np.dtype) and dtype.kind in "biuf":
            return helper.np_dtype_to_tensor_dtype(dtype) if hashed else TensorProto.DOUBLE
    # pandas' nullable numbers (and categories of them)
    numpy_dtype = getattr(dtype, "numpy_dtype", None)
    if numpy_dtype is not None and numpy_dtype.kind in "biuf":
        return helper.np_dtype_to_tensor_dtype(numpy_dtype) if hashed else TensorProto.DOUBLE
    if isinstance(dtype, np.dtype) and dtype.kind in "biuf":
        if dtype.kind == "f" and dtype.itemsize > 8:  # long double: ONNX has none
            return TensorProto.DOUBLE
        return helper.np_dtype_to_tensor_dtype(dtype)
    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind == "empty" and numeric:
        return TensorProto.DOUBLE
    if kind in ("string", "empty"):
        return TensorProto.STRING
    if kind in ("integer", "boolean", "floating", "mixed-integer-float"):
        return TensorProto.DOUBLE
    raise TypeError(f"Column {name!r} holds {kind} values, which have no ONNX input type; "
                    "convert them to strings or numbers.")


def _value_kind(value):
    if isinstance(value, str):
        return "string"
    if isinstance(value, (bytes, np.bytes_)):
        return "bytes"
    if isinstance(value, (bool, np.bool_, int, np.integer)):
        return "integer"
    return "float"


def _int64_keys(categories, kind):
    """Whole-number categories as int64 keys: integers exactly (beyond 2**53 too)."""
    if kind != "integer":
        return np.asarray(categories, dtype=np.float64).astype(np.int64)
    largest = int(np.iinfo(np.int64).max)
    # uint64 beyond int64's range wraps round, as the input's Cast to int64 does
    return np.array([int(v) - 2 ** 64 if int(v) > largest else int(v) for v in categories],
                    dtype=np.int64)


def _integral(values):
    """Whether the numbers ``values`` are all whole and within int64's range."""
    values = np.asarray(values, dtype=np.float64)
    return bool(np.all((values == np.round(values)) & (np.abs(values) < 2.0 ** 62)))


def _is_float(elem_type):
    return elem_type in (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16)


def _onnx_type(dtype):
    return TensorProto.STRING if dtype.kind == "O" else helper.np_dtype_to_tensor_dtype(dtype)


def _input_specs(model):
    """``[(name, NumPy dtype)]`` of a model's or an onnxruntime session's inputs."""
    if isinstance(model, onnx.ModelProto):
        return [(i.name, np.dtype(object) if i.type.tensor_type.elem_type == TensorProto.STRING
                 else helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type))
                for i in model.graph.input]
    if not callable(getattr(model, "get_inputs", None)):
        hint = (" (a fitted estimator: export it with to_onnx first)"
                if hasattr(model, "predict_proba") or hasattr(model, "predict") else "")
        raise TypeError(f"model must be an onnx.ModelProto or an onnxruntime.InferenceSession "
                        f"of a model written by to_onnx; got {type(model).__name__}{hint}.")
    types = {"tensor(string)": np.dtype(object), "tensor(double)": np.dtype(np.float64),
             "tensor(float)": np.dtype(np.float32), "tensor(bool)": np.dtype(bool)}
    specs = []
    for i in model.get_inputs():
        if i.type in types:
            specs.append((i.name, types[i.type]))
        else:  # tensor(int64), tensor(uint8), ...
            specs.append((i.name, np.dtype(i.type[len("tensor("):-1])))
    return specs


# -- building the graph -----------------------------------------------------------------

class _Graph:
    """The nodes, constants, inputs and outputs of the model being built, with unique names."""

    def __init__(self, reserved=()):
        self.nodes, self.initializers, self.inputs, self.outputs = [], [], [], []
        self.ml_opset = 0
        self._count = 0
        self._reserved = set(reserved)  # the inputs' names: a column may be called "Cast_3"

    def _name(self, hint):
        self._count += 1
        while f"{hint}_{self._count}" in self._reserved:
            self._count += 1
        return f"{hint}_{self._count}"

    def constant(self, value):
        value = np.asarray(value)
        name = self._name("const")
        if value.dtype == object:
            tensor = helper.make_tensor(name, TensorProto.STRING, value.shape,
                                        [str(v).encode() for v in value.ravel()])
        else:
            tensor = numpy_helper.from_array(value, name)
        self.initializers.append(tensor)
        return name

    def node(self, op_type, inputs, n_outputs=None, domain="", output=None, **attributes):
        """Add a node; return its output's name (``output`` if given), or ``n_outputs`` names."""
        if domain == _ML_DOMAIN:
            self.ml_opset = max(self.ml_opset, 3)
        outputs = [output or self._name(op_type)] if n_outputs is None else [
            self._name(op_type) for _ in range(n_outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, outputs, name=self._name(op_type),
                                           domain=domain, **attributes))
        return outputs[0] if n_outputs is None else outputs

    def output(self, name, elem_type, shape):
        self.outputs.append(helper.make_tensor_value_info(name, elem_type, shape))

    def inline(self, model, inputs):
        """Add ``model``'s graph with its inputs bound to ``inputs``; return its outputs."""
        graph = model.graph
        renamed = {i.name: bound for i, bound in zip(graph.input, inputs)}
        renamed[""] = ""
        prefix = self._name("network")
        for tensor in graph.initializer:
            copied = onnx.TensorProto()
            copied.CopyFrom(tensor)
            copied.name = renamed[tensor.name] = f"{prefix}/{tensor.name}"
            self.initializers.append(copied)
        for node in graph.node:
            if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                   for a in node.attribute):
                raise NotImplementedError("the exported network has control flow, which "
                                          "skmtl.onnx cannot compose yet.")
            copied = onnx.NodeProto()
            copied.CopyFrom(node)
            for o in node.output:
                renamed[o] = f"{prefix}/{o}"
            del copied.input[:], copied.output[:]
            copied.input.extend(renamed[i] for i in node.input)
            copied.output.extend(renamed[o] for o in node.output)
            copied.name = f"{prefix}/{node.name or self._name(node.op_type)}"
            self.nodes.append(copied)
        return [renamed[o.name] for o in graph.output]


# -- skl2onnx ---------------------------------------------------------------------------

def _skl2onnx_parse(scope, model, inputs, custom_parsers=None):
    from skl2onnx.common import data_types

    # every tensor type skl2onnx has, by the ONNX element type it stands for
    tensor_types = {}
    for type_name in dir(data_types):
        kind = getattr(data_types, type_name)
        if type_name.endswith("TensorType") and kind is not data_types.TensorType:
            tensor_types[kind([None]).to_onnx_type().tensor_type.elem_type] = kind
    _check_exportable(model)
    operator = scope.declare_local_operator(f"Skmtl{type(model).__name__}", model)
    operator.inputs = inputs
    for name, elem_type, shape in _output_types(model):
        if elem_type not in tensor_types:
            raise NotImplementedError(f"skl2onnx has no tensor type for the output {name!r} "
                                      f"({TensorProto.DataType.Name(elem_type)}).")
        operator.outputs.append(scope.declare_local_variable(name, tensor_types[elem_type](
            shape)))
    return list(operator.outputs)


def _output_types(estimator):
    """``[(name, ONNX element type, shape)]`` of :func:`to_onnx`'s outputs, in order."""
    network = _ServedNetwork(estimator)
    outputs = []
    if isinstance(estimator, MultiTaskRegressorBase):
        outputs += [(f"prediction_{t}", TensorProto.DOUBLE, [None, 1])
                    for t in estimator.task_names_]
    else:
        outputs += [(f"label_{t}", _onnx_type(_label_array(c).dtype), [None])
                    for t, c in zip(estimator.task_names_, estimator._classes_list())]
    outputs += [(name, TensorProto.FLOAT, [None] + network.output_shapes[name])
                for name in network.output_names if name != "standardised"]
    return outputs


def _skl2onnx_shapes(operator):
    """The output types are set by the parser."""


def _check_numeric_columns_not_text(estimator, sources):
    """Refuse text inputs of numeric columns: skl2onnx types an object column of numbers
    as strings, which no value of the column (a number, None) could then be given as."""
    encoder, start = estimator._encoder, 0
    for name, elem_type, width in sources:
        numeric = [j for j in range(start, start + width) if not encoder.is_categorical_[j]]
        start += width
        if elem_type == TensorProto.STRING and numeric:
            columns = [encoder._label(j) for j in numeric]
            raise ValueError(
                f"skl2onnx typed the input {name!r} as text, but {type(estimator).__name__} "
                f"reads its columns {columns} as numbers (an object column of numbers in "
                "X_sample is text to skl2onnx): give them as floats, e.g. "
                "X_sample.astype({column: float}), or pass initial_types to "
                "skl2onnx.to_onnx.")


def _skl2onnx_convert(scope, operator, container):
    from skl2onnx.common.data_types import guess_proto_type

    sources = []
    for variable in operator.inputs:
        shape = variable.type.shape
        if len(shape) != 2 or not isinstance(shape[1], int):
            raise ValueError(f"skmtl's converter needs 2-D inputs of known width; "
                             f"{variable.onnx_name!r} has shape {shape}.")
        sources.append((variable.full_name, guess_proto_type(variable.type), shape[1]))
    _check_numeric_columns_not_text(operator.raw_operator, sources)
    model = _estimator_model(operator.raw_operator, sources, container.target_opset,
                             float32_computed=True)
    graph = model.graph
    declared = [variable.raw_name for variable in operator.outputs]
    if [output.name for output in graph.output] != declared:  # _output_types went astray
        raise RuntimeError(f"skmtl's converter built the outputs "
                           f"{[output.name for output in graph.output]}, not {declared}.")
    ml_opset = {o.domain: o.version for o in model.opset_import}.get(_ML_DOMAIN)
    renamed = {i.name: v.full_name for i, v in zip(graph.input, operator.inputs)}
    renamed.update({o.name: v.full_name for o, v in zip(graph.output, operator.outputs)})
    renamed[""] = ""

    def name_of(name):
        if name not in renamed:
            renamed[name] = scope.get_unique_variable_name(name.replace("/", "_"))
        return renamed[name]

    for tensor in graph.initializer:
        array = numpy_helper.to_array(tensor)
        content = [v.decode() if isinstance(v, bytes) else v for v in array.ravel()] \
            if array.dtype == object else numpy_helper.from_array(array)
        container.add_initializer(name_of(tensor.name), tensor.data_type, list(tensor.dims),
                                  content)
    for node in graph.node:
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        inputs = [name_of(i) for i in node.input]
        while inputs and not inputs[-1]:  # omitted optional inputs: skl2onnx wants none
            inputs.pop()
        if "" in inputs:
            raise NotImplementedError(
                f"the exported network has a {node.op_type} node with an omitted optional "
                "input before a given one, which skl2onnx cannot place; use skmtl.onnx.to_onnx.")
        container.add_node(node.op_type, inputs,
                           [name_of(o) for o in node.output], op_domain=node.domain,
                           op_version=ml_opset if node.domain == _ML_DOMAIN else None,
                           name=scope.get_unique_operator_name(node.op_type), **attributes)
