"""Multi-task neural classifiers (ESMM, MMoE) with a scikit-learn interface."""

from ._persistence import load
from .esmm import ESMMClassifier
from .mmoe import MMOEClassifier

__version__ = "0.1.0.dev1"

__all__ = ["ESMMClassifier", "MMOEClassifier", "load", "__version__"]
