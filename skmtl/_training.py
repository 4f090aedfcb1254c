"""Training through skorch on tensors built once per fit."""

import math
import sys
import time
import warnings

import numpy as np
import torch
from sklearn.metrics import r2_score, roc_auc_score
from skorch import NeuralNet
from skorch.callbacks import Callback, EarlyStopping, EpochTimer, PrintLog

from . import _distributed
from .exceptions import DivergenceError
from .nn import known_targets
from .nn.weighting import split_parameters


class TensorData(torch.utils.data.Dataset):
    """Encoded features, and optionally targets and sample weights, as tensors.

    Parameters
    ----------
    categorical : IntTensor or LongTensor of shape (n_rows, n_categorical)
    numeric : FloatTensor of shape (n_rows, n_numeric)
    target : FloatTensor of shape (n_rows, n_tasks), optional
    sample_weight : FloatTensor of shape (n_rows,), optional
    rows : LongTensor, optional
        The rows of the tensors that make up this data set (a training or
        validation split), in order; all rows when None. Splits share the
        tensors instead of copying them.
    """

    def __init__(self, categorical, numeric, target=None, sample_weight=None, rows=None):
        self.categorical = categorical
        self.numeric = numeric
        self.target = target
        self.sample_weight = sample_weight
        self.rows = rows

    def __len__(self):
        return self.categorical.shape[0] if self.rows is None else len(self.rows)

    def __getitem__(self, index):
        return self.batch(index)

    def batch(self, index):
        """Return ``(features, (target, sample_weight))`` for rows ``index``.

        ``index`` is a slice or a tensor of positions in this data set.
        """
        if self.rows is not None:
            index = self.rows[index]
        if isinstance(index, torch.Tensor) and index.dim() == 1:
            def rows_of(tensor):  # whole rows copied: twice as fast as tensor[index]
                return tensor.index_select(0, index)
        else:
            def rows_of(tensor):
                return tensor[index]
        features = {"categorical": rows_of(self.categorical), "numeric": rows_of(self.numeric)}
        target = None if self.target is None else rows_of(self.target)
        weight = None if self.sample_weight is None else rows_of(self.sample_weight)
        return features, (target, weight)

    def subset(self, positions):
        """The data set made of rows ``positions`` of this one, sharing its tensors."""
        positions = torch.as_tensor(positions, dtype=torch.long)
        rows = positions if self.rows is None else self.rows[positions]
        return TensorData(self.categorical, self.numeric, self.target, self.sample_weight, rows)


class BatchIterator:
    """Iterate over a :class:`TensorData` in mini-batches by slicing its tensors.

    Unlike a ``DataLoader``, no per-row ``__getitem__`` or collation happens:
    each batch is one slice (or one gather, when shuffling) per tensor.

    Parameters
    ----------
    dataset : TensorData
    batch_size : int
    shuffle : bool, default=False
        Draw a new permutation of the rows at every pass.
    seed : int, optional
        Seed of the permutations; the iterator owns its generator, so the
        global torch RNG is not touched.
    max_batches : int, optional
        Stop each pass after this many batches (the ranks of a distributed
        fit take the same number of steps).
    """

    def __init__(self, dataset, batch_size, shuffle=False, seed=None, max_batches=None):
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.max_batches = max_batches
        self.generator = torch.Generator()
        if seed is not None:
            self.generator.manual_seed(int(seed))
        else:
            self.generator.seed()

    def __len__(self):
        n_batches = math.ceil(len(self.dataset) / self.batch_size)
        return n_batches if self.max_batches is None else min(n_batches, self.max_batches)

    def __iter__(self):
        n_samples = len(self.dataset)
        order = torch.randperm(n_samples, generator=self.generator) if self.shuffle else None
        for start in range(0, min(n_samples, len(self) * self.batch_size), self.batch_size):
            stop = min(start + self.batch_size, n_samples)
            rows = slice(start, stop) if order is None else order[start:stop]
            yield self.dataset.batch(rows)


