"""Train on and predict Parquet data bigger than memory, streamed with pyarrow.

Needs the ``parquet`` extra (``pip install ".[parquet]"`` in the repository, i.e. pyarrow).
Training goes through the estimators' :meth:`partial_fit`: each frame of
``batch_rows`` rows is one call, so every categorical column needs a
vocabulary known in advance (``categories``, for which
:func:`parquet_categories` collects the values of a whole data set, or
``hash_buckets``), and the numeric encodings are learned from the first
frame (see ``partial_fit``). Memory is bounded by ``shuffle_buffer`` rows,
not by the size of the data.
"""

import contextlib
import numbers
import os
import time

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

from ._encoding._common import arrow_to_pandas
from ._files import replaced_on_success
from ._outputs import check_kept_columns, check_skmtl_estimator, prediction_columns


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.dataset
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise ImportError("skmtl.parquet needs pyarrow: pip install '.[parquet]' in the "
                          "repository.") from None
    return pyarrow


def _dataset(source):
    """A ``pyarrow.dataset.Dataset`` of a Parquet file, a folder of them, or a list of files."""
    pa = _pyarrow()
    try:
        return pa.dataset.dataset(source, format="parquet")
    except (FileNotFoundError, pa.ArrowInvalid) as exc:
        raise ValueError(f"{source!r} is not a readable Parquet file or folder ({exc}).") \
            from None


def _stored_index(dataset):
    """The columns of the row index pandas stored with a frame.

    ``DataFrame.to_parquet`` writes an index other than a plain range as
    columns (``__index_level_0__``, or the index's name); ``pd.read_parquet``
    reads them back as the index: they are no features.
    """
    metadata = dataset.schema.pandas_metadata or {}
    return {name for name in metadata.get("index_columns", ()) if isinstance(name, str)}


def _data_columns(dataset):
    """The data set's column names but those of the row index pandas stored."""
    index = _stored_index(dataset)
    return [name for name in dataset.schema.names if name not in index]


def _column_names(columns):
    """A list of column names from one name or several."""
    return [columns] if isinstance(columns, str) else list(columns)


