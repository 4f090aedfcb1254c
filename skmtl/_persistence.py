"""Saving and loading fitted estimators in a format that executes no code on load.

A model file is a zip archive with two members:

``skmtl.json``
    The estimator's class, parameters and metadata requests, the fitted
    encoders, the tasks and their classes, the training history, the skmtl
    and torch versions that wrote it, the format version, and the SHA-256 of
    the weights.
``weights.pt``
    The module's, the optimizer's and the loss weighting's ``state_dict``, read back with
    ``torch.load(weights_only=True)``, which only rebuilds tensors and plain
    containers.

Nothing is unpickled: a file crafted to run code fails to load.
"""

import hashlib
import io
import json
import math
import os
import pickle
import warnings
import zipfile
import zlib

try:
    import lzma
    _DECOMPRESSION_ERRORS = (lzma.LZMAError,)
except ImportError:  # a Python built without lzma cannot read such members anyway
    _DECOMPRESSION_ERRORS = ()

import numpy as np
import pandas as pd
import sklearn
import torch
from skorch.history import History

from ._encoding import TabularEncoder
from ._files import replaced_on_success

FORMAT = "skmtl-model"
# A member that claims to expand more than this when read is refused before it
# is read (a zip bomb would fill memory); save stores uncompressed a description
# that would (the JSON of thousands of 0/1 columns expands ~40-fold, that of
# categories padded with spaces several hundred-fold).
_MAX_EXPANSION = 200
# 2: numeric encodings (the encoder's "numeric" state), skmtl's own Adam.
# 3: the model family and regressors (targets' mean and scale), per-task
#    tower_units. Format 2 files are read too (they hold classifiers only).
# 4: the loss weighting's learned state; objectives' parameters (task_weights,
#    loss_weighting, scoring, ...), their defaults for older files.
# 5: dict parameters with keys other than strings (column positions in
#    categories and hash_buckets) as {"__items__": [[key, value], ...]}.
# 6: batch_norm (batch normalisation's running statistics among the weights).
# 7: leaf_trees (the encoder's boosted trees; their nodes among the weights too).
# 8: frequent_values (the numeric columns' frequent values, in the encoder's
#    "numeric" state; their embeddings among the weights).
# 9: the precision each numeric column's frequent values are compared in
#    ("frequent_dtypes"; float64, as before, for the files of format 8).
# 10: cross_layers (the cross network's factors among the weights).
FORMAT_VERSION = 10
OLDEST_READABLE_FORMAT = 2
_CONFIG = "skmtl.json"
_ITEMS = "__items__"  # a dict whose keys are not all strings, as [key, value] pairs
_WEIGHTS = "weights.pt"
_ROUTED_METHODS = ("fit", "partial_fit", "score")  # the methods that take metadata
# Parameters added since models could be saved or pickled (joblib), with the value that
# keeps the network and the loss of a model written before (not always the default).
PARAMETERS_ADDED = {"batch_norm": False, "counterfactual_constraint_weight": 0.1,
                    "leaf_trees": 0, "frequent_values": None, "cross_layers": 0}


def save(estimator, path):
    """Write a fitted estimator to ``path`` (see :meth:`MultiTaskClassifierBase.save`)."""
    from . import __version__

    net = estimator.net_
    buffer = io.BytesIO()
    torch.save({"module": _to_cpu(net.module_.state_dict()),
                "optimizer": _to_cpu(net.optimizer_.state_dict()),
                "loss_weighting": _to_cpu(net.loss_weighting_.state_dict())}, buffer)
    weights = buffer.getvalue()
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "skmtl_version": __version__,
        "torch_version": torch.__version__,
        "estimator": type(estimator).__name__,
        # the values the network was built with, if set_params changed them since
        "params": _json_params({**estimator.get_params(deep=False),
                                **estimator._fitted_network_params}),
        "encoder": estimator._encoder.to_dict(),
        "task_names": list(estimator.task_names_),
        "single_output": bool(estimator._single_output),
        **estimator._target_state_to_json(estimator._target_state()),
        "history": _json_history(net.history),
        # the seed of the early-stopping split that warm fits hold out again
        "split_seed": getattr(estimator, "_split_seed", None),
        "metadata_requests": _metadata_requests(estimator),
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
    }
    description = json.dumps(config, allow_nan=True).encode()
    # compressed unless load would take it for a bomb (long padded strings among
    # the categories compress several hundred times); the weights barely compress
    deflate = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)  # zipfile's
    compressed_size = len(deflate.compress(description) + deflate.flush())
    description_compression = (zipfile.ZIP_DEFLATED
                               if _expansion_allowed(len(description), compressed_size)
                               else zipfile.ZIP_STORED)
    with replaced_on_success(path) as f, zipfile.ZipFile(f, "w") as zf:
        zf.writestr(_CONFIG, description, compress_type=description_compression)
        zf.writestr(_WEIGHTS, weights, compress_type=zipfile.ZIP_STORED)