class EpochTable(PrintLog):
    """``verbose >= 1``: one row per epoch, as a table.

    The losses and validation scores per task and the seconds the epoch
    took; the task weights only when they are learned (under fixed weights
    they are the same every epoch). The header comes once per model and
    set of columns, so that ``partial_fit`` calls and warm starts continue
    one table (a fit that turns ``verbose`` on later, or adds columns, gets
    a new header); the epoch early stopping ends on is printed too. Under
    ``torch.distributed`` only rank 0 prints.
    """

    def on_epoch_end(self, net, **kwargs):
        if _not_rank_zero():
            return
        if not net.loss_weighting_.learned:
            self.keys_ignored_ = set(self.keys_ignored_) | {
                f"task_weight_{task}" for task in net.task_names}
        # Callbacks are rebuilt per call: the net remembers the columns of the
        # table it began; a warm start that adds columns starts a new header.
        columns = self._sorted_keys(net.history[-1].keys())
        self.first_iteration_ = getattr(net, "epoch_table_columns_", None) != columns
        super().on_epoch_end(net, **kwargs)
        if net.verbose:  # the header was printed, not only formatted
            net.epoch_table_columns_ = columns
        self.printed_epochs_ = len(net.history)

    # skorch's table drops every key ending in "_best" or "_batch_count" (its flags
    # of a best epoch, its batch counts) and colours a value whose "<key>_best" is
    # true: a task named "a_best" lost its columns and coloured task "a"'s numbers.
    # skmtl records no such flags; only skorch's two batch counts are dropped.
    _BATCH_COUNTS = ("train_batch_count", "valid_batch_count")

    def _sorted_keys(self, keys):
        ignored = set(self.keys_ignored_) | set(self._BATCH_COUNTS)
        shown = sorted(key for key in keys if key not in ignored)
        events = [key for key in shown if key.startswith("event_")]
        return ([key for key in ("epoch",) if key in shown]
                + [key for key in shown if key not in ("epoch", "dur") and key not in events]
                + events + [key for key in ("dur",) if key in shown])

    def format_row(self, row, key, color):
        flag = f"{key}_best"
        if flag in row and not isinstance(row[flag], bool):  # a task's value, not a flag
            row = {name: value for name, value in row.items() if name != flag}
        return super().format_row(row, key, color)

    def on_train_end(self, net, **kwargs):
        # EarlyStopping stops training in its on_epoch_end, before this one's
        last = net.history[-1] if len(net.history) else {}
        if "train_loss" in last and getattr(self, "printed_epochs_", None) is not None \
                and self.printed_epochs_ < len(net.history):
            self.on_epoch_end(net, **kwargs)


class BestWeightsEarlyStopping(EarlyStopping):
    """skorch's ``EarlyStopping``, restoring the best weights after an interrupted epoch too.

    An epoch cut short by an interrupt is dropped from the history
    (:meth:`MultiTaskNet.fit_loop`), so the last complete epoch may be the
    best one while the module holds the cut epoch's weights: skorch, which
    restores only when the best epoch is not the last, would keep them (and
    with no complete epoch at all it fails on the empty history).
    """

    def on_train_end(self, net, **kwargs):
        if not self.load_best or self.best_model_weights_ is None:
            return  # no epoch of this fit completed: the latest weights stay
        net.module_.load_state_dict(self.best_model_weights_)
        if self.best_epoch_ != net.history[-1, "epoch"]:
            self._sink(f"Restoring best model from epoch {self.best_epoch_}.",
                       verbose=net.verbose)


def _not_rank_zero():
    rank_and_size = _distributed.world()
    return rank_and_size is not None and rank_and_size[0] != 0


def rank_zero_sink():
    """A skorch callback's ``sink``: ``print`` itself (skorch then prints only with
    ``verbose``), or nothing on the ranks but 0 of a distributed fit."""
    return _print_nothing if _not_rank_zero() else print


def _print_nothing(*args, **kwargs):
    """A ``sink`` that prints nothing."""


