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
        The left and the right child of each node.
    leaf_code : array-like of shape (n_trees, n_nodes), int
        The code ``1..n_leaves`` of each leaf (the output), 0 elsewhere.
    depth : int
        Steps from the root to any leaf, at most.

    Examples
    --------
    One tree: ``x_0 <= 0.5`` goes left to leaf 1, else to node 2, which
    splits ``x_1 <= 2`` into leaves 2 and 3.

    >>> import torch
    >>> from skmtl.nn import TreeLeaves
    >>> leaves = TreeLeaves(feature=[[0, 0, 1, 0, 0]], threshold=[[0.5, 0, 2, 0, 0]],
    ...                     children=[[[1, 1, 3, 3, 4]], [[2, 1, 4, 3, 4]]],
    ...                     leaf_code=[[0, 1, 0, 2, 3]], depth=2)
    >>> leaves(None, torch.tensor([[0.0, 9.0], [1.0, 2.0], [1.0, 3.0]])).tolist()
    [[1], [2], [3]]
    """

    def __init__(self, feature, threshold, children, leaf_code, depth):
        super().__init__()
        feature = torch.as_tensor(feature, dtype=torch.long)
        self.n_trees, self.n_nodes = feature.shape
        self.depth = int(depth)
        # flat over (tree, node), so that each step is one gather per array
        self.register_buffer("feature", feature.reshape(-1))
        self.register_buffer("threshold",
                             torch.as_tensor(threshold, dtype=torch.float32).reshape(-1))
        offsets = (torch.arange(self.n_trees) * self.n_nodes)[:, None]
        children = torch.as_tensor(children, dtype=torch.long) + offsets
        self.register_buffer("child", children.reshape(-1))
        self.register_buffer("leaf_code", torch.as_tensor(leaf_code, dtype=torch.long).reshape(-1))
        self.register_buffer("roots", offsets.reshape(-1).clone())
        # from the arrays given (a network built on the meta device has no values)
        self.cardinalities = [int(n) + 1 for n in
                              np.asarray(leaf_code).reshape(self.n_trees, -1).max(axis=1)]

    def forward(self, categorical, numeric):
        """The leaf codes ``(batch, n_trees)`` of the rows (either input may be None)."""
        parts = [part.to(torch.float32) for part in (categorical, numeric) if part is not None]
        features = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        node = self.roots.expand(features.shape[0], self.n_trees)
        for _ in range(self.depth):
            values = features.gather(1, _at(self.feature, node))
            right = (~(values <= _at(self.threshold, node))).to(torch.long)
            node = _at(self.child, node + right * self.feature.shape[0])
        return _at(self.leaf_code, node)


def _at(array, index):
    """``array[index]`` for a 1-D ``array`` (index_select: several times faster)."""
    return array.index_select(0, index.reshape(-1)).view(index.shape)
