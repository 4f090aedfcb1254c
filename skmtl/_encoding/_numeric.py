"""Numeric columns: how each becomes the network's input, learned in fit, applied in blocks."""

import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy.special import ndtri
from sklearn import config_context, get_config
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

NUMERIC_ENCODINGS = ("piecewise_linear", "periodic", "quantile", "standard", "passthrough")
# numeric_encoding="auto" chooses "piecewise_linear" for a table where some numeric
# column is mostly one value or heavy-tailed, "standard" for one of smooth columns:
# a column needs bins when one value holds at least this share of its (weighted)
# rows, or when its skewness is at least this large (see benchmarks/README.md,
# "Data the defaults were not chosen on").
AUTO_MODE_SHARE = 0.5
AUTO_SKEWNESS = 2.0
BIN_STRATEGIES = ("quantile", "target")
# Quantiles and bin edges are learned from at most this many rows, drawn at
# random: it bounds the memory and time of fit on millions of rows (as the
# subsample of QuantileTransformer and of gradient boosting's binning does).
FIT_SUBSAMPLE_SIZE = 200_000
# Target-aware bin edges come from trees grown on at most this many rows.
TREE_SUBSAMPLE_SIZE = 20_000
N_QUANTILES = 1000
# Ranks are kept this far from 0 and 1 before the normal quantile function,
# so that the extremes map to about +-5.2 rather than to infinity.
_RANK_BOUND = 1e-7
# frequent_values: which numeric columns also embed their frequent values as
# categories ("auto": those that need bins, see needs_bins). A value is frequent
# when at least FREQUENT_VALUE_MIN_COUNT of the rows sampled for the maps hold it
# (gradient boosting's smallest leaf); a column keeps its MAX_FREQUENT_VALUES most
# frequent ones (gradient boosting's bins per column).
FREQUENT_VALUES = ("auto", "all")
FREQUENT_VALUE_MIN_COUNT = 20
MAX_FREQUENT_VALUES = 255
FLOAT64 = np.dtype(np.float64)
# the precisions a numeric column is read in (see float_precision)
FLOAT_PRECISIONS = ("float16", "float32", "float64")


def coarser_float(*dtypes):
    """The coarsest of float dtypes (or their names)."""
    return min((np.dtype(dtype) for dtype in dtypes), key=lambda dtype: dtype.itemsize)


def float_precision(dtype):
    """The float dtype a column of ``dtype`` holds its numbers in: float32 (or float16) for
    such a column, NumPy's, pandas' nullable, Arrow or sparse; float64 for any other."""
    for attribute in ("numpy_dtype", "subtype"):  # nullable and Arrow dtypes; sparse ones
        inner = getattr(dtype, attribute, None)
        if inner is not None:
            dtype = inner
            break
    if isinstance(dtype, np.dtype) and dtype.kind == "f" and dtype.itemsize < 8:
        return dtype
    return np.dtype(np.float64)