class BatchProgress(Callback):
    """``verbose >= 2``: progress within each epoch.

    A tqdm bar on standard error when it is a terminal (skorch depends on
    tqdm); otherwise a plain line at each quarter of the epoch's batches,
    written where the epoch table goes.

    Parameters
    ----------
    sink : callable, default=print
    """

    def __init__(self, sink=print):
        self.sink = sink

    def on_epoch_begin(self, net, dataset_train=None, **kwargs):
        self._close_bar()
        if net.verbose < 2 or dataset_train is None or _not_rank_zero():
            return
        self.total_ = max(1, math.ceil(len(dataset_train) / net.batch_size))
        max_batches = getattr(net, "iterator_train__max_batches", None)
        if max_batches:
            self.total_ = min(self.total_, max_batches)
        self.done_, self.quarter_ = 0, 1
        self.epoch_ = len(net.history)
        self.started_ = time.perf_counter()
        if sys.stderr.isatty():
            from tqdm.auto import tqdm

            self.bar_ = tqdm(total=self.total_, desc=f"epoch {self.epoch_}", unit="batch",
                             leave=False, file=sys.stderr)

    def on_batch_end(self, net, training=False, **kwargs):
        if net.verbose < 2 or not training or getattr(self, "total_", None) is None:
            return
        self.done_ += 1
        if self.bar_ is not None:
            self.bar_.update(1)
        elif self.done_ * 4 >= self.quarter_ * self.total_:
            while self.quarter_ * self.total_ <= self.done_ * 4:
                self.quarter_ += 1
            self.sink(f"epoch {self.epoch_}: {self.done_}/{self.total_} batches, "
                      f"{time.perf_counter() - self.started_:.1f} s")

    def on_epoch_end(self, net, **kwargs):
        self._close_bar()

    def on_train_end(self, net, **kwargs):
        self._close_bar()  # an interrupted epoch ends here, not in on_epoch_end

    def _close_bar(self):
        if getattr(self, "bar_", None) is not None:
            self.bar_.close()
        self.bar_, self.total_ = None, None


class LearningRateSchedule(Callback):
    """Set the learning rate before every training batch.

    ``"cosine"``: a linear warm-up over the first ``warmup_fraction`` of the
    steps, then a cosine decay towards zero at the last step (Loshchilov & Hutter,
    "SGDR", ICLR 2017). ``"constant"``: ``learning_rate`` throughout. Each
    ``fit`` (also with ``warm_start``) runs the whole schedule over its
    ``max_epochs``; early stopping may end it before the decay is complete.

    Parameters
    ----------
    schedule : {"cosine", "constant"}
    learning_rate : float
        The peak learning rate.
    total_steps : int
        Training batches in the whole fit.
    warmup_fraction : float, default=0.05
    """

    def __init__(self, schedule, learning_rate, total_steps, warmup_fraction=0.05):
        self.schedule = schedule
        self.learning_rate = float(learning_rate)
        self.total_steps = total_steps
        self.warmup_fraction = warmup_fraction

    def initialize(self):
        self.step_ = 0
        return self

    def rate(self, step):
        """The learning rate of training step ``step`` (counted from 0)."""
        if self.schedule == "constant":
            return self.learning_rate
        warmup = max(1, int(self.warmup_fraction * self.total_steps))
        if step < warmup:
            return self.learning_rate * (step + 1) / warmup
        # the first step after warm-up already decays; the last ends just above zero
        progress = min(1.0, (step - warmup + 1) / (self.total_steps - warmup + 1))
        return self.learning_rate * 0.5 * (1.0 + math.cos(math.pi * progress))

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        if training:
            rate = self.rate(self.step_)
            for group in net.optimizer_.param_groups:
                group["lr"] = rate
            self.step_ += 1

    def on_train_end(self, net, X=None, y=None, **kwargs):
        # A saved or warm-started model resumes from the peak rate, not from ~0.
        for group in net.optimizer_.param_groups:
            group["lr"] = self.learning_rate


def label_weights(target, weight, missing_labels=True):
    """The weight of the known labels of each task in a batch: a tensor ``(n_tasks,)``,
    or without ``missing_labels`` (every label known) one number for all tasks."""
    if not missing_labels:
        return len(target) if weight is None else float(weight.sum())
    _, known = known_targets(target)
    return known.sum(dim=0) if weight is None else weight.to(known.dtype) @ known


