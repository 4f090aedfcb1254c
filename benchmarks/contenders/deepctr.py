"""DeepCTR-Torch: its MMOE, SharedBottom, PLE and ESMM with the Keras-like ``compile``/``fit``.

Fed a dict ``{feature name: array}`` of the shared encoding, with
``SparseFeat``/``DenseFeat`` columns, and validated on the same held-out rows
as the others through ``fit(validation_data=(x_valid, y_valid))``.

Matching the configuration:

* The optimiser is passed as an instance,
  ``torch.optim.Adam(model.parameters(), lr, weight_decay)``, and the
  library's own L2 penalties (``l2_reg_embedding``, ``l2_reg_linear``,
  ``l2_reg_dnn``) are set to 0 so that weight decay is the only
  regularisation, as for the others.
* Its loss strings (``"binary_crossentropy"``) sum the loss over the batch
  (``reduction="sum"``), which makes a fixed weight decay about
  ``batch_size`` times weaker relative to the gradient. ``compile`` takes
  a list of losses only as strings, so one callable is passed instead: the
  binary cross-entropy averaged over the batch, summed over the tasks (as
  skmtl and the hand-written loop do).
* Gates: ``gate_dnn_hidden_units=()`` makes each gate one linear layer and a
  softmax, as in the paper and the other contenders (its gate layer has no
  bias), for MMOE and PLE.
* PLE builds ``specific_expert_num`` shared experts per level whatever
  ``shared_expert_num`` is, and uses the first ``shared_expert_num`` of
  them: with 1 shared and 2 task experts one shared expert per level is
  never used (no gradient, so Adam leaves it alone). It also computes the
  shared gate and its mixture on the last level, where nothing reads them.
* Its initialisation is kept: all weights normal with ``init_std=1e-4``.
* ``verbose=0``: no per-batch training metrics or progress bar.
* ESMM outputs ``[pCTR, pCTCVR]``; pCVR is recovered as ``pCTCVR / pCTR``
  (exact up to rounding, since the model computes ``pCTCVR = pCTR * pCVR``).
"""

import numpy as np
import torch
from deepctr_torch.inputs import DenseFeat, SparseFeat
from deepctr_torch.models import ESMM, MMOE, PLE, SharedBottom
from torch.nn import functional as F

from ..config import CENSUS_MMOE, CENSUS_PLE, CENSUS_SHARED_BOTTOM, COAT_ESMM, TRAINING
from ..data import encode
from .base import Runner


def summed_task_mean_bce(y_pred, y_true, reduction=None):
    """Per-task binary cross-entropy averaged over the batch, summed over the tasks.

    ``reduction`` (DeepCTR passes ``"sum"``) is ignored on purpose.
    """
    return F.binary_cross_entropy(y_pred, y_true, reduction="none").mean(dim=0).sum()


class _DeepCTR(Runner):
    def prepare(self, problem):
        return encode(problem)

    def train(self, model, enc):
        model.compile(torch.optim.Adam(model.parameters(), lr=TRAINING["learning_rate"],
                                       weight_decay=TRAINING["weight_decay"]),
                      loss=summed_task_mean_bce,
                      metrics=["binary_crossentropy"])
        history = model.fit(enc.train.columns(), enc.y_train,
                            batch_size=TRAINING["batch_size"], epochs=self.epochs, verbose=0,
                            validation_data=(enc.valid.columns(), enc.y_valid), shuffle=True)
        self.model = model
        self.epochs_run = len(history.epoch)

    def predict_matrix(self, enc):
        return self.model.predict(enc.test.columns(), batch_size=self.predict_batch_size)


_NO_L2 = {"l2_reg_linear": 0.0, "l2_reg_embedding": 0.0, "l2_reg_dnn": 0.0}


