"""Label columns: checks and encoding as class indices per task."""

import numbers

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.utils.multiclass import type_of_target

from ._common import as_pandas


def check_targets(Y, n_samples, estimator_name, regression=False, require_known=True):
    """Split ``Y`` into per-task label columns.

    A missing value (NaN, None, ``pd.NA``) is a label not known for that
    row; with ``require_known`` each task needs at least one known label.
    With ``regression``, the known values must be finite numbers; otherwise
    (classification) no column may be continuous.

    Returns
    -------
    columns : list of 1-D ndarrays
        With ``regression``, float64 with NaN where missing.
    task_names : list of str
    single_output : bool
        True when ``Y`` was one-dimensional.
    """
    if Y is None:
        raise ValueError(
            f"{estimator_name} requires y to be passed, but the target y is None.")
    Y = as_pandas(Y, "y")
    if sparse.issparse(Y):
        raise TypeError(f"{estimator_name} does not accept sparse targets; pass a dense array.")
    if regression and isinstance(Y, (pd.DataFrame, pd.Series)):
        frame = Y.to_frame() if isinstance(Y, pd.Series) else Y
        for name, dtype in frame.dtypes.items():
            if isinstance(dtype, pd.CategoricalDtype):
                raise ValueError(
                    f"Targets of task {name!r} are categorical; a regressor needs real-valued "
                    "targets. Use a classifier, or convert the column to numbers.")
    if isinstance(Y, pd.DataFrame):
        columns = [_label_column(Y.iloc[:, t]) for t in range(Y.shape[1])]
        task_names = [str(c) for c in Y.columns]
        single_output = False
    elif isinstance(Y, pd.Series):
        columns = [_label_column(Y)]
        task_names = [str(Y.name) if Y.name is not None else "task_0"]
        single_output = True
    else:
        Y = np.asarray(Y)
        if Y.ndim == 1:
            columns, single_output = [Y], True
        elif Y.ndim == 2:
            columns, single_output = list(Y.T), False
        else:
            raise ValueError(
                f"Y must be 1-D (one task) or 2-D (n_samples, n_tasks); got {Y.ndim} "
                f"dimensions, shape {Y.shape}.")
        task_names = [f"task_{t}" for t in range(len(columns))]
    if not columns:
        raise ValueError("Y has no columns; give at least one task.")
    if len(set(task_names)) != len(task_names):
        raise ValueError(f"Task names must be unique; got {task_names}.")
    if len(columns[0]) != n_samples:
        raise ValueError(
            f"X and Y have different numbers of samples: {n_samples} and {len(columns[0])}.")
    for t, (name, column) in enumerate(zip(task_names, columns)):
        mask = known_labels(column)
        known = column[mask]
        if not len(known):
            if require_known:
                raise ValueError(
                    f"Every label of task {name!r} is missing (NaN/None); a task needs at "
                    "least one known label.")
        elif regression:
            _check_regression_target(name, known)
        elif _label_type(name, known) == "continuous":
            raise ValueError(
                f"Unknown label type: continuous. Labels of task {name!r} are continuous "
                "values; a classifier needs discrete classes.")
        if regression:
            values = np.full(len(column), np.nan)
            values[mask] = known.astype(np.float64)
            columns[t] = values
    return columns, task_names, single_output


def _label_type(name, labels):
    """scikit-learn's ``type_of_target``; labels of types that cannot be compared raise."""
    try:
        kind = type_of_target(labels)
        if kind == "unknown" and all(isinstance(label, numbers.Real) for label in labels):
            # numbers in an object array (df.to_numpy() of mixed columns): read as numbers
            kind = type_of_target(labels.astype(np.float64))
        return kind
    except ValueError as error:  # infinity
        raise ValueError(f"Labels of task {name!r}: {error}") from None
    except TypeError:
        kinds = sorted({type(label).__name__ for label in labels})
        if kinds in (["bytes"], ["bytes_"]):  # scikit-learn refuses them
            raise ValueError(f"Labels of task {name!r} are bytes; decode them to strings, "
                             "e.g. Y[column].str.decode('utf-8').") from None
        raise ValueError(f"Labels of task {name!r} mix types that cannot be compared "
                         f"({', '.join(kinds)}); convert them to one type, e.g. "
                         "Y[column].astype(str) (for the 0/1 stages of a funnel model, "
                         ".astype(int)).") from None


