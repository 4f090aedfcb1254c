"""skmtl's estimators, fed the raw DataFrames (they encode inside ``fit``/``predict``)."""

from skmtl import ESMMClassifier, MMOEClassifier

from ..config import CENSUS_MMOE, COAT_ESMM, TRAINING
from ..data import VALIDATION_FRACTION
from .base import Runner


def _as_the_peers(epochs):
    """Exactly ``epochs`` epochs with a validation pass each, like the peers.

    Early stopping on with a patience of ``epochs`` never stops before the
    last epoch; it restores the weights of the epoch with the best
    validation loss at the end. Like the peers' and the hand-written loop,
    numeric columns are standardised and the learning rate is constant.
    """
    return {"max_epochs": epochs, "early_stopping": True,
            "validation_fraction": VALIDATION_FRACTION, "n_iter_no_change": epochs,
            "numeric_encoding": "standard", "learning_rate_schedule": "constant"}


class _Census(Runner):
    def make(self, seed):
        raise NotImplementedError

    def fit(self, problem, seed):
        self.model = self.make(seed).fit(problem.X_train, problem.Y_train)
        self.epochs_run = self.model.n_iter_

    def predict(self, problem):
        proba = self.model.predict_proba(problem.X_test)
        return {task: p[:, 1] for task, p in zip(problem.Y_train.columns, proba)}


class SkmtlMMoE(_Census):
    def make(self, seed):
        return MMOEClassifier(**CENSUS_MMOE, **TRAINING, **_as_the_peers(self.epochs),
                              random_state=seed)


class SkmtlMMoEDefaults(_Census):
    def make(self, seed):
        return MMOEClassifier(random_state=seed)


class _CoatESMM(Runner):
    def make(self, seed):
        raise NotImplementedError

    def fit(self, problem, seed):
        self.model = self.make(seed).fit(problem.X_train, problem.Y_train[["click", "conversion"]])
        self.epochs_run = self.model.n_iter_

    def predict(self, problem):
        _, cvr = self.model.predict_conditional_proba(problem.X_test)
        return {"pcvr": cvr[:, 1]}


class SkmtlESMM(_CoatESMM):
    def make(self, seed):
        return ESMMClassifier(**COAT_ESMM, **TRAINING, **_as_the_peers(self.epochs),
                              random_state=seed)


class SkmtlESMMDefaults(_CoatESMM):
    def make(self, seed):
        return ESMMClassifier(random_state=seed)


class SkmtlClickedCVR(Runner):
    """A plain CVR model: conversion as a single task, on the clicked rows only."""

    def fit(self, problem, seed):
        clicked = problem.Y_train["click"].to_numpy() == 1
        self.model = MMOEClassifier(random_state=seed).fit(
            problem.X_train[clicked], problem.Y_train["conversion"][clicked])
        self.epochs_run = self.model.n_iter_

    def predict(self, problem):
        return {"pcvr": self.model.predict_proba(problem.X_test)[:, 1]}