class NumericEncoding:
    """The fitted map from each numeric column to the network's numeric input.

    ``"standard"`` and ``"passthrough"`` are affine: ``(x - mean_) / scale_``
    (the identity for passthrough). The other encodings are monotone
    piecewise-linear maps ``np.interp(x, knots_[i], levels_[i])``, which clip
    values outside the fitted range to its ends:

    - ``"quantile"``: the weighted rank of ``x`` among the training values,
      mapped through the normal quantile function (rank-Gaussian, like
      :class:`~sklearn.preprocessing.QuantileTransformer`): ``levels_`` are
      the normal scores of 1,000 quantiles, interpolated in between;
    - ``"periodic"``: the same input, which the network then embeds with
      learned periodic functions (:class:`skmtl.nn.PeriodicEmbedding`);
    - ``"piecewise_linear"``: the position of ``x`` among its bin edges, a
      number in ``[0, n_bins_[i]]`` (bin ``k`` covers ``[k, k + 1]``), from
      which the network builds the piecewise-linear encoding
      (:class:`skmtl.nn.PiecewiseLinearEmbedding`). The edges are weighted
      quantiles (``bin_strategy="quantile"``) or the thresholds of a shallow
      decision tree per column and task (``"target"``), after Gorishniy et
      al., "On Embeddings for Numerical Features in Tabular Deep Learning",
      NeurIPS 2022.

    A constant column maps to a constant (0 bins for piecewise_linear).

    Besides that map, a column may keep its frequent values
    (``frequent_values_``): the reader codes each row's value as a category,
    ``1..K`` for the ``K`` values, 0 for any other value or a missing one, so
    that the network can embed values such as capital gains of exactly
    99,999 apart from their neighbours, as gradient boosting's bins isolate
    them. Values are compared in the coarser of two precisions: the column's
    in fit (``frequent_dtypes_``: float32 for a float32 column, float64 for
    integers and doubles) and that of the values read, so that float32 and
    float64 copies of the same numbers (a Parquet file's float32 column
    served from JSON, say) get the same codes.

    Missing values (NaN) are learned, not refused (except by
    ``"passthrough"``). ``missing_levels_[i]`` is the encoding of column
    ``i``'s weighted median (for ``"standard"``, of its mean: 0): with
    ``"piecewise_linear"``, a column with missing values among the fitted
    rows (``learned_missing_[i]``) passes them to the network as NaN, which
    embeds them at that level plus an offset it learns (as gradient boosting
    learns where missing values go); the other encodings, and columns
    without missing values in fit, encode a missing value as that level.

    Parameters
    ----------
    encoding : str, one of ``NUMERIC_ENCODINGS`` or ``"auto"``
        ``"auto"`` becomes ``"piecewise_linear"`` in :meth:`fit` when some
        column is mostly one value or heavy-tailed (:func:`needs_bins`) or has
        missing values, and ``"standard"`` otherwise; ``encoding`` then holds
        the choice.
    n_bins : int
        Largest number of bins per column for ``"piecewise_linear"``.
    bin_strategy : {"quantile", "target"}
    random_state : int or None
        Seeds the subsample of rows and the trees.
    frequent_values : {"auto", "all"} or None, default=None
        Which columns keep their frequent values: ``"auto"``, those mostly
        of one value or heavy-tailed (:func:`needs_bins`); ``"all"``, every
        column; None, none.
    """

    def __init__(self, encoding="standard", n_bins=32, bin_strategy="quantile",
                 random_state=None, frequent_values=None):
        self.encoding = encoding
        self.n_bins = n_bins
        self.bin_strategy = bin_strategy
        self.random_state = random_state
        self.frequent_values = frequent_values

    @property
    def is_affine(self):
        return self.encoding in ("standard", "passthrough")

    @property
    def n_bins_(self):
        """Bins of each column (``"piecewise_linear"``), empty otherwise."""
        if self.encoding != "piecewise_linear":
            return []
        return [len(knots) - 1 for knots in self.knots_]

    @property
    def accepts_missing(self):
        """Whether NaN may be encoded (models saved before missing values were learned: no)."""
        return (self.encoding != "passthrough"
                and getattr(self, "missing_levels_", None) is not None)

    @property
    def learns_missing(self):
        """Whether the network embeds some column's missing values itself."""
        return any(getattr(self, "learned_missing_", ()))

    @property
    def value_columns(self):
        """Positions of the numeric columns whose frequent values are coded."""
        return [i for i, values in enumerate(getattr(self, "frequent_values_", ()))
                if len(values)]

    @property
    def frequent_dtypes(self):
        """Per column, the precision its frequent values were read in (float64 for an
        encoding fitted, saved or pickled before it was kept)."""
        return getattr(self, "frequent_dtypes_", None) or [FLOAT64.name] * len(self.mean_)

    @property
    def missing_inputs(self):
        """The network's input for a missing value of each column: its level, or NaN
        where the network learns missing values."""
        return np.where(self.learned_missing_, np.nan, self.missing_levels_)

    def fit(self, reader, sample_weight=None, targets=None, regression=False, n_threads=1):
        """Learn the map of every numeric column.

        Parameters
        ----------
        reader : _RowReader
            Gives the moments of the numeric columns and samples of their rows.
        sample_weight : ndarray of shape (n_samples,), optional
        targets : ndarray of shape (n_samples, n_tasks), optional
            Class indices per task; needed by ``bin_strategy="target"``.
        regression : bool, default=False
            ``targets`` are real values: the target bins come from a
            regression tree.
        n_threads : int, default=1
            Threads that grow the target bins' trees, several columns at
            once (the same bins with any number).
        """
        if self.encoding not in NUMERIC_ENCODINGS + ("auto",):
            raise ValueError(f"numeric_encoding must be one of {NUMERIC_ENCODINGS + ('auto',)}"
                             f"; got {self.encoding!r}.")
        if self.frequent_values not in FREQUENT_VALUES + (None,):
            raise ValueError(f"frequent_values must be one of {FREQUENT_VALUES} or None; got "
                             f"{self.frequent_values!r}.")
        n_numeric = reader.n_numeric
        rng = np.random.RandomState(self.random_state)
        sample = missing = heavy = None
        if self.encoding == "auto" and n_numeric:
            # the rows the bins would be learned from (the same draws: "auto" that
            # chooses bins fits the bins "piecewise_linear" fits); missing values
            # choose bins too: the bins learn where they go, as gradient boosting does
            sample = _Sample(reader, sample_weight, rng)
            missing = reader.numeric_missing(sample_weight)
            # a column with no known value has nothing to learn: it does not count
            learnable = missing & np.array([sample.known(i)[2].any() for i in range(n_numeric)])
            heavy = [needs_bins(*sample.known(i)[:2]) for i in range(n_numeric)]
            self.encoding = ("piecewise_linear" if learnable.any() or any(heavy)
                             or reader.numeric_beyond_float32().any() else "standard")
        elif self.encoding == "auto":
            self.encoding = "standard"
        self.frequent_values_ = [np.empty(0)] * n_numeric
        self.frequent_dtypes_ = [reader.float_precision(i).name for i in range(n_numeric)]
        if self.frequent_values is not None and n_numeric:
            if sample is None:
                sample = _Sample(reader, sample_weight, rng)
            if heavy is None and self.frequent_values == "auto":
                heavy = [needs_bins(*sample.known(i)[:2]) for i in range(n_numeric)]
            self.frequent_values_ = [
                _frequent(sample.known(i)[0]) if self.frequent_values == "all" or heavy[i]
                else np.empty(0) for i in range(n_numeric)]
        self.mean_, self.scale_ = np.zeros(n_numeric), np.ones(n_numeric)
        self.knots_, self.levels_ = [], []
        self.learned_missing_ = [False] * n_numeric
        self.missing_levels_ = None if self.encoding == "passthrough" else np.zeros(n_numeric)
        if n_numeric == 0:
            return self
        if self.encoding == "standard":
            mean, scale = reader.numeric_moments(sample_weight)
            scale[scale == 0.0] = 1.0
            # a column with no known value encodes everything as 0: the weights
            # behind it never trained (a finite scale let later values through raw)
            unknown = np.isnan(mean)
            mean[unknown], scale[unknown] = 0.0, np.inf
            self.mean_, self.scale_ = mean, scale  # missing values: the mean, encoded 0
            _warn_unknown_columns(reader, np.flatnonzero(unknown))
            return self
        if self.encoding == "passthrough":
            reader.check_numeric_finite(allow_missing=False)
            return self
        if self.encoding == "piecewise_linear":
            # from every row, not the subsample: a rare missing value is still learned
            if missing is None:
                missing = reader.numeric_missing(sample_weight)
            self.learned_missing_ = missing.tolist()
        if sample is None:
            sample = _Sample(reader, sample_weight, rng)
        target_bins = self.bin_strategy == "target" and self.encoding == "piecewise_linear"
        if target_bins and targets is None:
            raise ValueError('bin_strategy="target" needs the targets in fit.')
        sample_targets = targets[sample.rows] if target_bins else None
        unknown, medians, trees = [], [], {}
        self.knots_, self.levels_ = [None] * n_numeric, [None] * n_numeric

        def grow_trees():
            # a few columns' trees at a time: each holds its rows until it is grown
            for i, edges in zip(trees, _run(trees.values(), n_threads)):
                self._set_bins(i, edges)
            trees.clear()

        for i in range(n_numeric):
            column, column_weight, known = sample.known(i)
            if not known.any():
                unknown.append(i)
            medians.append(_median(column, column_weight))
            if self.encoding == "piecewise_linear":
                if target_bins and known.any():
                    trees[i] = _tree_edges(column, column_weight, sample_targets[known],
                                           self.n_bins, rng, regression)
                    if len(trees) >= 4 * n_threads:
                        grow_trees()
                else:
                    self._set_bins(i, _quantile_edges(column, column_weight, self.n_bins))
            else:
                knots, ranks = _rank_map(column, column_weight)
                # Normal scores of the knots' ranks: interpolating between them
                # costs one np.interp per column at predict, not a quantile
                # function per value (within 1/1000 of rank of interpolating
                # the ranks first, as QuantileTransformer does).
                levels = ndtri(np.clip(ranks, _RANK_BOUND, 1.0 - _RANK_BOUND))
                self.knots_[i], self.levels_[i] = _without_overflowing_slopes(knots, levels)
        grow_trees()
        for i, median in enumerate(medians):
            self.missing_levels_[i] = np.interp(median, self.knots_[i], self.levels_[i])
        for i in unknown:
            # ignored: NaN encodes like any value (a learned offset of NaN set them apart)
            self.learned_missing_[i] = False
        _warn_unknown_columns(reader, unknown)
        return self

    def value_codes(self, i, values, out, precision=FLOAT64):
        """Write into ``out`` the codes of the float ``values`` of column ``i`` among its
        frequent values: ``k + 1`` for the ``k``-th, 0 for any other (NaN included).

        ``precision``: the float dtype the column was read in (float32 for a float32
        column); the values are compared in the coarser of it and the column's in fit.
        """
        dtype = coarser_float(self.frequent_dtypes[i], precision)
        frequent = self.frequent_keys(i, dtype)
        if dtype != FLOAT64:
            values = _rounded(values, dtype)
        # of values that rounding made equal, the first one's code (as the ONNX graph)
        positions = np.searchsorted(frequent, values).clip(max=len(frequent) - 1)
        np.multiply(positions + 1, frequent[positions] == values, out=out, casting="unsafe")

    def frequent_keys(self, i, dtype):
        """Column ``i``'s frequent values rounded to the float ``dtype`` they are compared in:
        still sorted, not always distinct (beyond the dtype's range: infinite, which no
        value read matches; infinity is refused)."""
        return _rounded(self.frequent_values_[i], dtype)

    def _set_bins(self, i, edges):
        """Column ``i``'s map to its position among its bin ``edges``."""
        knots, _ = _without_overflowing_slopes(edges, np.arange(len(edges), dtype=float))
        self.knots_[i], self.levels_[i] = knots, np.arange(len(knots), dtype=np.float64)

    @classmethod
    def agreed(cls, states, n_numeric):
        """The encoding of a fit on several ranks, from each rank's :meth:`to_dict`: the
        first rank's (its frequent values too, those of the rows it sampled), learning the
        missing values of a column any rank has some of.

        Ranks that chose apart (``"auto"``, each on its own rows) agree on the bins of
        the first rank that chose them: some rank's rows need them.
        """
        binned = [state for state in states if state["encoding"] == "piecewise_linear"]
        encoding = cls.from_dict(binned[0] if binned else states[0], n_numeric)
        if encoding.encoding == "piecewise_linear":
            encoding.learned_missing_ = [
                any(state["learned_missing"][i] for state in states) for i in range(n_numeric)]
        return encoding

    def _valid_missing_levels(self):
        """Whether ``missing_levels_`` are levels the encoding gives: the mean's 0 for the
        affine encodings, a level within each map's range for the others."""
        levels = self.missing_levels_
        if levels.shape != (len(self.mean_),) or not np.isfinite(levels).all():
            return False
        if self.is_affine:
            return not levels.any()
        return all(v[0] <= level <= v[-1] for level, v in zip(levels, self.levels_))

    def apply(self, i, values):
        """Encode float64 ``values`` of the ``i``-th numeric column (interpolated encodings).

        Missing values come out NaN: the caller gives them ``missing_inputs[i]``.
        """
        return np.interp(values, self.knots_[i], self.levels_[i])

    def to_dict(self):
        return {
            "encoding": self.encoding,
            "n_bins": int(self.n_bins),
            "bin_strategy": self.bin_strategy,
            "mean": self.mean_.tolist(),
            "scale": self.scale_.tolist(),
            "knots": [k.tolist() for k in self.knots_],
            "levels": [v.tolist() for v in self.levels_],
            # (an encoding pickled before missing values were learned has neither)
            "learned_missing": [bool(m) for m in getattr(self, "learned_missing_",
                                                          [False] * len(self.mean_))],
            "missing_levels": (None if getattr(self, "missing_levels_", None) is None
                               else self.missing_levels_.tolist()),
            # (none pickled before frequent values were coded)
            "frequent_values": [v.tolist() for v in getattr(self, "frequent_values_", ())],
            "frequent_dtypes": list(self.frequent_dtypes),
        }

    @classmethod
    def from_dict(cls, state, n_numeric):
        encoding = cls(state["encoding"], state["n_bins"], state["bin_strategy"])
        if encoding.encoding not in NUMERIC_ENCODINGS:
            raise ValueError(f"unknown numeric encoding {encoding.encoding!r}.")
        encoding.mean_ = np.asarray(state["mean"], dtype=np.float64)
        encoding.scale_ = np.asarray(state["scale"], dtype=np.float64)
        encoding.knots_ = [np.asarray(k, dtype=np.float64) for k in state["knots"]]
        encoding.levels_ = [np.asarray(v, dtype=np.float64) for v in state["levels"]]
        # (files saved before missing values were learned have neither: NaN is refused)
        encoding.learned_missing_ = list(state.get("learned_missing", [False] * n_numeric))
        levels = state.get("missing_levels")
        encoding.missing_levels_ = None if levels is None else np.asarray(levels, np.float64)
        n_maps = 0 if encoding.is_affine else n_numeric
        if (len(encoding.mean_), len(encoding.scale_)) != (n_numeric, n_numeric) \
                or (len(encoding.knots_), len(encoding.levels_)) != (n_maps, n_maps):
            raise ValueError("inconsistent encoder state: the numeric column counts do not agree.")
        if len(encoding.learned_missing_) != n_numeric or not all(
                isinstance(m, bool) for m in encoding.learned_missing_) or (
                any(encoding.learned_missing_) and (
                    encoding.encoding != "piecewise_linear" or levels is None)) or (
                levels is not None and not encoding._valid_missing_levels()) or not (
                np.isfinite(encoding.mean_).all() and np.all(encoding.scale_ > 0)):
            raise ValueError("inconsistent encoder state: invalid missing-value encoding or "
                             "scaling of the numeric columns.")
        for knots, levels in zip(encoding.knots_, encoding.levels_):
            if (knots.ndim != 1 or len(knots) == 0 or knots.shape != levels.shape
                    or not (np.isfinite(knots).all() and np.isfinite(levels).all())
                    or np.any(np.diff(knots) <= 0)):
                raise ValueError("inconsistent encoder state: invalid knots of a numeric column.")
        # (files saved before frequent values were coded have none)
        frequent = state.get("frequent_values") or [[]] * n_numeric
        try:
            encoding.frequent_values_ = [np.asarray(v, dtype=np.float64) for v in frequent]
        except (TypeError, ValueError):
            encoding.frequent_values_ = None
        if encoding.frequent_values_ is None or len(frequent) != n_numeric or not all(
                v.ndim == 1 and len(v) <= MAX_FREQUENT_VALUES and np.isfinite(v).all()
                and np.all(np.diff(v) > 0) for v in encoding.frequent_values_):
            raise ValueError("inconsistent encoder state: invalid frequent values of a numeric "
                             "column.")
        # (files saved before the precisions were kept: float64, as they were compared)
        dtypes = state.get("frequent_dtypes", [FLOAT64.name] * n_numeric)
        if not isinstance(dtypes, list) or len(dtypes) != n_numeric or not all(
                dtype in FLOAT_PRECISIONS for dtype in dtypes) or not all(
                # values read in a precision are numbers of it, and distinct in it
                np.array_equal(_rounded(v, dtype).astype(np.float64), v)
                for v, dtype in zip(encoding.frequent_values_, dtypes)):
            raise ValueError("inconsistent encoder state: invalid precisions of the numeric "
                             "columns' frequent values.")
        encoding.frequent_dtypes_ = list(dtypes)
        return encoding


