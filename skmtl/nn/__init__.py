"""Plain PyTorch modules behind the estimators; usable on their own.

Nothing in this sub-package imports scikit-learn.
"""

from .esmm import ESMM, entire_space_log_proba
from .layers import MLP, ExpertBank, FeatureEmbedding, TaskGates
from .losses import EntireSpaceLoss, MultiTaskLoss
from .mmoe import MMoE
from .numeric import PeriodicEmbedding, PiecewiseLinearEmbedding

__all__ = [
    "ESMM",
    "MLP",
    "MMoE",
    "EntireSpaceLoss",
    "ExpertBank",
    "FeatureEmbedding",
    "MultiTaskLoss",
    "PeriodicEmbedding",
    "PiecewiseLinearEmbedding",
    "TaskGates",
    "entire_space_log_proba",
]