def _check_count(value, name):
    """Raise unless ``value`` is a positive integer."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {value!r}.")
    if value < 1:
        raise ValueError(f"{name} must be at least 1; got {value}.")


def _check_columns(dataset, names):
    """The data set's fragments (its files), each checked to hold every column of ``names``.

    Reads the files' footers only, so that a file without a column is an
    error before any training or writing, not midway.
    """
    fragments = list(dataset.get_fragments())
    if not names:
        return fragments
    schemas = [fragment.physical_schema.names for fragment in fragments]
    missing = [name for name in names if not any(name in schema for schema in schemas)]
    if missing:
        raise ValueError(f"Columns {missing} are not in the Parquet data set.")
    for fragment, schema in zip(fragments, schemas):
        missing = [name for name in names if name not in schema]
        if missing:
            raise ValueError(f"Columns {missing} are not in the Parquet file "
                             f"{fragment.path!r} (other files of the data set have them).")
    return fragments


def _unified_types(fragments, names):
    """``{name: Arrow type}`` of columns ``names`` over the files: int64 and double give double.

    Dictionaries count as their values, as :func:`arrow_to_pandas` decodes them.
    """
    pa = _pyarrow()
    types = {}
    for fragment in fragments:
        schema = fragment.physical_schema
        for name in names:
            arrow_type = schema.field(name).type
            if pa.types.is_dictionary(arrow_type):
                arrow_type = arrow_type.value_type
            known = types.setdefault(name, arrow_type)
            try:
                types[name] = pa.unify_schemas(
                    [pa.schema([(name, known)]), pa.schema([(name, arrow_type)])],
                    promote_options="permissive").field(name).type
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                raise ValueError(f"Column {name!r} is {known} in some Parquet files and "
                                 f"{arrow_type} in {fragment.path!r}; no type holds both.") \
                    from None
    return types


def _cast_columns(table, types):
    """``table`` with each column of ``types`` cast to its type, raising if a value would change."""
    pa = _pyarrow()
    for name, arrow_type in types.items():
        i = table.schema.get_field_index(name)
        try:
            table = table.set_column(i, name, table.column(i).cast(arrow_type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise ValueError(f"Column {name!r} cannot be written as {arrow_type}: {exc}") \
                from None
    return table


def _check_destination(source, destination):
    """Raise if ``destination`` is a file of ``source``, lies in one of its folders (a
    later read of the folder would take the output for input), or is a folder."""
    if os.path.isdir(destination):  # (found only after every block was predicted)
        raise ValueError(f"The destination {os.fspath(destination)!r} is a folder; give the "
                         "path of the Parquet file to write.")
    sources = [source] if isinstance(source, (str, os.PathLike)) else source
    target = os.path.realpath(destination)
    for path in sources:
        if not isinstance(path, (str, os.PathLike)):
            continue
        path = os.path.realpath(path)
        if target == path or target.startswith(os.path.join(path, "")):
            raise ValueError(f"The destination {os.fspath(destination)!r} is inside the data "
                             f"set {path!r}; write it outside the input.")


def iter_frames(source, columns=None, *, batch_rows=65_536, shuffle_buffer=None,
                random_state=None):
    """Stream a Parquet data set as DataFrames of ``batch_rows`` rows (the last may be shorter).

    Parameters
    ----------
    source : str, path-like or list of them
        A Parquet file, a folder of Parquet files, or a list of files.
    columns : str or list of str, optional
        The columns to read (default: all but the row index pandas stored
        with a frame, as ``pd.read_parquet`` reads it); every file must have
        them.
    batch_rows : int, default=65536
    shuffle_buffer : int, optional
        Shuffle: visit the files in a random order and the rows in a random
        order within a buffer of this many rows (filled from consecutive
        record batches); memory grows with the buffer. ``None`` keeps the
        data set's order.
    random_state : int, numpy Generator or None
        Seeds the shuffling.

    Yields
    ------
    frame : DataFrame

    Examples
    --------
    >>> import os, tempfile
    >>> import pandas as pd
    >>> from skmtl.parquet import iter_frames
    >>> folder = tempfile.mkdtemp()
    >>> frame = pd.DataFrame({"x": range(10), "city": list("abcabcabca")})
    >>> frame.to_parquet(os.path.join(folder, "part-0.parquet"))
    >>> [len(part) for part in iter_frames(folder, batch_rows=4)]
    [4, 4, 2]
    >>> shuffled = iter_frames(folder, ["x"], batch_rows=4, shuffle_buffer=10, random_state=0)
    >>> sorted(pd.concat(shuffled)["x"]) == list(range(10))  # every row once
    True
    """
    _check_count(batch_rows, "batch_rows")
    if shuffle_buffer is not None:
        _check_count(shuffle_buffer, "shuffle_buffer")
    columns = None if columns is None else _column_names(columns)
    dataset = _dataset(source)
    fragments = _check_columns(dataset, columns or ())
    # every column of each file but the row index pandas stored, as pd.read_parquet reads
    index = _stored_index(dataset) if columns is None else set()
    rng = np.random.default_rng(random_state)
    if shuffle_buffer is not None:
        fragments = [fragments[i] for i in rng.permutation(len(fragments))]
    # Files may differ in their physical types (a dictionary-encoded column in
    # one, plain in another): each batch becomes a DataFrame on its own.
    buffer_rows = max(shuffle_buffer or batch_rows, batch_rows)
    shuffle = rng if shuffle_buffer else None
    pending, n_pending = [], 0
    for fragment in fragments:
        for batch in fragment.to_batches(columns=columns, batch_size=batch_rows):
            part = arrow_to_pandas(batch)
            pending.append(part.drop(columns=[c for c in index if c in part]) if index
                           else part)
            n_pending += batch.num_rows
            if n_pending >= buffer_rows:
                frame = _buffered(pending, shuffle)
                full = len(frame) - len(frame) % batch_rows
                for start in range(0, full, batch_rows):
                    yield frame.iloc[start:start + batch_rows]
                # the rows short of a whole frame wait for the next buffer
                pending = [frame.iloc[full:]] if full < len(frame) else []
                n_pending = len(frame) - full
    if n_pending:
        frame = _buffered(pending, shuffle)
        for start in range(0, len(frame), batch_rows):
            yield frame.iloc[start:start + batch_rows]


def _buffered(pending, rng):
    """The pending frames as one, shuffled by ``rng`` (unless None), with a fresh index."""
    frame = pd.concat(pending, ignore_index=True) if len(pending) > 1 else pending[0]
    if rng is not None:
        frame = frame.take(rng.permutation(len(frame)))
    return frame.reset_index(drop=True)


def parquet_categories(source, columns):
    """The distinct non-missing values of each of ``columns`` over a whole Parquet data set.

    Reads only those columns, one record batch at a time; pass the result as
    an estimator's ``categories``.

    Parameters
    ----------
    source : str, path-like or list of them
        A Parquet file, a folder of Parquet files, or a list of files.
    columns : str or list of str
        The categorical columns.

    Returns
    -------
    categories : dict
        ``{column: sorted list of values}``.

    Examples
    --------
    >>> import os, tempfile
    >>> import pandas as pd
    >>> from skmtl import MMOEClassifier
    >>> from skmtl.parquet import parquet_categories
    >>> folder = tempfile.mkdtemp()
    >>> for part, cities in enumerate([["Paris", "Oslo"], ["Oslo", None, "Rome"]]):
    ...     pd.DataFrame({"city": cities}).to_parquet(os.path.join(folder, f"{part}.parquet"))
    >>> categories = parquet_categories(folder, ["city"])
    >>> categories
    {'city': ['Oslo', 'Paris', 'Rome']}
    >>> model = MMOEClassifier(categories=categories)  # ready for partial_fit on any part
    """
    pa = _pyarrow()
    import pyarrow.compute as pc

    columns = _column_names(columns)
    seen = {name: set() for name in columns}
    types = {name: {} for name in columns}  # {type: the first file holding it}
    # file by file, each with its own types (the data set's would cast to the first file's)
    for fragment in _check_columns(_dataset(source), columns):
        for batch in fragment.to_batches(columns=columns):
            for name in columns:
                values = batch.column(name)
                if pa.types.is_dictionary(values.type):
                    values = values.cast(values.type.value_type)
                types[name].setdefault(str(values.type), fragment.path)
                # (v == v: not NaN, which is missing too)
                seen[name].update(v for v in pc.unique(values).to_pylist()
                                  if v is not None and v == v)
    categories = {}
    for name, values in seen.items():
        try:
            categories[name] = sorted(values)
        except TypeError:  # strings in one file, numbers in another, say
            found = ", ".join(f"{kind} in {path}" for kind, path in types[name].items())
            raise ValueError(f"Column {name!r} holds values of types that cannot be "
                             f"compared across the files ({found}); write it with one "
                             "type in every file.") from None
    return categories


def fit_parquet(estimator, source, targets, *, features=None, epochs=1, batch_rows=65_536,
                shuffle_buffer=262_144, classes=None, weight_column=None, random_state=None):
    """Train ``estimator`` on a Parquet data set with :meth:`partial_fit`, ``epochs`` times over.

    Each frame is checked as ``partial_fit`` checks its input, when it is
    reached: a frame it refuses (a NaN weight, an unknown class, ...) stops
    the training with that error, and the model keeps what the frames before
    it taught (as after a loop of ``partial_fit`` calls).

    Parameters
    ----------
    estimator : a skmtl estimator
        Unfitted (the first frame then builds the model), or fitted (training
        continues).
    source : str, path-like or list of them
    targets : str or list of str
        The label columns (one per task, in order); a single name gives a 1-D
        ``y``.
    features : str or list of str, optional
        The feature columns; default: every column but the targets,
        ``weight_column`` and the row index pandas stored with the frame
        (which ``pd.read_parquet`` reads back as the index). Only these,
        the targets and the weights are read; every file must have them.
    epochs : int, default=1
        Passes over the whole data set.
    batch_rows : int, default=65536
        Rows per ``partial_fit`` call.
    shuffle_buffer : int or None, default=262144
        See :func:`iter_frames`; each pass is shuffled anew.
    classes : list of array-like, optional
        Passed to the first ``partial_fit`` call (classifiers).
    weight_column : str, optional
        A column of sample weights.
    random_state : int or None
        Seeds the shuffling of every pass.

    Returns
    -------
    estimator

    Examples
    --------
    >>> import os, tempfile
    >>> from skmtl import MMOEClassifier
    >>> from skmtl.datasets import make_multitask
    >>> from skmtl.parquet import fit_parquet
    >>> data = make_multitask(1000, random_state=0)  # numeric columns only
    >>> folder = tempfile.mkdtemp()
    >>> data.data.join(data.target).to_parquet(os.path.join(folder, "train.parquet"))
    >>> model = fit_parquet(MMOEClassifier(random_state=0), folder, ["task_0", "task_1"],
    ...                     epochs=2, batch_rows=500, random_state=0)
    >>> len(model.history_)  # one partial_fit per frame: 2 passes of 2 frames
    4
    >>> [proba.shape for proba in model.predict_proba(data.data)]
    [(1000, 2), (1000, 2)]
    """
    check_skmtl_estimator(estimator, "fit_parquet")
    _check_count(epochs, "epochs")
    single = isinstance(targets, str)
    target_names = _column_names(targets)
    others = target_names + ([] if weight_column is None else [weight_column])
    dataset = _dataset(source)
    if features is None:
        features = [name for name in _data_columns(dataset) if name not in others]
    features = _column_names(features)
    for name, names in (("targets", target_names), ("features", features)):
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"{name} names {repeated} more than once.")
    both = sorted(set(features) & set(others))
    if both:
        raise ValueError(f"Columns {both} are features and also targets or weight_column; "
                         "a column can be one of them only.")
    columns = features + others
    _check_columns(dataset, columns)
    rng = np.random.default_rng(random_state)
    first = not hasattr(estimator, "net_")
    for epoch in range(1, epochs + 1):
        started, n_rows = time.perf_counter(), 0
        for frame in iter_frames(source, columns, batch_rows=batch_rows,
                                 shuffle_buffer=shuffle_buffer, random_state=rng):
            y = frame[target_names[0]] if single else frame[target_names]
            weight = None if weight_column is None else frame[weight_column].to_numpy()
            estimator.partial_fit(frame[features], y,
                                  classes=classes if first else None, sample_weight=weight)
            first = False
            n_rows += len(frame)
        if not n_rows:
            raise ValueError(f"The Parquet data set {source!r} holds no rows; nothing to fit.")
        if estimator.verbose:  # partial_fit printed a line per frame
            print(f"fit_parquet: pass {epoch}/{epochs} over {n_rows:,} rows in "
                  f"{time.perf_counter() - started:.1f} s")
    return estimator


def predict_parquet(estimator, source, destination, *, batch_rows=65_536, keep_columns=()):
    """Predict a Parquet data set block by block into a Parquet file.

    The output has, per task: for a classifier ``proba_<task>``, the
    probability of the positive class of a binary task, or
    ``proba_<task>_<class>`` per class of a multiclass one; for a regressor
    ``prediction_<task>``. ``keep_columns`` are copied from the input (ids,
    say; they may be features too), with one type over all the files (a
    column of integers in one file and of floats in another is written as
    floats). A model fitted on named columns reads only those (and the kept
    ones) from the input; one fitted on an array reads every column but the
    kept ones (and the row index pandas stored with a frame), in the order
    of the data set's schema (its first file), whatever the order in each
    file.

    Parameters
    ----------
    estimator : a fitted skmtl estimator
    source : str, path-like or list of them
    destination : str or path-like
        The Parquet file to write, outside ``source``. A local file is
        written under a temporary name and replaces ``destination`` only once
        complete: a failed run leaves ``destination`` as it was. A URI
        (``s3://...``) goes to pyarrow's file systems, written in place.
    batch_rows : int, default=65536
    keep_columns : str or sequence of str, default=()

    Examples
    --------
    >>> import os, tempfile
    >>> import pandas as pd
    >>> from skmtl import MMOEClassifier
    >>> from skmtl.datasets import make_multitask
    >>> from skmtl.parquet import predict_parquet
    >>> data = make_multitask(1000, random_state=0)
    >>> model = MMOEClassifier(max_epochs=1, random_state=0).fit(data.data, data.target)
    >>> folder = tempfile.mkdtemp()
    >>> data.data.assign(id=range(1000)).to_parquet(os.path.join(folder, "new.parquet"))
    >>> predict_parquet(model, os.path.join(folder, "new.parquet"),
    ...                 os.path.join(folder, "scores.parquet"), keep_columns=["id"])
    >>> scores = pd.read_parquet(os.path.join(folder, "scores.parquet"))
    >>> scores.shape, list(scores.columns)
    ((1000, 3), ['id', 'proba_task_0', 'proba_task_1'])
    """
    pa = _pyarrow()
    check_skmtl_estimator(estimator, "predict_parquet")
    check_is_fitted(estimator)
    keep_columns = _column_names(keep_columns)
    check_kept_columns(estimator, keep_columns)
    is_uri = "://" in os.fspath(destination)
    if not is_uri:
        _check_destination(source, destination)
    dataset = _dataset(source)
    names = getattr(estimator, "feature_names_in_", None)
    fitted_on_array = names is None
    features = ([name for name in _data_columns(dataset) if name not in keep_columns]
                if fitted_on_array else list(names))
    columns = list(dict.fromkeys([*keep_columns, *features]))
    kept_types = _unified_types(_check_columns(dataset, columns), keep_columns)
    with (contextlib.nullcontext(destination) if is_uri
          else replaced_on_success(destination)) as file:
        writer = None
        try:
            for frame in iter_frames(source, columns, batch_rows=batch_rows):
                output = frame[keep_columns].reset_index(drop=True)
                X = frame[features]
                if fitted_on_array:  # column positions, as in fit: no feature names
                    X = X.set_axis(range(len(features)), axis=1)
                for name, values in prediction_columns(estimator, X):
                    output[name] = values
                table = _cast_columns(pa.Table.from_pandas(output, preserve_index=False),
                                      kept_types)
                if writer is None:
                    writer = pa.parquet.ParquetWriter(file, table.schema)
                writer.write_table(table)
        finally:
            if writer is not None:
                writer.close()
        if writer is None:
            raise ValueError(f"The Parquet data set {source!r} holds no rows; nothing was "
                             f"written to {destination!r}.")


__all__ = ["fit_parquet", "iter_frames", "parquet_categories", "predict_parquet"]
