"""Categorical columns: their categories at fit, their integer codes at transform."""

from itertools import repeat
from numbers import Integral

import numpy as np
import pandas as pd

# Code reserved in every categorical column for missing values and for
# categories not seen during fit; known categories get codes 1, 2, ...
UNKNOWN_CODE = 0
# codes are int32 and 0 is reserved: at most this many buckets for a hashed column
MAX_HASH_BUCKETS = np.iinfo(np.int32).max


def is_categorical_dtype(dtype):
    """Whether ``categorical_features="from_dtype"`` treats a column of ``dtype`` as categorical."""
    return (
        isinstance(dtype, pd.CategoricalDtype)
        or pd.api.types.is_object_dtype(dtype)
        or pd.api.types.is_string_dtype(dtype)
        or is_arrow_dictionary(dtype)
    )


def is_arrow_dictionary(dtype):
    """Whether ``dtype`` is pyarrow's dictionary type: a category column read with
    ``dtype_backend="pyarrow"``."""
    return isinstance(dtype, pd.ArrowDtype) and str(dtype.pyarrow_dtype).startswith("dictionary<")


def fit_categories(values, label):
    """The categories of one column: its distinct non-missing values, sorted if possible.

    ``label`` names the column in error messages.
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy()
        seen = np.bincount(codes + 1, minlength=len(values.cat.categories) + 1)[1:] > 0
        return np.asarray(values.cat.categories)[seen]
    try:
        uniques = pd.unique(values if isinstance(values, pd.Series) else pd.Series(values))
    except TypeError as exc:
        raise TypeError(f"Categorical column {label!r} holds values that cannot be "
                        f"categories ({exc}).") from None
    uniques = np.asarray(uniques, dtype=None if uniques.dtype.kind in "biuf" else object)
    uniques = uniques[~pd.isna(uniques)]
    kinds = {_value_kind(v) for v in uniques}
    if len(kinds) > 1:
        raise TypeError(
            f"Categorical column {label!r} mixes value types ({', '.join(sorted(kinds))}); "
            "convert it to one type, e.g. X[col].astype(str).")
    try:
        return np.sort(uniques, kind="stable")
    except TypeError:  # unorderable values of one kind: keep first-seen order
        return uniques


def code_reader(values, categories):
    """A function ``(start, stop, out, scratch)`` writing those rows' codes into ``out``.

    Known values get their position in ``categories`` plus one; missing and
    unknown values get ``UNKNOWN_CODE``. ``values`` is a column (a Series or
    an array); ``scratch`` is an intp array of ``stop - start`` elements the
    function may overwrite. ``categories`` is a ``pd.Index``, or its
    :class:`ColumnLookups`, which keeps the lookup tables from call to call.
    """
    lookups = categories if isinstance(categories, ColumnLookups) else ColumnLookups(categories)
    index = lookups.index
    array = values.array if isinstance(values, pd.Series) else values
    if isinstance(array.dtype, pd.CategoricalDtype):
        positions, in_order = lookups.positions(array.dtype)
        dtype_codes = array.codes  # (the .cat accessor costs 20 times as much)
        if in_order:
            # The dtype's categories are the fitted ones, in order (the usual
            # case): the code is the dtype's code + 1, and missing (-1) becomes
            # UNKNOWN_CODE (0). Twice as fast as the lookup below.
            def codes_of_same_categories(start, stop, out, scratch):
                np.add(dtype_codes[start:stop], 1, out=out, dtype=np.int32)
            return codes_of_same_categories

        # Map the (few) categories of the dtype once, then index by the codes.
        return _category_lookup_reader(dtype_codes, positions + 1)

    if array.dtype.kind == "S":  # pandas cannot look up numpy bytes held in a Series
        array = np.asarray(array, dtype=object)
    arrow_reader = _arrow_string_code_reader(array, lookups)
    if arrow_reader is not None:
        return arrow_reader

    def codes_of_values(start, stop, out, scratch):
        # get_indexer gives -1 for missing and unknown values, hence the + 1.
        np.add(index.get_indexer(array[start:stop]), 1, out=out)

    codes_by_string = lookups.string_codes()
    if codes_by_string is None or array.dtype.kind not in "OU":
        return codes_of_values

    def codes_of_python_strings(start, stop, out, scratch):
        codes = _codes_of_strings(array[start:stop].tolist(), codes_by_string)
        if codes is None:
            codes_of_values(start, stop, out, scratch)
        else:
            out[:] = codes
    return codes_of_python_strings


class ColumnLookups:
    """The tables :func:`code_reader` looks values up in, for the categories ``index``.

    Each is built on first use and kept for the last dtype (or pyarrow type)
    it was asked for: rows taken from one DataFrame share their dtype
    object, so repeated calls on small blocks do not rebuild them.
    """

    def __init__(self, index):
        self.index = pd.Index(index)
        self._positions = self._value_set = None  # (key, table)
        self._string_codes = ()  # (table,) once built

    def positions(self, dtype):
        """:func:`category_positions` of ``dtype``."""
        kept = self._positions
        # by identity: unordered dtypes compare equal whatever their categories' order
        if kept is None or kept[0] is not dtype:
            kept = self._positions = (dtype, category_positions(self.index, dtype))
        return kept[1]

    def arrow_value_set(self, arrow_type):
        """:func:`arrow_value_set` for ``arrow_type``."""
        kept = self._value_set
        if kept is None or kept[0] != arrow_type:
            kept = self._value_set = (arrow_type, arrow_value_set(self.index, arrow_type))
        return kept[1]

    def string_codes(self):
        """:func:`string_codes` of the categories."""
        if not self._string_codes:
            self._string_codes = (string_codes(self.index),)
        return self._string_codes[0]


def category_positions(index, dtype):
    """The positions in ``index`` of the categories of ``dtype`` (a ``CategoricalDtype``;
    -1 where not in ``index``), and whether they are ``index``'s first ones in order."""
    positions = index.get_indexer(dtype.categories)
    return positions, np.array_equal(positions, np.arange(len(positions)))


