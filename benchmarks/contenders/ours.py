"""skmtl's estimators, fed the raw DataFrames (they encode inside ``fit``/``predict``)."""

import numpy as np

from skmtl import (AITMClassifier, ESMMClassifier, MMOEClassifier, OMOEClassifier, PLEClassifier,
                   SharedBottomClassifier)

from ..config import (AITM_SIZES, CENSUS_MMOE, CENSUS_OMOE, CENSUS_PLE, CENSUS_SHARED_BOTTOM,
                      COAT_ESMM, TRAINING)
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


def _own_training(epochs):
    """The peers' sizes and epochs, but skmtl's own training and numeric encoding.

    Exactly ``epochs`` epochs as :func:`_as_the_peers`, with the estimators'
    default learning rate, cosine schedule, weight decay, ``batch_size="auto"``
    and piecewise-linear numeric embeddings: what a user of skmtl gets at
    those sizes.
    """
    return {"max_epochs": epochs, "early_stopping": True,
            "validation_fraction": VALIDATION_FRACTION, "n_iter_no_change": epochs}


# -- Census: one binary output per task ------------------------------------------


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


class SkmtlMMoEOwnTraining(_Census):
    def make(self, seed):
        return MMOEClassifier(**CENSUS_MMOE, **_own_training(self.epochs), random_state=seed)


class SkmtlSharedBottom(_Census):
    def make(self, seed):
        return SharedBottomClassifier(**CENSUS_SHARED_BOTTOM, **TRAINING,
                                      **_as_the_peers(self.epochs), random_state=seed)


class SkmtlSharedBottomDefaults(_Census):
    def make(self, seed):
        return SharedBottomClassifier(random_state=seed)


class SkmtlSharedBottomOwnTraining(_Census):
    def make(self, seed):
        return SharedBottomClassifier(**CENSUS_SHARED_BOTTOM, **_own_training(self.epochs),
                                      random_state=seed)


class SkmtlOMoE(_Census):
    def make(self, seed):
        return OMOEClassifier(**CENSUS_OMOE, **TRAINING, **_as_the_peers(self.epochs),
                              random_state=seed)


class SkmtlOMoEDefaults(_Census):
    def make(self, seed):
        return OMOEClassifier(random_state=seed)


class SkmtlPLE(_Census):
    def make(self, seed):
        return PLEClassifier(**CENSUS_PLE, **TRAINING, **_as_the_peers(self.epochs),
                             random_state=seed)


class SkmtlPLEDefaults(_Census):
    def make(self, seed):
        return PLEClassifier(random_state=seed)


class SkmtlPLEOwnTraining(_Census):
    def make(self, seed):
        return PLEClassifier(**CENSUS_PLE, **_own_training(self.epochs), random_state=seed)


# -- Coat: click -> conversion, scored on p(conversion | click) ------------------


class _CoatFunnel(Runner):
    """A funnel estimator on Coat's click and conversion; pCVR from its conditional output."""

    def make(self, seed):
        raise NotImplementedError

    def fit(self, problem, seed):
        self.model = self.make(seed).fit(problem.X_train, problem.Y_train[["click", "conversion"]])
        self.epochs_run = self.model.n_iter_

    def predict(self, problem):
        _, cvr = self.model.predict_conditional_proba(problem.X_test)
        return {"pcvr": cvr[:, 1]}


class SkmtlESMM(_CoatFunnel):
    def make(self, seed):
        return ESMMClassifier(**COAT_ESMM, **TRAINING, **_as_the_peers(self.epochs),
                              random_state=seed)


class SkmtlESMMDefaults(_CoatFunnel):
    def make(self, seed):
        return ESMMClassifier(random_state=seed)


class SkmtlESMMOwnTraining(_CoatFunnel):
    def make(self, seed):
        return ESMMClassifier(**COAT_ESMM, **_own_training(self.epochs), random_state=seed)


class SkmtlAITM(_CoatFunnel):
    def make(self, seed):
        return AITMClassifier(**AITM_SIZES, **TRAINING, **_as_the_peers(self.epochs),
                              random_state=seed)


class SkmtlAITMDefaults(_CoatFunnel):
    def make(self, seed):
        return AITMClassifier(random_state=seed)


class SkmtlAITMOwnTraining(_CoatFunnel):
    def make(self, seed):
        return AITMClassifier(**AITM_SIZES, **_own_training(self.epochs), random_state=seed)


class SkmtlClickedCVR(Runner):
    """A plain CVR model: conversion as a single task, on the clicked rows only."""

    def fit(self, problem, seed):
        clicked = problem.Y_train["click"].to_numpy() == 1
        self.model = MMOEClassifier(random_state=seed).fit(
            problem.X_train[clicked], problem.Y_train["conversion"][clicked])
        self.epochs_run = self.model.n_iter_

    def predict(self, problem):
        return {"pcvr": self.model.predict_proba(problem.X_test)[:, 1]}


# -- funnel4: four nested stages against the generator's probabilities -------------


class _Funnel4(Runner):
    """A funnel estimator on all four stages; both of its outputs are scored."""

    def make(self, seed):
        raise NotImplementedError

    def fit(self, problem, seed):
        self.model = self.make(seed).fit(problem.X_train, problem.Y_train)
        self.epochs_run = self.model.n_iter_

    def predict(self, problem):
        conditional = self.model.predict_conditional_proba(problem.X_test)
        entire_space = self.model.predict_proba(problem.X_test)
        return {"conditional": np.column_stack([p[:, 1] for p in conditional]),
                "entire_space": np.column_stack([p[:, 1] for p in entire_space])}


class SkmtlESMMFunnel4(_Funnel4):
    def make(self, seed):
        return ESMMClassifier(**COAT_ESMM, **TRAINING, **_as_the_peers(self.epochs),
                              random_state=seed)


class SkmtlESMMDefaultsFunnel4(_Funnel4):
    def make(self, seed):
        return ESMMClassifier(random_state=seed)


class SkmtlAITMFunnel4(_Funnel4):
    def make(self, seed):
        return AITMClassifier(**AITM_SIZES, **TRAINING, **_as_the_peers(self.epochs),
                              random_state=seed)


class SkmtlAITMDefaultsFunnel4(_Funnel4):
    def make(self, seed):
        return AITMClassifier(random_state=seed)