def _columns(enc, dim):
    """A ``SparseFeat`` of width ``dim`` per categorical column, a ``DenseFeat`` per numeric."""
    return ([SparseFeat(name, vocabulary_size=card, embedding_dim=dim)
             for name, card in zip(enc.train.categorical_names, enc.cardinalities)]
            + [DenseFeat(name, 1) for name in enc.train.numeric_names])


class _DeepCTRCensus(_DeepCTR):
    """A Census model: one binary output per task."""

    def build(self, columns, task_types, task_names, seed):
        raise NotImplementedError

    def fit(self, enc, seed):
        n_tasks = len(enc.task_names)
        model = self.build(_columns(enc, self.embedding_dim), ("binary",) * n_tasks,
                           tuple(enc.task_names), seed)
        self.train(model, enc)

    def predict(self, enc):
        proba = self.predict_matrix(enc)
        return {task: proba[:, t] for t, task in enumerate(enc.task_names)}


class DeepCTRMMoE(_DeepCTRCensus):
    embedding_dim = CENSUS_MMOE["embedding_dim"]

    def build(self, columns, task_types, task_names, seed):
        return MMOE(columns, num_experts=CENSUS_MMOE["n_experts"],
                    expert_dnn_hidden_units=CENSUS_MMOE["expert_units"],
                    gate_dnn_hidden_units=(), tower_dnn_hidden_units=CENSUS_MMOE["tower_units"],
                    task_types=task_types, task_names=task_names,
                    seed=seed, device="cpu", **_NO_L2)


class DeepCTRSharedBottom(_DeepCTRCensus):
    embedding_dim = CENSUS_SHARED_BOTTOM["embedding_dim"]

    def build(self, columns, task_types, task_names, seed):
        return SharedBottom(columns,
                            bottom_dnn_hidden_units=CENSUS_SHARED_BOTTOM["bottom_units"],
                            tower_dnn_hidden_units=CENSUS_SHARED_BOTTOM["tower_units"],
                            task_types=task_types, task_names=task_names,
                            seed=seed, device="cpu", **_NO_L2)


class DeepCTRPLE(_DeepCTRCensus):
    embedding_dim = CENSUS_PLE["embedding_dim"]

    def build(self, columns, task_types, task_names, seed):
        return PLE(columns, shared_expert_num=CENSUS_PLE["n_shared_experts"],
                   specific_expert_num=CENSUS_PLE["n_task_experts"],
                   num_levels=CENSUS_PLE["n_levels"],
                   expert_dnn_hidden_units=CENSUS_PLE["expert_units"],
                   gate_dnn_hidden_units=(), tower_dnn_hidden_units=CENSUS_PLE["tower_units"],
                   task_types=task_types, task_names=task_names,
                   seed=seed, device="cpu", **_NO_L2)


class DeepCTRESMM(_DeepCTR):
    def fit(self, enc, seed):
        dim = COAT_ESMM["embedding_dim"]
        columns = [SparseFeat(name, vocabulary_size=card, embedding_dim=dim)
                   for name, card in zip(enc.train.categorical_names, enc.cardinalities)]
        # labels: click, click-and-conversion (the loader's conversion is 0 without click)
        model = ESMM(columns, tower_dnn_hidden_units=COAT_ESMM["tower_units"],
                     task_types=("binary", "binary"), task_names=("ctr", "ctcvr"),
                     seed=seed, device="cpu", **_NO_L2)
        self.train(model, enc)

    def predict(self, enc):
        proba = self.predict_matrix(enc)
        ctr, ctcvr = proba[:, 0], proba[:, 1]
        pcvr = np.divide(ctcvr, ctr, out=np.zeros_like(ctcvr), where=ctr > 0)
        n_zero = int(np.sum(ctr <= 0))
        if n_zero and not any(note.startswith("pCTR = 0") for note in self.notes):
            self.notes.append(f"pCTR = 0 on {n_zero} test rows (pCVR set to 0 there)")
        return {"pcvr": np.clip(pcvr, 0.0, 1.0)}
