"""The estimator layer shared by every multi-task model: classifiers and regressors."""

import contextlib
import copy
import functools
import threading
import types
import warnings
from abc import abstractmethod
from numbers import Integral, Real

import numpy as np
import pandas as pd
import torch
from sklearn.base import (BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context,
                          is_regressor)
from sklearn.metrics import r2_score
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, RealNotInt, StrOptions
from sklearn.utils.validation import _check_sample_weight, check_is_fitted
from skorch.helper import predefined_split

from ._encoding import (BIN_STRATEGIES, FREQUENT_VALUES, MAX_HASH_BUCKETS, MAX_LEAF_TREES,
                        NUMERIC_ENCODINGS, UNKNOWN_CODE, NumericEncoding, TabularEncoder,
                        array_from_json, array_to_json, check_features, check_label_type,
                        check_targets, deviation_unit, encode_labels, known_labels,
                        label_classes)
from . import _distributed, _persistence, _predict
from ._optim import Adam, fused_adam_supported
from ._training import (BatchIterator, BestWeightsEarlyStopping, LearningRateSchedule,
                        MultiTaskNet, TensorData, rank_zero_sink)
from .nn import (FeatureEmbedding, MultiTaskLoss, MultiTaskSquaredLoss, PeriodicEmbedding,
                 PiecewiseLinearEmbedding)
from .nn.layers import batch_statistics
from .nn.weighting import LOSS_WEIGHTINGS
from .exceptions import TrainingInterruptedWarning

# Prediction feeds the network PREDICT_BATCH_SIZE rows at a time at most
# (skmtl._predict encodes several batches at a time). With 8192-row batches
# glibc often handed the heap back to the system after every batch and the
# next batch faulted it in again (see benchmarks/README). Wide tables get
# smaller batches: the embeddings hold (batch, columns, width) tensors,
# about PREDICT_BATCH_FLOATS floats at most (16,384 rows of 1,000 periodic
# columns took 1.3 GB in batches of 4096, 68 MB and less time in the 116 rows
# this gives).
PREDICT_BATCH_SIZE = 4096
PREDICT_BATCH_FLOATS = 2 ** 24
# batch_size="auto": 1/64 of the training rows, within this range, so that
# small data sets still get enough steps (a floor of 128 left 2,000 rows 84
# steps in 6 epochs: see benchmarks/README) and large ones a fast epoch.
AUTO_BATCH_SIZE_RANGE = (32, 1024)
# sparse_embeddings="auto": sparse updates from this many values in the
# embedding table (262,144 rows of 8). Below it, updating the whole table
# is as fast or faster; above it, the dense update's cost grows with the table
# (benchmarks/README.md, "Sparse embedding updates").
AUTO_SPARSE_EMBEDDING_VALUES = 2 ** 21
# loss weightings that compute every task's gradient of the shared parameters
# (the embedding tables among them) as dense matrices
_GRADIENT_WEIGHTINGS = ("gradnorm", "pcgrad")
# sample_weight (and task_weights) within what float32 sums of weighted losses can hold
MIN_SAMPLE_WEIGHT, MAX_SAMPLE_WEIGHT_SUM = 1e-20, 1e30
# The network's sizes are bounded far beyond any useful value (a layer of MAX_UNITS units
# on as many inputs holds 4 billion weights), so that a size of 10**12 is a clear error,
# not an allocation that fills the memory, and a saved file naming such sizes is refused
# before anything is built.
MAX_UNITS, MAX_EXPERTS, MAX_LEVELS, MAX_CROSS_LAYERS = 65_536, 1_024, 64, 64


def _check_units(name, units, allow_empty=True):
    if isinstance(units, (str, bytes, dict)) or not np.iterable(units):
        raise ValueError(f"{name} must be a sequence of positive integers; got {units!r}.")
    units = tuple(units)
    if not all(isinstance(u, Integral) and not isinstance(u, bool) and 1 <= u <= MAX_UNITS
               for u in units):
        raise ValueError(f"{name} must be a sequence of integers from 1 to {MAX_UNITS}; got "
                         f"{units!r}.")
    if not units and not allow_empty:
        raise ValueError(f"{name} needs at least one layer; got {units!r}.")
    return tuple(int(u) for u in units)


def _by_task_name(mapping, parameter):
    """``mapping`` keyed by task names, the strings of y's column names (0 -> "0")."""
    by_name = {}
    for task, value in mapping.items():
        if str(task) in by_name:
            raise ValueError(f"{parameter} names task {str(task)!r} twice (keys are read as "
                             f"task names, their strings); got keys {list(mapping)}.")
        by_name[str(task)] = value
    return by_name


def _check_tower_units(tower_units):
    """``tower_units`` as ``("all", units)``, ``("list", [units, ...])`` or ``("dict", {...})``."""
    message = ("tower_units must be a sequence of positive integers (the same tower for every "
               "task), a list of such sequences (one per task) or a dict {task_name: "
               f"sequence}}; got {tower_units!r}.")
    if isinstance(tower_units, dict):
        return "dict", {task: _check_units(f"tower_units[{task!r}]", units)
                        for task, units in _by_task_name(tower_units, "tower_units").items()}
    if isinstance(tower_units, (str, bytes)) or not np.iterable(tower_units):
        raise ValueError(message)
    items = list(tower_units)
    if all(isinstance(u, Integral) for u in items):
        return "all", _check_units("tower_units", items)
    if all(np.iterable(u) and not isinstance(u, (str, bytes, dict)) for u in items):
        return "list", [_check_units(f"tower_units[{t}]", u) for t, u in enumerate(items)]
    raise ValueError(message)


# The defaults of the MMoE, OMoE, PLE and Shared-Bottom classifiers where they differ
# from the signatures they share with the regressors (ESMM and AITM keep those too):
# batch normalisation with a stronger weight decay, in 4 epochs. Measured on Census
# and other data in benchmarks/README.md ("Batch normalisation by default"); on
# regression tables and on the funnels batch normalisation lost.
CLASSIFIER_DEFAULTS = {"batch_norm": True, "weight_decay": 1e-4, "max_epochs": 4}


def with_defaults(**defaults):
    """Class decorator: the class's ``__init__`` with other keyword defaults.

    A classifier and a regressor of one network share an ``__init__`` (its
    signature lists every parameter, as scikit-learn reads them from it);
    where the measured defaults differ, the decorated class gets a copy of
    that ``__init__`` whose signature says its own.
    """
    def decorate(cls):
        init = cls.__init__
        unknown = sorted(set(defaults) - set(init.__kwdefaults__))
        if unknown:
            raise TypeError(f"{cls.__name__}.__init__ has no keyword parameters {unknown}")
        copied = types.FunctionType(init.__code__, init.__globals__, init.__name__,
                                    init.__defaults__, init.__closure__)
        copied.__kwdefaults__ = {**init.__kwdefaults__, **defaults}
        copied.__qualname__ = f"{cls.__qualname__}.__init__"
        copied.__module__ = cls.__module__
        copied.__doc__ = init.__doc__
        cls.__init__ = copied
        return cls
    return decorate


