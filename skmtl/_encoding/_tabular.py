"""A whole table: the container of ``X``, which columns are which, blocks of encoded rows."""

import copy
import datetime
import decimal
import math
import warnings

import numpy as np
import pandas as pd
from scipy import sparse

from ._categorical import (MAX_HASH_BUCKETS, ColumnLookups, code_reader, fit_categories,
                           hashed_code_reader, is_categorical_dtype)
from ._common import (array_from_json, array_to_json, as_pandas, column, column_arrays,
                      column_label, deviation_unit, feature_names)
from ._leaves import MAX_LEAF_TREES, LeafTrees
from ._numeric import TREE_SUBSAMPLE_SIZE, NumericEncoding, _subsample, float_precision

_FLOAT32_MAX = float(np.finfo(np.float32).max)
# what pandas' infer_dtype calls a column of numbers or booleans (missing values aside)
_NUMBER_KINDS = ("floating", "integer", "mixed-integer-float", "boolean")
# ... and values that numpy would cast to numbers though they are none
_NOT_NUMBER_KINDS = ("datetime64", "datetime", "date", "timedelta64", "timedelta", "time",
                     "period", "bytes")
_DATE_OR_BYTES = (np.datetime64, np.timedelta64, bytes, datetime.date, datetime.time,
                  datetime.timedelta, pd.Period)


