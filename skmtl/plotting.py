"""Pictures of fitted estimators, in scikit-learn's Display style.

Each display is built by ``from_estimator(...)`` (which also draws it) or by
its constructor from values already computed, and drawn by ``plot(ax=...)``;
``plot`` returns the display, with the axes in ``ax_``, the figure in
``figure_`` and the drawn artists in attributes ending in ``_``. Needs
matplotlib (the ``plot`` extra: ``pip install ".[plot]"`` in the repository).
"""

from numbers import Integral

import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.utils.validation import check_is_fitted

from ._encoding import known_labels
from ._encoding._common import as_pandas
from ._outputs import check_skmtl_estimator

__all__ = ["GateWeightsDisplay", "HistoryDisplay", "TaskCalibrationDisplay"]


def _pyplot():
    """matplotlib's pyplot, or an ImportError naming the extra to install."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("skmtl.plotting needs matplotlib: pip install '.[plot]' in the "
                          "repository.") from None
    return plt


def _axes(ax):
    """``ax``, or the axes of a new figure."""
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(layout="constrained")  # room for long task names
    return ax


def _check_bool(value, name):
    """A TypeError unless ``value`` is a bool (a string such as "no" would count as True)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {value!r}.")


class HistoryDisplay:
    """Learning curves per task: training and validation loss, and the validation score.

    Parameters
    ----------
    epochs : ndarray of shape (n_epochs,)
    losses : dict
        ``{label: values per epoch}``, e.g. ``{"train income": [...],
        "valid income": [...]}``: one line each on the loss axis.
    scores : dict, optional
        ``{label: values per epoch}`` drawn dashed on a second axis (the
        validation ROC AUC or R² per task).
    score_name : str, default="validation score"
    estimator_name : str, optional
        Title of the plot.

    Attributes
    ----------
    lines_ : list of matplotlib Line2D
    ax_ : matplotlib Axes
        The loss axis.
    score_ax_ : matplotlib Axes or None
        The score axis (a twin of ``ax_``), when there are scores.
    figure_ : matplotlib Figure

    Examples
    --------
    >>> from skmtl import MMOEClassifier
    >>> from skmtl.datasets import make_multitask
    >>> from skmtl.plotting import HistoryDisplay
    >>> data = make_multitask(2_000, n_tasks=2, random_state=0)
    >>> model = MMOEClassifier(max_epochs=3, early_stopping=True, random_state=0)
    >>> display = HistoryDisplay.from_estimator(model.fit(data.data, data.target))
    >>> [line.get_label() for line in display.lines_][:2]
    ['train task_0', 'valid task_0']
    """

    def __init__(self, *, epochs, losses, scores=None, score_name="validation score",
                 estimator_name=None):
        self.epochs = np.asarray(epochs)
        self.losses = dict(losses)
        self.scores = dict(scores or {})
        self.score_name = score_name
        self.estimator_name = estimator_name

    @classmethod
    def from_estimator(cls, estimator, *, tasks=None, scores=True, ax=None):
        """The learning curves of a fitted skmtl estimator's ``history_``, drawn on ``ax``.

        Parameters
        ----------
        estimator : fitted skmtl estimator
        tasks : str, int or list of them, optional
            The task or tasks to draw, by name (default: all); a name that is
            not a string (an integer column label of ``Y``) is read as its
            string, ``0`` as ``"0"``, as in ``task_weights``.
        scores : bool, default=True
            Also draw each task's validation ROC AUC (classifiers) or R²
            (regressors), when the fit held out validation rows.
        ax : matplotlib Axes, optional
        """
        check_skmtl_estimator(estimator, "HistoryDisplay", verb="draws")
        _pyplot()  # before any work on the estimator
        check_is_fitted(estimator)
        history = estimator.history_
        # task names are the strings of y's column names, as in task_weights
        tasks = (estimator.task_names_ if tasks is None else
                 [str(tasks)] if isinstance(tasks, str) or not np.iterable(tasks)
                 else [str(task) for task in tasks])
        unknown = [task for task in tasks if task not in estimator.task_names_]
        if unknown or not tasks:
            raise ValueError(f"tasks {unknown or tasks} are not among the estimator's tasks "
                             f"{estimator.task_names_}.")
        _check_bool(scores, "scores")
        # Keys of any epoch: a warm start may add or drop the validation rows,
        # so that some epochs lack a key; those epochs get NaN (a gap in the line).
        recorded = {key for epoch in history for key in epoch}

        def per_epoch(key):
            return np.array([epoch.get(key, np.nan) for epoch in history], dtype=float)

        losses, score_values = {}, {}
        metric = "r2" if any(key.startswith("valid_r2_") for key in recorded) else "auc"
        for task in tasks:
            for prefix in ("train", "valid"):
                if f"{prefix}_loss_{task}" in recorded:
                    losses[f"{prefix} {task}"] = per_epoch(f"{prefix}_loss_{task}")
            if scores and f"valid_{metric}_{task}" in recorded:
                score_values[f"{metric.upper()} {task}"] = per_epoch(f"valid_{metric}_{task}")
        display = cls(epochs=per_epoch("epoch"), losses=losses, scores=score_values,
                      score_name=f"validation {'ROC AUC' if metric == 'auc' else 'R²'}",
                      estimator_name=type(estimator).__name__)
        return display.plot(ax=ax)

    def plot(self, ax=None):
        """Draw the curves on ``ax``; return ``self``.

        Parameters
        ----------
        ax : matplotlib Axes, optional
            Where to draw; a new figure's by default. The scores, if any, go on
            a twin axes sharing its epochs (``score_ax_``).
        """
        ax = _axes(ax)
        from matplotlib.ticker import MaxNLocator

        self.lines_ = [ax.plot(self.epochs, values, marker="o", label=label)[0]
                       for label, values in self.losses.items()]
        ax.set(xlabel="epoch", ylabel="loss")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        self.score_ax_ = None
        if self.scores:
            self.score_ax_ = ax.twinx()
            # colours after the losses': the twin axes would start the cycle again
            self.lines_ += [self.score_ax_.plot(self.epochs, values, linestyle="--",
                                                color=f"C{(len(self.losses) + k) % 10}",
                                                label=label)[0]
                            for k, (label, values) in enumerate(self.scores.items())]
            self.score_ax_.set_ylabel(self.score_name)
        # "best" would not see the score axis' lines
        ax.legend(self.lines_, [line.get_label() for line in self.lines_], fontsize="small",
                  loc="center right")
        if self.estimator_name:
            ax.set_title(f"{self.estimator_name}: learning curves")
        self.ax_, self.figure_ = ax, ax.figure
        return self


