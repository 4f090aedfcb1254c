"""Multi-task neural classifiers (ESMM, MMoE) with a scikit-learn interface."""

__version__ = "0.1.0.dev0"