def check_features(X, estimator_name):
    """Validate the container of ``X``; return it as a DataFrame or a 2-D ndarray."""
    X = as_pandas(X)
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
            array = np.asarray(X)
            if array.dtype.kind in "US" and not isinstance(X, np.ndarray):
                # numpy prints every value of rows mixing numbers and strings as a
                # string; as objects, each column keeps its own kind
                array = np.asarray(X, dtype=object)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"X could not be read as a 2-D array: {exc}") from None
        X = array
        if X.ndim != 2:
            raise ValueError(
                f"{estimator_name} expects a 2-D X of shape (n_samples, n_features); "
                f"got an array with {X.ndim} dimension(s), shape {X.shape}. Reshape your data"
                + (", e.g. X.reshape(-1, 1) for a single feature." if X.ndim == 1 else "."))
        if X.dtype.kind == "c":
            raise ValueError(f"Complex data not supported: X has dtype {X.dtype}.")
        if X.dtype.kind in "mM":
            raise TypeError(
                f"X has dtype {X.dtype}; dates and durations are not converted implicitly. "
                "Turn them into numbers first (e.g. days since a reference date).")
        if X.dtype.kind not in "biufOUS":
            raise TypeError(f"X has unsupported dtype {X.dtype}.")
    elif len({isinstance(c, str) for c in X.columns.tolist()}) > 1:  # (tolist: 4x faster)
        kinds = sorted({type(c).__name__ for c in X.columns})
        raise TypeError(f"X's column names mix strings with other types ({', '.join(kinds)}); "
                        "make them all strings, e.g. X.columns = X.columns.astype(str).")
    elif X.columns.duplicated().any():
        duplicated = sorted({str(c) for c in X.columns[X.columns.duplicated()]})
        raise ValueError(
            f"X has duplicate column names {duplicated}; every column needs its own name.")
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
    values, ``1..K`` for the ``K`` categories seen in :meth:`fit` (or given
    in ``categories``), or ``1..n`` for a column hashed into ``n`` buckets.
    Numeric columns become float32 through the fitted :class:`NumericEncoding`;
    those whose frequent values it keeps also become codes, one more column
    each after the categorical ones (see ``frequent_values``).

    Parameters
    ----------
    categorical_features : "from_dtype", array-like of str, int or bool, or None
        Which columns are categorical. ``"from_dtype"``: pandas ``category``,
        ``object`` and string columns (all columns of a string array; those of
        an object array that hold anything but numbers and booleans). Names
        need a DataFrame; a boolean mask has one entry per column.
    numeric_encoding : str, default="standard"
        How numeric columns are encoded, see :class:`NumericEncoding`.
    n_bins : int, default=32
        Largest number of bins per numeric column for ``"piecewise_linear"``.
    bin_strategy : {"quantile", "target"}, default="quantile"
    random_state : int or None, default=None
        Seeds the rows sampled to learn quantiles and bins.
    estimator_name : str
        Used in error messages.
    categories : dict or None, default=None
        ``{column: values}``: a categorical column's vocabulary, fixed up
        front instead of learned from ``X`` (column names, or positions for
        an array).
    hash_buckets : int, dict or None, default=None
        Hash every categorical column without a vocabulary in ``categories``
        (an int), or the named ones (``{column: n}``), into that many buckets
        instead of learning a vocabulary (see :func:`hashed_code_reader`).
    leaf_trees : int, default=0
        Trees per task boosted on the encoded inputs in :meth:`fit` (see
        :class:`LeafTrees`); they need the targets. The network applies them.
    frequent_values : {"auto", "all"} or None, default=None
        Which numeric columns also code their frequent values as categories
        (see :class:`NumericEncoding`).
    """

    def __init__(self, categorical_features="from_dtype", numeric_encoding="standard",
                 n_bins=32, bin_strategy="quantile", random_state=None,
                 estimator_name="estimator", categories=None, hash_buckets=None, leaf_trees=0,
                 frequent_values=None):
        self.categorical_features = categorical_features
        self.numeric_encoding = numeric_encoding
        self.n_bins = n_bins
        self.bin_strategy = bin_strategy
        self.random_state = random_state
        self.estimator_name = estimator_name
        self.categories = categories
        self.hash_buckets = hash_buckets
        self.leaf_trees = leaf_trees
        self.frequent_values = frequent_values

    # -- fit -----------------------------------------------------------------

    def fit(self, X, sample_weight=None, targets=None, regression=False, first_chunk=False,
            n_threads=1):
        """Learn the columns, the categories and the numeric encoding of ``X``.

        ``sample_weight`` weights the rows in the numeric statistics, so that
        a weight of 2 acts as a repeated row; the categories are learned from
        the rows of positive weight only. ``targets`` of shape
        ``(n_samples, n_tasks)``, class indices (or, with ``regression``,
        real values), are needed by ``bin_strategy="target"``. With
        ``first_chunk``, ``X`` is the first of several chunks: a vocabulary
        may not come from its values, only from ``categories``, hashing or a
        ``category`` dtype (whose whole category list is taken). ``n_threads``
        grow the target bins' trees (:meth:`NumericEncoding.fit`).
        """
        self._fit(X, sample_weight, targets, regression, first_chunk, n_threads)
        return self

    def fit_transform(self, X, sample_weight=None, targets=None, regression=False,
                      first_chunk=False, n_threads=1):
        """Fit to ``X`` and return its encoding, as :meth:`transform` does."""
        reader = self._fit(X, sample_weight, targets, regression, first_chunk, n_threads)
        codes, numeric = self._encode(reader)
        self._warn_unmatched_categories(reader.X, codes)
        return codes, numeric

    def _warn_unmatched_categories(self, X, codes):
        """Warn about given vocabularies (``categories``) that match none of ``X``'s values.

        Every row then gets the unknown code: the column teaches nothing,
        most often because the vocabulary's type differs (``"0"`` against 0).
        """
        given = self._per_column("categories", self.categories)
        for k, j in enumerate(self.categorical_indices_):
            if j in given and not len(self.categories_[k]):
                warnings.warn(
                    f"categories[{self._label(j)!r}] is empty: every row gets the unknown "
                    "category, and the column teaches nothing.", UserWarning, stacklevel=5)
            elif j in given and not codes[:, k].any() \
                    and not pd.isna(np.asarray(column(X, j), dtype=object)).all():
                warnings.warn(
                    f"categories[{self._label(j)!r}] matches none of the column's values in "
                    f"fit (e.g. {column(X, j)[:1].tolist()} against "
                    f"{self.categories_[k][:3].tolist()}): every row gets the unknown "
                    "category. Check the vocabulary's type.", UserWarning, stacklevel=5)

    def warn_categories_outside_vocabulary(self, X, codes, fixed_by="the first chunk"):
        """Warn about ``category`` columns of a later chunk whose categories the vocabulary lacks.

        The vocabulary is fixed by the first chunk (``partial_fit``) or fit
        (``warm_start``, ``fixed_by="the first fit"``): rows of a category
        its dtype lists and the vocabulary does not get the unknown code.
        Dask partitions read with categories of their own do that. Once per
        column and model (not per partition); vocabularies given in
        ``categories`` are left alone.
        """
        if not isinstance(X, pd.DataFrame):
            return
        given = self._per_column("categories", self.categories)
        warned = self.__dict__.setdefault("_warned_outside_vocabulary", set())
        for k, j in enumerate(self.categorical_indices_):
            values = X.iloc[:, j]
            if self.hash_buckets_[k] or j in given or j in warned \
                    or not isinstance(values.dtype, pd.CategoricalDtype):
                continue
            outside = (codes[:, k] == 0) & values.notna().to_numpy()
            if outside.any():
                warned.add(j)
                examples = pd.unique(values[outside])[:3].tolist()
                warnings.warn(
                    f"Categorical column {self._label(j)!r} has categories outside the "
                    f"vocabulary {fixed_by} fixed (e.g. {examples}): {outside.sum()} of "
                    f"{len(values)} rows get the unknown category. Give every chunk a category "
                    "dtype listing every value (with Dask: known categories, e.g. "
                    "ddf.categorize()), categories=..., or hash_buckets.",
                    UserWarning, stacklevel=4)

    def _fit(self, X, sample_weight, targets, regression, first_chunk=False, n_threads=1):
        """Fit, and return the row reader of ``X`` used for it."""
        X = check_features(X, self.estimator_name)
        self.n_features_in_ = X.shape[1]
        self.feature_names_in_ = feature_names(X)
        self.is_categorical_ = self._categorical_mask(X)
        self.categorical_indices_ = np.flatnonzero(self.is_categorical_)
        self.numeric_indices_ = np.flatnonzero(~self.is_categorical_)
        given = self._per_column("categories", self.categories)
        buckets = self._per_column("hash_buckets", self.hash_buckets)
        if not isinstance(self.hash_buckets, dict):  # an int: the columns without a vocabulary
            buckets = {j: n for j, n in buckets.items() if j not in given}
        both = sorted(str(self._label(j)) for j in set(given) & set(buckets))
        if both:
            raise ValueError(f"Columns {both} are named in both categories and hash_buckets; "
                             "a column either has a vocabulary or is hashed.")
        self.hash_buckets_ = [_bucket_count(buckets[j], self._label(j)) if j in buckets else 0
                              for j in self.categorical_indices_]
        self.hash_whole_floats_as_integers_ = True
        # Rows of weight 0 (the early-stopping validation rows) teach nothing, the
        # vocabulary included: their unseen values get the unknown code, as at predict.
        learned_rows = (None if sample_weight is None or np.all(sample_weight > 0)
                        else np.flatnonzero(sample_weight > 0))
        self.categories_ = [self._vocabulary(X, j, given, first_chunk, learned_rows)
                            if j not in buckets else np.empty(0, dtype=object)
                            for j in self.categorical_indices_]
        self._lookups = None
        numeric = NumericEncoding(self.numeric_encoding, self.n_bins, self.bin_strategy,
                                  self.random_state, self.frequent_values)
        self.numeric_ = numeric.fit(_RowReader(self, X, numeric), sample_weight, targets,
                                    regression, n_threads=n_threads)
        reader = _RowReader(self, X)  # (with the frequent values' codes)
        self.leaf_trees_ = None
        if self.leaf_trees:
            self.leaf_trees_ = self._fit_leaf_trees(X, sample_weight, targets, regression)
        return reader

    def _fit_leaf_trees(self, X, sample_weight, targets, regression):
        """:class:`LeafTrees` boosted on the encoding of at most ``TREE_SUBSAMPLE_SIZE``
        rows of positive weight and a known label (None where no task has two)."""
        if targets is None:
            raise ValueError("leaf_trees needs the targets in fit.")
        rng = np.random.RandomState(self.random_state)
        usable = ~np.isnan(targets).all(axis=1)
        if sample_weight is not None:
            usable &= sample_weight > 0
        rows = np.flatnonzero(usable)
        rows = rows[_subsample(len(rows), TREE_SUBSAMPLE_SIZE, rng)]
        codes, numeric = self._encode(_RowReader(self, X.iloc[rows] if isinstance(
            X, pd.DataFrame) else X[rows]))
        features = np.hstack([codes.astype(np.float32), numeric])
        trees = LeafTrees.fit(features, targets[rows], None if sample_weight is None
                              else sample_weight[rows], regression, self.leaf_trees, rng)
        if trees is None:
            warnings.warn(
                f"leaf_trees={self.leaf_trees} grew no tree: no task has labels of two "
                "values among the rows of positive weight (with partial_fit, in the first "
                "chunk), so the network has no leaves to embed.", UserWarning, stacklevel=6)
        return trees

    def category_lookups(self):
        """One :class:`ColumnLookups` per categorical column, built once and kept.

        Its tables map values to codes. Rebuilt on every call, the index's
        hash table made ``predict_proba`` on 100 rows of 30 categorical
        columns twice as slow; on one row, looking a dtype's categories up
        again cost about 0.1 ms a column, most of the call.
        """
        if getattr(self, "_lookups", None) is None:
            self._lookups = [ColumnLookups(categories) for categories in self.categories_]
        return self._lookups

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_lookups", None)  # rebuilt on first use
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        # pickled before leaf_trees (and frequent_values): none
        self.__dict__.setdefault("leaf_trees", 0)
        self.__dict__.setdefault("frequent_values", None)
        if "numeric_" in state:
            self.__dict__.setdefault("leaf_trees_", None)

    def _per_column(self, name, spec):
        """``spec`` (None, a dict by column, or for hash_buckets an int) by column position."""
        if spec is None:
            return {}
        if not isinstance(spec, dict):
            return dict.fromkeys(self.categorical_indices_, spec)
        names = self.feature_names_in_
        positions = {}
        for key, value in spec.items():
            if names is not None and key in set(names):
                j = int(np.flatnonzero(names == key)[0])
            elif names is None and isinstance(key, (int, np.integer)) and \
                    0 <= key < self.n_features_in_:
                j = int(key)
            elif names is None:
                raise ValueError(
                    f"{name} names {key!r}, which is not a column of X: without string column "
                    f"names, X's columns are named by position, 0 to {self.n_features_in_ - 1}.")
            else:
                raise ValueError(f"{name} names {key!r}, which is not a column of X.")
            if not self.is_categorical_[j]:
                raise ValueError(f"{name} names column {key!r}, which is not categorical; add "
                                 "it to categorical_features (or give it a category or string "
                                 "dtype).")
            positions[j] = value
        return positions

    def _vocabulary(self, X, j, given, first_chunk, learned_rows=None):
        """The categories of categorical column ``j``: given, learned (from the rows
        ``learned_rows``, all when None), or from its dtype."""
        label = self._label(j)
        if j in given:
            values = given[j]
            if isinstance(values, (str, bytes)) or not np.iterable(values):
                raise ValueError(f"categories[{label!r}] must be a list of values; got "
                                 f"{values!r}.")
            return fit_categories(pd.Series(list(values), dtype=object), label)
        values = column(X, j)
        if not first_chunk:
            if learned_rows is not None:
                values = (values.iloc[learned_rows] if isinstance(values, pd.Series)
                          else values[learned_rows])
            return fit_categories(values, label)
        if isinstance(values.dtype, pd.CategoricalDtype):
            return np.asarray(values.cat.categories)
        raise ValueError(
            f"Categorical column {label!r} has no vocabulary known before the first chunk: "
            "partial_fit cannot learn one from a chunk of rows. Give it a pandas 'category' "
            f"dtype listing every value, a fixed vocabulary with categories={{{label!r}: "
            f"[...]}}, or hash it with hash_buckets={{{label!r}: n}}.")

    def to_dict(self):
        """The fitted state as plain JSON-compatible values (see :func:`array_to_json`)."""
        categorical_features = self.categorical_features
        if categorical_features is not None and not isinstance(categorical_features, str):
            categorical_features = np.asarray(categorical_features).tolist()
        names = self.feature_names_in_
        return {
            "categorical_features": categorical_features,
            "estimator_name": self.estimator_name,
            "n_features_in": int(self.n_features_in_),
            "feature_names_in": None if names is None else [str(n) for n in names],
            "is_categorical": self.is_categorical_.tolist(),
            "categories": [array_to_json(c, f"the categories of column {self._label(j)!r}")
                           for j, c in zip(self.categorical_indices_, self.categories_)],
            "hash_buckets": [int(n) for n in self.hash_buckets_],
            "hash_whole_floats_as_integers": self.hashes_whole_floats_as_integers,
            "numeric": self.numeric_.to_dict(),
            "leaf_trees_per_task": int(self.leaf_trees),
            "leaf_trees": None if self.leaf_trees_ is None else self.leaf_trees_.to_dict(),
        }

    @classmethod
    def from_dict(cls, state):
        """Rebuild a fitted encoder from :meth:`to_dict`'s output."""
        numeric_state = state["numeric"]
        encoder = cls(state["categorical_features"], numeric_state["encoding"],
                      numeric_state["n_bins"], numeric_state["bin_strategy"],
                      estimator_name=state["estimator_name"])
        encoder.n_features_in_ = int(state["n_features_in"])
        names = state["feature_names_in"]
        if names is not None and not (
                isinstance(names, list) and len(names) == encoder.n_features_in_
                and all(isinstance(n, str) for n in names) and len(set(names)) == len(names)):
            raise ValueError("inconsistent encoder state: feature_names_in is not one distinct "
                             "name per column.")
        encoder.feature_names_in_ = None if names is None else np.asarray(names, dtype=object)
        encoder.is_categorical_ = np.asarray(state["is_categorical"], dtype=bool)
        encoder.categorical_indices_ = np.flatnonzero(encoder.is_categorical_)
        encoder.numeric_indices_ = np.flatnonzero(~encoder.is_categorical_)
        encoder.categories_ = [array_from_json(c) for c in state["categories"]]
        encoder.hash_buckets_ = [int(n) for n in state.get("hash_buckets",
                                                           [0] * len(encoder.categories_))]
        # (files saved before whole floats hashed as integers have no such key)
        whole_floats = state.get("hash_whole_floats_as_integers", False)
        if not isinstance(whole_floats, bool):
            raise ValueError("inconsistent encoder state: hash_whole_floats_as_integers is not "
                             "a bool.")
        encoder.hash_whole_floats_as_integers_ = whole_floats
        if (len(encoder.is_categorical_), len(encoder.categories_), len(encoder.hash_buckets_)) \
                != (encoder.n_features_in_, len(encoder.categorical_indices_),
                    len(encoder.categorical_indices_)):
            raise ValueError("inconsistent encoder state: the column counts do not agree.")
        # (a set, as pandas indexes: True and 1 are one category)
        if not all(len(set(c.tolist())) == len(c) and n >= 0 and not (n and len(c))
                   for c, n in zip(encoder.categories_, encoder.hash_buckets_)):
            raise ValueError("inconsistent encoder state: a vocabulary repeats a category, or "
                             "a column has both a vocabulary and hash buckets.")
        encoder.numeric_ = NumericEncoding.from_dict(numeric_state, len(encoder.numeric_indices_))
        leaves = state.get("leaf_trees")  # (none in files saved before leaf_trees)
        encoder.leaf_trees_ = None if leaves is None else LeafTrees.from_dict(
            leaves, len(encoder.cardinalities) + len(encoder.numeric_indices_))
        encoder.leaf_trees = state.get("leaf_trees_per_task", 0)
        if type(encoder.leaf_trees) is not int or not 0 <= encoder.leaf_trees <= MAX_LEAF_TREES:
            raise ValueError("inconsistent encoder state: leaf_trees_per_task is not a count "
                             f"of at most {MAX_LEAF_TREES}.")
        return encoder

    def _label(self, j):
        return column_label(self.feature_names_in_, j)

    @property
    def hashes_whole_floats_as_integers(self):
        """Whether hashed columns hash ``3.0`` as ``3`` (models fitted before: as a float)."""
        return getattr(self, "hash_whole_floats_as_integers_", False)

    @property
    def cardinalities(self):
        """Number of codes per column of codes, the reserved code included: the
        categorical columns, then the numeric ones whose frequent values are coded."""
        numeric = self.numeric_
        return ([(n_buckets or len(categories)) + 1
                 for categories, n_buckets in zip(self.categories_, self.hash_buckets_)]
                + [len(numeric.frequent_values_[i]) + 1 for i in numeric.value_columns])

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
                return np.array([is_categorical_dtype(d) for d in X.dtypes], dtype=bool)
            if X.dtype.kind != "O":
                return np.full(n_features, X.dtype.kind in "US", dtype=bool)
            # An object array is often a table of numbers and categories that lost
            # its dtypes on the way (np.asarray(df), as Bagging and Stacking do): a
            # column of numbers or booleans is numeric (every float would be a category
            # of its own otherwise), and so is one of missing values only, as in a
            # DataFrame's float column.
            return np.array([pd.api.types.infer_dtype(X[:, j], skipna=True)
                             not in (*_NUMBER_KINDS, "empty") for j in range(n_features)],
                            dtype=bool)
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

    # -- transform -----------------------------------------------------------

    def transform(self, X):
        """Return ``(codes, numeric)``: int32 ``(n, n_codes)`` (the categorical columns,
        then the coded frequent values), float32 ``(n, n_numeric)``."""
        return self._encode(self.reader(X))

    def _encode(self, reader):
        codes = np.empty((reader.n_samples, reader.n_codes), dtype=np.int32)
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
        names = feature_names(X)
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