class MultiTaskNet(NeuralNet):
    """skorch net for the multi-task modules.

    The criterion returns one loss per task; ``loss_weighting`` combines
    them into the training step. The net records, per epoch, the mean loss
    per task (``{prefix}_loss_{task}``), their sum weighted by the fixed task
    weights (``{prefix}_loss``), the weight of each task's loss at the end of
    the epoch (``task_weight_{task}``: for DWA the epoch's, for the weights
    learned step by step the last step's) and, on validation, a score per task: the ROC
    AUC (``valid_auc_{task}``) or the R² (``valid_r2_{task}``), and with
    ``scoring`` their mean. Losses are accumulated on the device and read
    back once per epoch, not once per batch.

    Parameters
    ----------
    task_names : list of str
    loss_weighting : callable
        Returns the :class:`skmtl.nn.weighting.LossWeighting` that runs each
        batch's backward pass from the per-task losses (``loss_weighting_``).
    validation_metric : {"auc", "r2"}, default="auc"
        ``"auc"``: the module's ``predict_proba`` turns its outputs into
        class probabilities. ``"r2"``: the outputs are one prediction per
        task, compared with the targets as they are.
    scoring : str, optional
        Also record ``valid_{scoring}``, the mean of the per-task validation
        scores weighted by ``scoring_weights`` (tasks of weight 0 left out).
    scoring_weights : sequence of float, optional
    missing_labels : bool, default=True
        Whether some targets are NaN (missing). False lets the criterion and
        the per-epoch means skip the masking.
    **kwargs
        Passed to :class:`skorch.NeuralNet`.
    """

    def __init__(self, *args, task_names, loss_weighting, validation_metric="auc",
                 scoring=None, scoring_weights=None, missing_labels=True, **kwargs):
        super().__init__(*args, **kwargs)
        self.missing_labels = missing_labels
        self.distributed = False  # set by a fit under torch.distributed, see skmtl._distributed
        self.task_names = task_names
        self.loss_weighting = loss_weighting
        self.validation_metric = validation_metric
        self.scoring = scoring
        self.scoring_weights = scoring_weights

    def initialize_criterion(self):
        super().initialize_criterion()
        self.criterion_.missing_labels = self.missing_labels
        # Registered as a criterion, its learned weights join the optimizer and
        # follow the device. A warm start rebuilds the criterion but keeps it.
        if not hasattr(self, "loss_weighting_"):
            self.loss_weighting_ = self.loss_weighting()
        return self

    @property
    def _default_callbacks(self):
        return [("epoch_timer", EpochTimer()), ("batch_progress", BatchProgress()),
                ("print_log", EpochTable())]

    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        """Train; on ``KeyboardInterrupt`` note whether the user (not early stopping) sent it.

        skorch's ``partial_fit`` catches the interrupt and still runs
        ``on_train_end``, where early stopping restores the best weights. An
        epoch cut short is dropped from the history. ``interrupted_`` tells
        the caller whether training was interrupted.
        """
        self.interrupted_ = False
        self.parameter_split_ = split_parameters(self.module_)
        try:
            return super().fit_loop(X, y, epochs, **fit_params)
        except KeyboardInterrupt:
            # the rows the cut epoch's sparse steps left behind, before on_train_end
            # restores the best weights (and the schedule its first rate)
            self.optimizer_.catch_up()
            stoppers = [cb for _, cb in self.callbacks_ if isinstance(cb, EarlyStopping)]
            self.interrupted_ = not any(cb.misses_ >= cb.patience for cb in stoppers)
            if len(self.history) and "dur" not in self.history[-1]:
                self.history.pop()
            raise

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        # skorch opens a history entry per batch here; losses are recorded per
        # epoch instead, so there is nothing to keep per batch.
        pass

    def _set_training(self, training=True):
        # skorch switches the mode before every batch; walking the module tree
        # each time is measurable on small models, so only switch on change.
        if self.module_.training != training:
            super()._set_training(training)

    def get_dataset(self, X, y=None):
        if not isinstance(X, TensorData):
            raise TypeError("MultiTaskNet trains on TensorData; encode the input first.")
        return X

    def _outputs_finite(self, batch):
        """Whether the network's outputs for ``batch`` are all finite (in evaluation mode:
        a pass in training mode would move batch normalisation's running statistics)."""
        self._set_training(False)
        with torch.no_grad():
            outputs = self.infer(batch[0])
        outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
        finite = torch.stack([torch.isfinite(output).all() for output in outputs]).all()
        if self.distributed:  # every rank's last batch: all ranks stop, or none
            finite = _distributed.sum_over_ranks((~finite).float()) == 0
        return bool(finite)

    def _batch_loss(self, batch):
        features, (target, weight) = batch
        y_pred = self.infer(features)
        target = target.to(self.device)
        weight = None if weight is None else weight.to(self.device)
        task_losses = self.criterion_(y_pred, target, weight)
        # taken, not kept: a tensor of the graph left on the criterion would hold the
        # graph and stop the model from being pickled
        label_free = self.criterion_.__dict__.pop("label_free_", None)
        return y_pred, task_losses, label_free

    def train_step_single(self, batch, **fit_params):
        self._set_training(True)
        y_pred, task_losses, label_free = self._batch_loss(batch)
        target, weight = batch[1]
        known = label_weights(target, weight, self.missing_labels)
        trained, shares = self._per_label(task_losses, label_free, known, len(target), weight)
        loss = self.loss_weighting_.backward(trained, *self.parameter_split_,
                                             label_shares=shares, mean_losses=task_losses)
        if self.distributed:
            _distributed.average_gradients(list(self.module_.parameters())
                                           + list(self.loss_weighting_.parameters()))
        else:
            self._drop_gradients_without_labels(known, weight)
        return {"loss": loss, "y_pred": y_pred, "task_losses": task_losses.detach()}

    def _per_label(self, task_losses, label_free, known, n_rows, weight):
        """The losses to train on: each task's, times the share of the batch's weight its
        known labels hold (``known``, of :func:`label_weights`); and those shares (None
        without ``missing_labels``).

        Each task's loss is a mean over its known labels (as recorded); trained
        as it is, a task known on 10 % of the rows would give each of its labels
        ten times the pull of another task's. Scaled, every known label weighs
        the same whichever task it belongs to (on Census with 90 % of one task's
        labels missing, the other task gained 0.0009 AUC and the sparse one
        0.0001; see benchmarks/README.md). ``label_free``, the part of the
        losses that needs no label (AITM's calibrator), is not scaled.
        """
        if not self.missing_labels:
            return task_losses, None
        known = known.to(task_losses.device)
        total = (known.new_tensor(n_rows) if weight is None
                 else weight.sum().to(known.device, known.dtype))
        share = known / total.clamp(min=torch.finfo(known.dtype).tiny)
        if label_free is None:
            return task_losses * share, share
        return (task_losses - label_free) * share + label_free, share

    def _drop_gradients_without_labels(self, known, weight):
        """No step at all on a batch that teaches nothing (``known``: the batch's
        :func:`label_weights`).

        A batch without a known label of positive weight (in any task)
        gives every parameter a gradient of exactly 0, which Adam would
        still follow by its momentum (and weight decay): a ``partial_fit``
        chunk of missing labels moved a regressor's predictions by many
        standard deviations. Such gradients become None, which the
        optimizer skips. A criterion that teaches without labels (AITM's
        calibrator) leaves gradients that are not 0: those steps are taken.
        (Not under torch.distributed, where every rank must take the same
        step whatever its own rows.)
        """
        if not self.missing_labels and weight is None:
            return
        if bool(torch.as_tensor(known > 0).any()):
            return
        parameters = [*self.module_.parameters(), *self.loss_weighting_.parameters()]
        gradients = [p.grad for p in parameters if p.grad is not None]
        if any(bool(g.coalesce().values().any() if g.is_sparse else g.any())
               for g in gradients):
            return
        for parameter in parameters:
            parameter.grad = None

    def train_step(self, batch, **fit_params):
        kept = self.loss_weighting_.before_step()
        step = super().train_step(batch, **fit_params)
        self.loss_weighting_.after_step(kept)
        return step

    def validation_step(self, batch, **fit_params):
        self._set_training(False)
        with torch.no_grad():
            y_pred, task_losses, _ = self._batch_loss(batch)
        return {"loss": task_losses.sum(), "y_pred": y_pred, "task_losses": task_losses}

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        if iterator is None:
            return
        # in float64: a float32 sum of losses times batch weights (up to 1e30 in
        # all) overflows where every step's loss is finite
        loss_sum = torch.zeros(len(self.task_names), dtype=torch.float64, device=self.device)
        # Tasks whose loss was the first to turn NaN/inf: once one task's loss
        # is NaN, shared weights spread it to the others.
        first_nonfinite = torch.zeros(len(self.task_names), dtype=torch.bool, device=self.device)
        weight_sum = torch.zeros(len(self.task_names), dtype=torch.float64, device=self.device)
        scores, targets, weights = [], [], []
        n_batches = 0
        for batch in iterator:
            self.notify("on_batch_begin", batch=batch, training=training)
            step = step_fn(batch, **fit_params)
            _, (target, weight) = batch
            # each task's loss is a mean over the rows where its label is known
            batch_weight = label_weights(target, weight, self.missing_labels)
            if self.missing_labels:
                batch_weight = batch_weight.to(self.device)
            loss_sum += step["task_losses"].double() * batch_weight
            first_nonfinite = torch.where(first_nonfinite.any(), first_nonfinite,
                                          ~torch.isfinite(step["task_losses"]))
            weight_sum += batch_weight
            if not training:
                scores.append([p.cpu() for p in self._validation_scores(step["y_pred"])])
                targets.append(target)
                weights.append(weight)
            self.notify("on_batch_end", batch=batch, training=training, **step)
            n_batches += 1
        if training:  # the embedding rows sparse steps left behind, before anything reads them
            self.optimizer_.catch_up()
            if self.distributed:  # one model on every rank, to validate and to keep
                _distributed.average_batch_statistics(self.module_)
        if self.distributed:  # the epoch's numbers over every rank's rows
            loss_sum = _distributed.sum_over_ranks(loss_sum)
            weight_sum = _distributed.sum_over_ranks(weight_sum)
            first_nonfinite = _distributed.sum_over_ranks(first_nonfinite.float()) > 0
            if not training:
                gathered = _distributed.gather((scores, targets, weights))
                scores, targets, weights = ([part for rank in gathered for part in rank[k]]
                                            for k in range(3))
        # a task without a known label in the epoch's rows has no loss (NaN, not 0)
        labelled = (weight_sum > 0).tolist()
        task_losses = [loss if known else math.nan for loss, known in zip(
            (loss_sum / weight_sum.clamp(min=np.finfo(np.float32).tiny)).tolist(), labelled)]
        if not all(math.isfinite(loss) for loss, known in zip(task_losses, labelled) if known):
            diverged = [name for name, bad in zip(self.task_names, first_nonfinite.tolist())
                        if bad]
            raise DivergenceError(
                f"The {prefix} loss of task(s) {diverged} became NaN or infinite at epoch "
                f"{len(self.history)}; lower learning_rate or check the input scale.")
        # The losses come before each step: the epoch's last step may still have
        # left weights whose outputs are NaN or infinite (one step of a huge
        # learning rate, say). One more forward pass of the last batch tells.
        if training and n_batches and not self._outputs_finite(batch):
            raise DivergenceError(
                f"The network's outputs became NaN or infinite after the last step of epoch "
                f"{len(self.history)}; lower learning_rate or check the input scale.")
        self.history.record(prefix + "_batch_count", n_batches)
        fixed_weights = self.loss_weighting_.task_weights.tolist()
        self.history.record(prefix + "_loss", math.fsum(
            weight * loss for weight, loss, known in zip(fixed_weights, task_losses, labelled)
            if known) if any(labelled) else math.nan)
        for name, loss in zip(self.task_names, task_losses):
            self.history.record(f"{prefix}_loss_{name}", loss)
        if training:
            for name, weight in zip(self.task_names, self.loss_weighting_.weights().tolist()):
                self.history.record(f"task_weight_{name}", weight)
            self.loss_weighting_.end_epoch(task_losses)
        else:
            per_task = _per_task_auc if self.validation_metric == "auc" else _per_task_r2
            task_scores = per_task(scores, targets, weights)
            for name, score in zip(self.task_names, task_scores):
                self.history.record(f"{prefix}_{self.validation_metric}_{name}", score)
            if self.scoring is not None:
                self.history.record(f"{prefix}_{self.scoring}",
                                    _weighted_score(task_scores, self.scoring_weights))

    def _validation_scores(self, outputs):
        if self.validation_metric == "auc":
            return self.module_.predict_proba(outputs)
        return [o[:, 0] for o in outputs]


