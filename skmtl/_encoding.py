"""Turning user input into arrays: features to codes and floats, labels to codes."""

import warnings
from numbers import Integral

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.utils.multiclass import type_of_target

# Code reserved in every categorical column for missing values and for
# categories not seen during fit; known categories get codes 1, 2, ...
UNKNOWN_CODE = 0


def _is_categorical_dtype(dtype):
    return (
        isinstance(dtype, pd.CategoricalDtype)
        or pd.api.types.is_object_dtype(dtype)
        or pd.api.types.is_string_dtype(dtype)
    )


def _column_label(feature_names, index):
    """A column's name, or its position when ``X`` has no names."""
    return str(feature_names[index]) if feature_names is not None else int(index)


def check_features(X, estimator_name):
    """Validate the container of ``X``; return it as a DataFrame or a 2-D ndarray."""
    if sparse.issparse(X):
        raise TypeError(
            f"{estimator_name} does not accept sparse input; convert it with X.toarray() "
            "or pass a pandas DataFrame.")
    if not isinstance(X, pd.DataFrame):
        if isinstance(X, pd.Series):
            raise ValueError(
                f"{estimator_name} expects a 2-D X; got a pandas Series. "
                "Use series.to_frame() for a single feature.")
        try:
            X = np.asarray(X)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"X could not be read as a 2-D array: {exc}") from None
        if X.ndim != 2:
            raise ValueError(
                f"{estimator_name} expects a 2-D X of shape (n_samples, n_features); "
                f"got an array with {X.ndim} dimension(s), shape {X.shape}. Reshape your data"
                + (", e.g. X.reshape(-1, 1) for a single feature." if X.ndim == 1 else "."))
        if X.dtype.kind == "c":
            raise ValueError(f"Complex data not supported: X has dtype {X.dtype}.")
        if X.dtype.kind not in "biufOUS":
            raise TypeError(f"X has unsupported dtype {X.dtype}.")
    n_samples, n_features = X.shape
    # Worded as scikit-learn's own checks word them.
    if n_samples == 0:
        raise ValueError(f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of 1 "
                         f"is required by {estimator_name}.")
    if n_features == 0:
        raise ValueError(f"Found array with 0 feature(s) (shape={X.shape}) while a minimum of "
                         f"1 is required by {estimator_name}.")
    return X