class _RowReader:
    """Encodes blocks of rows of a validated ``X`` with a fitted :class:`TabularEncoder`.

    Categorical columns are mapped to codes one column at a time into a
    ``(n_categorical, block)`` buffer that is transposed once per block: far
    faster than writing the strided columns of a row-major array, and the
    result is row-major, as the batches of training gather rows.
    """

    # rows of a block: at most max_block_size, and about block_values values
    # (a block of a wide table makes several float64 copies of itself), but at
    # least 1024 rows (more values than that past 4,096 columns)
    max_block_size = 65536
    block_values = 2 ** 22

    def __init__(self, encoder, X, numeric_encoding=None):
        """``numeric_encoding``: the one being fitted, if not yet the encoder's ``numeric_``."""
        self.encoder = encoder
        self.X = X
        self.n_samples = X.shape[0]
        columns = column_arrays(X)
        self._categorical = [
            hashed_code_reader(columns[j], n_buckets, encoder.hashes_whole_floats_as_integers)
            if n_buckets else
            code_reader(columns[j], lookups)
            for j, lookups, n_buckets in zip(
                encoder.categorical_indices_, encoder.category_lookups(), encoder.hash_buckets_)]
        self._numeric = [_numeric_values(columns[j], encoder._label(j))
                         for j in encoder.numeric_indices_]
        self._encoding = encoder.numeric_ if numeric_encoding is None else numeric_encoding
        self._value_columns = self._encoding.value_columns
        self._value_precisions = [self.float_precision(i) for i in self._value_columns]
        self._clear_scratch()

    def _clear_scratch(self):
        # scratch space for read, grown to the largest block and then reused
        self._by_column = np.empty((self.n_codes, 0), dtype=np.int32)
        self._positions = np.empty(0, dtype=np.intp)
        self._centred = np.empty(0, dtype=np.float64)

    def with_own_scratch(self):
        """A reader of the same rows with scratch space of its own: :meth:`read` may run in
        another thread beside this one's."""
        reader = copy.copy(self)
        reader._clear_scratch()
        return reader

    @property
    def n_numeric(self):
        return len(self._numeric)

    @property
    def n_codes(self):
        """Columns of codes: the categorical ones, then the coded frequent values."""
        return len(self._categorical) + len(self._value_columns)

    @property
    def block_size(self):
        n_columns = len(self._categorical) + len(self._numeric)
        return max(1024, min(self.max_block_size, self.block_values // max(n_columns, 1)))

    def blocks(self, block_size=None):
        """``(start, stop)`` of consecutive blocks of rows."""
        size = block_size or self.block_size
        return [(start, min(start + size, self.n_samples))
                for start in range(0, self.n_samples, size)]

    def read(self, start, stop, out=None):
        """Codes (int32) and encoded numeric values (float32) of rows ``start:stop``.

        ``out``, a pair of arrays of ``stop - start`` rows, receives the
        result; reusing it from block to block spares an allocation per block.
        """
        n_rows = stop - start
        if out is None:
            out = (np.empty((n_rows, self.n_codes), dtype=np.int32),
                   np.empty((n_rows, len(self._numeric)), dtype=np.float32))
        codes, numeric = out
        if self._by_column.shape[1] < n_rows:
            self._by_column = np.empty((self.n_codes, n_rows), dtype=np.int32)
            self._positions = np.empty(n_rows, dtype=np.intp)
            self._centred = np.empty(n_rows, dtype=np.float64)
        by_column = self._by_column[:, :n_rows]
        for k, codes_of in enumerate(self._categorical):
            try:
                codes_of(start, stop, by_column[k], self._positions[:n_rows])
            except TypeError as exc:  # a list or a dict among the values: unhashable
                label = self.encoder._label(self.encoder.categorical_indices_[k])
                raise TypeError(f"Categorical column {label!r} holds values that cannot be "
                                f"looked up ({exc}); convert them, e.g. X[col].astype(str).") \
                    from None
        for k, (i, precision) in enumerate(zip(self._value_columns, self._value_precisions),
                                           start=len(self._categorical)):
            self._encoding.value_codes(
                i, self._as_float(i, self._numeric[i][start:stop], np.float64), by_column[k],
                precision)
        np.copyto(codes, by_column.T)
        if self._encoding.is_affine:
            # Centred and scaled at float64 before the cast to float32: a column
            # such as timestamps (about 1.7e9, float32 steps of 128) keeps its spread.
            centred = self._centred[:n_rows]
            with np.errstate(over="ignore", invalid="ignore"):  # checked below
                for i, values in enumerate(self._numeric):
                    values = self._as_float(i, values[start:stop], np.float64)
                    np.subtract(values, self._encoding.mean_[i], out=centred)
                    centred /= self._encoding.scale_[i]
                    numeric[:, i] = centred
            if not np.isfinite(numeric).all():  # one check of the block: far faster than per column
                missing = np.isnan(numeric)  # (finite values standardise to no NaN)
                if missing.any():
                    if not self._encoding.accepts_missing:
                        self.check_numeric_finite(allow_missing=False)  # raises, naming them
                    # infinity in a column scaled by infinity (no known value in fit) is
                    # NaN too: it is refused as in any other column
                    if np.isinf(self._encoding.scale_[missing.any(axis=0)]).any() and \
                            np.isinf(self._numeric_rows(start, stop, dtype=np.float64)).any():
                        self.check_numeric_finite()  # raises, naming them
                    np.copyto(numeric, self._encoding.missing_inputs.astype(np.float32)[None],
                              where=missing)
                overflowing = ~np.isfinite(numeric).all(axis=0)
                if overflowing.any():
                    # infinity, or values beyond float32: raises, naming every such column
                    self.check_numeric_finite()
                    raise ValueError(
                        f"Numeric columns {self.labels(overflowing)} hold values that exceed "
                        "float32's range once standardised (far outside the fitted range); "
                        "rescale them or use numeric_encoding='piecewise_linear', 'periodic' "
                        "or 'quantile'.")
        else:
            for i, values in enumerate(self._numeric):
                values = self._as_float(i, values[start:stop], np.float64)
                if np.isfinite(values).all():
                    numeric[:, i] = self._encoding.apply(i, values)
                    continue
                missing = np.isnan(values)
                if np.isinf(values).any() or not self._encoding.accepts_missing:
                    # raises, naming every column of X with infinity (or NaN, if refused)
                    self.check_numeric_finite(self._encoding.accepts_missing)
                encoded = self._encoding.apply(i, values)
                encoded[missing] = self._encoding.missing_inputs[i]
                numeric[:, i] = encoded
        return codes, numeric

    def check_numeric_finite(self, allow_missing=True):
        """Raise, naming every numeric column that holds infinity, values too large or,
        unless ``allow_missing``, NaN.

        Too large: beyond float32's range, which the affine encodings cannot
        represent (the others clip such values to the fitted range).
        """
        n_numeric = len(self._numeric)
        nan, infinite, huge = (np.zeros(n_numeric, dtype=bool) for _ in range(3))
        for start, stop in self.blocks():
            values = self._numeric_rows(start, stop, dtype=np.float64)
            nan |= np.isnan(values).any(axis=0)
            infinite |= np.isinf(values).any(axis=0)
            if self._encoding.is_affine:
                with np.errstate(invalid="ignore"):
                    huge |= (np.isfinite(values) & (np.abs(values) > _FLOAT32_MAX)).any(axis=0)
        problems = []
        if infinite.any():
            problems.append(
                f"Numeric columns {self.labels(infinite)} contain infinite values; replace "
                "them (e.g. by NaN, a missing value) or declare the columns categorical.")
        if nan.any() and not allow_missing:
            problems.append(
                f"Numeric columns {self.labels(nan)} contain NaN, which "
                + ("numeric_encoding='passthrough' does not encode" if
                   self._encoding.encoding == "passthrough" else
                   "this model, saved before missing values were learned, does not encode")
                + "; impute them first (e.g. sklearn.impute.SimpleImputer).")
        if huge.any():
            problems.append(
                f"Numeric columns {self.labels(huge)} hold finite values beyond float32's "
                f"range (|x| > {_FLOAT32_MAX:.3g}), which numeric_encoding="
                f"{self._encoding.encoding!r} cannot represent; rescale them or use "
                "numeric_encoding='piecewise_linear', 'periodic' or 'quantile', which clip to "
                "the fitted range.")
        if problems:
            raise ValueError(" ".join(problems))

    def numeric_moments(self, sample_weight=None):
        """Weighted mean and standard deviation (float64) of each numeric column's known values.

        A column constant over the rows of positive weight has its value for
        mean and exactly 0 for deviation (the rounding of a float mean, 0.3
        summed ten times, would leave a spread of 1e-17); a column with no
        known value, NaN for both.
        """
        self.check_numeric_finite()
        n_numeric = len(self._numeric)
        total, weight_total = np.zeros(n_numeric), np.zeros(n_numeric)
        low, high = np.full(n_numeric, np.inf), np.full(n_numeric, -np.inf)
        for values, weight in self._weighted_blocks(sample_weight):
            known = ~np.isnan(values)
            counted = (weight > 0)[:, None] & known
            if known.all():  # (no missing value: no masked copies)
                total += weight @ values
                lowest, highest = values, values
            else:
                total += weight @ np.where(known, values, 0.0)
                lowest, highest = np.where(counted, values, np.inf), np.where(counted, values,
                                                                              -np.inf)
            weight_total += weight @ known
            if counted.any():
                low = np.minimum(low, lowest[counted.any(axis=1)].min(axis=0))
                high = np.maximum(high, highest[counted.any(axis=1)].max(axis=0))
        none_known = weight_total == 0
        low[none_known], high[none_known], weight_total[none_known] = 0.0, 0.0, 1.0
        mean = total / weight_total
        unit = deviation_unit(low, high, mean)
        squares = np.zeros(n_numeric)
        for values, weight in self._weighted_blocks(sample_weight):
            # rows of zero weight may lie far outside [low, high]: 0 * inf is NaN
            with np.errstate(over="ignore", invalid="ignore"):
                scaled = np.where((weight[:, None] > 0) & ~np.isnan(values),
                                  (values - mean) / unit, 0.0)
            squares += weight @ scaled ** 2
        deviation = unit * np.sqrt(squares / weight_total)
        constant = low == high
        mean[constant], deviation[constant] = low[constant], 0.0
        mean[none_known], deviation[none_known] = np.nan, np.nan
        return mean, deviation

    def numeric_beyond_float32(self):
        """Whether each numeric column holds a finite value beyond float32's range, in
        any row (of any weight)."""
        huge = np.zeros(len(self._numeric), dtype=bool)
        for start, stop in self.blocks():
            with np.errstate(invalid="ignore"):
                huge |= (np.abs(self._numeric_rows(start, stop, dtype=np.float64))
                         > _FLOAT32_MAX).any(axis=0)
        return huge

    def numeric_missing(self, sample_weight=None):
        """Whether each numeric column has a missing value (NaN) in a row of positive weight."""
        missing = np.zeros(len(self._numeric), dtype=bool)
        for values, weight in self._weighted_blocks(sample_weight):
            missing |= (np.isnan(values) & (weight[:, None] > 0)).any(axis=0)
        return missing

    def numeric_sample(self, rows):
        """The numeric values (float64) of rows ``rows``, shape ``(len(rows), n_numeric)``;
        missing values are NaN."""
        self.check_numeric_finite()
        out = np.empty((len(rows), len(self._numeric)))
        for i, values in enumerate(self._numeric):
            taken = values.take(rows) if isinstance(values, pd.Series) else values[rows]
            out[:, i] = self._as_float(i, taken, np.float64)
        return out

    def _weighted_blocks(self, sample_weight):
        for start, stop in self.blocks():
            values = self._numeric_rows(start, stop, dtype=np.float64)
            weight = (np.ones(stop - start) if sample_weight is None
                      else np.asarray(sample_weight[start:stop], dtype=np.float64))
            yield values, weight

    def _numeric_rows(self, start, stop, out=None, dtype=np.float32):
        if out is None:
            out = np.empty((stop - start, len(self._numeric)), dtype=dtype)
        for i, values in enumerate(self._numeric):
            out[:, i] = self._as_float(i, values[start:stop], out.dtype)
        return out

    def float_precision(self, i):
        """The precision of the ``i``-th numeric column's numbers (see :func:`float_precision`)."""
        return float_precision(self._numeric[i].dtype)

    def _as_float(self, i, values, dtype):
        """``values`` of the ``i``-th numeric column as floats (no copy for NumPy numbers)."""
        try:
            if isinstance(values, pd.api.extensions.ExtensionArray):
                return values.to_numpy(dtype=dtype, na_value=np.nan)
            if values.dtype.kind in "biuf" and values.dtype.itemsize <= 8:
                return values  # an assignment casts it, with no temporary copy
            if values.dtype == object:  # as a Series' values: pd.NA is missing too
                if _holds_dates_or_bytes(values):
                    raise TypeError  # numpy reads datetime64("2020-01-01") as 18262 days
                floats = pd.Series(values, copy=False).to_numpy(dtype=dtype, na_value=np.nan)
            else:  # (long doubles are cast here: np.interp refuses them)
                with np.errstate(over="ignore"):
                    floats = np.asarray(values, dtype=dtype)
            # a Decimal, a string such as "1e400" or a long double become infinite
            if any(_overflows(value) for value in values[np.isinf(floats)]):
                raise OverflowError
            return floats
        except OverflowError:
            example = next((value for value in values if _overflows(value)), None)
            raise ValueError(
                f"Numeric columns [{self.labels([i])[0]!r}] hold numbers beyond float64's "
                f"range (|x| > {np.finfo(np.float64).max:.3g})"
                + ("" if example is None else f", such as {_shortened(example)}")
                + "; rescale them or declare the columns categorical.") from None
        except (TypeError, ValueError):
            raise ValueError(
                f"Numeric columns [{self.labels([i])[0]!r}] hold values that are not numbers. "
                "Declare them in categorical_features or convert them.") from None

    def labels(self, numeric_positions):
        """Labels of numeric columns given by position (or mask) among the numeric columns."""
        return [self.encoder._label(j) for j in self.encoder.numeric_indices_[numeric_positions]]


def _overflows(value):
    """Whether ``value`` is a finite number that float64 cannot hold (an int, a Decimal,
    a string), which becomes infinity or an OverflowError when cast."""
    try:
        return np.isinf(float(value)) and not decimal.Decimal(str(value)).is_infinite()
    except OverflowError:
        return True
    except (TypeError, ValueError, decimal.InvalidOperation):
        return False


def _shortened(value, length=40):
    if isinstance(value, int) and abs(value).bit_length() > 4 * length:
        # (Python refuses to write out ints of more than 4300 digits)
        return f"an integer of about {int(abs(value).bit_length() * math.log10(2)) + 1} digits"
    text = repr(value)
    return text if len(text) <= length else f"{text[:length]}..."


def _holds_dates_or_bytes(values):
    """Whether an object array holds dates, durations or bytes, which numpy casts to numbers."""
    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind in _NOT_NUMBER_KINDS:
        return True
    # a look at every value only when the column mixes kinds
    return kind.startswith("mixed") and kind != "mixed-integer-float" and any(
        isinstance(value, _DATE_OR_BYTES) for value in values)


def is_date_dtype(dtype):
    """Whether ``dtype`` holds dates or durations (NumPy, pandas or pyarrow), which numeric
    columns refuse."""
    # (a pyarrow duration is kind "m" but no timedelta64 dtype: its unit would be the number)
    return (pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype)
            or isinstance(dtype, pd.PeriodDtype) or getattr(dtype, "kind", None) in ("m", "M"))


def _numeric_values(values, label):
    """The array of a numeric column, once its dtype is checked to be no date, duration or
    complex number (an object column's values are checked as they are read)."""
    dtype = values.dtype
    if is_date_dtype(dtype):
        raise TypeError(
            f"Numeric column {label!r} has dtype {dtype}; dates and durations are not converted "
            "implicitly. Turn them into numbers first (e.g. X[col].dt.dayofweek, or "
            "(X[col] - start).dt.days) or declare the column in categorical_features.")
    if isinstance(dtype, np.dtype) and dtype.kind == "c":
        raise ValueError(f"Complex data not supported: numeric column {label!r} has dtype "
                         f"{dtype}.")
    return values


def _bucket_count(n_buckets, label):
    if isinstance(n_buckets, (bool, np.bool_)) or not isinstance(n_buckets, (int, np.integer)) \
            or not 1 <= n_buckets <= MAX_HASH_BUCKETS:
        raise ValueError(f"hash_buckets for column {label!r} must be a positive integer of at "
                         f"most {MAX_HASH_BUCKETS:,} (codes are int32); got {n_buckets!r}.")
    return int(n_buckets)