def arrow_value_set(index, arrow_type):
    """The categories ``index`` (strings) as a pyarrow array of ``arrow_type``, for
    ``index_in``."""
    import pyarrow as pa

    return pa.array(index.to_numpy(), type=arrow_type)


def string_codes(index):
    """``{category: code}`` for the categories ``index``, or None when they are not all
    strings."""
    categories = index.to_numpy()
    if not all(isinstance(c, str) for c in categories):
        return None
    return {category: code for code, category in enumerate(categories.tolist(), 1)}


def _codes_of_strings(values, codes):
    """The codes of a list of Python values by the dict ``codes`` of :func:`string_codes`,
    or None where the dict cannot tell (an unhashable value; ``pd.NA`` compared with a
    category of the same hash).

    A dict looks values up as pandas' hash table of Python objects does (by
    hash, then ``==``), 5 times faster than ``Index.get_indexer`` from 64 to
    65,536 rows and 300 times on one row (pandas 3). Missing values (None,
    NaN, ``pd.NA``) and values of other types equal no string: unknown.
    """
    try:
        return list(map(codes.get, values, repeat(UNKNOWN_CODE)))
    except TypeError:
        return None


# Blocks of pyarrow strings up to this many rows are looked up by a dict, as
# Python strings: pyarrow's index_in costs about 0.08 ms a call, whatever the rows.
ARROW_SMALL_BLOCK = 256


