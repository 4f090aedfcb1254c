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
    numeric columns are standardised (and their frequent values not embedded)
    and the learning rate is constant; like the hand-written loop, no layer
    is batch-normalised (the classifiers' default since session 29;
    torch-rechub's MLPs are).
    """
    return {"max_epochs": epochs, "early_stopping": True,
            "validation_fraction": VALIDATION_FRACTION, "n_iter_no_change": epochs,
            "numeric_encoding": "standard", "frequent_values": None,
            "learning_rate_schedule": "constant", "batch_norm": False}


def _own_training(epochs):
    """The peers' sizes and epochs, but skmtl's own training and numeric encoding.

    Exactly ``epochs`` epochs as :func:`_as_the_peers`, with the estimators'
    default learning rate, cosine schedule, weight decay, ``batch_size="auto"``
    and piecewise-linear numeric embeddings: what a user of skmtl gets at
    those sizes.
    """
    return {"max_epochs": epochs, "early_stopping": True,
            "validation_fraction": VALIDATION_FRACTION, "n_iter_no_change": epochs}


class _Skmtl(Runner):
    """An skmtl estimator, built from its class, its sizes and how it trains.

    ``training``: ``"peers"`` (the sizes and :func:`_as_the_peers` with the
    common optimiser settings), ``"own"`` (the sizes and
    :func:`_own_training`) or ``"defaults"`` (the estimator's defaults, sizes
    included).
    """

    estimator = None
    sizes = {}
    training = "defaults"

    def make(self, seed):
        if self.training == "peers":
            params = {**self.sizes, **TRAINING, **_as_the_peers(self.epochs)}
        elif self.training == "own":
            params = {**self.sizes, **_own_training(self.epochs)}
        else:
            params = {}
        return self.estimator(**params, random_state=seed)


# -- Census: one binary output per task ------------------------------------------


class _Census(_Skmtl):
    def fit(self, problem, seed):
        self.model = self.make(seed).fit(problem.X_train, problem.Y_train)
        self.epochs_run = self.model.n_iter_

    def predict(self, problem):
        proba = self.model.predict_proba(problem.X_test)
        return {task: p[:, 1] for task, p in zip(problem.Y_train.columns, proba)}


class SkmtlMMoE(_Census):
    estimator = MMOEClassifier
    sizes, training = CENSUS_MMOE, "peers"


class SkmtlMMoEDefaults(_Census):
    estimator = MMOEClassifier


class SkmtlMMoEOwnTraining(_Census):
    estimator = MMOEClassifier
    sizes, training = CENSUS_MMOE, "own"


class SkmtlSharedBottom(_Census):
    estimator = SharedBottomClassifier
    sizes, training = CENSUS_SHARED_BOTTOM, "peers"


class SkmtlSharedBottomDefaults(_Census):
    estimator = SharedBottomClassifier


class SkmtlSharedBottomOwnTraining(_Census):
    estimator = SharedBottomClassifier
    sizes, training = CENSUS_SHARED_BOTTOM, "own"


class SkmtlOMoE(_Census):
    estimator = OMOEClassifier
    sizes, training = CENSUS_OMOE, "peers"


class SkmtlOMoEDefaults(_Census):
    estimator = OMOEClassifier


class SkmtlPLE(_Census):
    estimator = PLEClassifier
    sizes, training = CENSUS_PLE, "peers"


class SkmtlPLEDefaults(_Census):
    estimator = PLEClassifier


class SkmtlPLEOwnTraining(_Census):
    estimator = PLEClassifier
    sizes, training = CENSUS_PLE, "own"


# -- Coat: click -> conversion, scored on p(conversion | click) ------------------


class _CoatFunnel(_Skmtl):
    """A funnel estimator on Coat's click and conversion; pCVR from its conditional output."""

    def fit(self, problem, seed):
        self.model = self.make(seed).fit(problem.X_train, problem.Y_train[["click", "conversion"]])
        self.epochs_run = self.model.n_iter_

    def predict(self, problem):
        _, cvr = self.model.predict_conditional_proba(problem.X_test)
        return {"pcvr": cvr[:, 1]}


class SkmtlESMM(_CoatFunnel):
    estimator = ESMMClassifier
    sizes, training = COAT_ESMM, "peers"


class SkmtlESMMDefaults(_CoatFunnel):
    estimator = ESMMClassifier


class SkmtlESMMOwnTraining(_CoatFunnel):
    estimator = ESMMClassifier
    sizes, training = COAT_ESMM, "own"


class SkmtlAITM(_CoatFunnel):
    estimator = AITMClassifier
    sizes, training = AITM_SIZES, "peers"


class SkmtlAITMDefaults(_CoatFunnel):
    estimator = AITMClassifier


class SkmtlAITMOwnTraining(_CoatFunnel):
    estimator = AITMClassifier
    sizes, training = AITM_SIZES, "own"


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


class _Funnel4(_Skmtl):
    """A funnel estimator on all four stages; both of its outputs are scored."""

    def fit(self, problem, seed):
        self.model = self.make(seed).fit(problem.X_train, problem.Y_train)
        self.epochs_run = self.model.n_iter_

    def predict(self, problem):
        conditional = self.model.predict_conditional_proba(problem.X_test)
        entire_space = self.model.predict_proba(problem.X_test)
        return {"conditional": np.column_stack([p[:, 1] for p in conditional]),
                "entire_space": np.column_stack([p[:, 1] for p in entire_space])}


class SkmtlESMMFunnel4(_Funnel4):
    estimator = ESMMClassifier
    sizes, training = COAT_ESMM, "peers"


class SkmtlESMMDefaultsFunnel4(_Funnel4):
    estimator = ESMMClassifier


class SkmtlAITMFunnel4(_Funnel4):
    estimator = AITMClassifier
    sizes, training = AITM_SIZES, "peers"


class SkmtlAITMDefaultsFunnel4(_Funnel4):
    estimator = AITMClassifier