def _warn_unknown_columns(reader, unknown):
    if len(unknown):
        warnings.warn(
            f"Numeric columns {reader.labels(unknown)} have no known value among the rows "
            "fitted (all missing, or of weight 0): they are ignored, whatever values they "
            "hold later (with partial_fit, the first chunk decides).", UserWarning,
            stacklevel=5)


def _without_overflowing_slopes(knots, levels):
    """Drop knots too close to the one kept before them for ``np.interp``'s slope to be finite.

    Only knots a subnormal distance apart (values around 1e-308) are that
    close; np.interp would encode the values between them as infinite.
    """
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        finite = np.isfinite(np.diff(levels) / np.diff(knots))
    if finite.all():
        return knots, levels
    kept = [0]
    for k in range(1, len(knots)):
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            slope = (levels[k] - levels[kept[-1]]) / (knots[k] - knots[kept[-1]])
        if np.isfinite(slope):
            kept.append(k)
    return knots[kept], levels[kept]


class _Sample:
    """The rows of a fit the maps are learned from: at most ``FIT_SUBSAMPLE_SIZE``."""

    def __init__(self, reader, sample_weight, rng):
        self.rows = _subsample(reader.n_samples, FIT_SUBSAMPLE_SIZE, rng)
        self.values = reader.numeric_sample(self.rows)
        self.weight = _usable_weight(None if sample_weight is None
                                     else sample_weight[self.rows])

    def known(self, i):
        """``(values, weight, known)`` of column ``i``: its known values in rows of positive
        weight (none: a constant 0), their weights (or None) and the mask of those rows."""
        known = ~np.isnan(self.values[:, i])
        if self.weight is not None:
            known &= self.weight > 0
        if not known.any():
            return np.zeros(1), None, known
        return (self.values[known, i], None if self.weight is None else self.weight[known],
                known)


