"""Turning user input into arrays: features to codes and floats, labels to codes.

One module per concern: ``_tabular`` (the table and its blocks of rows),
``_categorical`` (categories and codes), ``_numeric`` (numeric encodings),
``_labels`` (targets), ``_leaves`` (boosted trees over the encoded inputs).
"""

from ._categorical import MAX_HASH_BUCKETS, UNKNOWN_CODE
from ._common import array_from_json, array_to_json, deviation_unit
from ._labels import (check_label_type, check_targets, encode_labels, known_labels,
                      label_classes)
from ._leaves import MAX_LEAF_TREES, LeafTrees
from ._numeric import BIN_STRATEGIES, FREQUENT_VALUES, NUMERIC_ENCODINGS, NumericEncoding
from ._tabular import TabularEncoder, check_features

__all__ = ["BIN_STRATEGIES", "FREQUENT_VALUES", "MAX_HASH_BUCKETS", "MAX_LEAF_TREES",
           "NUMERIC_ENCODINGS", "UNKNOWN_CODE", "LeafTrees", "NumericEncoding", "TabularEncoder",
           "array_from_json", "array_to_json", "check_features", "check_label_type",
           "check_targets", "deviation_unit", "encode_labels", "known_labels", "label_classes"]