def load(path, device=None):
    """Load an estimator written by ``save``.

    Parameters
    ----------
    path : str or path-like
    device : str or torch.device, optional
        Where to put the network; default: the device it was trained on, or
        the CPU (with a warning) when that device is not available here.

    Returns
    -------
    estimator : a skmtl estimator (``MMOEClassifier``, ``PLERegressor``, ...)
        Fitted, with the same predictions as the saved one.

    Raises
    ------
    ValueError
        If the file is not a skmtl model, is truncated or tampered with, or
        was written by an incompatible version.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> import skmtl
    >>> from skmtl.datasets import make_multitask
    >>> data = make_multitask(1000, random_state=0)
    >>> model = skmtl.MMOEClassifier(max_epochs=2, random_state=0).fit(data.data, data.target)
    >>> path = os.path.join(tempfile.mkdtemp(), "mmoe.skmtl")
    >>> model.save(path)
    >>> loaded = skmtl.load(path)
    >>> all(np.array_equal(a, b) for a, b in zip(loaded.predict_proba(data.data),
    ...                                          model.predict_proba(data.data)))
    True
    """
    if device is not None:
        from ._base import checked_device  # _base imports this module

        checked_device(device)
    path = os.fspath(path)
    try:
        archive = zipfile.ZipFile(path)   # a missing file stays a FileNotFoundError
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile) as exc:
        raise ValueError(f"{path} is not a valid skmtl model file ({exc}).") from None
    try:
        with archive:
            config_bytes, weights = (_read_member(archive, name) for name in (_CONFIG, _WEIGHTS))
    except (zipfile.BadZipFile, KeyError, EOFError, zipfile.LargeZipFile, zlib.error,
            RuntimeError, NotImplementedError, OSError, *_DECOMPRESSION_ERRORS) as exc:
        # (a damaged bzip2 member raises OSError)
        raise ValueError(f"{path} is not a valid skmtl model file ({exc}).") from None
    try:
        config = json.loads(config_bytes)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"{path}: the model description is not valid JSON ({exc}).") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ValueError(f"{path} is not a skmtl model file.")
    version = config.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{path} uses model format {version!r}, written by skmtl "
            f"{config.get('skmtl_version')}; this skmtl reads format {FORMAT_VERSION}. "
            "Upgrade skmtl to load it.")
    if version < OLDEST_READABLE_FORMAT:
        # Format 1 was only written by development versions before numeric encodings.
        raise ValueError(
            f"{path} uses model format {version}, written by skmtl "
            f"{config.get('skmtl_version')}, a development version whose models this skmtl "
            f"cannot read (it reads formats {OLDEST_READABLE_FORMAT} to {FORMAT_VERSION}); "
            "fit the model again and save it.")
    if hashlib.sha256(weights).hexdigest() != config.get("weights_sha256"):
        raise ValueError(f"{path}: the weights do not match their checksum; the file is "
                         "corrupted or was modified.")
    classes = _estimator_classes()
    if not isinstance(config.get("estimator"), str) or config["estimator"] not in classes:
        raise ValueError(f"{path}: unknown estimator {config.get('estimator')!r}.")
    try:
        state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
        raise ValueError(f"{path}: the weights cannot be read safely ({exc}).") from None
    try:
        estimator_class = classes[config["estimator"]]
        # a file written before a parameter existed: the value it was fitted with
        added = {name: value for name, value in PARAMETERS_ADDED.items()
                 if name in estimator_class._get_param_names()}
        estimator = estimator_class(**{**added, **_params_from_json(config["params"])})
        estimator._validate_params()
        estimator._check_hyperparameters()
        device = _available_device(estimator.device if device is None else device,
                                   asked=device is not None)
        # where the network is now, so that training it further stays there
        estimator.set_params(device=str(device))
        split_seed = config.get("split_seed")
        if split_seed is not None and not (type(split_seed) is int and 0 <= split_seed < 2 ** 32):
            raise ValueError(f"split_seed={split_seed!r} is not a seed (an int below 2**32).")
        estimator._split_seed = split_seed
        task_names = [str(name) for name in config["task_names"]]
        single_output = config["single_output"]
        if not isinstance(single_output, bool) or (single_output and len(task_names) != 1):
            raise ValueError(f"single_output={single_output!r} with {len(task_names)} tasks.")
        if not (isinstance(state, dict) and isinstance(state.get("optimizer"), dict)
                and isinstance(state["optimizer"].get("state"), dict)
                and isinstance(state["optimizer"].get("param_groups"), list)):
            raise ValueError("the weights file does not hold an optimizer state.")
        _set_metadata_requests(estimator, config.get("metadata_requests", {}))
        if version >= 9 and "frequent_dtypes" not in config["encoder"]["numeric"]:
            raise ValueError("the encoder's frequent values have no precisions.")
        return estimator._restore_fitted(
            encoder=TabularEncoder.from_dict(config["encoder"]),
            task_names=task_names,
            target_state=estimator_class._target_state_from_json(config, len(task_names)),
            single_output=single_output,
            module_state=state["module"],
            optimizer_state=state["optimizer"],
            loss_weighting_state=state.get("loss_weighting"),
            history=History(config["history"]),
            device=device,
        )
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, OverflowError) as exc:
        raise ValueError(f"{path}: the model description is invalid or does not match its "
                         f"weights ({type(exc).__name__}: {exc}).") from None