def needs_bins(values, weight=None):
    """Whether a numeric column is mostly one value or heavy-tailed.

    Such columns (incomes, amounts, counts that are 0 on most rows) are where
    the piecewise-linear encoding's target bins pay; on smooth columns a
    standardised input is as good and faster. A column of at most two distinct
    values is neither. Values beyond float32's range need bins too: a
    standardised input cannot hold them.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> needs_bins(rng.normal(size=1000)), needs_bins(rng.uniform(size=1000))
    (False, False)
    >>> gains = np.where(rng.random(1000) < 0.9, 0.0, rng.lognormal(8, 1, 1000))
    >>> needs_bins(gains), needs_bins(rng.lognormal(0, 1.5, 1000))  # mostly 0; skewed
    (True, True)
    >>> needs_bins(1e-200 * rng.lognormal(0, 1.5, 1000))  # at any scale
    True
    >>> needs_bins(rng.integers(0, 2, 1000).astype(float))  # two values
    False
    """
    distinct, inverse = np.unique(values, return_inverse=True)
    if max(-distinct[0], distinct[-1]) > np.finfo(np.float32).max:
        return True
    if len(distinct) <= 2:
        return False
    weight = np.ones(len(values)) if weight is None else np.asarray(weight, dtype=np.float64)
    total = weight.sum()
    if np.bincount(inverse, weights=weight).max() >= AUTO_MODE_SHARE * total:
        return True
    # in units of the largest deviation: squares of tiny values would underflow
    deviations = values - weight @ values / total
    deviations /= np.abs(deviations).max()
    spread = np.sqrt(weight @ deviations ** 2 / total)
    skewness = weight @ (deviations / spread) ** 3 / total
    return not abs(skewness) < AUTO_SKEWNESS