class TabularEncoder:
    """Encode a DataFrame or array into categorical codes and numeric floats.

    Categorical columns become integer codes: 0 for missing or unseen
    values, ``1..K`` for the ``K`` categories seen in :meth:`fit`. Numeric
    columns become float32, standardised with the mean and standard
    deviation seen in :meth:`fit` when ``standardize`` is true.

    Parameters
    ----------
    categorical_features : "from_dtype", array-like of str, int or bool, or None
        Which columns are categorical. ``"from_dtype"``: pandas ``category``,
        ``object`` and string columns (all columns of an object or string
        array). Names need a DataFrame; a boolean mask has one entry per column.
    standardize : bool
        Whether to standardise the numeric columns.
    estimator_name : str
        Used in error messages.
    """

    def __init__(self, categorical_features="from_dtype", standardize=True,
                 estimator_name="estimator"):
        self.categorical_features = categorical_features
        self.standardize = standardize
        self.estimator_name = estimator_name

    # -- fit -----------------------------------------------------------------

    def fit(self, X, sample_weight=None):
        """Learn the columns, the categories and the numeric scaling of ``X``.

        ``sample_weight`` weights the rows in the numeric means and standard
        deviations, so that a weight of 2 acts as a repeated row.
        """
        X = check_features(X, self.estimator_name)
        self.n_features_in_ = X.shape[1]
        self.feature_names_in_ = _feature_names(X)
        self.is_categorical_ = self._categorical_mask(X)
        self.categorical_indices_ = np.flatnonzero(self.is_categorical_)
        self.numeric_indices_ = np.flatnonzero(~self.is_categorical_)
        self.categories_ = [self._fit_column(_column(X, j), j)
                            for j in self.categorical_indices_]
        self._indexes = None
        self.mean_ = np.zeros(len(self.numeric_indices_))
        self.scale_ = np.ones(len(self.numeric_indices_))
        reader = _RowReader(self, X)
        mean, scale = reader.numeric_moments(sample_weight)
        if self.standardize:
            scale[scale == 0.0] = 1.0
            self.mean_, self.scale_ = mean, scale
        return self

    def fit_transform(self, X, sample_weight=None):
        """Fit to ``X`` and return its encoding, as :meth:`transform` does."""
        return self.fit(X, sample_weight).transform(X)

    def category_indexes(self):
        """One ``pd.Index`` of the categories per categorical column, built once and kept.

        Its hash table maps values to codes; rebuilt on every call, it made
        ``predict_proba`` on 100 rows of 30 categorical columns twice as slow.
        """
        if getattr(self, "_indexes", None) is None:
            self._indexes = [pd.Index(categories) for categories in self.categories_]
        return self._indexes

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_indexes", None)  # a cache, rebuilt on first use
        return state

    def to_dict(self):
        """The fitted state as plain JSON-compatible values (see :func:`array_to_json`)."""
        categorical_features = self.categorical_features
        if categorical_features is not None and not isinstance(categorical_features, str):
            categorical_features = np.asarray(categorical_features).tolist()
        names = self.feature_names_in_
        return {
            "categorical_features": categorical_features,
            "standardize": bool(self.standardize),
            "estimator_name": self.estimator_name,
            "n_features_in": int(self.n_features_in_),
            "feature_names_in": None if names is None else [str(n) for n in names],
            "is_categorical": self.is_categorical_.tolist(),
            "categories": [array_to_json(c) for c in self.categories_],
            "mean": self.mean_.tolist(),
            "scale": self.scale_.tolist(),
        }

    @classmethod
    def from_dict(cls, state):
        """Rebuild a fitted encoder from :meth:`to_dict`'s output."""
        encoder = cls(state["categorical_features"], state["standardize"],
                      state["estimator_name"])
        encoder.n_features_in_ = int(state["n_features_in"])
        names = state["feature_names_in"]
        encoder.feature_names_in_ = None if names is None else np.asarray(names, dtype=object)
        encoder.is_categorical_ = np.asarray(state["is_categorical"], dtype=bool)
        encoder.categorical_indices_ = np.flatnonzero(encoder.is_categorical_)
        encoder.numeric_indices_ = np.flatnonzero(~encoder.is_categorical_)
        encoder.categories_ = [array_from_json(c) for c in state["categories"]]
        encoder.mean_ = np.asarray(state["mean"], dtype=np.float64)
        encoder.scale_ = np.asarray(state["scale"], dtype=np.float64)
        shapes = (len(encoder.is_categorical_), len(encoder.categories_), len(encoder.mean_),
                  len(encoder.scale_))
        if shapes != (encoder.n_features_in_, len(encoder.categorical_indices_),
                      len(encoder.numeric_indices_), len(encoder.numeric_indices_)):
            raise ValueError("inconsistent encoder state: the column counts do not agree.")
        return encoder

    @property
    def cardinalities(self):
        """Number of codes per categorical column, the reserved code included."""
        return [len(categories) + 1 for categories in self.categories_]

    def _categorical_mask(self, X):
        spec = self.categorical_features
        n_features = X.shape[1]
        if spec is None:
            return np.zeros(n_features, dtype=bool)
        if isinstance(spec, str):
            if spec != "from_dtype":
                raise ValueError(
                    f"categorical_features must be 'from_dtype', None or an array-like of "
                    f"names, indices or booleans; got {spec!r}.")
            if isinstance(X, pd.DataFrame):
                return np.array([_is_categorical_dtype(d) for d in X.dtypes], dtype=bool)
            return np.full(n_features, X.dtype.kind in "OUS", dtype=bool)
        spec = np.asarray(spec)
        mask = np.zeros(n_features, dtype=bool)
        if spec.size == 0:
            return mask
        if spec.ndim != 1:
            raise ValueError("categorical_features must be one-dimensional.")
        if spec.dtype.kind == "b":
            if spec.shape[0] != n_features:
                raise ValueError(
                    f"categorical_features is a boolean mask of length {spec.shape[0]}, "
                    f"but X has {n_features} features.")
            return spec.copy()
        if spec.dtype.kind in "iu":
            bad = [int(i) for i in spec if not 0 <= i < n_features]
            if bad:
                raise ValueError(
                    f"categorical_features indices {bad} are out of range for X with "
                    f"{n_features} features.")
            mask[spec] = True
            return mask
        if spec.dtype.kind in "OU":
            names = self.feature_names_in_
            if names is None:
                raise ValueError(
                    "categorical_features is given as column names, but X has no column "
                    "names; pass a pandas DataFrame or give column indices.")
            position = {name: i for i, name in enumerate(names)}
            missing = [str(name) for name in spec if name not in position]
            if missing:
                raise ValueError(
                    f"categorical_features names {missing} are not columns of X.")
            mask[[position[name] for name in spec]] = True
            return mask
        raise ValueError(
            f"categorical_features must hold names, indices or booleans; got dtype "
            f"{spec.dtype}.")

    def _fit_column(self, values, j):
        """The categories of one column: its distinct non-missing values, sorted if possible."""
        if isinstance(values.dtype, pd.CategoricalDtype):
            codes = values.cat.codes.to_numpy()
            seen = np.bincount(codes + 1, minlength=len(values.cat.categories) + 1)[1:] > 0
            return np.asarray(values.cat.categories)[seen]
        try:
            uniques = pd.unique(values if isinstance(values, pd.Series) else pd.Series(values))
        except TypeError as exc:
            raise TypeError(f"Categorical column {_column_label(self.feature_names_in_, j)!r} "
                            f"holds values that cannot be categories ({exc}).") from None
        uniques = np.asarray(uniques, dtype=None if uniques.dtype.kind in "biuf" else object)
        uniques = uniques[~pd.isna(uniques)]
        kinds = {_value_kind(v) for v in uniques}
        if len(kinds) > 1:
            raise TypeError(
                f"Categorical column {_column_label(self.feature_names_in_, j)!r} mixes value "
                f"types ({', '.join(sorted(kinds))}); convert it to one type, e.g. "
                "X[col].astype(str).")
        try:
            return np.sort(uniques, kind="stable")
        except TypeError:  # unorderable values of one kind: keep first-seen order
            return uniques

    # -- transform -----------------------------------------------------------

    def transform(self, X):
        """Return ``(codes, numeric)``: int32 ``(n, n_categorical)``, float32 ``(n, n_numeric)``."""
        reader = self.reader(X)
        codes = np.empty((reader.n_samples, len(self.categorical_indices_)), dtype=np.int32)
        numeric = np.empty((reader.n_samples, len(self.numeric_indices_)), dtype=np.float32)
        for start, stop in reader.blocks():
            reader.read(start, stop, out=(codes[start:stop], numeric[start:stop]))
        return codes, numeric

    def reader(self, X):
        """Validate ``X`` against the fit and return a :class:`_RowReader` over its rows.

        Reading a block of rows at a time keeps the memory of encoding
        proportional to the block, not to ``X``.
        """
        X = check_features(X, self.estimator_name)
        self._check_columns(X)
        return _RowReader(self, X)

    def _check_columns(self, X):
        names = _feature_names(X)
        fitted = self.feature_names_in_
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {self.estimator_name} is expecting "
                f"{self.n_features_in_} features as input.")
        if fitted is None and names is not None:
            warnings.warn(
                f"X has feature names, but {self.estimator_name} was fitted without "
                "feature names; columns are matched by position.", UserWarning)
        elif fitted is not None and names is None:
            warnings.warn(
                f"X does not have valid feature names, but {self.estimator_name} was fitted "
                "with feature names; columns are matched by position.", UserWarning)
        elif fitted is not None and not np.array_equal(names, fitted):
            unseen = [n for n in names if n not in set(fitted)]
            missing = [n for n in fitted if n not in set(names)]
            message = "The columns of X differ from those seen in fit."
            if unseen:
                message += f" Not seen in fit: {unseen}."
            if missing:
                message += f" Missing: {missing}."
            if not unseen and not missing:
                message += " They must be in the same order as in fit."
            raise ValueError(message)

