"""torch-rechub: its multi-task models, trained by its ``MTLTrainer``.

Fed as its census example feeds them: a dict ``{feature name: array}`` of the
shared encoding, ``SparseFeature``/``DenseFeature`` descriptions,
``DataGenerator(...).generate_dataloader(x_val=..., y_val=..., batch_size=...)``
and ``MTLTrainer(model, task_types, optimizer_params={"lr", "weight_decay"},
n_epoch, earlystop_patience, device)``.

Matching the configuration:

* ``earlystop_patience = epochs + 1``: the trainer's early stopper (on the
  validation AUC of task 0) never stops before the last epoch; the trainer
  keeps the last epoch's weights.
* ``MTLTrainer`` averages the task losses (the others sum them); with Adam the
  scale of the loss changes the step only through the weight decay term.
* Its ``MLP`` puts ``BatchNorm1d`` after every hidden linear layer, and its
  MMOE and PLE gates are ``Linear -> BatchNorm1d -> softmax``: that is the
  library's architecture, kept as is (the sizes match).
* It writes the final weights to ``model_path``: a temporary folder here.
* AITM: the trainer has no calibrator (AITM's behavioural expectation
  calibrator is not in the library): each output is trained by binary
  cross-entropy on its own label. Its outputs are, as in its examples, the
  probability of each label over all rows, so the stages are given in
  funnel order with their entire-space labels and p(stage k | stage k - 1)
  is the ratio of consecutive outputs (clipped to [0, 1]).
"""

import tempfile

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch_rechub.basic.features import DenseFeature, SparseFeature
from torch_rechub.models.multi_task import AITM, ESMM, MMOE, PLE, SharedBottom
from torch_rechub.trainers import MTLTrainer
from torch_rechub.utils.data import DataGenerator, PredictDataset

from ..config import (AITM_RECHUB_TOWER_UNITS, AITM_SIZES, CENSUS_MMOE, CENSUS_PLE,
                      CENSUS_SHARED_BOTTOM, COAT_ESMM, TRAINING)
from ..data import encode
from .base import Runner, conditional_from_entire_space


class _Rechub(Runner):
    def prepare(self, problem):
        return encode(problem)

    def train(self, model, n_tasks, x_train, y_train, x_valid, y_valid):
        generator = DataGenerator(x_train, y_train)
        # the test loader is not used: the test rows are predicted in predict()
        train_loader, valid_loader, _ = generator.generate_dataloader(
            x_val=x_valid, y_val=y_valid, x_test=x_valid, y_test=y_valid,
            batch_size=TRAINING["batch_size"])
        self._model_dir = tempfile.TemporaryDirectory(prefix="rechub-")
        self.trainer = MTLTrainer(
            model, task_types=["classification"] * n_tasks,
            optimizer_params={"lr": TRAINING["learning_rate"],
                              "weight_decay": TRAINING["weight_decay"]},
            n_epoch=self.epochs, earlystop_patience=self.epochs + 1, device="cpu",
            model_path=self._model_dir.name)
        log = self.trainer.fit(train_loader, valid_loader)
        self.epochs_run = len(log)

    def predict_matrix(self, enc):
        loader = DataLoader(PredictDataset(enc.test.columns()),
                            batch_size=self.predict_batch_size, shuffle=False)
        return np.asarray(self.trainer.predict(self.trainer.model, loader), dtype=np.float64)


def _features(enc, dim):
    """A ``SparseFeature`` of width ``dim`` per categorical column and a ``DenseFeature``
    per numeric one."""
    return ([SparseFeature(name, vocab_size=card, embed_dim=dim)
             for name, card in zip(enc.train.categorical_names, enc.cardinalities)]
            + [DenseFeature(name) for name in enc.train.numeric_names])


class _RechubCensus(_Rechub):
    """A Census model: one classification output per task, trained on both tasks."""

    def build(self, features, n_tasks):
        raise NotImplementedError

    def fit(self, enc, seed):
        torch.manual_seed(seed)
        n_tasks = len(enc.task_names)
        model = self.build(_features(enc, self.embedding_dim), n_tasks)
        self.train(model, n_tasks, enc.train.columns(), enc.y_train,
                   enc.valid.columns(), enc.y_valid)

    def predict(self, enc):
        proba = self.predict_matrix(enc)
        return {task: proba[:, t] for t, task in enumerate(enc.task_names)}


