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
    dataset : {"census", "coat", "funnel4"}
    table : str
        The model whose table of its data set the row belongs to (``"MMoE"``,
        ``"PLE"``, ...); each table has its own reference.
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
        The contender the ratios of its table are taken against.
    env : tuple of (str, str)
        Extra environment variables of its worker process.
    """

    key: str
    dataset: str
    table: str
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

_RECHUB = ("torch_rechub",)
_DEEPCTR = ("deepctr_torch",)

CONTENDERS = {c.key: c for c in [
    # -- Census-Income, MMoE ---------------------------------------------------
    Contender("skmtl", "census", "MMoE", "skmtl MMOEClassifier, peers' configuration",
              _P + "ours:SkmtlMMoE", reference=True),
    Contender("skmtl-defaults", "census", "MMoE", "skmtl MMOEClassifier(), its defaults",
              _P + "ours:SkmtlMMoEDefaults"),
    Contender("skmtl-own-training", "census", "MMoE",
              "skmtl MMOEClassifier, peers' sizes and epochs, its own training",
              _P + "ours:SkmtlMMoEOwnTraining"),
    Contender("torch-rechub", "census", "MMoE", "torch-rechub MMOE + MTLTrainer",
              _P + "rechub:RechubMMoE", requires=_RECHUB),
    Contender("deepctr-torch", "census", "MMoE", "DeepCTR-Torch MMOE, compile/fit",
              _P + "deepctr:DeepCTRMMoE", requires=_DEEPCTR, env=_NO_VERSION_CHECK),
    Contender("hgb", "census", "MMoE", "HistGradientBoostingClassifier, one per task",
              _P + "classic:HGBPerTask"),
    Contender("floor", "census", "MMoE", "hand-written PyTorch loop (skmtl.nn.MMoE)",
              _P + "floor:FloorMMoE"),
    # -- Census-Income, Shared-Bottom --------------------------------------------
    Contender("skmtl-sharedbottom", "census", "Shared-Bottom",
              "skmtl SharedBottomClassifier, peers' configuration",
              _P + "ours:SkmtlSharedBottom", reference=True),
    Contender("skmtl-sharedbottom-defaults", "census", "Shared-Bottom",
              "skmtl SharedBottomClassifier(), its defaults",
              _P + "ours:SkmtlSharedBottomDefaults"),
    Contender("skmtl-sharedbottom-own-training", "census", "Shared-Bottom",
              "skmtl SharedBottomClassifier, peers' sizes and epochs, its own training",
              _P + "ours:SkmtlSharedBottomOwnTraining"),
    Contender("torch-rechub-sharedbottom", "census", "Shared-Bottom",
              "torch-rechub SharedBottom + MTLTrainer", _P + "rechub:RechubSharedBottom",
              requires=_RECHUB),
    Contender("deepctr-torch-sharedbottom", "census", "Shared-Bottom",
              "DeepCTR-Torch SharedBottom, compile/fit", _P + "deepctr:DeepCTRSharedBottom",
              requires=_DEEPCTR, env=_NO_VERSION_CHECK),
    Contender("floor-sharedbottom", "census", "Shared-Bottom",
              "hand-written PyTorch loop (skmtl.nn.SharedBottom)", _P + "floor:FloorSharedBottom"),
    # -- Census-Income, OMoE (no peer has it) -------------------------------------
    Contender("skmtl-omoe", "census", "OMoE", "skmtl OMOEClassifier, MMoE's configuration",
              _P + "ours:SkmtlOMoE", reference=True),
    Contender("skmtl-omoe-defaults", "census", "OMoE", "skmtl OMOEClassifier(), its defaults",
              _P + "ours:SkmtlOMoEDefaults"),
    Contender("floor-omoe", "census", "OMoE", "hand-written PyTorch loop (skmtl.nn.OMoE)",
              _P + "floor:FloorOMoE"),
    # -- Census-Income, PLE --------------------------------------------------------
    Contender("skmtl-ple", "census", "PLE", "skmtl PLEClassifier, peers' configuration",
              _P + "ours:SkmtlPLE", reference=True),
    Contender("skmtl-ple-defaults", "census", "PLE", "skmtl PLEClassifier(), its defaults",
              _P + "ours:SkmtlPLEDefaults"),
    Contender("skmtl-ple-own-training", "census", "PLE",
              "skmtl PLEClassifier, peers' sizes and epochs, its own training",
              _P + "ours:SkmtlPLEOwnTraining"),
    Contender("torch-rechub-ple", "census", "PLE", "torch-rechub PLE + MTLTrainer",
              _P + "rechub:RechubPLE", requires=_RECHUB),
    Contender("deepctr-torch-ple", "census", "PLE", "DeepCTR-Torch PLE, compile/fit",
              _P + "deepctr:DeepCTRPLE", requires=_DEEPCTR, env=_NO_VERSION_CHECK),
    Contender("floor-ple", "census", "PLE", "hand-written PyTorch loop (skmtl.nn.PLE)",
              _P + "floor:FloorPLE"),
    # -- Coat, ESMM against CVR models on clicked rows ---------------------------
    Contender("skmtl-esmm", "coat", "ESMM", "skmtl ESMMClassifier, common configuration",
              _P + "ours:SkmtlESMM", trained_on="all impressions", reference=True),
    Contender("skmtl-esmm-defaults", "coat", "ESMM", "skmtl ESMMClassifier(), its defaults",
              _P + "ours:SkmtlESMMDefaults", trained_on="all impressions"),
    Contender("skmtl-esmm-own-training", "coat", "ESMM",
              "skmtl ESMMClassifier, peers' sizes and epochs, its own training",
              _P + "ours:SkmtlESMMOwnTraining", trained_on="all impressions"),
    Contender("torch-rechub-esmm", "coat", "ESMM", "torch-rechub ESMM + MTLTrainer",
              _P + "rechub:RechubESMM", requires=_RECHUB, trained_on="all impressions"),
    Contender("deepctr-torch-esmm", "coat", "ESMM", "DeepCTR-Torch ESMM, compile/fit",
              _P + "deepctr:DeepCTRESMM", requires=_DEEPCTR, trained_on="all impressions",
              env=_NO_VERSION_CHECK),
    Contender("floor-esmm", "coat", "ESMM", "hand-written PyTorch loop (skmtl.nn.ESMM)",
              _P + "floor:FloorESMM", trained_on="all impressions"),
    Contender("skmtl-cvr", "coat", "ESMM", "skmtl MMOEClassifier() on 1-D y, its defaults",
              _P + "ours:SkmtlClickedCVR", trained_on="clicked rows"),
    Contender("logistic-cvr", "coat", "ESMM", "one-hot LogisticRegression",
              _P + "classic:LogisticClickedCVR", trained_on="clicked rows"),
    Contender("hgb-cvr", "coat", "ESMM", "HistGradientBoostingClassifier (ids as ordinal codes)",
              _P + "classic:HGBClickedCVR", trained_on="clicked rows"),
    # -- Coat, AITM ------------------------------------------------------------------
    Contender("skmtl-aitm", "coat", "AITM", "skmtl AITMClassifier, peers' configuration",
              _P + "ours:SkmtlAITM", trained_on="all impressions", reference=True),
    Contender("skmtl-aitm-defaults", "coat", "AITM", "skmtl AITMClassifier(), its defaults",
              _P + "ours:SkmtlAITMDefaults", trained_on="all impressions"),
    Contender("skmtl-aitm-own-training", "coat", "AITM",
              "skmtl AITMClassifier, peers' sizes and epochs, its own training",
              _P + "ours:SkmtlAITMOwnTraining", trained_on="all impressions"),
    Contender("torch-rechub-aitm", "coat", "AITM", "torch-rechub AITM + MTLTrainer",
              _P + "rechub:RechubAITM", requires=_RECHUB, trained_on="all impressions"),
    Contender("floor-aitm", "coat", "AITM", "hand-written PyTorch loop (skmtl.nn.AITM)",
              _P + "floor:FloorAITM", trained_on="all impressions"),
    # -- funnel4: four nested stages, against the generator's probabilities -------
    Contender("truth-funnel4", "funnel4", "ESMM and AITM",
              "the generator's true probabilities (the ceiling)", _P + "classic:GroundTruth"),
    Contender("skmtl-aitm-funnel4", "funnel4", "ESMM and AITM",
              "skmtl AITMClassifier, peers' configuration", _P + "ours:SkmtlAITMFunnel4",
              reference=True),
    Contender("skmtl-aitm-defaults-funnel4", "funnel4", "ESMM and AITM",
              "skmtl AITMClassifier(), its defaults", _P + "ours:SkmtlAITMDefaultsFunnel4"),
    Contender("torch-rechub-aitm-funnel4", "funnel4", "ESMM and AITM",
              "torch-rechub AITM (4 tasks) + MTLTrainer", _P + "rechub:RechubAITMFunnel4",
              requires=_RECHUB),
    Contender("skmtl-esmm-funnel4", "funnel4", "ESMM and AITM",
              "skmtl ESMMClassifier, Coat's ESMM configuration", _P + "ours:SkmtlESMMFunnel4"),
    Contender("skmtl-esmm-defaults-funnel4", "funnel4", "ESMM and AITM",
              "skmtl ESMMClassifier(), its defaults", _P + "ours:SkmtlESMMDefaultsFunnel4"),
]}

DATASETS = ("census", "coat", "funnel4")


def contenders_for(dataset):
    return [c for c in CONTENDERS.values() if c.dataset == dataset]