def _feature_names(X):
    if isinstance(X, pd.DataFrame):
        columns = list(X.columns)
        if columns and all(isinstance(c, str) for c in columns):
            return np.asarray(columns, dtype=object)
    return None


def _column(X, j):
    return X.iloc[:, j] if isinstance(X, pd.DataFrame) else X[:, j]


_JSON_KINDS = {"b": bool, "i": int, "u": int, "f": float, "U": str}


def array_to_json(values):
    """A 1-D array of labels or categories as ``{"dtype": ..., "values": [...]}``.

    Only booleans, integers, floats and strings are supported, so that the
    result is plain JSON and reading it back runs no code.
    """
    values = np.asarray(values)
    if values.dtype.kind == "O":
        kinds = {type(v) for v in values.tolist()}
        if not kinds <= {str, int, float, bool}:
            raise TypeError(
                f"cannot store values of type {sorted(k.__name__ for k in kinds)} as JSON; "
                "use strings, numbers or booleans (or persist with joblib instead).")
        return {"dtype": "object", "values": values.tolist()}
    if values.dtype.kind not in _JSON_KINDS:
        raise TypeError(f"cannot store values of dtype {values.dtype} as JSON.")
    return {"dtype": values.dtype.str, "values": values.tolist()}


def array_from_json(state):
    """Inverse of :func:`array_to_json`."""
    dtype = np.dtype(object if state["dtype"] == "object" else state["dtype"])
    if dtype.kind not in _JSON_KINDS and dtype.kind != "O":
        raise ValueError(f"unsupported dtype {state['dtype']!r}.")
    values = state["values"]
    if not isinstance(values, list) or not all(
            isinstance(v, (str, int, float, bool)) for v in values):
        raise ValueError("values must be a list of strings, numbers or booleans.")
    array = np.empty(len(values), dtype=dtype)
    array[:] = values
    return array


