"""The floor: the least a PyTorch training loop can do.

The shared encoding is turned into tensors once (in ``prepare``, outside the
fit time); each epoch draws a permutation, slices batches out of those
tensors, takes one Adam step per batch (torch's fused Adam where it has one,
as the estimators use) and ends with a validation pass (loss
and ROC AUC per task, batches of ``batch_size`` rows). The networks are
skmtl's own modules (:class:`skmtl.nn.MMoE`, :class:`skmtl.nn.OMoE`,
:class:`skmtl.nn.SharedBottom`, :class:`skmtl.nn.PLE`, :class:`skmtl.nn.ESMM`,
:class:`skmtl.nn.AITM`) with the estimators' losses, so the gap between this
loop and the skmtl estimators is the cost of everything around the network:
input checks, encoding of the DataFrame, skorch, callbacks and the history.
The weights of the last epoch are kept.
"""

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch.nn import functional as F

from skmtl._optim import Adam
from skmtl.nn import AITM, ESMM, PLE, AITMLoss, EntireSpaceLoss, MMoE, OMoE, SharedBottom

from ..config import (AITM_SIZES, CENSUS_MMOE, CENSUS_OMOE, CENSUS_PLE, CENSUS_SHARED_BOTTOM,
                      COAT_ESMM, TRAINING)
from ..data import UNKNOWN_CODE, encode
from .base import Runner


def _adam(parameters):
    """Adam at the common configuration: the optimiser the skmtl estimators use.

    skmtl's Adam (``skmtl._optim``) runs torch's fused kernel and, unlike
    ``torch.optim.Adam``, does not import ``torch._dynamo`` (about 1 s in a
    fresh process). The floor uses it too, so the gap between the two is the
    loop around the optimiser, not the optimiser. (torch-rechub and
    DeepCTR-Torch keep ``torch.optim.Adam``'s default, the ``foreach``
    implementation, and pay the import.)
    """
    return Adam(parameters, lr=TRAINING["learning_rate"], weight_decay=TRAINING["weight_decay"])


class _FloorLoop(Runner):
    def prepare(self, problem):
        enc = encode(problem)
        return {
            "train": (torch.from_numpy(enc.train.codes), torch.from_numpy(enc.train.numeric),
                      torch.from_numpy(enc.y_train)),
            "valid": (torch.from_numpy(enc.valid.codes), torch.from_numpy(enc.valid.numeric),
                      torch.from_numpy(enc.y_valid)),
            "test": (torch.from_numpy(enc.test.codes), torch.from_numpy(enc.test.numeric)),
            "cardinalities": enc.cardinalities,
            "n_numeric": enc.train.numeric.shape[1],
            "tasks": enc.task_names,
        }

    # what differs between the two networks
    def build(self, data):
        raise NotImplementedError

    def task_losses(self, outputs, target):
        raise NotImplementedError

    def probabilities(self, outputs):
        raise NotImplementedError

    def fit(self, data, seed):
        torch.manual_seed(seed)
        module = self.build(data)
        optimizer = _adam(list(module.parameters()))
        categorical, numeric, target = data["train"]
        generator = torch.Generator().manual_seed(seed)
        batch_size = TRAINING["batch_size"]
        n_samples = target.shape[0]
        self.history = []
        for _ in range(self.epochs):
            module.train()
            order = torch.randperm(n_samples, generator=generator)
            for start in range(0, n_samples, batch_size):
                rows = order[start:start + batch_size]
                loss = self.task_losses(module(categorical[rows], numeric[rows]),
                                        target[rows]).sum()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            self.history.append(self.validate(module, data["valid"]))
        self.module = module
        self.epochs_run = self.epochs

    def validate(self, module, valid):
        categorical, numeric, target = valid
        batch_size = TRAINING["batch_size"]
        module.eval()
        loss_sum, probas = 0.0, []
        with torch.inference_mode():
            for start in range(0, target.shape[0], batch_size):
                stop = start + batch_size
                outputs = module(categorical[start:stop], numeric[start:stop])
                loss_sum = loss_sum + self.task_losses(outputs, target[start:stop]) * (
                    min(stop, target.shape[0]) - start)
                probas.append(self.probabilities(outputs))
        proba = torch.cat(probas).numpy()
        labels = target.numpy()
        aucs = [float(roc_auc_score(labels[:, t], proba[:, t]))
                if 0 < labels[:, t].sum() < len(labels) else float("nan")
                for t in range(labels.shape[1])]
        return {"valid_loss": (loss_sum / target.shape[0]).tolist(), "valid_auc": aucs}

    def forward_test(self, data):
        categorical, numeric = data["test"]
        self.module.eval()
        batch_size = self.predict_batch_size
        with torch.inference_mode():
            return torch.cat([
                self.probabilities(self.module(categorical[s:s + batch_size],
                                               numeric[s:s + batch_size]))
                for s in range(0, categorical.shape[0], batch_size)]).numpy()