def _towers(units, n_tasks):
    return [{"dims": list(units)} for _ in range(n_tasks)]


class RechubMMoE(_RechubCensus):
    embedding_dim = CENSUS_MMOE["embedding_dim"]

    def build(self, features, n_tasks):
        return MMOE(features, ["classification"] * n_tasks, CENSUS_MMOE["n_experts"],
                    expert_params={"dims": list(CENSUS_MMOE["expert_units"])},
                    tower_params_list=_towers(CENSUS_MMOE["tower_units"], n_tasks))


class RechubSharedBottom(_RechubCensus):
    embedding_dim = CENSUS_SHARED_BOTTOM["embedding_dim"]

    def build(self, features, n_tasks):
        return SharedBottom(features, ["classification"] * n_tasks,
                            bottom_params={"dims": list(CENSUS_SHARED_BOTTOM["bottom_units"])},
                            tower_params_list=_towers(CENSUS_SHARED_BOTTOM["tower_units"],
                                                      n_tasks))


class RechubPLE(_RechubCensus):
    embedding_dim = CENSUS_PLE["embedding_dim"]

    def build(self, features, n_tasks):
        return PLE(features, ["classification"] * n_tasks, n_level=CENSUS_PLE["n_levels"],
                   n_expert_specific=CENSUS_PLE["n_task_experts"],
                   n_expert_shared=CENSUS_PLE["n_shared_experts"],
                   expert_params={"dims": list(CENSUS_PLE["expert_units"])},
                   tower_params_list=_towers(CENSUS_PLE["tower_units"], n_tasks))


def _esmm_labels(y):
    """torch-rechub's ESMM label order: cvr, ctr, ctcvr.

    Its loss uses only ctr and ctcvr; the cvr column is reported (validation
    AUC of task 0), so it gets the conversion label of all impressions.
    """
    click, conversion = y[:, 0], y[:, 1]
    return np.ascontiguousarray(np.stack([conversion, click, conversion], axis=1))


class RechubESMM(_Rechub):
    def fit(self, enc, seed):
        torch.manual_seed(seed)
        dim = COAT_ESMM["embedding_dim"]
        features = {name: SparseFeature(name, vocab_size=card, embed_dim=dim)
                    for name, card in zip(enc.train.categorical_names, enc.cardinalities)}
        user = [f for name, f in features.items() if name.startswith("user_")]
        item = [f for name, f in features.items() if not name.startswith("user_")]
        tower = {"dims": list(COAT_ESMM["tower_units"])}
        model = ESMM(user, item, cvr_params=dict(tower), ctr_params=dict(tower))
        self.train(model, 3, enc.train.columns(), _esmm_labels(enc.y_train),
                   enc.valid.columns(), _esmm_labels(enc.y_valid))

    def predict(self, enc):
        return {"pcvr": self.predict_matrix(enc)[:, 0]}


class _RechubAITM(_Rechub):
    """torch-rechub's AITM at the sizes of its Ali-CCP and census examples.

    The stages in funnel order, each with its entire-space label (stage k
    reached, over all rows).
    """

    def fit(self, enc, seed):
        torch.manual_seed(seed)
        n_stages = enc.y_train.shape[1]
        model = AITM(_features(enc, AITM_SIZES["embedding_dim"]), n_stages,
                     bottom_params={"dims": list(AITM_SIZES["tower_units"])},
                     tower_params_list=_towers(AITM_RECHUB_TOWER_UNITS, n_stages))
        self.train(model, n_stages, enc.train.columns(), enc.y_train,
                   enc.valid.columns(), enc.y_valid)

    def conditional(self, reach):
        conditional, n_above_one = conditional_from_entire_space(reach)
        if n_above_one and not any(note.startswith("p(stage k) > p(stage k - 1)")
                                   for note in self.notes):
            self.notes.append(f"p(stage k) > p(stage k - 1) in {n_above_one} test predictions "
                              "(the conditional clipped to 1 there)")
        return conditional


class RechubAITM(_RechubAITM):
    """Coat: click, then click and conversion (the loader's conversion is 0 without click)."""

    def predict(self, enc):
        return {"pcvr": self.conditional(self.predict_matrix(enc))[:, 1]}


class RechubAITMFunnel4(_RechubAITM):
    """funnel4: the four stages, so four outputs and three attention transfers."""

    def predict(self, enc):
        reach = self.predict_matrix(enc)
        return {"conditional": self.conditional(reach), "entire_space": reach}
