"""The configuration every neural contender is trained with.

One training configuration for all of them, from torch-rechub's own census
example (``examples/ranking/run_census.py``): batch 1024, Adam with learning
rate 1e-3 and weight decay 1e-4, exactly ``epochs`` epochs (default 10) with
a validation pass after each one.

The network sizes are those of torch-rechub's examples: its census example
(``examples/ranking/run_census.py``) for MMoE, Shared-Bottom, PLE and ESMM,
and its Ali-CCP example (``examples/ranking/run_ali_ccp_multi_task.py``,
the same AITM as in its census example) for AITM. Every contender of a
model gets the same sizes (DeepCTR-Torch has no census example for these
models, so it gets torch-rechub's); where a library's network cannot take a
size, ``benchmarks/README.md`` says so.

Census-Income, MMoE: 8 experts of one hidden layer of 16 units, towers of
one hidden layer of 8 units, embeddings of size 4 (7 numeric columns enter
as they are). OMoE (no example in either library: the baseline of the MMoE
paper) at MMoE's sizes.

Census-Income, Shared-Bottom: a bottom of one hidden layer of 117 units
(the example's comment: 117 gives about MMoE's number of parameters),
towers of 8, embeddings of 4.

Census-Income, PLE: one level (CGC), 1 shared expert and 2 experts per
task of one hidden layer of 16 units, towers of 8, embeddings of 4.

Coat, ESMM: embeddings of size 16, CTR and CVR towers of hidden layers 16
and 8 (the example's ESMM branch uses embeddings of 16).

Coat and funnel4, AITM: embeddings of size 4, each stage's bottom of hidden
layers 32 and 16, attention of width 16 (the last bottom layer's),
torch-rechub's towers after the attention of one hidden layer of 8
(skmtl's AITM has a linear head there instead).
"""

# Rows per forward pass when predicting the test set, for every contender
# whose predict takes a batch size: the one skmtl uses internally.
from skmtl._base import PREDICT_BATCH_SIZE  # noqa: F401 (part of the configuration)

DEFAULT_EPOCHS = 10
QUICK_EPOCHS = 2
QUICK_CENSUS_ROWS = 20_000
QUICK_COAT_ROWS = 30_000
QUICK_FUNNEL4_ROWS = 30_000

TRAINING = {"batch_size": 1024, "learning_rate": 1e-3, "weight_decay": 1e-4}

CENSUS_MMOE = {"n_experts": 8, "expert_units": (16,), "tower_units": (8,), "embedding_dim": 4}

CENSUS_OMOE = dict(CENSUS_MMOE)

CENSUS_SHARED_BOTTOM = {"bottom_units": (117,), "tower_units": (8,), "embedding_dim": 4}

CENSUS_PLE = {"n_levels": 1, "n_shared_experts": 1, "n_task_experts": 2, "expert_units": (16,),
              "tower_units": (8,), "embedding_dim": 4}

COAT_ESMM = {"tower_units": (16, 8), "embedding_dim": 16}

# torch-rechub's AITM: bottom_params={"dims": [32, 16]} (skmtl's tower_units),
# its attention of the last bottom width, tower_params_list=[{"dims": [8]}, ...]
# after the attention (AITM_RECHUB_TOWER_UNITS; skmtl's head is linear).
AITM_SIZES = {"tower_units": (32, 16), "transfer_units": 16, "embedding_dim": 4}
AITM_RECHUB_TOWER_UNITS = (8,)

# funnel4: make_entire_space with four nested stages (impression -> click ->
# three further stages), generated once with a fixed seed; see data.load_funnel4.
FUNNEL4_ROWS = 100_000
FUNNEL4_CLICK_RATE = 0.15
FUNNEL4_CONVERSION_RATES = (0.3, 0.4, 0.5)
FUNNEL4_DATA_SEED = 2026
