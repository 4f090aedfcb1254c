"""Helpers shared by the column encoders: column access, names, JSON of arrays."""

import numpy as np
import pandas as pd


def column_label(feature_names, index):
    """A column's name, or its position when ``X`` has no names."""
    return str(feature_names[index]) if feature_names is not None else int(index)


def as_pandas(data):
    """``data`` as pandas when it is another library's table (pyarrow, polars, ...).

    Tables that convert themselves (``to_pandas``) and speak the Arrow or
    dataframe interchange protocol become a DataFrame (a pyarrow array, a
    Series); anything else is returned as it is.
    """
    if isinstance(data, (pd.DataFrame, pd.Series, np.ndarray)):
        return data
    if callable(getattr(data, "to_pandas", None)) and (
            hasattr(data, "__arrow_c_stream__") or hasattr(data, "__arrow_c_array__")
            or hasattr(data, "__dataframe__")):
        return data.to_pandas()
    return data


def feature_names(X):
    """``X``'s column names as an object array when they are all strings, else None."""
    if isinstance(X, pd.DataFrame):
        columns = list(X.columns)
        if columns and all(isinstance(c, str) for c in columns):
            return np.asarray(columns, dtype=object)
    return None


def column(X, j):
    return X.iloc[:, j] if isinstance(X, pd.DataFrame) else X[:, j]


_JSON_KINDS = {"b": bool, "i": int, "u": int, "f": float, "U": str}


def array_to_json(values):
    """A 1-D array of labels or categories as ``{"dtype": ..., "values": [...]}``.

    Only booleans, integers, floats and strings are supported, so that the
    result is plain JSON and reading it back runs no code.
    """
    values = np.asarray(values)
    if values.dtype.kind == "O":
        # numpy scalars held in an object array (np.int64, np.str_) as Python ones
        items = [v.item() if isinstance(v, np.generic) else v for v in values.tolist()]
        kinds = {type(v) for v in items}
        if not kinds <= {str, int, float, bool}:
            raise TypeError(
                f"cannot store values of type {sorted(k.__name__ for k in kinds)} as JSON; "
                "use strings, numbers or booleans (or persist with joblib instead).")
        return {"dtype": "object", "values": items}
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