def _rounded(values, dtype):
    """Float ``values`` rounded to ``dtype``; to float16 through float32, as onnxruntime's
    Cast from double rounds them (a value just past a float16 halfway point rounds alike)."""
    values = np.asarray(values)
    if values.dtype == dtype:
        return values
    with np.errstate(over="ignore"):
        if np.dtype(dtype).itemsize < 4:
            values = values.astype(np.float32)
        return values.astype(dtype)


def _frequent(values):
    """The sorted values that at least ``FREQUENT_VALUE_MIN_COUNT`` of ``values`` are (the
    ``MAX_FREQUENT_VALUES`` most frequent; of equal counts, the smaller)."""
    distinct, counts = np.unique(values, return_counts=True)
    frequent = np.flatnonzero(counts >= FREQUENT_VALUE_MIN_COUNT)
    if len(frequent) > MAX_FREQUENT_VALUES:
        frequent = np.sort(frequent[np.argsort(-counts[frequent], kind="stable")
                                    [:MAX_FREQUENT_VALUES]])
    return distinct[frequent]


def _subsample(n_samples, size, rng):
    if n_samples <= size:
        return np.arange(n_samples)
    return np.sort(rng.choice(n_samples, size, replace=False))


def _usable_weight(weight):
    """Float64 weights, or None when there are none or all are zero."""
    if weight is None:
        return None
    weight = np.asarray(weight, dtype=np.float64)
    return weight if weight.sum() > 0 else None