def _weighted_score(task_scores, task_weights):
    """Mean of the defined (non-NaN) scores of the tasks of positive weight, weighted."""
    scores, weights = np.asarray(task_scores), np.asarray(task_weights, dtype=np.float64)
    counted = (weights > 0) & ~np.isnan(scores)
    if not counted.any():
        return float("nan")
    return float(np.average(scores[counted], weights=weights[counted]))


def _per_task_auc(scores, targets, weights):
    """ROC AUC per task over its known labels (one-vs-rest macro for multiclass).

    NaN where undefined.
    """
    target = torch.cat(targets).numpy()
    weight = None if weights[0] is None else torch.cat(weights).numpy()
    aucs = []
    for t in range(target.shape[1]):
        known = ~np.isnan(target[:, t])
        proba = torch.cat([batch[t] for batch in scores]).numpy()[known]
        labels = target[known, t].astype(np.int64)
        task_weight = None if weight is None else weight[known]
        if proba.shape[1] == 2:
            aucs.append(binary_auc(labels, proba[:, 1], task_weight))
            continue
        if not (np.bincount(labels, minlength=proba.shape[1]) > 0).all():
            # a class absent from the validation rows: undefined (and, with thousands of
            # classes, roc_auc_score took seconds per epoch to find it so)
            aucs.append(float("nan"))
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                auc = roc_auc_score(labels, proba, multi_class="ovr", sample_weight=task_weight,
                                    labels=np.arange(proba.shape[1]))
            except ValueError:  # e.g. a class whose rows all weigh 0
                auc = float("nan")
        aucs.append(float(auc))
    return aucs


