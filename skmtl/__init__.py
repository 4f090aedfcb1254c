"""Multi-task neural models (ESMM, MMoE, OMoE, PLE, AITM, Shared-Bottom) with a
scikit-learn interface."""

from ._persistence import load
from .aitm import AITMClassifier
from .esmm import ESMMClassifier
from .mmoe import MMOEClassifier, MMOERegressor, OMOEClassifier, OMOERegressor
from .ple import PLEClassifier, PLERegressor
from .shared_bottom import SharedBottomClassifier, SharedBottomRegressor

__version__ = "0.1.0.dev1"

__all__ = [
    "AITMClassifier",
    "ESMMClassifier",
    "MMOEClassifier",
    "MMOERegressor",
    "OMOEClassifier",
    "OMOERegressor",
    "PLEClassifier",
    "PLERegressor",
    "SharedBottomClassifier",
    "SharedBottomRegressor",
    "load",
    "__version__",
]