class _RowReader:
    """Encodes blocks of rows of a validated ``X`` with a fitted :class:`TabularEncoder`.

    Categorical columns are mapped to codes one column at a time into a
    ``(n_categorical, block)`` buffer that is transposed once per block: far
    faster than writing the strided columns of a row-major array, and the
    result is row-major, as the batches of training gather rows.
    """

    block_size = 65536

    def __init__(self, encoder, X):
        self.encoder = encoder
        self.n_samples = X.shape[0]
        self._categorical = [_code_reader(_column(X, j), index)
                             for j, index in zip(encoder.categorical_indices_,
                                                 encoder.category_indexes())]
        self._numeric = [_numeric_values(_column(X, j)) for j in encoder.numeric_indices_]
        self._mean = encoder.mean_.astype(np.float32)
        self._scale = encoder.scale_.astype(np.float32)
        # scratch space for read, grown to the largest block and then reused
        self._by_column = np.empty((len(self._categorical), 0), dtype=np.int32)
        self._positions = np.empty(0, dtype=np.intp)

    def blocks(self, block_size=None):
        """``(start, stop)`` of consecutive blocks of rows."""
        size = block_size or self.block_size
        return [(start, min(start + size, self.n_samples))
                for start in range(0, self.n_samples, size)]

    def read(self, start, stop, out=None):
        """Codes (int32) and standardised numeric values (float32) of rows ``start:stop``.

        ``out``, a pair of arrays of ``stop - start`` rows, receives the
        result; reusing it from block to block spares an allocation per block.
        """
        n_rows = stop - start
        if out is None:
            out = (np.empty((n_rows, len(self._categorical)), dtype=np.int32),
                   np.empty((n_rows, len(self._numeric)), dtype=np.float32))
        codes, numeric = out
        if self._by_column.shape[1] < n_rows:
            self._by_column = np.empty((len(self._categorical), n_rows), dtype=np.int32)
            self._positions = np.empty(n_rows, dtype=np.intp)
        by_column = self._by_column[:, :n_rows]
        for k, codes_of in enumerate(self._categorical):
            codes_of(start, stop, by_column[k], self._positions[:n_rows])
        np.copyto(codes, by_column.T)
        self._numeric_rows(start, stop, numeric)
        if not np.isfinite(numeric).all():  # one check of the block: far faster than per column
            self.check_numeric_finite()  # raises, naming every such column of X
        numeric -= self._mean
        numeric /= self._scale
        return codes, numeric

    def check_numeric_finite(self):
        """Raise, naming every numeric column that holds NaN or infinity."""
        finite = np.ones(len(self._numeric), dtype=bool)
        for start, stop in self.blocks():
            finite &= np.isfinite(self._numeric_rows(start, stop)).all(axis=0)
        self._raise_if_not_finite(finite)

    def numeric_moments(self, sample_weight=None):
        """Weighted mean and standard deviation (float64) of each numeric column."""
        self.check_numeric_finite()
        weight_total = 0.0
        total = np.zeros(len(self._numeric))
        for values, weight in self._weighted_blocks(sample_weight):
            total += weight @ values
            weight_total += weight.sum()
        mean = total / weight_total
        squares = np.zeros(len(self._numeric))
        for values, weight in self._weighted_blocks(sample_weight):
            squares += weight @ (values - mean) ** 2
        return mean, np.sqrt(squares / weight_total)

    def _weighted_blocks(self, sample_weight):
        for start, stop in self.blocks():
            values = self._numeric_rows(start, stop).astype(np.float64)
            weight = (np.ones(stop - start) if sample_weight is None
                      else np.asarray(sample_weight[start:stop], dtype=np.float64))
            yield values, weight

    def _numeric_rows(self, start, stop, out=None):
        if out is None:
            out = np.empty((stop - start, len(self._numeric)), dtype=np.float32)
        for i, column in enumerate(self._numeric):
            try:
                out[:, i] = _as_float(column[start:stop])
            except (TypeError, ValueError):
                name = _column_label(self.encoder.feature_names_in_,
                                     self.encoder.numeric_indices_[i])
                raise ValueError(
                    f"Numeric columns [{name!r}] hold values that are not numbers. Declare "
                    "them in categorical_features or convert them.") from None
        return out

    def _raise_if_not_finite(self, finite):
        if not finite.all():
            names = self.encoder.feature_names_in_
            bad = [_column_label(names, j) for j in self.encoder.numeric_indices_[~finite]]
            raise ValueError(
                f"Numeric columns {bad} contain NaN or infinite values; impute them first "
                "(e.g. sklearn.impute.SimpleImputer) or declare them categorical.")


