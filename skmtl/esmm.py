"""Entire Space Multi-task Model classifier."""

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._base import MultiTaskClassifierBase, _check_units
from .nn import ESMM, EntireSpaceLoss


class ESMMClassifier(MultiTaskClassifierBase):
    """Entire Space Multi-task Model for a funnel of binary stages.

    The classic case has two stages, click and conversion. A CTR tower
    estimates ``p(click | x)`` and a CVR tower ``p(conversion | click, x)``
    over a shared embedding; training supervises ``pCTR`` with the click
    label and ``pCTCVR = pCTR * pCVR`` with the click-and-conversion label on
    every impression, so the CVR estimate is free of the selection bias of
    training on clicked rows only (Ma et al., "Entire Space Multi-Task Model",
    SIGIR 2018). More stages chain the same way: stage ``k``'s entire-space
    probability is the product of the conditional probabilities of stages
    ``1..k``.

    ``Y`` has one 0/1 column per stage, in funnel order; a row may reach a
    stage only if it reached the one before (a conversion needs a click).

    Parameters
    ----------
    tower_units : tuple of int, default=(64, 32)
        Hidden layer widths of every stage's tower.
    max_epochs : int, default=10
        Number of passes over the training data (fewer if early stopping
        ends training). More than MMoE's 6: on Coat and on
        ``make_entire_space`` the funnel's towers kept improving up to 10
        (see ``benchmarks/README.md``, the search).
    categorical_features, embedding_dim, numeric_encoding, n_bins, bin_strategy, \
dropout, learning_rate, learning_rate_schedule, weight_decay, batch_size, \
early_stopping, validation_fraction, n_iter_no_change, tol, random_state, device, \
verbose, warm_start
        As in :class:`skmtl.MMOEClassifier`.

    Attributes
    ----------
    classes_ : list of ndarrays
        ``[array([0, 1])] * n_stages``.
    task_names_ : list of str
        Stage names: ``Y``'s columns when it is a DataFrame.
    n_features_in_, feature_names_in_, is_categorical_, history_, n_iter_, net_
        As in :class:`skmtl.MMOEClassifier`; ``net_.module_`` is a
        :class:`skmtl.nn.ESMM`.

    Examples
    --------
    >>> from skmtl import ESMMClassifier
    >>> from skmtl.datasets import make_entire_space
    >>> data = make_entire_space(5000, random_state=0)
    >>> model = ESMMClassifier(max_epochs=5, random_state=0).fit(data.data, data.target)
    >>> ctr, ctcvr = model.predict_proba(data.data)
    >>> ctr_, cvr = model.predict_conditional_proba(data.data)
    """

    _MODEL_NETWORK_PARAMS = ("tower_units",)
    _parameter_constraints = {
        **MultiTaskClassifierBase._parameter_constraints,
        "tower_units": ["array-like"],
    }

    def __init__(self, *, tower_units=(64, 32), categorical_features="from_dtype",
                 embedding_dim=8, numeric_encoding="piecewise_linear", n_bins=32,
                 bin_strategy="target", dropout=0.0, learning_rate=6e-3,
                 learning_rate_schedule="cosine", weight_decay=1e-5, batch_size="auto",
                 max_epochs=10, early_stopping="auto", validation_fraction=0.1,
                 n_iter_no_change=5, tol=1e-4, random_state=None, device="cpu", verbose=0,
                 warm_start=False):
        super().__init__(
            categorical_features=categorical_features, embedding_dim=embedding_dim,
            numeric_encoding=numeric_encoding, n_bins=n_bins, bin_strategy=bin_strategy,
            dropout=dropout, learning_rate=learning_rate,
            learning_rate_schedule=learning_rate_schedule, weight_decay=weight_decay,
            batch_size=batch_size,
            max_epochs=max_epochs, early_stopping=early_stopping,
            validation_fraction=validation_fraction, n_iter_no_change=n_iter_no_change,
            tol=tol, random_state=random_state, device=device, verbose=verbose,
            warm_start=warm_start)
        self.tower_units = tower_units

    def _check_hyperparameters(self):
        _check_units("tower_units", self.tower_units)

    def _prepare_labels(self, columns, task_names, single_output):
        if single_output or len(columns) < 2:
            raise ValueError(
                "ESMMClassifier needs a 2-D Y with one column per funnel stage (at least "
                "2, e.g. click and conversion).")
        stages = []
        for name, column in zip(task_names, columns):
            try:
                values = np.asarray(column, dtype=np.float64)
            except (TypeError, ValueError):
                values = None
            if values is None or not np.isin(values, (0.0, 1.0)).all():
                found = np.unique(np.asarray(column, dtype=object).astype(str))[:5].tolist()
                raise ValueError(
                    f"ESMMClassifier needs binary 0/1 labels; stage {name!r} has other values "
                    f"(e.g. {found}).")
            stages.append(values.astype(np.int64))
        for (before, earlier), (name, later) in zip(zip(task_names, stages),
                                                    zip(task_names[1:], stages[1:])):
            n_bad = int(np.sum((later == 1) & (earlier == 0)))
            if n_bad:
                raise ValueError(
                    f"{n_bad} row(s) have {name}=1 but {before}=0; in ESMM a stage can only "
                    f"be reached after the previous one (e.g. a conversion needs a click).")
        return stages

    def _build_module(self, cardinalities, n_numeric, padding_codes, classes,
                      numeric_embedding):
        return ESMM(cardinalities, n_numeric, n_stages=len(classes),
                    embedding_dim=self.embedding_dim, tower_units=self.tower_units,
                    dropout=self.dropout, padding_codes=padding_codes,
                    numeric_embedding=numeric_embedding)

    def _build_criterion(self, classes):
        return EntireSpaceLoss()

    def predict_proba(self, X):
        """Entire-space probability of reaching each stage.

        Returns
        -------
        proba : list of ndarrays of shape (n_samples, 2)
            For click and conversion: ``[p(click), p(click and conversion)]``;
            column 1 of each array is the positive class.
        """
        return super().predict_proba(X)

    def predict_conditional_proba(self, X):
        """Probability of each stage given the previous one.

        Returns
        -------
        proba : list of ndarrays of shape (n_samples, 2)
            For click and conversion: ``[p(click), p(conversion | click)]``.
        """
        check_is_fitted(self)
        return self._forward_proba(X, self.net_.module_.predict_conditional_proba)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.single_output = False
        tags.classifier_tags.multi_class = False
        return tags