class _FloorCensus(_FloorLoop):
    """A Census network; binary cross-entropy per task, summed."""

    def build(self, data):
        raise NotImplementedError

    def task_losses(self, outputs, target):
        return torch.stack([F.binary_cross_entropy_with_logits(logits[:, 0], target[:, t])
                            for t, logits in enumerate(outputs)])

    def probabilities(self, outputs):
        return torch.sigmoid(torch.cat(outputs, dim=1))

    def predict(self, data):
        proba = self.forward_test(data)
        return {task: proba[:, t].astype(np.float64) for t, task in enumerate(data["tasks"])}


def _census_inputs(data):
    """The positional arguments and padding codes every Census network takes."""
    return ((data["cardinalities"], data["n_numeric"], [1] * len(data["tasks"])),
            {"padding_codes": [UNKNOWN_CODE] * len(data["cardinalities"])})


class FloorMMoE(_FloorCensus):
    """MMoE at the Census configuration."""

    def build(self, data):
        args, padding = _census_inputs(data)
        return MMoE(*args, **CENSUS_MMOE, **padding)


class FloorOMoE(_FloorCensus):
    """OMoE (one gate for every task) at MMoE's Census configuration."""

    def build(self, data):
        args, padding = _census_inputs(data)
        return OMoE(*args, **CENSUS_OMOE, **padding)


class FloorSharedBottom(_FloorCensus):
    """Shared-Bottom at the Census configuration."""

    def build(self, data):
        args, padding = _census_inputs(data)
        return SharedBottom(*args, **CENSUS_SHARED_BOTTOM, **padding)


class FloorPLE(_FloorCensus):
    """PLE (one level: CGC) at the Census configuration."""

    def build(self, data):
        args, padding = _census_inputs(data)
        return PLE(*args, **CENSUS_PLE, **padding)


class FloorESMM(_FloorLoop):
    """ESMM at the Coat configuration; skmtl's entire-space loss (pCTR and pCTCVR)."""

    loss = EntireSpaceLoss()

    def build(self, data):
        return ESMM(data["cardinalities"], data["n_numeric"], n_stages=2, **COAT_ESMM,
                    padding_codes=[UNKNOWN_CODE] * len(data["cardinalities"]))

    def task_losses(self, outputs, target):
        return self.loss(outputs, target)

    def probabilities(self, outputs):
        # entire-space probabilities: pCTR, pCTCVR (what the loss supervises)
        return torch.cumprod(torch.sigmoid(outputs), dim=1)

    def predict(self, data):
        categorical, numeric = data["test"]
        self.module.eval()
        batch_size = self.predict_batch_size
        with torch.inference_mode():
            logits = torch.cat([self.module(categorical[s:s + batch_size],
                                            numeric[s:s + batch_size])
                                for s in range(0, categorical.shape[0], batch_size)])
        return {"pcvr": torch.sigmoid(logits[:, 1]).numpy().astype(np.float64)}


class FloorAITM(_FloorLoop):
    """AITM at the AITM configuration on Coat; skmtl's AITM loss (calibrator weight 0.6).

    0.6 is ``AITMClassifier``'s default ``calibration_weight`` (the paper's).
    """

    loss = AITMLoss(calibration_weight=0.6)

    def build(self, data):
        return AITM(data["cardinalities"], data["n_numeric"], n_stages=2, **AITM_SIZES,
                    padding_codes=[UNKNOWN_CODE] * len(data["cardinalities"]))

    def task_losses(self, outputs, target):
        return self.loss(outputs, target)

    def probabilities(self, outputs):
        # entire-space probabilities: pCTR, pCTCVR (what the loss supervises)
        return torch.sigmoid(outputs)

    def predict(self, data):
        categorical, numeric = data["test"]
        self.module.eval()
        batch_size = self.predict_batch_size
        with torch.inference_mode():
            logits = torch.cat([self.module(categorical[s:s + batch_size],
                                            numeric[s:s + batch_size])
                                for s in range(0, categorical.shape[0], batch_size)])
            _, cvr = self.module.predict_conditional_proba(logits)
        return {"pcvr": cvr[:, 1].numpy().astype(np.float64)}