def _metadata_requests(estimator):
    """What ``set_fit_request`` and the like asked for: ``{method: {parameter: request}}``.

    Only the requests set (True, False or an alias); the rest keep their default.
    """
    routing = estimator.get_metadata_routing()
    requests = {}
    for method in _ROUTED_METHODS:
        asked = {name: value for name, value in getattr(routing, method).requests.items()
                 if isinstance(value, bool) or (isinstance(value, str)
                                                and not value.startswith("$"))}
        if asked:
            requests[method] = asked
    return requests


def _set_metadata_requests(estimator, requests):
    """Set the requests :func:`_metadata_requests` read (``set_fit_request(...)``...)."""
    if not isinstance(requests, dict) or not all(
            method in _ROUTED_METHODS and isinstance(asked, dict)
            for method, asked in requests.items()):
        raise ValueError(f"metadata_requests={requests!r} is not a set of requests.")
    with sklearn.config_context(enable_metadata_routing=True):
        for method, asked in requests.items():
            getattr(estimator, f"set_{method}_request")(**asked)


def _read_member(zf, name):
    """The bytes of member ``name``: once in the archive, and not a decompression bomb."""
    infos = [info for info in zf.infolist() if info.filename == name]
    if len(infos) != 1:
        raise zipfile.BadZipFile(f"{len(infos)} members named {name!r}")
    info = infos[0]
    if not _expansion_allowed(info.file_size, info.compress_size):
        raise zipfile.BadZipFile(f"{name!r} would expand {info.compress_size} bytes to "
                                 f"{info.file_size}")
    return zf.read(info)


def _expansion_allowed(size, compressed_size):
    """Whether a member of ``compressed_size`` bytes may expand to ``size`` when read."""
    return size <= _MAX_EXPANSION * compressed_size + 2 ** 20


def _estimator_classes():
    """The public estimators of skmtl, by class name."""
    import skmtl
    from ._base import MultiTaskEstimatorBase

    return {name: value for name, value in vars(skmtl).items()
            if isinstance(value, type) and issubclass(value, MultiTaskEstimatorBase)}


