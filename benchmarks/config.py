"""The configuration every neural contender is trained with.

Census-Income, MMoE: torch-rechub's own census example
(``examples/ranking/run_census.py``): 8 experts of one hidden layer of 16
units, towers of one hidden layer of 8 units, embeddings of size 4, batch
1024, Adam with learning rate 1e-3 and weight decay 1e-4.

Coat, ESMM: the sizes of torch-rechub's ESMM example on the same script
(embeddings of size 16, CTR and CVR towers of hidden layers 16 and 8), with
the same optimiser and batch size as above.

Every neural contender runs exactly ``epochs`` epochs (default 10) with a
validation pass after each one.
"""

# Rows per forward pass when predicting the test set, for every contender
# whose predict takes a batch size: the one skmtl uses internally.
from skmtl._base import PREDICT_BATCH_SIZE  # noqa: F401 (part of the configuration)

DEFAULT_EPOCHS = 10
QUICK_EPOCHS = 2
QUICK_CENSUS_ROWS = 20_000
QUICK_COAT_ROWS = 30_000

TRAINING = {"batch_size": 1024, "learning_rate": 1e-3, "weight_decay": 1e-4}

CENSUS_MMOE = {"n_experts": 8, "expert_units": (16,), "tower_units": (8,), "embedding_dim": 4}

COAT_ESMM = {"tower_units": (16, 8), "embedding_dim": 16}
