"""Helpers shared by the column encoders: column access, names, JSON of arrays."""

import numpy as np
import pandas as pd


def column_label(feature_names, index):
    """A column's name, or its position when ``X`` has no names."""
    return str(feature_names[index]) if feature_names is not None else int(index)


def as_pandas(data, what="X"):
    """``data`` as pandas when it is another library's table (pyarrow, polars, ...).

    A pyarrow ``Table`` or ``RecordBatch`` becomes a DataFrame as
    :func:`arrow_to_pandas` makes it; other tables that convert themselves
    (``to_pandas``) and speak the Arrow or dataframe interchange protocol
    become what their ``to_pandas`` gives (a pyarrow array, a Series); a
    torch tensor becomes a NumPy array (detached, on the CPU); anything else
    is returned as it is. A lazy frame (polars' ``LazyFrame``) is a
    ``TypeError`` that says to collect it.
    """
    if isinstance(data, (pd.DataFrame, pd.Series, np.ndarray)):
        return data
    if type(data).__module__.startswith("torch") and callable(getattr(data, "detach", None)):
        return data.detach().cpu().numpy()
    if "Lazy" in type(data).__name__ and callable(getattr(data, "collect", None)):
        raise TypeError(f"{what} is a lazy frame ({type(data).__module__}."
                        f"{type(data).__name__}), a query not yet run: pass "
                        f"{what}.collect().")
    if type(data).__module__.startswith("pyarrow") and hasattr(data, "schema") \
            and hasattr(data, "columns"):
        return arrow_to_pandas(data, decode_dictionaries=False)
    if callable(getattr(data, "to_pandas", None)) and (
            hasattr(data, "__arrow_c_stream__") or hasattr(data, "__arrow_c_array__")
            or hasattr(data, "__dataframe__")):
        return data.to_pandas()
    return data


def arrow_to_pandas(table, decode_dictionaries=True):
    """A DataFrame of a pyarrow table or record batch.

    An integer or boolean column with nulls becomes pandas' nullable type
    (``Int64``, ``boolean``), not floats: its values then read as the
    integers they are in every batch, nulls or not (hashed ids, labels).
    With ``decode_dictionaries``, a dictionary column becomes the column of
    its values, not a ``category`` of only the dictionary of its batch (a
    batch of a larger data set).
    """
    import pyarrow as pa

    def nullable_dtype(arrow_type):
        return pd.BooleanDtype() if pa.types.is_boolean(arrow_type) else \
            pd.api.types.pandas_dtype(str(arrow_type).capitalize().replace("Uint", "UInt"))

    columns = {}
    for j, column in enumerate(table.columns):
        if decode_dictionaries and pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        nullable = column.null_count and (pa.types.is_integer(column.type)
                                          or pa.types.is_boolean(column.type))
        columns[j] = column.to_pandas(
            types_mapper=nullable_dtype if nullable else None).reset_index(drop=True)
    # by position, then named: a name given twice stays two columns
    frame = pd.DataFrame(columns, columns=range(len(columns)))
    frame.columns = table.schema.names
    return frame


def feature_names(X):
    """``X``'s column names as an object array when they are all strings, else None."""
    if isinstance(X, pd.DataFrame):
        columns = X.columns.tolist()
        if columns and all(isinstance(c, str) for c in columns):
            return np.asarray(columns, dtype=object)
    return None


def column(X, j):
    return X.iloc[:, j] if isinstance(X, pd.DataFrame) else X[:, j]


def column_arrays(X):
    """Every column of ``X`` in order, as 1-D arrays: a DataFrame's NumPy arrays or
    pandas extension arrays (a ``Categorical``, ...), or views of an array's columns.

    A DataFrame's are taken without a Series per column: in pandas 3 a
    Series costs about 15 µs to build, most of ``predict_proba``'s time on
    one row (``X.iloc[:, j]``, twice that).
    """
    if isinstance(X, pd.DataFrame):
        arrays = getattr(X, "_iter_column_arrays", None)  # pandas' own, since 1.3
        if arrays is not None:
            return list(arrays())
        return [values.to_numpy() if isinstance(values.dtype, np.dtype) else values.array
                for _, values in X.items()]
    return [X[:, j] for j in range(X.shape[1])]


_JSON_KINDS = {"b": bool, "i": int, "u": int, "f": float, "U": str}


def deviation_unit(low, high, mean):
    """The largest deviation from ``mean`` of values in ``[low, high]`` (1 where it is 0 or
    not finite), per column.

    Deviations divided by it before squaring neither underflow (a spread of
    1e-200 squared is 0) nor overflow (1e160 squared is inf).
    """
    with np.errstate(over="ignore", invalid="ignore"):
        unit = np.maximum(high - mean, mean - low)
    return np.where(np.isfinite(unit) & (unit > 0), unit, 1.0)


def array_to_json(values, what="values"):
    """A 1-D array of labels or categories as ``{"dtype": ..., "values": [...]}``.

    Only booleans, integers, floats and strings are supported, so that the
    result is plain JSON and reading it back runs no code. ``what`` names
    the values in the error (``"the categories of column 'day'"``).
    """
    values = np.asarray(values)
    advice = ("use strings, numbers or booleans, e.g. .astype(str) before fit (or persist "
              "with joblib instead)")
    if values.dtype.kind == "O":
        # numpy scalars held in an object array (np.int64, np.str_) as Python ones
        items = [v.item() if isinstance(v, np.generic) else v for v in values.tolist()]
        kinds = {type(v) for v in items}
        if not kinds <= {str, int, float, bool}:
            raise TypeError(
                f"cannot store {what} as JSON: they hold values of type "
                f"{sorted(k.__name__ for k in kinds)}; {advice}.")
        return {"dtype": "object", "values": items}
    if values.dtype.kind not in _JSON_KINDS:
        raise TypeError(f"cannot store {what} as JSON: their dtype is {values.dtype}; {advice}.")
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
    try:
        array[:] = values
    except OverflowError:
        raise ValueError(f"values beyond the range of dtype {state['dtype']!r}.") from None
    # what the dtype cannot hold is cut, not refused, by numpy (1.5 as an int, "high"
    # as "<U1")
    if not all(a == v or (a != a and v != v) for a, v in zip(array.tolist(), values)):
        raise ValueError(f"values that dtype {state['dtype']!r} does not hold.")
    return array