def weighted_quantiles(values, weight, levels):
    """Quantiles of ``values`` at ``levels`` (in [0, 1]), each row counting ``weight`` times.

    The inverse of the weighted empirical distribution function (numpy's
    ``"inverted_cdf"``, the method ``np.quantile`` takes weights with): the
    smallest value whose cumulative weight reaches the level, so that a
    weight of 2 is exactly a repeated row.
    """
    if weight is not None:
        keep = weight > 0
        values, weight = values[keep], weight[keep]
    order = np.argsort(values, kind="stable")
    values = values[order]
    if weight is None:
        cumulative = np.arange(1, len(values) + 1) / len(values)
    else:
        cumulative = np.cumsum(weight[order])
        cumulative /= cumulative[-1]
    index = np.searchsorted(cumulative, levels, side="left")
    return values[np.minimum(index, len(values) - 1)]


def _median(values, weight):
    """The weighted median as :func:`weighted_quantiles` gives it; unweighted, without a sort."""
    if weight is None:
        return np.quantile(values, 0.5, method="inverted_cdf")
    return weighted_quantiles(values, weight, [0.5])[0]


def _rank_map(values, weight):
    """Knots and their ranks in [0, 1]; a value shared by many rows gets their middle rank."""
    levels = np.linspace(0.0, 1.0, N_QUANTILES)
    quantiles = weighted_quantiles(values, weight, levels)
    knots, which = np.unique(quantiles, return_inverse=True)
    ranks = np.bincount(which, weights=levels) / np.bincount(which)
    return knots, ranks