def _arrow_string_code_reader(array, lookups):
    """:func:`code_reader` for strings held by pyarrow (pandas' ``str`` with pyarrow installed).

    pyarrow's hash lookup (``index_in``) finds the codes of a large block
    without turning the strings into Python objects: 3 to 6 times faster
    than ``Index.get_indexer``. Small blocks are looked up as Python
    strings. None for other columns, or when the categories are not all
    strings.
    """
    dtype = array.dtype
    if isinstance(dtype, pd.ArrowDtype):
        import pyarrow as pa

        if not (pa.types.is_string(dtype.pyarrow_dtype)
                or pa.types.is_large_string(dtype.pyarrow_dtype)):
            return None
    elif not (isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow"):
        return None
    codes_by_string = lookups.string_codes()
    if codes_by_string is None:
        return None
    import pyarrow as pa
    import pyarrow.compute as pc

    def codes_of_arrow_strings(start, stop, out, scratch):
        rows = pa.array(array[start:stop])
        if stop - start <= ARROW_SMALL_BLOCK:
            # pyarrow gives strings and None only
            out[:] = _codes_of_strings(rows.to_pylist(), codes_by_string)
            return
        # index_in gives null for missing and unknown values: -1, and + 1 as above
        positions = pc.index_in(rows, value_set=lookups.arrow_value_set(rows.type))
        np.add(positions.fill_null(-1).to_numpy(), 1, out=out)
    return codes_of_arrow_strings


def hashed_code_reader(values, n_buckets, whole_floats_as_integers=True):
    """As :func:`code_reader`, for a column hashed into ``n_buckets`` buckets.

    A value's code is ``1 + hash(value) % n_buckets`` with pandas'
    ``hash_array`` (SipHash with a fixed key: the same code in every process
    and on every machine); missing values get ``UNKNOWN_CODE``. Integers hash
    as 64-bit integers and floats as 64-bit floats, whatever their width or
    container (NumPy, pandas' nullable ``Int64``, Python ints in an
    ``object`` column), so an id falls in the same bucket whether it comes
    as int32 from a file or as int64. With ``whole_floats_as_integers``, a
    float equal to an integer hashes as that integer: ``3.0`` falls in the
    bucket of ``3`` (pandas makes a column of integer ids floats as soon as
    one is missing), ``"3"`` in another. Without it (models saved before
    that rule), ``3`` and ``3.0`` fall in different buckets. A ``category``
    column hashes its categories, not its integer codes.
    """
    n_buckets = np.uint64(n_buckets)
    array = values.array if isinstance(values, pd.Series) else values
    if isinstance(array.dtype, pd.CategoricalDtype):
        categories = np.asarray(array.categories)
        return _category_lookup_reader(
            array.codes,
            _hashes(categories, pd.isna(categories), whole_floats_as_integers) % n_buckets + 1)

    # pandas' nullable numbers (Int64, boolean, ...): hashed by their NumPy type in every
    # block; np.asarray would give floats wherever a block holds a missing value
    masked_dtype = getattr(array.dtype, "numpy_dtype", None) if isinstance(
        array, pd.api.extensions.ExtensionArray) else None
    if masked_dtype is not None and masked_dtype.kind not in "biuf":
        masked_dtype = None

    def hashed_codes_of_values(start, stop, out, scratch):
        if masked_dtype is not None:
            rows = array[start:stop]
            missing = np.asarray(rows.isna())
            block = rows.to_numpy(dtype=masked_dtype, na_value=masked_dtype.type(0))
        else:
            block = np.asarray(array[start:stop])
            missing = pd.isna(block)
        np.add(_hashes(block, missing, whole_floats_as_integers) % n_buckets, 1, out=out,
               casting="unsafe")
        out[missing] = UNKNOWN_CODE
    return hashed_codes_of_values


def _hashes(values, missing, whole_floats_as_integers=True):
    """pandas' ``hash_array`` of ``values``, each value hashed as its type.

    Integers hash as int64 (uint64), floats as float64 (whole ones, with
    ``whole_floats_as_integers``, as the integers they equal) and bools as
    bools, whatever their container: an ``object`` column of Python numbers
    (how pandas holds them with missing values) hashes as the NumPy column
    would, value by value when it mixes kinds, so that a value's bucket does
    not depend on the other rows of its block. Missing values count as 0
    (their code is overwritten); anything else hashes as an object.
    """
    hash_floats = _float_hashes if whole_floats_as_integers else pd.util.hash_array
    kind = values.dtype.kind
    if kind in "iu":
        return pd.util.hash_array(values.astype(np.int64 if kind == "i" else np.uint64,
                                                copy=False))
    if kind == "f":
        return hash_floats(values.astype(np.float64, copy=False))
    if kind == "b":
        return pd.util.hash_array(values)
    values = values.astype(object, copy=False)
    inferred = pd.api.types.infer_dtype(values, skipna=True)
    if inferred in _HASHED_AS:  # one kind: the whole block at once
        try:
            block = np.where(missing, 0, values).astype(_HASHED_AS[inferred])
            return hash_floats(block) if inferred == "floating" else pd.util.hash_array(block)
        except OverflowError:  # an integer beyond int64: value by value
            pass
    hashes = pd.util.hash_array(values)
    if inferred in _HASHED_AS or inferred.startswith("mixed"):
        for dtype, of_type in _numbers_by_type(values, missing):
            if of_type.any():
                numbers = values[of_type].astype(dtype)
                hashes[of_type] = (hash_floats(numbers) if dtype is np.float64
                                   else pd.util.hash_array(numbers))
    return hashes


def _float_hashes(values):
    """``hash_array`` of float64 ``values``, those equal to an integer hashed as that integer.

    Integers within int64 or uint64 hash as their 64 bits, which are the
    same for both types where both hold the value.
    """
    with np.errstate(invalid="ignore"):
        whole = (values == np.trunc(values)) & (values >= -2.0 ** 63) & (values < 2.0 ** 64)
    if not whole.any():
        return pd.util.hash_array(values)
    bits = np.zeros(len(values), dtype=np.uint64)
    negative = whole & (values < 0)
    bits[negative] = values[negative].astype(np.int64).view(np.uint64)
    positive = whole & ~negative
    bits[positive] = values[positive].astype(np.uint64)
    hashes = pd.util.hash_array(bits)
    if not whole.all():
        hashes[~whole] = pd.util.hash_array(values[~whole])
    return hashes


_HASHED_AS = {"boolean": bool, "integer": np.int64, "floating": np.float64}
_INT64 = np.iinfo(np.int64)


def _numbers_by_type(values, missing):
    """``(dtype, mask)`` of the bools, the int64 integers and the floats among ``values``."""
    kinds = np.array([2 if isinstance(v, (bool, np.bool_)) else
                      1 if isinstance(v, (int, np.integer)) and _INT64.min <= v <= _INT64.max
                      else 3 if isinstance(v, (float, np.floating)) else 0 for v in values])
    kinds[missing] = 0
    return [(bool, kinds == 2), (np.int64, kinds == 1), (np.float64, kinds == 3)]


def _category_lookup_reader(dtype_codes, codes_of_categories):
    """A reader of a ``category`` column whose k-th category has code ``codes_of_categories[k]``.

    The dtype's code -1 (missing) wraps round to the ``UNKNOWN_CODE`` appended last.
    """
    lookup = np.append(codes_of_categories, UNKNOWN_CODE).astype(np.int32)

    def codes_of_categorical(start, stop, out, scratch):
        # np.take wants intp indices: widened in scratch, not a new array
        np.copyto(scratch, dtype_codes[start:stop])
        np.take(lookup, scratch, out=out, mode="wrap")
    return codes_of_categorical


def _value_kind(value):
    if isinstance(value, (str, bytes)):
        return "string"
    if isinstance(value, (bool, np.bool_)):
        return "boolean"
    if isinstance(value, (Integral, float, np.number)):
        return "number"
    return type(value).__name__