def binary_auc(labels, scores, sample_weight=None):
    """ROC AUC of 0/1 ``labels`` against ``scores``, as ``roc_auc_score`` computes it.

    The weighted Mann-Whitney statistic, tied scores counting one half; NaN
    when one class is absent (or has no weight). One sort and no input
    checks: run after every epoch, ``roc_auc_score`` costs several times
    more than this on validation sets of a few thousand rows.

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl._training import binary_auc
    >>> binary_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    0.75
    >>> binary_auc(np.array([0, 1]), np.array([0.5, 0.5]))  # a tie counts one half
    0.5
    """
    labels = np.asarray(labels)
    scores = np.asarray(scores)
    if len(scores) == 0 or not np.isfinite(scores).all():
        return float("nan")
    weight = (np.ones(len(labels)) if sample_weight is None
              else np.asarray(sample_weight, dtype=np.float64))
    order = np.argsort(scores, kind="stable")
    scores, positive = scores[order], labels[order] == 1
    # weights of the positives and the negatives summed over each run of equal scores
    starts = np.flatnonzero(np.r_[True, scores[1:] != scores[:-1]])
    positive_weight = np.add.reduceat(np.where(positive, weight[order], 0.0), starts)
    negative_weight = np.add.reduceat(np.where(positive, 0.0, weight[order]), starts)
    total_positive, total_negative = positive_weight.sum(), negative_weight.sum()
    if not (total_positive > 0 and total_negative > 0):
        return float("nan")
    negatives_below = np.cumsum(negative_weight) - negative_weight
    pairs = np.dot(positive_weight, negatives_below + 0.5 * negative_weight)
    return float(pairs / (total_positive * total_negative))


def _per_task_r2(scores, targets, weights):
    """R² per task over its known targets; NaN where they are constant or absent."""
    target = torch.cat(targets).numpy()
    weight = None if weights[0] is None else torch.cat(weights).numpy()
    r2 = []
    for t in range(target.shape[1]):
        known = ~np.isnan(target[:, t])
        counted = target[known if weight is None else known & (weight > 0), t]
        if not len(counted) or counted.min() == counted.max():
            # constant: r2_score's float32 mean of equal values may differ from them,
            # and a spread of rounding gives a finite R² of -1e14
            r2.append(float("nan"))
            continue
        prediction = torch.cat([batch[t] for batch in scores]).numpy()[known]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            score = float(r2_score(target[known, t], prediction,
                                   sample_weight=None if weight is None else weight[known],
                                   force_finite=False))
        r2.append(score if math.isfinite(score) else float("nan"))
    return r2
