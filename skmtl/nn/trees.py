"""Decision trees applied in the network: the leaf each row falls in, as a category."""

import numpy as np
import torch
from torch import nn


class TreeLeaves(nn.Module):
    """The leaf of each of ``n_trees`` fitted trees that each row falls in.

    The trees are given as arrays of their nodes (padded to one node count
    per tree); a leaf is its own child, so that every row takes ``depth``
    steps. :class:`FeatureEmbedding` embeds the leaves as categorical
    columns (``leaf_trees``).

    Parameters
    ----------
    feature : array-like of shape (n_trees, n_nodes), int
        The input column each node splits on: the categorical codes (as
        floats) first, then the numeric inputs.
    threshold : array-like of shape (n_trees, n_nodes), float
        A row goes to the left child where its value is ``<= threshold``.
    children : array-like of shape (2, n_trees, n_nodes), int
        The left and the right child of each node, within its tree.
    leaf_code : array-like of shape (n_trees, n_nodes), int
        The code ``1..n_leaves`` of each leaf (the output), 0 elsewhere.
    missing_left : array-like of shape (n_trees, n_nodes), bool
        Where a missing input (NaN) goes at each node: left, or right.
    depth : int
        Steps from the root to any leaf, at most.

    Examples
    --------
    One tree: ``x_0 <= 0.5`` goes left to leaf 1, else to node 2, which
    splits ``x_1 <= 2`` into leaves 2 and 3 (a missing ``x_1``: to leaf 2).

    >>> import torch
    >>> from skmtl.nn import TreeLeaves
    >>> leaves = TreeLeaves(feature=[[0, 0, 1, 0, 0]], threshold=[[0.5, 0, 2, 0, 0]],
    ...                     children=[[[1, 1, 3, 3, 4]], [[2, 1, 4, 3, 4]]],
    ...                     leaf_code=[[0, 1, 0, 2, 3]],
    ...                     missing_left=[[False, False, True, False, False]], depth=2)
    >>> x = torch.tensor([[0.0, 9.0], [1.0, 2.0], [1.0, 3.0], [1.0, float("nan")]])
    >>> leaves(None, x).tolist()
    [[1], [2], [3], [2]]
    """

    def __init__(self, feature, threshold, children, leaf_code, missing_left, depth):
        super().__init__()
        arrays = check_trees(feature, threshold, children, leaf_code, missing_left, depth)
        feature, threshold, children, leaf_code, missing_left = arrays
        self.n_trees, self.n_nodes = feature.shape
        self.depth = int(depth)
        self.n_inputs = int(feature.max(initial=0)) + 1  # at least
        self.cardinalities = [int(n) + 1 for n in leaf_code.max(axis=1)]
        # flat over (tree, node), so that each step is one gather per array
        offsets = (np.arange(self.n_trees) * self.n_nodes)[:, None]
        for name, values in (("feature", feature), ("threshold", threshold),
                             ("child", children + offsets), ("leaf_code", leaf_code),
                             ("missing_left", missing_left), ("roots", offsets)):
            self.register_buffer(name, torch.from_numpy(np.ascontiguousarray(values).reshape(-1)))

    def forward(self, categorical, numeric):
        """The leaf codes ``(batch, n_trees)`` of the rows (either input may be None)."""
        parts = [part.to(torch.float32) for part in (categorical, numeric) if part is not None]
        if not parts:
            raise ValueError("TreeLeaves needs categorical or numeric inputs; got neither.")
        features = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        if features.shape[1] < self.n_inputs:
            raise ValueError(f"the trees split on {self.n_inputs} inputs; got "
                             f"{features.shape[1]}.")
        node = self.roots.expand(features.shape[0], self.n_trees)
        for _ in range(self.depth):
            values = features.gather(1, _at(self.feature, node))
            right = ~(values <= _at(self.threshold, node))
            right &= ~(torch.isnan(values) & _at(self.missing_left, node))
            node = _at(self.child, node + right.to(torch.long) * self.feature.shape[0])
        return _at(self.leaf_code, node)


def _at(array, index):
    """``array[index]`` for a 1-D ``array`` (index_select: several times faster)."""
    return array.index_select(0, index.reshape(-1)).view(index.shape)


def check_trees(feature, threshold, children, leaf_code, missing_left, depth):
    """The arrays of :class:`TreeLeaves`, as NumPy arrays, if they form trees; else ValueError.

    Every path from a root ends in a leaf (a node that is its own child,
    with a code of at least 1) within ``depth`` steps, and every child lies
    in its own tree.
    """
    try:
        feature = np.asarray(feature, dtype=np.int64)
        threshold = np.asarray(threshold, dtype=np.float32)
        children = np.asarray(children, dtype=np.int64)
        leaf_code = np.asarray(leaf_code, dtype=np.int64)
        missing_left = np.asarray(missing_left, dtype=bool)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"the trees' arrays are not arrays of numbers ({exc}).") from None
    if feature.ndim != 2 or 0 in feature.shape:
        raise ValueError(f"feature must be a non-empty (n_trees, n_nodes) array; got shape "
                         f"{feature.shape}.")
    n_trees, n_nodes = feature.shape
    for name, values, shape in (("threshold", threshold, feature.shape),
                                ("children", children, (2, n_trees, n_nodes)),
                                ("leaf_code", leaf_code, feature.shape),
                                ("missing_left", missing_left, feature.shape)):
        if values.shape != shape:
            raise ValueError(f"{name} must have the shape {shape}; got {values.shape}.")
    if type(depth) is not int and not isinstance(depth, np.integer) or depth < 1:
        raise ValueError(f"depth must be a positive int; got {depth!r}.")
    # (a threshold may be infinite: a split of the missing values from all others)
    if (feature < 0).any() or ((children < 0) | (children >= n_nodes)).any() \
            or (leaf_code < 0).any() or np.isnan(threshold).any():
        raise ValueError("the trees' nodes name negative inputs, children outside their tree, "
                         "negative codes or NaN thresholds.")
    nodes = np.arange(n_nodes)
    leaves = leaf_code > 0
    if not (children[:, leaves] == np.broadcast_to(nodes, leaves.shape)[leaves]).all():
        raise ValueError("every leaf (a node with a code) must be its own child.")
    tree = np.arange(n_trees)[:, None]
    frontier = np.zeros((n_trees, 1), dtype=np.int64)
    for _ in range(depth):
        frontier = np.concatenate([children[0, tree, frontier], children[1, tree, frontier]],
                                  axis=1)
    if not (leaf_code[tree, frontier] > 0).all():
        raise ValueError(f"some path from a root reaches no leaf within depth={depth} steps.")
    return feature, threshold, children, leaf_code, missing_left
