"""The contenders: what each one is, what it needs, and where its code is.

The registry is plain data so that the parent process can list contenders
and check that their packages are installed without importing any of them;
a worker process imports the runner class named by ``target``.
"""

import importlib
import importlib.util
from dataclasses import dataclass


@dataclass(frozen=True)
class Contender:
    """One row of the results table.

    Attributes
    ----------
    key : str
        Command-line name (``--contenders``).
    dataset : {"census", "coat"}
    label : str
        What the table shows.
    target : str
        ``"module:Class"`` of its :class:`benchmarks.contenders.base.Runner`.
    requires : tuple of str
        Modules that must be importable; when one is not, the contender is
        reported as not installed instead of run.
    trained_on : str
        Coat only: which rows the CVR estimate is learnt from.
    reference : bool
        The contender the ratios of its data set are taken against.
    env : tuple of (str, str)
        Extra environment variables of its worker process.
    """

    key: str
    dataset: str
    label: str
    target: str
    requires: tuple = ()
    trained_on: str = ""
    reference: bool = False
    env: tuple = ()

    def missing_modules(self):
        """The modules of ``requires`` that cannot be imported."""
        missing = []
        for name in self.requires:
            try:
                found = importlib.util.find_spec(name) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                missing.append(name)
        return missing

    def runner_class(self):
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)


_P = "benchmarks.contenders."

# deepctr_torch starts a thread at import that asks PyPI for its latest
# version. Its workers get a proxy on a closed loopback port, so that request
# fails at once (the library catches it) instead of running during the
# measurement.
_NO_VERSION_CHECK = (("HTTP_PROXY", "http://127.0.0.1:9"), ("HTTPS_PROXY", "http://127.0.0.1:9"),
                     ("NO_PROXY", ""))

CONTENDERS = {c.key: c for c in [
    # -- Census-Income, MMoE ---------------------------------------------------
    Contender("skmtl", "census", "skmtl MMOEClassifier, peers' configuration",
              _P + "ours:SkmtlMMoE", reference=True),
    Contender("skmtl-defaults", "census", "skmtl MMOEClassifier(), its defaults",
              _P + "ours:SkmtlMMoEDefaults"),
    Contender("torch-rechub", "census", "torch-rechub MMOE + MTLTrainer",
              _P + "rechub:RechubMMoE", requires=("torch_rechub",)),
    Contender("deepctr-torch", "census", "DeepCTR-Torch MMOE, compile/fit",
              _P + "deepctr:DeepCTRMMoE", requires=("deepctr_torch",), env=_NO_VERSION_CHECK),
    Contender("hgb", "census", "HistGradientBoostingClassifier, one per task",
              _P + "classic:HGBPerTask"),
    Contender("floor", "census", "hand-written PyTorch loop (skmtl.nn.MMoE)",
              _P + "floor:FloorMMoE"),
    # -- Coat, ESMM against CVR models on clicked rows ---------------------------
    Contender("skmtl-esmm", "coat", "skmtl ESMMClassifier, common configuration",
              _P + "ours:SkmtlESMM", trained_on="all impressions", reference=True),
    Contender("skmtl-esmm-defaults", "coat", "skmtl ESMMClassifier(), its defaults",
              _P + "ours:SkmtlESMMDefaults", trained_on="all impressions"),
    Contender("torch-rechub-esmm", "coat", "torch-rechub ESMM + MTLTrainer",
              _P + "rechub:RechubESMM", requires=("torch_rechub",),
              trained_on="all impressions"),
    Contender("deepctr-torch-esmm", "coat", "DeepCTR-Torch ESMM, compile/fit",
              _P + "deepctr:DeepCTRESMM", requires=("deepctr_torch",),
              trained_on="all impressions", env=_NO_VERSION_CHECK),
    Contender("floor-esmm", "coat", "hand-written PyTorch loop (skmtl.nn.ESMM)",
              _P + "floor:FloorESMM", trained_on="all impressions"),
    Contender("skmtl-cvr", "coat", "skmtl MMOEClassifier() on 1-D y, its defaults",
              _P + "ours:SkmtlClickedCVR", trained_on="clicked rows"),
    Contender("logistic-cvr", "coat", "one-hot LogisticRegression",
              _P + "classic:LogisticClickedCVR", trained_on="clicked rows"),
    Contender("hgb-cvr", "coat", "HistGradientBoostingClassifier (ids as ordinal codes)",
              _P + "classic:HGBClickedCVR", trained_on="clicked rows"),
]}

DATASETS = ("census", "coat")


def contenders_for(dataset):
    return [c for c in CONTENDERS.values() if c.dataset == dataset]