def _quantile_edges(values, weight, n_bins):
    return np.unique(weighted_quantiles(values, weight, np.linspace(0.0, 1.0, n_bins + 1)))


def _tree_edges(values, weight, targets, n_bins, rng, regression=False):
    """Bin edges from one decision tree of at most ``n_bins`` leaves over all tasks.

    The tree is multi-output (every task a column of ``targets``): a split
    is chosen by its impurity decrease summed over the tasks, so the splits
    that matter to some task win over noise from the others.

    Returns a function of no arguments that grows the tree and returns the
    edges: the random draws are made here, in the columns' order, and the
    work is left to the caller (on another thread, say).
    """
    if weight is not None:  # rows of weight 0 carry nothing, not even their values
        values, targets, weight = values[weight > 0], targets[weight > 0], weight[weight > 0]
    if np.isnan(targets).all():  # no known label (a first partial_fit chunk given classes)
        return lambda: _quantile_edges(values, weight, n_bins)
    low, high = values.min(), values.max()
    rows = _subsample(len(values), TREE_SUBSAMPLE_SIZE, rng)
    # The tree splits the ranks of the distinct values (exact in float32,
    # where scikit-learn's trees work, whatever the values' range); a
    # threshold between ranks k and k + 1 becomes the middle of those values.
    distinct, ranks = np.unique(values[rows], return_inverse=True)
    if len(distinct) < 2:
        return lambda: np.unique([low, high])
    targets, weight = targets[rows], None if weight is None else weight[rows]
    seed = rng.randint(np.iinfo(np.int32).max)

    def grow():
        tree_targets, tree_regression = targets, regression
        missing = np.isnan(targets)
        if missing.any():
            tree_targets, tree_regression = _imputed_tree_targets(
                targets, missing, weight, regression), True
        # a share of the weight, not of the rows, so that a weight of 2 is a repeated row
        tree = (DecisionTreeRegressor if tree_regression else DecisionTreeClassifier)(
            max_leaf_nodes=max(n_bins, 2), min_weight_fraction_leaf=1 / (8 * n_bins),
            random_state=seed)
        tree.fit(ranks.reshape(-1, 1).astype(np.float32), tree_targets, sample_weight=weight)
        below = np.floor(tree.tree_.threshold[tree.tree_.feature >= 0]).astype(np.intp)
        # halves first: the sum of two values near the float64 maximum overflows
        inner = distinct[below] / 2 + distinct[below + 1] / 2
        inner = inner[(inner > low) & (inner < high)]
        return np.unique(np.concatenate([[low], inner, [high]]))

    return grow


