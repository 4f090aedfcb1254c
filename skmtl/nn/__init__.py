"""Plain PyTorch modules behind the estimators; usable on their own.

Nothing in this sub-package imports scikit-learn.
"""

from .aitm import AITM, AdaptiveInformationTransfer
from .esmm import ESMM, entire_space_log_proba
from .layers import (MLP, BatchNorm, CrossNetwork, ExpertBank, FeatureEmbedding, TaskGates,
                     TaskTowers)
from .losses import (AITMLoss, EntireSpaceLoss, MultiTaskLoss, MultiTaskSquaredLoss,
                     known_targets)
from .mmoe import MMoE, OMoE
from .numeric import PeriodicEmbedding, PiecewiseLinearEmbedding
from .ple import PLE, ExtractionLevel
from .shared_bottom import SharedBottom
from .trees import TreeLeaves

__all__ = [
    "AITM",
    "AITMLoss",
    "AdaptiveInformationTransfer",
    "BatchNorm",
    "CrossNetwork",
    "ESMM",
    "EntireSpaceLoss",
    "ExpertBank",
    "ExtractionLevel",
    "FeatureEmbedding",
    "MLP",
    "MMoE",
    "MultiTaskLoss",
    "MultiTaskSquaredLoss",
    "OMoE",
    "PLE",
    "PeriodicEmbedding",
    "PiecewiseLinearEmbedding",
    "SharedBottom",
    "TaskGates",
    "TaskTowers",
    "TreeLeaves",
    "entire_space_log_proba",
    "known_targets",
]