def _to_cpu(state):
    if isinstance(state, torch.Tensor):
        return state.detach().cpu()
    if isinstance(state, dict):
        return {key: _to_cpu(value) for key, value in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(_to_cpu(value) for value in state)
    return state


def _json_params(params):
    out = {}
    for name, value in params.items():
        if isinstance(value, torch.device):
            value = str(value)
        elif isinstance(value, np.random.RandomState):
            warnings.warn("random_state is a RandomState instance; it is saved as None.",
                          UserWarning, stacklevel=3)
            value = None
        value = json_value(value)
        if not _is_json(value):
            raise TypeError(f"cannot save parameter {name}={value!r} as JSON.")
        out[name] = value
    return out


def json_value(value):
    """Tuples, arrays (NumPy's, torch's) and pandas' 1-D containers as lists, NumPy and
    torch scalars as Python ones.

    A dict whose keys are not all strings (column positions, tuples naming
    the columns of a MultiIndex), or that has the key ``"__items__"``,
    becomes ``{"__items__": [[key, value], ...]}``, so that its keys come
    back as they were (a tuple key as a list, read back as a tuple). Applied
    recursively; parameter values that are equal in content come out equal
    (the warm-start check compares them so).
    """
    if isinstance(value, torch.Tensor):  # (task_weights=torch.tensor([1., 2.]), say)
        value = value.detach().cpu().numpy()
        return json_value(value) if value.ndim else value.item()
    if isinstance(value, (tuple, list, np.ndarray, pd.Index, pd.Series,
                          pd.api.extensions.ExtensionArray)):
        return [json_value(item) for item in value]
    if isinstance(value, dict):
        if all(isinstance(key, str) for key in value) and _ITEMS not in value:
            return {str(key): json_value(item) for key, item in value.items()}
        return {_ITEMS: [[json_value(key), json_value(item)] for key, item in value.items()]}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _from_json_value(value):
    """Inverse of :func:`json_value` for dicts: ``{"__items__": ...}`` back to a dict."""
    if isinstance(value, list):
        return [_from_json_value(item) for item in value]
    if isinstance(value, dict):
        if set(value) != {_ITEMS}:
            return {key: _from_json_value(item) for key, item in value.items()}
        items = value[_ITEMS]
        if not isinstance(items, list) or not all(
                isinstance(item, list) and len(item) == 2 and _is_json_key(item[0])
                for item in items):
            raise ValueError(f"{_ITEMS} must be a list of [key, value] pairs")
        return {_from_json_key(key): _from_json_value(item) for key, item in items}
    return value


def _is_json_key(key):
    """Whether ``key`` is a dict key as :func:`json_value` writes one (a list: a tuple)."""
    if isinstance(key, list):
        return all(_is_json_key(part) for part in key)
    return isinstance(key, (str, int, float, bool, type(None)))


def _from_json_key(key):
    return tuple(_from_json_key(part) for part in key) if isinstance(key, list) else key


def _is_json(value):
    if isinstance(value, list):
        return all(_is_json(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and _is_json(item) for key, item in value.items())
    return isinstance(value, (str, int, float, bool, type(None)))


def _params_from_json(params):
    if not isinstance(params, dict):
        raise ValueError("params must be a mapping")
    params = _from_json_value(params)
    # Hidden-layer sizes are tuples in the estimators' signatures.
    return {name: _units_from_json(value) if name.endswith("_units") else value
            for name, value in params.items()}


def _units_from_json(value):
    """Layer widths as a tuple; per task, a list or dict of tuples, as the user gave them."""
    if isinstance(value, dict):
        return {key: _units_from_json(item) for key, item in value.items()}
    if isinstance(value, list) and value and all(isinstance(item, list) for item in value):
        return [tuple(item) for item in value]
    if isinstance(value, list):
        return tuple(value)
    return value


def _json_history(history):
    rows = []
    for row in history:
        rows.append({key: value for key, value in row.items()
                     if key != "batches" and isinstance(value, (int, float, str))
                     and not (isinstance(value, float) and math.isinf(value))})
    return rows


def _available_device(device, asked=False):
    """``device``, or the CPU with a warning when it is CUDA and this machine has none.

    ``asked``: the caller of ``load`` named the device (else it is the one
    the model was trained on).
    """
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        where = (f"device={str(device)!r} was asked for" if asked else
                 f"The model was trained on {device}")
        warnings.warn(f"{where}, but CUDA is not available here; the model is loaded on the "
                      "CPU.", UserWarning, stacklevel=3)
        return torch.device("cpu")
    return device