def _run(jobs, n_threads):
    """The results of the functions ``jobs``, in order, computed on up to ``n_threads``
    threads (scikit-learn's trees release the GIL while they grow)."""
    jobs = list(jobs)
    if n_threads <= 1 or len(jobs) <= 1:
        return [job() for job in jobs]
    config = get_config()  # scikit-learn's settings are per thread: the caller's in each

    def run(job):
        with config_context(**config):
            return job()

    with ThreadPoolExecutor(min(n_threads, len(jobs))) as pool:
        try:
            results = pool.map(run, jobs)  # submits every job now
        except RuntimeError:  # the interpreter is shutting down: it takes no new threads
            return [job() for job in jobs]
        return list(results)


def _imputed_tree_targets(targets, missing, weight, regression):
    """Regression-tree targets for labels with missing entries.

    Class codes become one indicator column per class: a regression tree's
    squared error summed over them equals the Gini impurity a classifier
    tree splits on. A missing entry becomes its column's mean over the known
    rows: it adds no impurity decrease of its own, though it dilutes that of
    the known rows (a task's gain shrinks with its share of missing labels).
    """
    columns, known_masks = [], []
    for t in range(targets.shape[1]):
        known = ~missing[:, t]
        if regression:
            blocks = targets[:, t:t + 1]
        else:
            classes = np.unique(targets[known, t])
            blocks = (targets[:, t:t + 1] == classes).astype(np.float64)
        columns.append(blocks)
        known_masks.append(np.repeat(known[:, None], blocks.shape[1], axis=1))
    values, known = np.hstack(columns).astype(np.float64), np.hstack(known_masks)
    row_weight = np.ones(len(values)) if weight is None else weight
    weights = known * row_weight[:, None]
    means = (np.where(known, values, 0.0) * weights).sum(axis=0) / np.maximum(
        weights.sum(axis=0), np.finfo(float).tiny)
    return np.where(known, values, means)
