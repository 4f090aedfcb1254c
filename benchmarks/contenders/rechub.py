"""torch-rechub: its MMOE and ESMM models, trained by its ``MTLTrainer``.

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
  MMOE gates are ``Linear -> BatchNorm1d -> softmax``: that is the library's
  architecture, kept as is (the sizes match).
* It writes the final weights to ``model_path``: a temporary folder here.
"""

import tempfile

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch_rechub.basic.features import DenseFeature, SparseFeature
from torch_rechub.models.multi_task import ESMM, MMOE
from torch_rechub.trainers import MTLTrainer
from torch_rechub.utils.data import DataGenerator, PredictDataset

from ..config import CENSUS_MMOE, COAT_ESMM, TRAINING
from ..data import encode
from .base import Runner


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


class RechubMMoE(_Rechub):
    def fit(self, enc, seed):
        torch.manual_seed(seed)
        dim = CENSUS_MMOE["embedding_dim"]
        features = ([SparseFeature(name, vocab_size=card, embed_dim=dim)
                     for name, card in zip(enc.train.categorical_names, enc.cardinalities)]
                    + [DenseFeature(name) for name in enc.train.numeric_names])
        n_tasks = len(enc.task_names)
        model = MMOE(features, ["classification"] * n_tasks, CENSUS_MMOE["n_experts"],
                     expert_params={"dims": list(CENSUS_MMOE["expert_units"])},
                     tower_params_list=[{"dims": list(CENSUS_MMOE["tower_units"])}
                                        for _ in range(n_tasks)])
        self.train(model, n_tasks, enc.train.columns(), enc.y_train,
                   enc.valid.columns(), enc.y_valid)

    def predict(self, enc):
        proba = self.predict_matrix(enc)
        return {task: proba[:, t] for t, task in enumerate(enc.task_names)}


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