class MultiTaskEstimatorBase(BaseEstimator):
    """Input validation, encoding, training and prediction shared by all models.

    Two layers of subclasses say the rest. A kind of estimator
    (:class:`MultiTaskClassifierBase`, :class:`MultiTaskRegressorBase`) says
    how targets are checked and encoded, which loss fits them and what
    prediction returns. A model says its network (:meth:`_build_module`),
    its parameters, and any rules of its labels. See
    :class:`skmtl.MMOEClassifier` for the parameters.
    """

    _parameter_constraints = {
        "tower_units": ["array-like", dict],
        "categorical_features": ["array-like", StrOptions({"from_dtype"}), None],
        "categories": [dict, None],
        "hash_buckets": [Interval(Integral, 1, MAX_HASH_BUCKETS, closed="both"), dict, None],
        "embedding_dim": [Interval(Integral, 1, MAX_UNITS, closed="both")],
        "sparse_embeddings": [StrOptions({"auto"}), "boolean"],
        "numeric_encoding": [StrOptions({"auto", *NUMERIC_ENCODINGS})],
        "n_bins": [Interval(Integral, 2, None, closed="left")],
        "bin_strategy": [StrOptions(set(BIN_STRATEGIES))],
        "frequent_values": [StrOptions(set(FREQUENT_VALUES)), None],
        "leaf_trees": [Interval(Integral, 0, MAX_LEAF_TREES, closed="both")],
        "cross_layers": [Interval(Integral, 0, MAX_CROSS_LAYERS, closed="both")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "batch_norm": ["boolean"],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "learning_rate_schedule": [StrOptions({"cosine", "constant"})],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "early_stopping": [StrOptions({"auto"}), "boolean"],
        "validation_fraction": [
            Interval(RealNotInt, 0, 1, closed="neither"),
            Interval(Integral, 1, None, closed="left"),
            None,
        ],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "scoring": [StrOptions({"loss", "roc_auc", "r2"})],  # by kind: _SCORINGS
        "task_weights": ["array-like", dict, None],
        "loss_weighting": [StrOptions(set(LOSS_WEIGHTINGS))],
        "gradnorm_alpha": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
        "device": [str, torch.device],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
    }

    # Early stopping "auto" turns on above this many samples, as in
    # HistGradientBoostingClassifier.
    _AUTO_EARLY_STOPPING_MIN_SAMPLES = 10_000
    # Parameters that shape the fitted encoder and network; a model adds its
    # own in _MODEL_NETWORK_PARAMS. A warm start keeps both, so they may not
    # change between fits, and a saved model records the fitted values.
    _NETWORK_PARAMS = ("categorical_features", "categories", "hash_buckets", "embedding_dim",
                       "numeric_encoding", "n_bins", "bin_strategy", "frequent_values",
                       "leaf_trees", "cross_layers", "dropout", "batch_norm", "tower_units",
                       "loss_weighting")
    _MODEL_NETWORK_PARAMS = ()
    # What the validation pass scores per task ("auc" or "r2"), in history_,
    # and the values of ``scoring`` (the mean of those scores, or the loss).
    _VALIDATION_METRIC = "auc"
    _SCORINGS = ("loss", "roc_auc")

    def _set_init_params(self, values):
        """Store a model's ``__init__`` arguments (its ``locals()``) as attributes.

        scikit-learn reads the parameters from each model's ``__init__``
        signature, which therefore lists them all; this spares every model
        from repeating them once more in the body. What the calling
        ``__init__`` received is stored, not the names of ``type(self)``'s
        signature: a user's subclass may add parameters or hide some.
        """
        for name, value in values.items():
            if name not in ("self", "__class__"):
                setattr(self, name, value)

    # -- what a model says about itself ----------------------------------------

    @abstractmethod
    def _build_module(self, embedding, task_output_dims, tower_units):
        """Return the ``torch.nn.Module`` for this fit.

        Parameters
        ----------
        embedding : dict
            The keyword arguments of :class:`skmtl.nn.FeatureEmbedding`'s
            inputs that every network in :mod:`skmtl.nn` takes
            (``cardinalities``, ``n_numeric``, ``embedding_dim``,
            ``padding_codes``, ``numeric_embedding``, ``leaf_trees``,
            ``cross_layers``).
        task_output_dims : list of int
            Outputs per task (1 for a binary task or a regression target).
        tower_units : list of tuples of int
            Hidden layer widths of each task's tower.
        """

    def _prepare_labels(self, columns, task_names, single_output):
        """Check model-specific label rules; return the label columns to encode."""
        return columns

    # -- what a kind of estimator (classifier, regressor) says -------------------

    @abstractmethod
    def _local_target_state(self, columns, task_names, fit_weight):
        """What these labels say of the targets (classes, scaling), before the ranks agree.

        ``fit_weight`` is the weight of each row in what is learned from the
        targets (0 on the validation rows), or None.
        """

    @abstractmethod
    def _agreed_target_state(self, states, task_names):
        """The target state from every rank's :meth:`_local_target_state` (one outside a
        process group); raises if the targets cannot be trained on."""

    @abstractmethod
    def _encoded_targets(self, columns, task_names, target_state):
        """The targets as float32 ``(n, n_tasks)``, NaN where unknown."""

    def _encode_targets(self, columns, task_names, warm, sample_weight):
        """``(targets, target_state)``: the fitted state when ``warm``, else these labels'."""
        target_state = (self._target_state() if warm else self._agreed_target_state(
            [self._local_target_state(columns, task_names, sample_weight)], task_names))
        return self._encoded_targets(columns, task_names, target_state), target_state

    @abstractmethod
    def _task_output_dims(self, target_state):
        """Outputs of the network per task."""

    def _label_frequencies(self, targets, weight, target_state):
        """What the network's outputs start at (see ``init_output_bias`` of the modules in
        :mod:`skmtl.nn`); None: its initial weights as they are."""
        return None

    @abstractmethod
    def _build_criterion(self, task_output_dims):
        """Return the loss module: ``(outputs, target, weight) -> per-task losses``."""

    @abstractmethod
    def _set_target_state(self, target_state, single_output):
        """Set the fitted attributes that describe the targets."""

    @abstractmethod
    def _target_state(self):
        """What :meth:`_agreed_target_state` returned in fit."""

    # -- fit ---------------------------------------------------------------------

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model to features ``X`` and targets ``y``.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
        y : array-like or DataFrame of shape (n_samples, n_tasks) or (n_samples,)
            One column per task; DataFrame column names become ``task_names_``.
        sample_weight : array-like of shape (n_samples,), optional
            Weights of the rows in every task's loss.

        Returns
        -------
        self
        """
        warm = self.warm_start and hasattr(self, "net_")
        ranks = _distributed.world()
        # Under torch.distributed each block of rank-local work runs inside an
        # agreement: an error on one rank is raised on every rank, and what the
        # ranks share (agreed.share) reaches every rank (agreed.shared) when the
        # block ends. Outside a process group, agreed.shared is [agreed.share].
        with _distributed.agreement(ranks) as agreed:
            if ranks:
                self._check_distributed(warm)
            X, columns, task_names, single_output = self._checked_input(X, y)
            n_samples = X.shape[0]
            if warm:
                self._check_same_tasks(task_names, single_output, "warm_start refit")
            if not warm:
                self._tower_units_per_task(task_names)  # check the names before any work
            task_weights = self._task_weights(task_names)
            sample_weight = _checked_sample_weight(sample_weight, X)
            if warm:
                self._check_network_unchanged()
            if ranks:
                agreed.signature = {
                    "parameters": _distributed.parameters_signature(self),
                    "columns": (X.shape[1], list(map(str, getattr(X, "columns", [])))),
                    "tasks": (task_names, single_output)}
            agreed.share = (n_samples, sample_weight is not None)
        early_stopping = self._early_stopping_enabled(sum(n for n, _ in agreed.shared))
        if sample_weight is None and any(weighted for _, weighted in agreed.shared):
            # another rank's rows are weighted: this rank's weigh 1 each
            sample_weight = np.ones(n_samples, np.float32)

        with _distributed.agreement(ranks) as agreed:
            rng = check_random_state(self.random_state)
            split_seed = self._split_seed_of(rng, warm)
            train_rows, valid_rows = self._split_rows(
                n_samples, np.random.RandomState(split_seed), early_stopping)
            if valid_rows is not None and isinstance(self.random_state, Integral):
                # an int's own stream goes on as if the split were its first draw (it
                # is, unless a warm fit keeps the first fit's int)
                rng.permutation(n_samples)
            if self.scoring != "loss" and valid_rows is None and early_stopping:
                raise ValueError(f"scoring={self.scoring!r} early-stops on validation rows, but "
                                 "validation_fraction=None holds none out; set validation_fraction "
                                 "or use scoring='loss'.")
            # The validation rows weigh nothing in what is learned from the data
            # before training (numeric bins read labels; target scaling): early
            # stopping must not have seen them.
            fit_weight = sample_weight
            if valid_rows is not None:
                fit_weight = (np.ones(n_samples, np.float32) if sample_weight is None
                              else sample_weight.copy())
                fit_weight[valid_rows] = 0.0
            if sample_weight is not None and valid_rows is not None:
                for part, rows in (("training", train_rows), ("validation", valid_rows)):
                    if not sample_weight[rows].any():
                        raise ValueError(
                            f"sample_weight is zero on every {part} row of the early-stopping "
                            "split; give more rows a positive weight, or change "
                            "validation_fraction or random_state.")
            _check_known_labels(columns, task_names, fit_weight)
            if not warm:
                agreed.share = self._local_target_state(columns, task_names, fit_weight)
        target_state = (self._target_state() if warm else
                        self._agreed_target_state(agreed.shared, task_names))
        # like HistGradientBoosting's, the score is only read on validation rows
        scoring_weights = (None if valid_rows is None else
                           self._scoring_weights(task_weights, target_state))

        with _distributed.agreement(ranks) as agreed:
            targets = self._encoded_targets(columns, task_names, target_state)
            if warm:
                encoder = self._encoder
                categorical, numeric = encoder.transform(X)
                encoder.warn_categories_outside_vocabulary(X, categorical, "the first fit")
            else:
                encoder = self._new_encoder(rng)
                categorical, numeric = encoder.fit_transform(
                    X, fit_weight, targets, regression=is_regressor(self),
                    n_threads=torch.get_num_threads())
                agreed.signature = {"categorical columns": encoder.categorical_indices_.tolist()}
            agreed.share = (_validation_labels(targets, valid_rows, sample_weight),
                            (encoder.categories_, encoder.numeric_.to_dict()) if ranks else None)
        self._check_scorable([labels for labels, _ in agreed.shared], scoring_weights)
        if ranks:
            encoder = _agreed_encoder(encoder, [fitted for _, fitted in agreed.shared])

        with _distributed.agreement(ranks) as agreed:
            if ranks:
                categorical, numeric = encoder.transform(X)
            train_size = n_samples if valid_rows is None else len(train_rows)
            agreed.share = (train_size, self._batch_size(train_size))
        batch_size = agreed.shared[0][1]  # rank 0's, for "auto"
        # every rank takes as many steps as the smallest shard allows
        steps_per_epoch = min(int(np.ceil(size / batch_size)) for size, _ in agreed.shared)

        data = TensorData(torch.from_numpy(categorical), torch.from_numpy(numeric),
                          torch.from_numpy(targets),
                          None if sample_weight is None else torch.from_numpy(sample_weight))
        train, valid = ((data, None) if valid_rows is None else
                        (data.subset(train_rows), data.subset(valid_rows)))
        missing_labels = bool(np.isnan(targets).any())
        seed = int(rng.randint(np.iinfo(np.int32).max))
        if ranks:
            seed += ranks[0]  # each rank shuffles its shard its own way
        callbacks = self._callbacks(valid, steps_per_epoch, early_stopping)
        epochs_before = len(self.net_.history) if warm else 0

        with _torch_seed(seed, self.device):
            if warm:
                net, before = self._continue_net(
                    target_state, task_weights, scoring_weights, missing_labels,
                    batch_size=batch_size, seed=seed, train_split=self._train_split(valid),
                    callbacks=callbacks)
            else:
                module = self._new_module(
                    encoder, task_names, target_state,
                    self._label_frequencies(targets, fit_weight, target_state))
                net = self._build_net(module, self._task_output_dims(target_state), task_names,
                                      callbacks, self._train_split(valid), seed, self.device,
                                      batch_size, task_weights, scoring_weights,
                                      missing_labels)
                net.initialize()
                if ranks:
                    _distributed.broadcast_module(net.module_)
                    net.distributed = True
                    net.iterator_train__max_batches = steps_per_epoch
            try:
                with _embedding_updates(net.module_, self._sparse_embeddings(net.module_)):
                    net.partial_fit(train)
            except BaseException:
                if warm:  # leave the model as it was before this fit
                    _restore_training_state(net, before)
                raise
            finally:
                # the split holds the validation rows: not to be kept (or pickled) with the model
                net.train_split = None
        if net.interrupted_:
            completed = len(net.history) - epochs_before
            kept = (f"the best weights by {self._monitored(valid)}"
                    if early_stopping and completed else "the latest weights")
            warnings.warn(
                f"fit was interrupted after {completed} complete epoch(s); the model is "
                f"usable and keeps {kept}.", TrainingInterruptedWarning, stacklevel=2)
        self._split_seed = split_seed  # (kept by a fit that succeeded only)
        self._set_fitted(encoder, net, task_names, target_state, single_output)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Train for one pass over the chunk ``X, y``; the first call also builds the model.

        For data that comes in chunks (too big for memory, or arriving over
        time). The first call fixes the tasks, the classes (from ``classes``
        or this chunk's labels), the encoders and, for regressors, the
        targets' scaling; later calls must have the same columns and tasks.
        Categorical vocabularies cannot be learned from one chunk: every
        categorical column needs a pandas ``category`` dtype (its whole
        category list is taken), a vocabulary in ``categories``, or
        ``hash_buckets``. The numeric encodings (scaling, quantiles, bins)
        are learned from the first chunk and then fixed: make it
        representative, or ``fit`` on a sample first and continue with
        ``partial_fit`` (which then keeps ``fit``'s encoders). Training uses
        the constant ``learning_rate`` (the cosine schedule needs the whole
        run's length), no early stopping, and ``batch_size`` ("auto": from
        each chunk's size). ``warm_start`` plays no part.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
        y : array-like or DataFrame of shape (n_samples, n_tasks) or (n_samples,)
        classes : list of array-like, or array-like, optional
            Classifiers: the classes of each task (one array per task, or
            one array for a 1-D ``y``), when a chunk may lack some. Only on
            the first call, whose chunk may then lack a task's labels
            altogether (without them, every task needs a known label there).
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        self
        """
        if _distributed.world():
            raise ValueError("partial_fit is not supported under torch.distributed yet; call "
                             "fit on each rank's shard.")
        if classes is not None and is_regressor(self):
            raise ValueError(f"classes is for classifiers; {type(self).__name__} is a regressor.")
        first = not hasattr(self, "net_")
        # given the classes, a first chunk may lack a task's labels as a later one may
        require_known = first and classes is None
        X, columns, task_names, single_output = self._checked_input(X, y,
                                                                    require_known=require_known)
        n_samples = X.shape[0]
        if not first:
            self._check_same_tasks(task_names, single_output, "partial_fit")
            if classes is not None and not _same_classes(classes, self._target_state(),
                                                         single_output):
                raise ValueError("classes differ from those of the first partial_fit call; "
                                 "the classes are fixed by the first call.")
            self._check_network_unchanged("partial_fit")
        else:
            self._tower_units_per_task(task_names)
        task_weights = self._task_weights(task_names)
        sample_weight = _checked_sample_weight(sample_weight, X)
        rng = check_random_state(self.random_state)
        if first:
            if require_known:
                _check_known_labels(columns, task_names, sample_weight)
            targets, target_state = self._first_chunk_targets(columns, task_names, classes,
                                                              single_output, sample_weight)
            encoder = self._new_encoder(rng)
            categorical, numeric = encoder.fit_transform(
                X, sample_weight, targets, regression=is_regressor(self), first_chunk=True,
                n_threads=torch.get_num_threads())
        else:
            targets, target_state = self._encode_targets(columns, task_names, True, None)
            encoder = self._encoder
            categorical, numeric = encoder.transform(X)
            encoder.warn_categories_outside_vocabulary(X, categorical)
        data = TensorData(torch.from_numpy(categorical), torch.from_numpy(numeric),
                          torch.from_numpy(targets),
                          None if sample_weight is None else torch.from_numpy(sample_weight))
        batch_size = self._batch_size(n_samples)
        # a new seed per chunk: a fixed random_state gives a reproducible sequence
        seed = int(np.random.SeedSequence(
            [int(rng.randint(np.iinfo(np.int32).max)),
             0 if first else len(self.net_.history)]).generate_state(1)[0] >> 1)
        missing_labels = bool(np.isnan(targets).any())
        with _torch_seed(seed, self.device):
            if first:
                module = self._new_module(
                    encoder, task_names, target_state,
                    self._label_frequencies(targets, sample_weight, target_state))
                net = self._build_net(module, self._task_output_dims(target_state), task_names,
                                      callbacks=[], train_split=None, seed=seed,
                                      device=self.device, batch_size=batch_size,
                                      task_weights=task_weights, scoring_weights=None,
                                      missing_labels=missing_labels)
                net.initialize()
            else:
                net, before = self._continue_net(
                    target_state, task_weights, None, missing_labels, batch_size=batch_size,
                    seed=seed, train_split=None, callbacks=[])
                for group in net.optimizer_.param_groups:  # no schedule sets it
                    group["lr"] = float(self.learning_rate)
            try:
                with _embedding_updates(net.module_, self._sparse_embeddings(net.module_)):
                    net.partial_fit(data, epochs=1)
            except BaseException:
                if not first:
                    _restore_training_state(net, before)
                raise
        if net.interrupted_:
            warnings.warn("partial_fit was interrupted; the chunk's epoch was cut short and "
                          "the model keeps the latest weights.", TrainingInterruptedWarning,
                          stacklevel=2)
        self._set_fitted(encoder, net, task_names, target_state, single_output)
        return self

    def _checked_input(self, X, y, require_known=True):
        """Check the parameters and the data of a fit: ``(X, label columns, task names,
        single_output)``.

        ``require_known``: every task needs a known label (not so in a later
        ``partial_fit`` chunk, which may hold no label of some task).
        """
        self._check_hyperparameters()
        self._check_device()
        name = type(self).__name__
        X = check_features(X, name)
        columns, task_names, single_output = check_targets(
            y, X.shape[0], name, regression=is_regressor(self), require_known=require_known)
        return X, self._prepare_labels(columns, task_names, single_output), task_names, \
            single_output

    def _new_encoder(self, rng):
        """An unfitted :class:`TabularEncoder` with this estimator's parameters."""
        return TabularEncoder(self.categorical_features, self.numeric_encoding, self.n_bins,
                              self.bin_strategy, int(rng.randint(np.iinfo(np.int32).max)),
                              type(self).__name__, self.categories, self.hash_buckets,
                              self.leaf_trees, self.frequent_values)

    def _continue_net(self, target_state, task_weights, scoring_weights, missing_labels, *,
                      batch_size, seed, train_split, callbacks):
        """The fitted net, set up for more training (``warm_start``, ``partial_fit``).

        Returns the net and its state before, to restore if training fails.
        """
        net = self.net_
        before = _training_state(net)
        # neither continues under torch.distributed: undo what a distributed fit set
        net.distributed, net.iterator_train__max_batches = False, None
        net.max_epochs, net.verbose, net.batch_size = self.max_epochs, self.verbose, batch_size
        net.iterator_train__seed = seed
        net.train_split = train_split
        for group in net.optimizer_.param_groups:
            group["weight_decay"] = float(self.weight_decay)
        # the loss may read parameters that may change between fits (AITM's
        # calibration_weight, the counterfactual's weight)
        net.criterion = self._build_criterion(self._task_output_dims(target_state))
        net.loss_weighting_.task_weights.copy_(torch.from_numpy(task_weights))
        if hasattr(net.loss_weighting_, "alpha"):
            net.loss_weighting_.alpha = float(self.gradnorm_alpha)
        net.scoring, net.scoring_weights = self._net_scoring(scoring_weights)
        net.missing_labels = missing_labels
        net.initialize_criterion()
        net.callbacks = callbacks
        net.initialize_callbacks()
        return net, before

    def _first_chunk_targets(self, columns, task_names, classes, single_output, sample_weight):
        """The first ``partial_fit`` chunk's targets and target state (classes or scaling)."""
        return self._encode_targets(columns, task_names, False, sample_weight)

    def _task_weights(self, task_names):
        """``task_weights`` as float32 ``(n_tasks,)``; ones when None."""
        weights = self.task_weights
        if weights is None:
            return np.ones(len(task_names), np.float32)
        if isinstance(weights, (pd.Series, pd.DataFrame)):
            raise TypeError("task_weights must be a list or a dict {task_name: weight}; for a "
                            "pandas Series, pass task_weights=series.to_dict().")
        if isinstance(weights, dict):
            weights = _by_task_name(weights, "task_weights")
            unknown = sorted(set(weights) - set(task_names))
            if unknown:
                raise ValueError(f"task_weights names unknown task(s) {unknown}; the tasks "
                                 f"are {task_names}.")
            values = [weights.get(task, 1.0) for task in task_names]
        else:
            values = weights
        try:
            values = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"task_weights must hold numbers; got {weights!r}.") from None
        if values.ndim != 1 or len(values) != len(task_names):
            given = (f"{values.size} weight(s)" if values.ndim == 1 else
                     f"an array of shape {values.shape}")
            raise ValueError(f"task_weights needs one weight per task of y, "
                             f"{len(task_names)} for {task_names}; got {given}.")
        if not np.isfinite(values).all() or (values < 0).any() or not values.any():
            raise ValueError(f"task_weights must be finite and non-negative, with at least "
                             f"one positive weight; got {weights!r}.")
        # Only the ratios count: weights of 1e-4 would otherwise leave the loss's
        # gradient below weight decay's, which then shrinks every weight to 0.
        return (values / values.max()).astype(np.float32)

    def _scoring_weights(self, task_weights, target_state):
        """Weights of the tasks' validation scores in ``scoring``'s mean; None for the loss."""
        if self.scoring == "loss":
            return None
        scored = self._scored_tasks(target_state)
        if not scored.any():
            raise ValueError(f"scoring={self.scoring!r} averages the ROC AUC of the binary "
                             "tasks, but no task is binary; use scoring='loss'.")
        if not (task_weights * scored).any():
            raise ValueError(f"scoring={self.scoring!r} averages the scores of the tasks "
                             "weighted by task_weights, but every task it scores has weight 0.")
        return task_weights * scored

    def _check_scorable(self, validation_labels, scoring_weights):
        """Raise unless the validation rows give early stopping something to compare.

        The validation loss needs a known label of some task; ``scoring`` some
        scored task with two different labels, else its score (ROC AUC, R²)
        is undefined every epoch. ``validation_labels``: each rank's
        :func:`_validation_labels` (one outside a process group).
        """
        if validation_labels[0] is None:
            return
        if scoring_weights is None:
            if any(len(known) for _, labels in validation_labels for known in labels):
                return
            raise ValueError(
                "Early stopping watches the validation loss, but no validation row (of "
                "positive weight) has a known label of any task, so there is no loss to "
                "compare; raise validation_fraction, or set early_stopping=False.")
        for t in np.flatnonzero(scoring_weights):
            if len(np.unique(np.concatenate([labels[t] for _, labels in validation_labels]))) > 1:
                return
        n_valid = sum(n for n, _ in validation_labels)
        raise ValueError(
            f"scoring={self.scoring!r} early-stops on the validation rows, but among the "
            f"{n_valid} of them (of positive weight) no scored task has two different "
            f"{'targets' if is_regressor(self) else 'labels'}, so the score is undefined "
            f"({'a constant target?' if is_regressor(self) else 'too few positives?'}); raise "
            "validation_fraction or use scoring='loss'.")

    def _scored_tasks(self, target_state):
        """Which tasks ``scoring`` averages over (boolean per task)."""
        return np.ones(len(self._task_output_dims(target_state)), dtype=bool)

    def _net_scoring(self, scoring_weights):
        return (None, None) if scoring_weights is None else (self.scoring, scoring_weights)

    def _monitored(self, valid):
        """What early stopping watches, in words."""
        if valid is None:
            return "training loss"
        return "validation loss" if self.scoring == "loss" else f"validation {self.scoring}"

    def _network_params(self):
        """The current values of the parameters that shape the encoder and the network."""
        return {name: copy.deepcopy(getattr(self, name))
                for name in self._NETWORK_PARAMS + self._MODEL_NETWORK_PARAMS}

    def _check_network_unchanged(self, continuing="warm_start"):
        now = self._network_params()
        changed = [f"{name} was {fitted!r} and is now {now[name]!r}"
                   for name, fitted in self._fitted_network_params.items()
                   if _persistence.json_value(fitted) != _persistence.json_value(now[name])]
        if changed:
            restart = ("fit with warm_start=False" if continuing == "warm_start" else
                       "fit anew (fit with warm_start=False)")
            raise ValueError(
                f"{continuing} continues with the fitted encoder and network, but "
                + "; ".join(changed) + f". Set them back, or {restart}.")

    def _check_same_tasks(self, task_names, single_output, continuing):
        """Raise unless ``y`` has the fitted tasks, as a 1-D or 2-D ``y`` alike."""
        if task_names != self.task_names_:
            raise ValueError(f"{continuing} needs the same tasks as the fit it continues: "
                             f"{self.task_names_}, got {task_names}.")
        if single_output != self._single_output:
            fitted, given = ("1-D", "2-D") if self._single_output else ("2-D", "1-D")
            raise ValueError(f"{continuing} needs y shaped as in the fit it continues: a "
                             f"{fitted} y, got a {given} one.")

    def _tower_units_per_task(self, task_names):
        """``tower_units`` resolved to one tuple of widths per task."""
        kind, units = _check_tower_units(self.tower_units)
        if kind == "all":
            return [units] * len(task_names)
        if kind == "list":
            if len(units) != len(task_names):
                raise ValueError(
                    f"tower_units gives {len(units)} towers, one per task, but y has "
                    f"{len(task_names)} task(s): {task_names}.")
            return units
        unknown = sorted(set(units) - set(task_names))
        missing = [task for task in task_names if task not in units]
        if unknown or missing:
            raise ValueError(
                f"tower_units is a dict by task name and needs exactly the tasks "
                f"{task_names}; " + "; ".join(
                    part for part in (f"missing {missing}" if missing else "",
                                      f"unknown {unknown}" if unknown else "") if part) + ".")
        return [units[task] for task in task_names]

    def _new_module(self, encoder, task_names, target_state, label_frequencies=None):
        embedding = dict(cardinalities=encoder.cardinalities,
                         n_numeric=len(encoder.numeric_indices_),
                         embedding_dim=self.embedding_dim,
                         padding_codes=[UNKNOWN_CODE] * len(encoder.cardinalities),
                         numeric_embedding=self._numeric_embedding(encoder),
                         leaf_trees=None if encoder.leaf_trees_ is None
                         else encoder.leaf_trees_.module(),
                         cross_layers=self.cross_layers)
        module = self._build_module(embedding, self._task_output_dims(target_state),
                                    self._tower_units_per_task(task_names))
        if label_frequencies is not None and hasattr(module, "init_output_bias"):
            module.init_output_bias(label_frequencies)
        return module

    def _numeric_embedding(self, encoder):
        """The module embedding the numeric inputs, for the encodings that learn one."""
        n_numeric = len(encoder.numeric_indices_)
        encoding = encoder.numeric_.encoding
        if n_numeric and encoding == "piecewise_linear":
            numeric = encoder.numeric_
            return PiecewiseLinearEmbedding(
                numeric.n_bins_, self.embedding_dim,
                missing_positions=numeric.missing_levels_ if numeric.learns_missing else None)
        if n_numeric and encoding == "periodic":
            return PeriodicEmbedding(n_numeric, self.embedding_dim)
        return None

    def _set_fitted(self, encoder, net, task_names, target_state, single_output):
        self._fitted_network_params = self._network_params()  # a warm fit checked them
        self._encoder = encoder
        self.net_ = net
        self.task_names_ = task_names
        self._single_output = single_output
        self._set_target_state(target_state, single_output)
        self.n_features_in_ = encoder.n_features_in_
        if encoder.feature_names_in_ is not None:
            self.feature_names_in_ = encoder.feature_names_in_
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self.is_categorical_ = encoder.is_categorical_
        self.numeric_encoding_ = encoder.numeric_.encoding
        self.history_ = net.history
        self.n_iter_ = len(net.history)

    def _restore_fitted(self, *, encoder, task_names, target_state, single_output,
                        module_state, optimizer_state, history, device,
                        loss_weighting_state=None):
        """Rebuild the fitted state from its saved parts (see :func:`skmtl.load`)."""
        # the new module's initial weights draw from torch's random state: not from
        # the caller's, nor from that of a fit in another thread
        with _torch_seed(0, "cpu"):
            # shapes first, on no memory: a file's configuration may ask for any size
            with torch.device("meta"):
                expected = self._new_module(encoder, task_names, target_state).state_dict()
            _check_saved_weights(module_state, expected)
            module = self._new_module(encoder, task_names, target_state)
            statistics = batch_statistics(module)
            built = {name: buffer.clone() for name, buffer in module.named_buffers()
                     if name not in statistics}
            module.load_state_dict(module_state)
            # other buffers follow from the configuration (embedding offsets, say): a
            # file's other values would read the wrong rows
            buffers = dict(module.named_buffers())
            if not all(torch.equal(buffers[name], buffer) for name, buffer in built.items()):
                raise ValueError("the saved network's buffers disagree with its configuration.")
            # learned, but NaN or a negative variance predicts NaN (an infinite variance,
            # from a column of huge numbers, zeroes its unit as training did)
            for name in statistics:
                value = buffers[name]
                if bool(value.isnan().any()) or (
                        name.endswith("running_var") and bool((value < 0).any())):
                    raise ValueError(f"the saved network's batch statistics {name!r} hold NaN "
                                     "or a negative variance.")
            net = self._build_net(module, self._task_output_dims(target_state), task_names,
                                  callbacks=[], train_split=None, seed=0, device=device,
                                  batch_size=self._batch_size(0),
                                  task_weights=self._task_weights(task_names),
                                  scoring_weights=None)
            net.initialize()
        if loss_weighting_state is not None:
            net.loss_weighting_.load_state_dict(loss_weighting_state)
        net.optimizer_.load_state_dict(optimizer_state)
        net.optimizer_.check_state()
        # The saved flag says where the model was trained; use what runs here.
        for group in net.optimizer_.param_groups:
            group["fused"] = fused_adam_supported(net.device)
        net.history = history
        self._set_fitted(encoder, net, task_names, target_state, single_output)
        return self

    def save(self, path):
        """Save the fitted estimator to ``path``, in a format that runs no code on load.

        The file is a zip archive holding the configuration, encoders and
        history as JSON (with the skmtl version that wrote it) and the weights
        for ``torch.load(weights_only=True)``. Read it back with
        :func:`skmtl.load`. ``joblib.dump`` works too, but loading a pickle
        can run arbitrary code: use it only for files you trust.

        Parameters
        ----------
        path : str or path-like
        """
        check_is_fitted(self)
        _persistence.save(self, path)

    def _check_hyperparameters(self):
        """Checks beyond ``_parameter_constraints``; models extend."""
        _check_tower_units(self.tower_units)
        if (_sparse_requested(self.sparse_embeddings)
                and self.loss_weighting in _GRADIENT_WEIGHTINGS):
            raise ValueError(
                f"sparse_embeddings=True cannot be used with loss_weighting="
                f"{self.loss_weighting!r}, which computes every task's gradient of the whole "
                "embedding table; use sparse_embeddings='auto' (dense updates here) or False.")
        if self.scoring not in self._SCORINGS:
            raise ValueError(f"The 'scoring' parameter of {type(self).__name__} must be one of "
                             f"{list(self._SCORINGS)}; got {self.scoring!r}.")

    def __setstate__(self, state):
        super().__setstate__(state)
        # pickled before a parameter existed: the value that builds the network it has
        for name, value in _persistence.PARAMETERS_ADDED.items():
            if name not in self._get_param_names():
                continue
            self.__dict__.setdefault(name, value)
            if "_fitted_network_params" in self.__dict__ and \
                    name in self._NETWORK_PARAMS + self._MODEL_NETWORK_PARAMS:
                self._fitted_network_params.setdefault(name, value)
        if "_encoder" in self.__dict__:  # fitted before numeric_encoding_ existed
            self.__dict__.setdefault("numeric_encoding_", self._encoder.numeric_.encoding)
        # unpickled where the GPU it was trained on is missing, the network runs on
        # the CPU (skorch moved it, with a warning): so does further training
        if "net_" in self.__dict__ and checked_device(self.device).type == "cuda" \
                and not torch.cuda.is_available():
            self.device = "cpu"

    def _check_device(self):
        device = checked_device(self.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device={self.device!r}, but CUDA is not available on this "
                             "machine; use device='cpu'.")

    def _validate_params(self):
        # Under torch.distributed, fit validates the parameters in its first
        # agreement block instead (_check_distributed), so that a parameter bad
        # on one rank only is raised on every rank rather than leaving the
        # others waiting.
        if _distributed.world() is None:
            super()._validate_params()

    def _check_distributed(self, warm):
        """Validate the parameters; refuse what a fit under torch.distributed cannot do yet."""
        super()._validate_params()
        if warm:
            raise ValueError("warm_start is not supported under torch.distributed yet; fit "
                             "with warm_start=False.")
        if self.loss_weighting in _GRADIENT_WEIGHTINGS:
            raise ValueError(f"loss_weighting={self.loss_weighting!r} is not supported under "
                             "torch.distributed yet (each rank would balance its own "
                             "gradients); use 'equal', 'uncertainty' or 'dwa'.")
        if _sparse_requested(self.sparse_embeddings):
            raise ValueError("sparse_embeddings=True is not supported under torch.distributed "
                             "yet (the ranks average dense gradients); use "
                             "sparse_embeddings='auto' (dense updates there) or False.")
        if self.leaf_trees:
            raise ValueError("leaf_trees is not supported under torch.distributed yet (each "
                             "rank would grow its own trees); use leaf_trees=0.")

    def _sparse_embeddings(self, module):
        """Whether this fit updates the embedding tables of ``module`` sparsely:
        ``sparse_embeddings`` resolved."""
        if self.sparse_embeddings != "auto":
            return bool(self.sparse_embeddings)
        if self.loss_weighting in _GRADIENT_WEIGHTINGS or _distributed.world():
            return False
        values = sum(layer.embedding.weight.numel() for layer in module.modules()
                     if isinstance(layer, FeatureEmbedding) and layer.embedding is not None)
        return values >= AUTO_SPARSE_EMBEDDING_VALUES

    def _early_stopping_enabled(self, n_samples):
        if self.early_stopping == "auto":
            return n_samples > self._AUTO_EARLY_STOPPING_MIN_SAMPLES
        return bool(self.early_stopping)

    def _split_seed_of(self, rng, warm):
        """The seed the early-stopping split is drawn from.

        A warm fit holds out the rows the first fit held out (as
        HistGradientBoosting does), or it would stop on rows it has trained
        on: from the seed the first fit kept. A new fit's seed is its int
        ``random_state``, or one drawn from ``rng``.
        """
        seed = getattr(self, "_split_seed", None)
        if not warm or seed is None:  # (a warm fit after partial_fit, or of an older model)
            seed = (int(self.random_state) if isinstance(self.random_state, Integral)
                    else rng.randint(np.iinfo(np.int32).max))
        return seed

    def _split_rows(self, n_samples, rng, early_stopping):
        """Sorted ``(train_rows, valid_rows)``; ``(None, None)`` without early stopping."""
        if not early_stopping or self.validation_fraction is None:
            return None, None
        n_valid = (self.validation_fraction if isinstance(self.validation_fraction, Integral)
                   else int(np.ceil(self.validation_fraction * n_samples)))
        if not 1 <= n_valid < n_samples:
            raise ValueError(
                f"validation_fraction={self.validation_fraction} leaves {n_valid} validation "
                f"and {n_samples - n_valid} training rows out of {n_samples}; both need at "
                "least one. Lower validation_fraction or set early_stopping=False.")
        order = rng.permutation(n_samples)
        return np.sort(order[n_valid:]), np.sort(order[:n_valid])

    def _train_split(self, valid):
        return None if valid is None else predefined_split(valid)

    def _batch_size(self, n_train):
        """``batch_size``, or for ``"auto"`` 1/64 of the training rows within [32, 1024]."""
        if self.batch_size != "auto":
            return self.batch_size
        return int(np.clip(n_train // 64, AUTO_BATCH_SIZE_RANGE[0], AUTO_BATCH_SIZE_RANGE[1]))

    def _loss_weighting_factory(self, task_weights):
        """A callable building the :mod:`skmtl.nn.weighting` module of ``loss_weighting``."""
        kind = LOSS_WEIGHTINGS[self.loss_weighting]
        if self.loss_weighting == "gradnorm":
            return functools.partial(kind, task_weights, alpha=self.gradnorm_alpha)
        return functools.partial(kind, task_weights)

    def _build_net(self, module, task_output_dims, task_names, callbacks, train_split, seed,
                   device, batch_size, task_weights, scoring_weights, missing_labels=True):
        scoring, scoring_weights = self._net_scoring(scoring_weights)
        if checked_device(device).type == "cpu":  # torch cannot unpickle tensors onto "cpu:0"
            device = torch.device("cpu") if isinstance(device, torch.device) else "cpu"
        return MultiTaskNet(
            module=module,
            criterion=self._build_criterion(task_output_dims),
            optimizer=Adam,
            # floats: a NumPy scalar in the optimizer's state is no safe-to-load file
            lr=float(self.learning_rate),
            optimizer__weight_decay=float(self.weight_decay),
            max_epochs=self.max_epochs,
            batch_size=batch_size,
            iterator_train=BatchIterator,
            iterator_train__shuffle=True,
            iterator_train__seed=seed,
            iterator_valid=BatchIterator,
            train_split=train_split,
            callbacks=callbacks,
            device=device,
            verbose=self.verbose,
            task_names=task_names,
            loss_weighting=self._loss_weighting_factory(task_weights),
            validation_metric=self._VALIDATION_METRIC,
            scoring=scoring,
            scoring_weights=scoring_weights,
            missing_labels=missing_labels,
        )

    def _callbacks(self, valid, steps_per_epoch, early_stopping):
        steps = self.max_epochs * steps_per_epoch
        callbacks = [("learning_rate_schedule", LearningRateSchedule(
            self.learning_rate_schedule, self.learning_rate, steps))]
        if early_stopping:
            by_score = valid is not None and self.scoring != "loss"
            callbacks.append(("early_stopping", BestWeightsEarlyStopping(
                monitor=(f"valid_{self.scoring}" if by_score else
                         "train_loss" if valid is None else "valid_loss"),
                lower_is_better=not by_score,
                patience=self.n_iter_no_change, threshold=self.tol, threshold_mode="abs",
                load_best=True, sink=rank_zero_sink())))
        return callbacks

    # -- predict -----------------------------------------------------------------

    def _forward(self, X, compute, rows_sum_to_one=False):
        """Run ``compute(categorical, numeric)`` over ``X``; one array per tensor it returns
        (:func:`skmtl._predict.predict_in_blocks`)."""
        check_is_fitted(self)
        reader = self._encoder.reader(X)
        self.net_.module_.eval()
        return _predict.predict_in_blocks(reader, compute, self._predict_batch_size,
                                          self.net_.device, rows_sum_to_one)

    def _predict_batch_size(self, n_threads=1):
        """Rows per batch at predict, with ``n_threads`` threads predicting at once:
        PREDICT_BATCH_SIZE, fewer for wide embeddings (the threads share
        PREDICT_BATCH_FLOATS)."""
        # floats per row, roughly: a few tensors as wide as the embedded input,
        # and the periodic embeddings' cosines and sines
        floats = 0
        for layer in self.net_.module_.modules():
            if isinstance(layer, FeatureEmbedding):
                floats += 6 * layer.output_dim
            elif isinstance(layer, PeriodicEmbedding):
                floats += 6 * layer.frequencies.numel()
        return min(PREDICT_BATCH_SIZE,
                   max(64, PREDICT_BATCH_FLOATS // n_threads // max(floats, 1)))

    # keyword arguments of the network's forward pass at predict (and in ONNX)
    _PREDICT_FORWARD = {}

    def _module_outputs(self, method):
        """``compute`` for :meth:`_forward`: the module's forward pass, then ``method``."""
        module, options = self.net_.module_, self._PREDICT_FORWARD
        return lambda categorical, numeric: method(module(categorical=categorical,
                                                          numeric=numeric, **options))

    def _score_targets(self, y, n_samples, sample_weight):
        """``y`` for ``score`` as an object array ``(n_samples, n_tasks)``, read as ``fit``
        reads it (missing labels allowed), and the checked ``sample_weight``."""
        columns, names, _ = check_targets(y, n_samples, type(self).__name__,
                                          regression=is_regressor(self), require_known=False)
        n_tasks = len(self.task_names_)
        if len(columns) != n_tasks:
            raise ValueError(f"y has {len(columns)} column(s), but the model was fitted on "
                             f"{n_tasks} task(s) {self.task_names_}: give one column per task.")
        # columns are matched by position; a fitted task's name elsewhere is a mistake
        if any(name in self.task_names_ and name != task
               for name, task in zip(names, self.task_names_)):
            raise ValueError(f"y's columns {names} name the fitted tasks {self.task_names_} in "
                             "another order; pass y[model.task_names_].")
        y = np.column_stack([np.asarray(column, dtype=object) for column in columns])
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, y, ensure_non_negative=True)
        return y, sample_weight

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.input_tags.categorical = True
        tags.input_tags.string = True
        tags.input_tags.allow_nan = self.numeric_encoding != "passthrough"
        return tags


class MultiTaskClassifierBase(ClassifierMixin, MultiTaskEstimatorBase):
    """A multi-task estimator whose tasks are binary or multiclass classifications."""

    def _local_target_state(self, columns, task_names, fit_weight):
        """The classes of each task among these known labels (those of any weight)."""
        classes = []
        for name, column in zip(task_names, columns):
            try:
                classes.append(label_classes(column[known_labels(column)]))
            except TypeError:
                raise TypeError(f"Labels of task {name!r} mix types that cannot be compared; "
                                "convert them to one type.") from None
        return classes

    def _agreed_target_state(self, states, task_names):
        """Each task's classes: the union of every rank's; at least two."""
        classes = []
        for t, name in enumerate(task_names):
            task_classes = (states[0][t] if len(states) == 1 else _distributed.union(
                [state[t] for state in states], f"The labels of task {name!r}"))
            if len(task_classes) < 2:
                where = "the training labels" if len(states) == 1 else "every rank's labels"
                raise ValueError(
                    f"Task {name!r} has only one class ({task_classes.tolist()[0]!r}) in "
                    f"{where}; every task needs at least two classes.")
            classes.append(task_classes)
        return classes

    def _encoded_targets(self, columns, task_names, classes):
        return encode_labels(columns, task_names, classes)

    def _task_output_dims(self, classes):
        """One logit for a binary task, one per class otherwise."""
        return [1 if len(task_classes) == 2 else len(task_classes) for task_classes in classes]

    def _label_frequencies(self, targets, weight, classes):
        """Each task's class frequencies among its known labels (weighted); None for a task
        that has no label of positive weight of one of its classes here (``partial_fit``'s
        first chunk, with ``classes``; a rare class whose rows all went to validation): a
        frequency of 0 would start the task certain that the class never occurs."""
        frequencies = []
        for t, task_classes in enumerate(classes):
            known = ~np.isnan(targets[:, t])
            counts = np.bincount(targets[known, t].astype(np.intp),
                                 None if weight is None else weight[known],
                                 minlength=len(task_classes))
            frequencies.append(counts / counts.sum() if (counts > 0).all() else None)
        return frequencies

    def _build_criterion(self, task_output_dims):
        return MultiTaskLoss(task_output_dims)

    def _first_chunk_targets(self, columns, task_names, classes, single_output, sample_weight):
        if classes is None:
            for task, column in zip(task_names, columns):
                if len(np.unique(column[known_labels(column)])) < 2:
                    raise ValueError(
                        f"Task {task!r} has fewer than two classes in the first partial_fit "
                        "chunk; pass classes=[...] (one array per task) on the first call.")
            return self._encode_targets(columns, task_names, False, sample_weight)
        given = [classes] if single_output else list(classes)
        if any(np.ndim(task_classes) != 1 for task_classes in given):
            raise ValueError(
                "classes must hold one 1-D array of classes per task"
                f"{' (a 1-D y: one array)' if single_output else ''}; got classes={classes!r}.")
        if len(given) != len(task_names):
            raise ValueError(f"classes gives {len(given)} arrays of classes for "
                             f"{len(task_names)} task(s): {task_names}.")
        fixed = []
        for task, task_classes in zip(task_names, given):
            task_classes = np.asarray(task_classes)
            if not known_labels(task_classes).all():
                raise ValueError(
                    f"classes of task {task!r} holds a missing value ({task_classes.tolist()}):"
                    " NaN and None mean a label is not known, never a class; list the classes "
                    "only.")
            try:
                task_classes = np.unique(task_classes)
            except TypeError:
                raise ValueError(f"classes of task {task!r} mixes types that do not sort "
                                 f"together ({task_classes.tolist()}); give the classes as "
                                 "the labels are, all strings or all numbers.") from None
            if len(task_classes) < 2:
                raise ValueError(f"classes of task {task!r} must hold at least two classes; "
                                 f"got {task_classes.tolist()}.")
            fixed.append(task_classes)
        return self._encoded_targets(columns, task_names, fixed), fixed

    def _scored_tasks(self, target_state):
        """``scoring="roc_auc"`` averages over the binary tasks."""
        return np.array([len(task_classes) == 2 for task_classes in target_state])

    def _set_target_state(self, classes, single_output):
        self.classes_ = classes[0] if single_output else classes

    def _target_state(self):
        return self._classes_list()

    def _classes_list(self):
        return [self.classes_] if self._single_output else list(self.classes_)

    def _target_state_to_json(self, classes):
        return {"classes": [array_to_json(c, f"the classes of task {task!r}")
                            for task, c in zip(self.task_names_, classes)]}

    @staticmethod
    def _target_state_from_json(config, n_tasks):
        classes = [array_from_json(c) for c in config["classes"]]
        # (a set, as pandas indexes: True and 1 are one label)
        if len(classes) != n_tasks or not all(
                len(c) >= 2 and len(set(c.tolist())) == len(c) for c in classes):
            raise ValueError("the saved classes are not two or more distinct labels per task.")
        return classes

    def predict_proba(self, X):
        """Class probabilities per task.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : list of ndarrays, one per task, each (n_samples, n_classes_t)
            A single ndarray when the model was fitted on a 1-D ``y``.
        """
        check_is_fitted(self)
        probas = self._forward(X, self._module_outputs(self.net_.module_.predict_proba),
                               rows_sum_to_one=True)
        return probas[0] if self._single_output else probas

    def predict(self, X):
        """Most probable class per task.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)

        Returns
        -------
        Y_pred : ndarray of shape (n_samples, n_tasks), or (n_samples,) when
            the model was fitted on a 1-D ``y``.
        """
        probas = self.predict_proba(X)
        if self._single_output:
            return self.classes_[np.argmax(probas, axis=1)]
        labels = [c[np.argmax(p, axis=1)] for c, p in zip(self.classes_, probas)]
        out = np.empty((labels[0].shape[0], len(labels)), dtype=_common_label_dtype(self.classes_))
        for t, label in enumerate(labels):
            out[:, t] = label
        return out

    def score(self, X, y, sample_weight=None):
        """Accuracy; with several tasks, the fraction of rows with every task right.

        This is scikit-learn's subset accuracy for multi-output predictions.
        Missing labels (NaN, None) are left out: a row counts when every
        task known for it is right, and rows with no known label do not
        count.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples, n_tasks) or (n_samples,)
            The true labels, one column per task as in ``fit``; NaN, None or
            ``pd.NA`` where unknown.
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        score : float
        """
        Y_pred = self.predict(X)
        y, sample_weight = self._score_targets(y, Y_pred.shape[0], sample_weight)
        known = known_labels(y.ravel()).reshape(y.shape)
        for t, (task, classes) in enumerate(zip(self.task_names_, self._classes_list())):
            check_label_type(task, classes, y[known[:, t], t])
        hits = np.ones(y.shape, dtype=bool)  # an unknown label is no miss
        hits[known] = y[known] == Y_pred.reshape(y.shape).astype(object)[known]
        rows = known.any(axis=1)
        if not rows.any():
            raise ValueError("Every label in y is missing; score needs at least one known "
                             "label.")
        if sample_weight is not None and not np.asarray(sample_weight)[rows].sum() > 0:
            raise ValueError("sample_weight is zero on every row with a known label; score "
                             "needs a positive weight on one.")
        return float(np.average(hits[rows].all(axis=1), weights=_rows(sample_weight, rows)))


class MultiTaskRegressorBase(RegressorMixin, MultiTaskEstimatorBase):
    """A multi-task estimator whose tasks are real-valued targets.

    The network fits standardised targets (each task's weighted mean and
    standard deviation on the training rows) with a squared error per task;
    :meth:`predict` maps its outputs back to the targets' scale.
    """

    _VALIDATION_METRIC = "r2"
    _SCORINGS = ("loss", "r2")

    def _local_target_state(self, columns, task_names, fit_weight):
        """Each task's weighted mean and standard deviation over its known targets."""
        values = np.column_stack(columns).astype(np.float64)  # NaN where missing
        known = ~np.isnan(values)
        # in float64: float32 sums of many rows would shift the mean by many spreads
        weights = known * (1.0 if fit_weight is None
                           else np.asarray(fit_weight, np.float64)[:, None])
        filled = np.where(known, values, 0.0)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            total = weights.sum(axis=0)
            mean = (weights * filled).sum(axis=0) / total
            counted = weights > 0
            low = np.where(counted, values, np.inf).min(axis=0)
            high = np.where(counted, values, -np.inf).max(axis=0)
            unit = deviation_unit(low, high, mean)
            scaled = np.where(counted, (filled - mean) / unit, 0.0)
            scale = unit * np.sqrt((weights * scaled ** 2).sum(axis=0) / total)
        # a constant target stays constant (exactly: a float mean's rounding leaves a spread)
        constant = low == high
        # (scale 1, not the constant's size: partial_fit and warm_start keep the first
        # scaling, and later targets that vary would be millions of such scales apart)
        mean[constant], scale[constant | (scale == 0)] = low[constant], 1.0
        return mean, scale

    def _agreed_target_state(self, states, task_names):
        """Rank 0's scaling (an overflow is reported when the targets are standardised)."""
        return states[0]

    def _encoded_targets(self, columns, task_names, target_state):
        mean, scale = target_state
        return _standardised(np.column_stack(columns).astype(np.float64), mean, scale,
                             task_names)

    def _task_output_dims(self, target_state):
        return [1] * len(target_state[0])

    def _build_criterion(self, task_output_dims):
        return MultiTaskSquaredLoss()

    def _set_target_state(self, target_state, single_output):
        self._target_mean, self._target_scale = target_state

    def _target_state(self):
        return self._target_mean, self._target_scale

    def _target_state_to_json(self, target_state):
        mean, scale = target_state
        return {"target_mean": mean.tolist(), "target_scale": scale.tolist()}

    @staticmethod
    def _target_state_from_json(config, n_tasks):
        mean, scale = (np.asarray(config[key], dtype=np.float64)
                       for key in ("target_mean", "target_scale"))
        if not (mean.shape == scale.shape == (n_tasks,) and np.isfinite(mean).all()
                and np.isfinite(scale).all() and (scale > 0).all()):
            raise ValueError("the saved target scaling is not a finite mean and a positive "
                             "scale per task.")
        return mean, scale

    def predict(self, X):
        """Predicted targets.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)

        Returns
        -------
        Y_pred : ndarray of shape (n_samples, n_tasks), or (n_samples,) when
            the model was fitted on a 1-D ``y``.
        """
        check_is_fitted(self)
        (standardised,) = self._forward(
            X, self._module_outputs(lambda outputs: [torch.cat(outputs, dim=1)]))
        Y_pred = standardised * self._target_scale + self._target_mean
        return Y_pred[:, 0] if self._single_output else Y_pred

    def score(self, X, y, sample_weight=None):
        """R², averaged uniformly over the tasks, each over the rows where its target is known.

        Without missing targets this is :meth:`sklearn.base.RegressorMixin.score`.
        A task with no known target in ``y`` (of positive ``sample_weight``)
        is left out of the mean, as a cross-validation fold of a sparse task
        may have none.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples, n_tasks) or (n_samples,)
            The true targets, one column per task as in ``fit``; NaN, None or
            ``pd.NA`` where unknown.
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        score : float
        """
        Y_pred = self.predict(X)
        y, sample_weight = self._score_targets(y, Y_pred.shape[0], sample_weight)
        Y_pred = Y_pred.reshape(y.shape)
        scores = []
        for t in range(y.shape[1]):
            known = known_labels(y[:, t])
            if sample_weight is not None:
                known &= np.asarray(sample_weight) > 0
            if known.any():
                scores.append(r2_score(y[known, t].astype(np.float64), Y_pred[known, t],
                                       sample_weight=_rows(sample_weight, known)))
        if not scores:
            raise ValueError("No task has a known target in y" + (
                "" if sample_weight is None else " on a row of positive sample_weight")
                + "; score needs at least one.")
        return float(np.mean(scores))


def _rows(sample_weight, rows):
    return None if sample_weight is None else np.asarray(sample_weight)[rows]


class GateWeightsMixin:
    """``gate_weights(X)`` for the models whose network has softmax gates over experts."""

    # PLE returns a list of arrays, one per level; the others one array.
    _GATE_WEIGHTS_PER_LEVEL = False

    def gate_weights(self, X):
        """The gates' mixture weights over the experts, for the rows of ``X``.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)

        Returns
        -------
        weights : ndarray of shape (n_samples, n_gates, n_experts)
            Each row of each gate sums to 1. For :class:`skmtl.PLEClassifier`
            and :class:`skmtl.PLERegressor`, a list with one such array per
            level (see their documentation).
        """
        check_is_fitted(self)
        module = self.net_.module_

        def compute(categorical, numeric):
            weights = module.gate_weights(categorical, numeric)
            return weights if isinstance(weights, list) else [weights]

        weights = self._forward(X, compute)
        return weights if self._GATE_WEIGHTS_PER_LEVEL else weights[0]


def _standardised(values, mean, scale, task_names):
    """float32 ``(values - mean) / scale``; an error naming the tasks it overflows."""
    with np.errstate(over="ignore", invalid="ignore"):
        targets = ((values - mean) / scale).astype(np.float32)
    finite = ((np.isfinite(targets) | np.isnan(values)).all(axis=0) & np.isfinite(mean)
              & np.isfinite(scale))
    if not finite.all():
        bad = [name for name, ok in zip(task_names, finite) if not ok]
        raise ValueError(
            f"The targets of task(s) {bad} are too large to standardise (their mean or spread "
            "overflows float64, or they lie beyond float32's range in standard deviations); "
            "rescale them.")
    return targets


def _validation_labels(targets, valid_rows, sample_weight):
    """``(n_valid, distinct known labels of each task)`` among the validation rows of positive
    weight; None without validation rows."""
    if valid_rows is None:
        return None
    if sample_weight is not None:
        valid_rows = valid_rows[sample_weight[valid_rows] > 0]
    return len(valid_rows), [np.unique(column[~np.isnan(column)])
                             for column in targets[valid_rows].T]


def _agreed_encoder(encoder, fitted):
    """``encoder`` with every rank's categories and their agreed numeric encoding
    (distributed fit).

    ``fitted``: every rank's ``(categories_, numeric_.to_dict())``.
    """
    categories = []
    for k, n_buckets in enumerate(encoder.hash_buckets_):
        if n_buckets:  # hashed: nothing to agree on
            categories.append(encoder.categories_[k])
            continue
        column = encoder._label(encoder.categorical_indices_[k])
        categories.append(_distributed.union([rank[0][k] for rank in fitted],
                                             f"The values of column {column!r}"))
    encoder.categories_ = categories
    encoder._lookups = None
    encoder.numeric_ = NumericEncoding.agreed([rank[1] for rank in fitted],
                                              len(encoder.numeric_indices_))
    return encoder


def checked_device(device):
    """``device`` as a ``torch.device``, if it names a CPU or CUDA device (else ValueError)."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device={device!r} is not a valid torch device, e.g. 'cpu' or "
                         "'cuda'.") from None
    if parsed.type not in ("cpu", "cuda"):
        raise ValueError(f"device={device!r}: skmtl trains on 'cpu' or 'cuda' devices, not "
                         f"{parsed.type!r}.")
    return parsed


def _checked_sample_weight(sample_weight, X):
    """``sample_weight`` as float32, non-negative and not zero everywhere; None stays None.

    Training adds weighted losses up in float32: weights whose sum nears its
    range, or so small that their products with the losses vanish, are
    refused rather than trained on as NaN or zeros.
    """
    if sample_weight is None:
        return None
    sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64,
                                         ensure_non_negative=True)
    total, largest = float(sample_weight.sum()), float(sample_weight.max())
    if not largest:
        raise ValueError("sample_weight is zero for every row; at least one row needs a "
                         "positive weight.")
    if not (MIN_SAMPLE_WEIGHT <= largest and total <= MAX_SAMPLE_WEIGHT_SUM):
        raise ValueError(
            f"sample_weight ranges up to {largest:.3g} and sums to {total:.3g}: training sums "
            f"weighted losses in float32, which needs the largest weight at least "
            f"{MIN_SAMPLE_WEIGHT:g} and the sum at most {MAX_SAMPLE_WEIGHT_SUM:g}. Divide the "
            "weights by a constant (e.g. their mean): the rows' relative weights are what "
            "matter.")
    return sample_weight.astype(np.float32)


def _check_saved_weights(state, expected):
    """Raise ValueError unless ``state`` holds a tensor of each shape of ``expected``."""
    if not isinstance(state, dict):
        raise ValueError("the saved weights are not a dictionary of tensors.")
    if set(state) != set(expected):
        missing, unexpected = (sorted(map(str, names)) for names in (
            set(expected) - set(state), set(state) - set(expected)))
        raise ValueError("the saved weights are not those of the network the configuration "
                         f"describes: missing {missing[:5]}, unexpected {unexpected[:5]}.")
    for name, tensor in expected.items():
        saved = state[name]
        if not isinstance(saved, torch.Tensor) or saved.shape != tensor.shape:
            shape = tuple(saved.shape) if isinstance(saved, torch.Tensor) else type(saved)
            raise ValueError(f"the saved weights {name!r} have shape {shape}; the "
                             f"configuration describes {tuple(tensor.shape)}.")


def _common_label_dtype(classes):
    """One dtype for the labels of every task (``classes``: each task's).

    Numbers of several dtypes (a task with missing labels reads as floats
    beside one of integers) as numbers, which scikit-learn's metrics score,
    where every label keeps its value; else ``object``: booleans beside
    numbers (True would read 1), text beside numbers, integers beyond 2**53
    beside floats, int64 beside uint64.
    """
    dtypes = [c.dtype for c in classes]
    kinds = {dtype.kind for dtype in dtypes}
    if len(set(dtypes)) == 1 or kinds <= {"U"}:
        return np.result_type(*dtypes)
    if kinds <= set("iuf"):
        common = np.result_type(*dtypes)
        exact = all(max(abs(int(c.min())), abs(int(c.max()))) <= 2 ** 53
                    for c in classes if c.dtype.kind in "iu")
        if common.kind != "f" or ("f" in kinds and exact):
            return common
    return object


def _same_classes(classes, fitted, single_output):
    """Whether ``classes`` are the fitted ones, read as the first call read them."""
    given = [classes] if single_output else list(classes)
    if len(given) != len(fitted):
        return False
    for task_classes, fitted_classes in zip(given, fitted):
        try:
            task_classes = np.unique(np.asarray(task_classes))  # as the first call kept them
        except TypeError:  # types that do not sort together: not the fitted classes
            return False
        if not np.array_equal(task_classes, np.asarray(fitted_classes)):
            return False
    return True


def _check_known_labels(columns, task_names, fit_weight):
    """Every task needs a known label on a training row of positive weight."""
    for name, column in zip(task_names, columns):
        known = known_labels(column)
        if fit_weight is not None:
            known &= fit_weight > 0
        if not known.any():
            raise ValueError(
                f"Task {name!r} has no known label on a training row of positive weight (the "
                "early-stopping validation rows do not count); give it known labels, or "
                "change sample_weight, validation_fraction or random_state.")


def _training_state(net):
    """Copies of the module's, the optimizer's and the loss weighting's state, and the history
    length."""
    return (copy.deepcopy(net.module_.state_dict()), copy.deepcopy(net.optimizer_.state_dict()),
            copy.deepcopy(net.loss_weighting_.state_dict()), len(net.history))


def _restore_training_state(net, state):
    module_state, optimizer_state, weighting_state, n_epochs = state
    net.module_.load_state_dict(module_state)
    net.optimizer_.load_state_dict(optimizer_state)
    net.loss_weighting_.load_state_dict(weighting_state)
    del net.history[n_epochs:]


# torch's random state (weight initialisation, dropout) is one per process:
# fits in threads of one process take turns, or they would draw from each
# other's seeded stream and restore each other's saved state.
_TORCH_RANDOM_STATE_LOCK = threading.RLock()


def _sparse_requested(sparse_embeddings):
    """Whether ``sparse_embeddings`` asks for sparse updates whatever the table (True, not
    "auto")."""
    return not isinstance(sparse_embeddings, str) and bool(sparse_embeddings)


@contextlib.contextmanager
def _embedding_updates(module, sparse):
    """Train ``module``'s embedding tables with sparse gradients inside the block; the
    fitted module is left with dense ones, as a plain PyTorch optimizer expects (the last
    batch's sparse gradient is dropped). (The training loop catches the rows up at each
    epoch's end and on an interrupt.)"""
    layers = [layer for layer in module.modules() if isinstance(layer, FeatureEmbedding)]
    for layer in layers:
        layer.sparse = sparse
    try:
        yield
    finally:
        for layer in layers:
            layer.sparse = False
            for parameter in layer.parameters():
                if parameter.grad is not None and parameter.grad.is_sparse:
                    parameter.grad = None


@contextlib.contextmanager
def _torch_seed(seed, device):
    """Seed torch for the duration of a fit without disturbing the caller's RNG.

    Seeds (and restores) the CPU generator and, on a GPU, that device's only:
    ``torch.manual_seed`` would reseed every GPU's for good. Torch's default
    dtype is float32 meanwhile (and restored after): the networks are float32
    whatever the caller's default, or a fit under ``float64`` trained another
    model from the same seed, and failed where float32 buffers met it.
    """
    device = torch.device(device)
    if device.type == "cpu":
        fork = torch.random.fork_rng(devices=[])
    else:
        fork = torch.random.fork_rng(devices=[device.index or 0], device_type=device.type)
    with _TORCH_RANDOM_STATE_LOCK, fork:
        torch.default_generator.manual_seed(seed)
        if device.type == "cuda":
            with torch.cuda.device(device.index or 0):
                torch.cuda.manual_seed(seed)
        default_dtype = torch.get_default_dtype()
        torch.set_default_dtype(torch.float32)
        try:
            yield
        finally:
            torch.set_default_dtype(default_dtype)