class GateWeightsDisplay:
    """The gates' mean mixture weights over the experts, as a gates × experts heat map.

    Parameters
    ----------
    weights : ndarray of shape (n_gates, n_experts)
        Mean weight of each expert in each gate (rows sum to 1).
    gate_names : list of str
    expert_names : list of str, optional
    title : str, optional

    Attributes
    ----------
    image_ : matplotlib AxesImage
    text_ : ndarray of matplotlib Text, shape (n_gates, n_experts)
    colorbar_ : matplotlib Colorbar or None
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure

    Examples
    --------
    >>> from skmtl import MMOEClassifier
    >>> from skmtl.datasets import make_multitask
    >>> from skmtl.plotting import GateWeightsDisplay
    >>> data = make_multitask(2_000, n_tasks=2, random_state=0)
    >>> model = MMOEClassifier(n_experts=3, max_epochs=2, random_state=0)
    >>> display = GateWeightsDisplay.from_estimator(model.fit(data.data, data.target), data.data)
    >>> display.weights.shape
    (2, 3)
    """

    def __init__(self, *, weights, gate_names, expert_names=None, title=None):
        self.weights = np.asarray(weights)
        if self.weights.ndim != 2:
            raise ValueError(f"weights must be 2-D, (n_gates, n_experts); got shape "
                             f"{self.weights.shape}.")
        self.gate_names = list(gate_names)
        self.expert_names = (list(expert_names) if expert_names is not None else
                             [f"expert {e}" for e in range(self.weights.shape[1])])
        for names, what, size in ((self.gate_names, "gate_names", self.weights.shape[0]),
                                  (self.expert_names, "expert_names", self.weights.shape[1])):
            if len(names) != size:
                raise ValueError(f"{what} has {len(names)} names for weights of shape "
                                 f"{self.weights.shape}; it needs {size}.")
        self.title = title

    @classmethod
    def from_estimator(cls, estimator, X, *, level=-1, ax=None):
        """The mean gate weights of ``estimator`` over the rows of ``X``, drawn on ``ax``.

        Parameters
        ----------
        estimator : fitted MMoE, OMoE or PLE estimator
        X : DataFrame or array-like
        level : int, default=-1
            For PLE, the level whose gates to draw (its experts: the shared
            ones first, then each task's; its gates: each task's, and on
            every level but the last the shared gate).
        ax : matplotlib Axes, optional
        """
        check_skmtl_estimator(estimator, "GateWeightsDisplay", verb="draws")
        _pyplot()
        if not hasattr(estimator, "gate_weights"):
            raise TypeError(f"{type(estimator).__name__} has no gates; GateWeightsDisplay "
                            "draws those of MMoE, OMoE and PLE.")
        check_is_fitted(estimator)
        if isinstance(level, bool) or not isinstance(level, Integral):
            raise TypeError(f"level must be an integer (a level of the model); got {level!r}.")
        weights = estimator.gate_weights(X)
        tasks = list(estimator.task_names_)
        n_levels = len(weights) if isinstance(weights, list) else 1
        if not -n_levels <= level < n_levels:
            raise ValueError(f"level must be in [{-n_levels}, {n_levels - 1}] for this "
                             f"{n_levels}-level model; got {level}.")
        if isinstance(weights, list):  # PLE: one array per level
            weights = weights[level]
            # the fitted network's experts: set_params may have changed the parameters since
            fitted = estimator._fitted_network_params
            n_shared, per_task = fitted["n_shared_experts"], fitted["n_task_experts"]
            experts = [f"shared {e}" for e in range(n_shared)] + [
                f"{task} {e}" for task in tasks for e in range(per_task)]
            gates = tasks + ["shared"] * (weights.shape[1] - len(tasks))
            title = f"{type(estimator).__name__}: gates of level {level % n_levels}"
        else:
            experts = None
            gates = tasks if weights.shape[1] == len(tasks) else ["all tasks"]
            title = f"{type(estimator).__name__}: gates"
        display = cls(weights=weights.mean(axis=0), gate_names=gates, expert_names=experts,
                      title=title)
        return display.plot(ax=ax)

    def plot(self, ax=None, *, cmap="viridis", values_format=".2f", colorbar=True):
        """Draw the heat map on ``ax``, each cell labelled with its weight; return ``self``.

        Parameters
        ----------
        ax : matplotlib Axes, optional
        cmap : str or matplotlib Colormap, default="viridis"
        values_format : str, default=".2f"
            Format of the weights written in the cells.
        colorbar : bool, default=True
            Add a colour bar beside ``ax`` (``False`` when drawing again on
            axes that already have one).
        """
        ax = _axes(ax)
        self.image_ = ax.imshow(self.weights, cmap=cmap, vmin=0.0, vmax=max(
            float(self.weights.max()), 1e-12), aspect="auto")
        middle = (self.weights.max() + self.weights.min()) / 2
        self.text_ = np.empty(self.weights.shape, dtype=object)
        for (g, e), value in np.ndenumerate(self.weights):
            self.text_[g, e] = ax.text(e, g, format(value, values_format), ha="center",
                                       va="center",
                                       color="black" if value > middle else "white")
        ax.set_xticks(range(len(self.expert_names)), self.expert_names, rotation=45,
                      ha="right")
        ax.set_yticks(range(len(self.gate_names)), self.gate_names)
        ax.set(xlabel="expert", ylabel="gate")
        self.colorbar_ = (ax.figure.colorbar(self.image_, ax=ax, label="mean weight")
                          if colorbar else None)
        if self.title:
            ax.set_title(self.title)
        self.ax_, self.figure_ = ax, ax.figure
        return self