def _numeric_values(column):
    """The column's NumPy array when it has one (no copy), else the column itself."""
    if isinstance(column, pd.Series) and isinstance(column.dtype, np.dtype) \
            and column.dtype.kind in "biuf":
        return column.to_numpy()
    return column


def _as_float(values):
    if isinstance(values, pd.Series):
        return values.to_numpy(dtype=np.float32, na_value=np.nan)
    if values.dtype.kind in "biuf":
        return values  # the assignment casts it, with no temporary copy
    return np.asarray(values, dtype=np.float32)


def _code_reader(values, index):
    """A function ``(start, stop, out, scratch)`` writing those rows' codes into ``out``.

    Known values get their position in the categories ``index`` plus one;
    missing and unknown values get ``UNKNOWN_CODE``. ``scratch`` is an intp
    array of ``stop - start`` elements the function may overwrite.
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        positions = index.get_indexer(values.cat.categories)
        dtype_codes = values.cat.codes.to_numpy()
        if np.array_equal(positions, np.arange(len(positions))):
            # The dtype's categories are the fitted ones, in order (the usual
            # case): the code is the dtype's code + 1, and missing (-1) becomes
            # UNKNOWN_CODE (0). Twice as fast as the lookup below.
            def codes_of_same_categories(start, stop, out, scratch):
                np.add(dtype_codes[start:stop], 1, out=out, dtype=np.int32)
            return codes_of_same_categories

        # Map the (few) categories of the dtype once, then index by the codes;
        # the dtype's code -1 (missing) wraps round to the last entry.
        lookup = np.append(positions + 1, UNKNOWN_CODE).astype(np.int32)

        def codes_of_categorical(start, stop, out, scratch):
            # np.take wants intp indices: widened in scratch, not a new array
            np.copyto(scratch, dtype_codes[start:stop])
            np.take(lookup, scratch, out=out, mode="wrap")
        return codes_of_categorical

    array = values.array if isinstance(values, pd.Series) else values

    def codes_of_values(start, stop, out, scratch):
        # get_indexer gives -1 for missing and unknown values, hence the + 1.
        np.add(index.get_indexer(array[start:stop]), 1, out=out)
    return codes_of_values


def _value_kind(value):
    if isinstance(value, (str, bytes)):
        return "string"
    if isinstance(value, (bool, np.bool_)):
        return "boolean"
    if isinstance(value, (Integral, float, np.number)):
        return "number"
    return type(value).__name__


# -- labels --------------------------------------------------------------------


def check_targets(Y, n_samples, estimator_name):
    """Split ``Y`` into per-task label columns.

    Returns
    -------
    columns : list of 1-D ndarrays
    task_names : list of str
    single_output : bool
        True when ``Y`` was one-dimensional.
    """
    if Y is None:
        raise ValueError(
            f"{estimator_name} requires y to be passed, but the target y is None.")
    if sparse.issparse(Y):
        raise TypeError(f"{estimator_name} does not accept sparse targets; pass a dense array.")
    if isinstance(Y, pd.DataFrame):
        columns = [Y.iloc[:, t].to_numpy() for t in range(Y.shape[1])]
        task_names = [str(c) for c in Y.columns]
        single_output = False
    elif isinstance(Y, pd.Series):
        columns = [Y.to_numpy()]
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
    for name, column in zip(task_names, columns):
        n_missing = int(pd.isna(column).sum())
        if n_missing:
            raise ValueError(
                f"Labels of task {name!r} contain {n_missing} missing value(s) (NaN/None).")
        if type_of_target(column) == "continuous":
            raise ValueError(
                f"Unknown label type: continuous. Labels of task {name!r} are continuous "
                "values; a classifier needs discrete classes.")
    return columns, task_names, single_output


def encode_labels(columns, task_names, classes=None):
    """Return ``(codes, classes)``: float32 ``(n, n_tasks)`` class indices per task.

    With ``classes`` given (a refit with ``warm_start``), labels outside them
    raise; otherwise each task's classes are its sorted distinct labels and a
    task needs at least two.
    """
    if classes is None:
        classes = []
        for name, column in zip(task_names, columns):
            try:
                task_classes = np.unique(column)
            except TypeError:
                raise TypeError(
                    f"Labels of task {name!r} mix types that cannot be compared; convert "
                    "them to one type.") from None
            if len(task_classes) < 2:
                raise ValueError(
                    f"Task {name!r} has only one class ({task_classes[0]!r}) in the "
                    "training labels; every task needs at least two classes.")
            classes.append(task_classes)
    elif len(classes) != len(columns):
        raise ValueError(
            f"Y has {len(columns)} task(s), but the model was fitted with {len(classes)}.")
    codes = np.empty((len(columns[0]), len(columns)), dtype=np.float32)
    for t, (name, column, task_classes) in enumerate(zip(task_names, columns, classes)):
        index = np.searchsorted(task_classes, column)
        index = np.clip(index, 0, len(task_classes) - 1)
        unknown = task_classes[index] != column
        if np.any(unknown):
            raise ValueError(
                f"Task {name!r} has labels not seen in the first fit: "
                f"{np.unique(column[unknown]).tolist()}.")
        codes[:, t] = index
    return codes, classes
