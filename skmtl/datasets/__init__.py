"""Data sets for multi-task models: real public data and synthetic generators.

Loaders
-------
fetch_census_income
    UCI Census-Income (KDD) with the two tasks of the MMoE paper
    (income > 50K, never married).
fetch_coat
    The Coat shopping data as impressions -> clicks -> conversions, with a
    random-exposure test set free of selection bias.

The loaders read their files from a data home (``data_home=``, else the
``SKMTL_DATA`` environment variable, else ``~/skmtl_data``; see
:func:`get_data_home`), downloading them once, with checksums, if missing.

Generators
----------
make_entire_space
    Impressions, clicks and conversions (or a longer funnel of nested
    stages) with known true probabilities and a tunable selection bias (for
    ESMM and AITM).
make_multitask
    Binary tasks whose relatedness is a cosine similarity you choose (after
    the synthetic experiment of the MMoE paper).
"""

from ._base import get_data_home
from ._census_income import fetch_census_income
from ._coat import fetch_coat
from ._synthetic import make_entire_space, make_multitask

__all__ = [
    "fetch_census_income",
    "fetch_coat",
    "get_data_home",
    "make_entire_space",
    "make_multitask",
]