def _label_column(series):
    """A pandas target column as an array.

    A nullable integer or boolean column (``Int64``, ``boolean``), or a
    ``category`` of such values, with missing values becomes an object array
    of its values with None where missing, so that its classes stay integers
    or booleans (pandas would give floats).
    """
    dtype = series.dtype
    values_dtype = dtype.categories.dtype if isinstance(dtype, pd.CategoricalDtype) else dtype
    if (isinstance(dtype, pd.api.extensions.ExtensionDtype) and values_dtype.kind in "biu"
            and series.hasnans):
        values = series.astype(object).to_numpy(copy=True)  # to_numpy(na_value=): floats
        values[pd.isna(values)] = None
        return values
    return series.to_numpy()


def label_classes(labels):
    """The sorted distinct values of known ``labels``.

    Integers or booleans held in an object array (a nullable column with
    missing labels, say) come back as an integer or boolean array.
    """
    classes = np.unique(labels)
    if classes.dtype == object and len(classes):
        values = np.array(classes.tolist())
        if values.dtype.kind in "biu":
            return values
    return classes


def known_labels(column):
    """Boolean mask of the entries of ``column`` that are not missing (NaN, None, ``pd.NA``)."""
    return ~np.asarray(pd.isna(column), dtype=bool)


def check_label_type(task, classes, labels):
    """Raise if the known ``labels`` of ``task`` are text where its fitted ``classes`` are not,
    or the other way: such labels equal no class, and accuracy would be 0 without a word
    (scikit-learn refuses the mix too: "Mix of label input types")."""
    classes = np.asarray(classes).tolist()
    text_classes = all(isinstance(c, str) for c in classes)
    text = np.fromiter((isinstance(v, str) for v in labels.tolist()), bool, len(labels))
    wrong = labels[~text] if text_classes else labels[text]
    if len(wrong):
        shown = ", ".join(map(repr, classes[:5])) + (", ..." if len(classes) > 5 else "")
        raise ValueError(
            f"The labels of task {task!r} in y include {wrong[0]!r} ({type(wrong[0]).__name__}), "
            f"but its classes are {'strings' if text_classes else 'not strings'} ({shown}): "
            "give y's labels the classes' type (e.g. y.astype(str) or y.astype(int)).")


def _check_regression_target(name, column):
    if column.dtype.kind in "mM":
        raise ValueError(
            f"Targets of task {name!r} are dates or durations ({column.dtype}); a regressor "
            "needs real numbers: convert them, e.g. to seconds or days.")
    numeric = column.dtype.kind in "biuf" or (
        column.dtype.kind == "O" and pd.api.types.infer_dtype(column, skipna=True) in
        ("integer", "floating", "mixed-integer-float", "decimal", "boolean"))
    if not numeric:
        found = pd.unique(column.astype(object))[:5].tolist()
        raise ValueError(
            f"Targets of task {name!r} are not numeric (e.g. {found}); a regressor needs "
            "real-valued targets. Use a classifier for categorical targets.")
    values = column.astype(np.float64)
    if not np.isfinite(values).all():
        raise ValueError(f"Targets of task {name!r} contain infinite values; a regressor "
                         "needs finite targets.")


def encode_labels(columns, task_names, classes):
    """Float32 ``(n, n_tasks)``: each label's index in its task's sorted ``classes``.

    A missing label is NaN; a label outside ``classes`` (fixed by the first
    fit, or given) raises.
    """
    if len(classes) != len(columns):
        raise ValueError(
            f"Y has {len(columns)} task(s), but the model was fitted with {len(classes)}.")
    known = [known_labels(column) for column in columns]
    columns = [column[mask] for column, mask in zip(columns, known)]
    codes = np.full((len(known[0]), len(columns)), np.nan, dtype=np.float32)
    for t, (name, column, task_classes) in enumerate(zip(task_names, columns, classes)):
        try:
            index = np.searchsorted(task_classes, column)
        except TypeError:
            raise ValueError(
                f"Task {name!r} has labels of another type than its classes "
                f"{task_classes.tolist()} (fixed by the first fit, or by classes=).") from None
        index = np.clip(index, 0, len(task_classes) - 1)
        unknown = task_classes[index] != column
        if np.any(unknown):
            raise ValueError(
                f"Task {name!r} has labels {np.unique(column[unknown]).tolist()} outside its "
                f"classes {task_classes.tolist()} (fixed by the first fit, or by classes=).")
        codes[known[t], t] = index
    return codes