class TaskCalibrationDisplay:
    """Calibration of one binary task: mean predicted probability against the observed rate.

    Parameters
    ----------
    prob_true : ndarray
        Observed rate of the positive class in each bin.
    prob_pred : ndarray
        Mean predicted probability in each bin.
    y_prob : ndarray
        The predicted probabilities.
    task : str, optional
    estimator_name : str, optional

    Attributes
    ----------
    line_ : matplotlib Line2D
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure

    Examples
    --------
    >>> from skmtl import ESMMClassifier
    >>> from skmtl.datasets import make_entire_space
    >>> from skmtl.plotting import TaskCalibrationDisplay
    >>> data = make_entire_space(3_000, random_state=0)
    >>> model = ESMMClassifier(max_epochs=2, random_state=0).fit(data.data, data.target)
    >>> display = TaskCalibrationDisplay.from_estimator(model, data.data, data.target,
    ...                                                 task="click")
    >>> display.line_.get_label()
    'ESMMClassifier: click'
    """

    def __init__(self, *, prob_true, prob_pred, y_prob, task=None, estimator_name=None):
        self.prob_true = np.asarray(prob_true)
        self.prob_pred = np.asarray(prob_pred)
        self.y_prob = np.asarray(y_prob)
        self.task = task
        self.estimator_name = estimator_name

    @classmethod
    def from_estimator(cls, estimator, X, y, *, task=None, conditional=False, n_bins=10,
                       strategy="uniform", ax=None, name=None, ref_line=True, **kwargs):
        """The calibration of ``estimator``'s task ``task`` on ``(X, y)``, drawn on ``ax``.

        Parameters
        ----------
        estimator : fitted skmtl classifier
        X : DataFrame or array-like
        y : array-like of shape (n_samples,) or (n_samples, n_tasks)
            The task's labels, or all tasks' (a DataFrame with the task's
            column, or an array in the estimator's task order). Missing
            labels are left out.
        task : str, optional
            A binary task of the estimator; required with several tasks.
        conditional : bool, default=False
            ESMM and AITM: the probability of the stage given the one before
            (``predict_conditional_proba``), for labels observed given that
            stage, such as conversions of randomly exposed items.
        n_bins : int, default=10
        strategy : {"uniform", "quantile"}, default="uniform"
            As :func:`sklearn.calibration.calibration_curve`.
        ax : matplotlib Axes, optional
        name, ref_line, **kwargs
            As :meth:`plot`: the curve's label (two models of one class on
            one axes need their own), the diagonal, ``ax.plot``'s options.
        """
        check_skmtl_estimator(estimator, "TaskCalibrationDisplay", verb="draws")
        _pyplot()
        if not hasattr(estimator, "predict_proba"):
            raise TypeError(f"{type(estimator).__name__} predicts no probabilities; "
                            "TaskCalibrationDisplay draws those of classifiers.")
        check_is_fitted(estimator)
        tasks = list(estimator.task_names_)
        if task is None:
            if len(tasks) > 1:
                raise ValueError(f"{type(estimator).__name__} has the tasks {tasks}; say which "
                                 "with task=...")
            task = tasks[0]
        task = str(task)  # task names are strings, also for a Y with integer column names
        if task not in tasks:
            raise ValueError(f"task {task!r} is not among the estimator's tasks {tasks}.")
        t = tasks.index(task)
        classes = estimator._classes_list()[t]
        if len(classes) != 2:
            raise ValueError(f"Task {task!r} has {len(classes)} classes; calibration is drawn "
                             "for binary tasks.")
        _check_bool(conditional, "conditional")
        if conditional and not hasattr(estimator, "predict_conditional_proba"):
            raise ValueError(f"conditional=True needs a funnel model (ESMM, AITM); got "
                             f"{type(estimator).__name__}.")
        probas = (estimator.predict_conditional_proba(X) if conditional
                  else estimator.predict_proba(X))
        probas = [probas] if estimator._single_output else probas
        y_task = _task_labels(y, task, t, len(tasks))
        if len(y_task) != len(probas[t]):
            raise ValueError(f"X and y have different numbers of samples: {len(probas[t])} "
                             f"and {len(y_task)}.")
        known = known_labels(y_task)
        if not known.any():
            raise ValueError(f"Every label of task {task!r} in y is missing; calibration needs "
                             "known labels.")
        outside = ~np.isin(y_task[known], classes)
        if outside.any():
            found = np.unique(y_task[known][outside])[:5].tolist()
            raise ValueError(f"y holds labels of task {task!r} that are not among its classes "
                             f"{classes.tolist()}: {found}.")
        y_prob = probas[t][known, 1]
        positive = np.asarray(y_task[known] == classes[1])
        prob_true, prob_pred = calibration_curve(positive, y_prob, n_bins=n_bins,
                                                 strategy=strategy)
        display = cls(prob_true=prob_true, prob_pred=prob_pred, y_prob=y_prob,
                      task=f"{task} | previous stage" if conditional else task,
                      estimator_name=type(estimator).__name__)
        return display.plot(ax=ax, name=name, ref_line=ref_line, **kwargs)

    def plot(self, ax=None, *, name=None, ref_line=True, **kwargs):
        """Draw the curve (and the diagonal) on ``ax``; return ``self``.

        Parameters
        ----------
        ax : matplotlib Axes, optional
            Where to draw; a new figure's by default.
        name : str, optional
            The curve's label (default: estimator and task).
        ref_line : bool, default=True
            Draw the diagonal of perfect calibration (once per axes).
        **kwargs
            Passed to ``ax.plot``, so several estimators can share one axes.
        """
        ax = _axes(ax)
        if name is None:
            name = ": ".join(part for part in (self.estimator_name, self.task) if part) or \
                "predictions"  # an empty label would leave the curve out of the legend
        if ref_line and not any(line.get_label() == "perfectly calibrated"
                                for line in ax.get_lines()):
            ax.plot([0, 1], [0, 1], color="lightgray", linestyle=":",
                    label="perfectly calibrated")
        kwargs.setdefault("marker", "s")
        (self.line_,) = ax.plot(self.prob_pred, self.prob_true, label=name, **kwargs)
        ax.set(xlabel="mean predicted probability", ylabel="observed rate", xlim=(-0.01, 1.01),
               ylim=(-0.01, 1.01))
        ax.legend(loc="upper left", fontsize="small")
        self.ax_, self.figure_ = ax, ax.figure
        return self


def _task_labels(y, task, index, n_tasks):
    """The labels of task ``task`` (number ``index``) from one task's or all tasks' labels."""
    y = as_pandas(y, "y")  # a pyarrow Table's columns are arrays, not names
    if hasattr(y, "columns"):
        matches = [column for column in y.columns if str(column) == task]
        if not matches:
            raise ValueError(f"y has no column {task!r}.")
        return np.asarray(y[matches[0]], dtype=object)
    y = np.asarray(y, dtype=object)
    if y.ndim == 1:
        return y
    if y.ndim != 2 or y.shape[1] != n_tasks:
        raise ValueError(f"y must hold the task's labels or one column per task ({n_tasks}); "
                         f"got shape {y.shape}.")
    return y[:, index]
