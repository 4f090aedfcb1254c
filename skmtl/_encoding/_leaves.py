"""Boosted trees whose leaves become categorical inputs of the network (``leaf_trees``).

In ``fit``, a few shallow regression trees per task are boosted on the
encoded inputs (categorical codes and encoded numbers, as the network
receives them), each fitted to the gradient of the task's loss after the
trees before it. The leaf a row falls in, in each tree, is then a
categorical column of its own: the network embeds it as it embeds any
category. A leaf is a conjunction of a few conditions on several columns,
so the embeddings start from interactions that a boosting model found,
after He et al., "Practical Lessons from Predicting Clicks on Ads at
Facebook" (ADKDD 2014). Only the trees' structure is kept; the boosting's
own predictions are not.
"""

import numpy as np
from scipy.special import expit
from sklearn.tree import DecisionTreeRegressor
from sklearn.utils import check_random_state

from ..nn.trees import TreeLeaves, check_trees

# Every tree has at most 2 ** LEAF_TREE_DEPTH leaves; LEAF_LEARNING_RATE shrinks
# each tree's step, so that the next tree still has something to fit.
LEAF_TREE_DEPTH = 3
LEAF_LEARNING_RATE = 0.2
# A leaf's Newton step is at most this. A leaf of one class takes a step of 1 / p
# (1 / (1 - p)), which grows as fast as exp(score) once p is near 0 (1): a task of a
# rare class overflowed the scores within a few trees. Typical steps (16 in a pure
# leaf of a class of 6 %) stay as they are: a bound of 10 changed the trees and cost
# Census income 0.0006 AUC (seeds 3-5).
_MAX_STEP = 100.0
MAX_LEAF_TREES = 1_024  # per task


class LeafTrees:
    """The fitted trees: per tree, the arrays of its nodes, padded to one node count.

    Attributes
    ----------
    feature : ndarray of shape (n_trees, n_nodes), int64
        The input column a node splits on (0 at leaves and padding).
    threshold : ndarray of shape (n_trees, n_nodes), float32
        A row goes left where its value is ``<= threshold``: the largest
        float32 not above the tree's float64 threshold, so that float32
        inputs go the same way as in the tree.
    children : ndarray of shape (2, n_trees, n_nodes), int64
        Left and right child of each node; a leaf is its own child.
    leaf_code : ndarray of shape (n_trees, n_nodes), int64
        The code ``1..n_leaves`` of each leaf (0 at inner nodes).
    missing_left : ndarray of shape (n_trees, n_nodes), bool
        Where the tree sends a missing value at each node.
    """

    def __init__(self, feature, threshold, children, leaf_code, missing_left):
        (self.feature, self.threshold, self.children, self.leaf_code,
         self.missing_left) = check_trees(feature, threshold, children, leaf_code, missing_left,
                                          LEAF_TREE_DEPTH)

    @property
    def n_trees(self):
        return self.feature.shape[0]

    def module(self):
        """The network's :class:`~skmtl.nn.TreeLeaves` that walks these trees."""
        return TreeLeaves(self.feature, self.threshold, self.children, self.leaf_code,
                          self.missing_left, LEAF_TREE_DEPTH)

    @classmethod
    def fit(cls, features, targets, sample_weight=None, regression=False, n_trees=10,
            random_state=None):
        """Boost ``n_trees`` trees per task on ``features``; None if none has two leaves.

        A task with fewer than two known labels gets no trees, and a tree of
        one leaf (a task of one class) is left out: its column is constant.

        Parameters
        ----------
        features : ndarray of shape (n_samples, n_features), float32
            The encoded inputs: categorical codes, then encoded numbers.
        targets : ndarray of shape (n_samples, n_tasks)
            Class indices per task (or, with ``regression``, real values);
            NaN where unknown.
        sample_weight : ndarray of shape (n_samples,), optional
        regression : bool, default=False
        n_trees : int, default=10
        random_state : int, RandomState or None
            Seeds the trees.
        """
        random_state = check_random_state(random_state)
        trees = []
        for t in range(targets.shape[1]):
            known = ~np.isnan(targets[:, t])
            if sample_weight is not None:
                known &= sample_weight > 0
            rows = np.flatnonzero(known)
            seed = random_state.randint(np.iinfo(np.int32).max)
            if len(rows) < 2:
                continue
            weight = None if sample_weight is None else sample_weight[rows].astype(np.float64)
            trees += _boost(features[rows], targets[rows, t], weight, regression, n_trees, seed)
        trees = [tree for tree in trees if tree.node_count > 1]
        return cls._from_sklearn(trees) if trees else None

    @classmethod
    def _from_sklearn(cls, trees):
        n_nodes = max(tree.node_count for tree in trees)
        shape = (len(trees), n_nodes)
        feature, leaf_code = np.zeros(shape, np.int64), np.zeros(shape, np.int64)
        threshold, missing_left = np.zeros(shape, np.float32), np.zeros(shape, bool)
        children = np.tile(np.arange(n_nodes), (2, len(trees), 1))
        for i, tree in enumerate(trees):
            nodes = np.arange(tree.node_count)
            inner = tree.children_left >= 0
            feature[i, nodes[inner]] = tree.feature[inner]
            threshold[i, nodes[inner]] = _float32_at_most(tree.threshold[inner])
            missing_left[i, nodes[inner]] = tree.missing_go_to_left[inner].astype(bool)
            children[0, i, nodes[inner]] = tree.children_left[inner]
            children[1, i, nodes[inner]] = tree.children_right[inner]
            leaf_code[i, nodes[~inner]] = np.arange(1, (~inner).sum() + 1)
        return cls(feature, threshold, children, leaf_code, missing_left)

    def to_dict(self):
        return {"feature": self.feature.tolist(), "threshold": self.threshold.tolist(),
                "children": self.children.tolist(), "leaf_code": self.leaf_code.tolist(),
                "missing_left": self.missing_left.tolist()}

    @classmethod
    def from_dict(cls, state, n_features):
        """Rebuild from :meth:`to_dict`'s output, checking that the arrays form trees
        over ``n_features`` inputs."""
        try:
            trees = cls(state["feature"], state["threshold"], state["children"],
                        state["leaf_code"], state["missing_left"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"inconsistent encoder state: the leaf trees ({exc}).") from None
        if trees.feature.max() >= n_features:
            raise ValueError(f"inconsistent encoder state: the leaf trees split on inputs "
                             f"beyond the {n_features} columns.")
        return trees


def _float32_at_most(values):
    """The largest float32 not above each float64 value."""
    rounded = values.astype(np.float32)
    above = rounded.astype(np.float64) > values
    rounded[above] = np.nextafter(rounded[above], np.float32(-np.inf))
    return rounded


def _boost(features, target, weight, regression, n_trees, seed):
    """``n_trees`` sklearn trees (``tree_``) boosted on one task's loss.

    Binary and multiclass tasks follow the gradient of the log loss (one
    multi-output tree per round for several classes), with a Newton step in
    each leaf; regression the squared error's, the step a leaf's mean.
    """
    n_rows = len(target)
    w = np.ones(n_rows) if weight is None else weight
    if regression:
        response = target.astype(np.float64)[:, None]
        scores = np.full((n_rows, 1), np.average(response[:, 0], weights=w))
    else:
        classes = target.astype(np.int64)
        n_classes = max(int(classes.max()) + 1, 2)
        onehot = np.eye(n_classes)[classes]
        prior = np.clip(np.average(onehot, axis=0, weights=w), 1e-6, 1.0)
        scores = np.tile(np.log(prior), (n_rows, 1))
        if n_classes == 2:  # one output: the logit of class 1
            onehot, scores = onehot[:, 1:], scores[:, 1:] - scores[:, :1]
    trees = []
    for _ in range(n_trees):
        if regression:
            gradient, hessian = response - scores, np.ones_like(scores)
        else:
            if scores.shape[1] == 1:
                proba = expit(scores)
            else:
                proba = np.exp(scores - scores.max(axis=1, keepdims=True))
                proba /= proba.sum(axis=1, keepdims=True)
            gradient, hessian = onehot - proba, proba * (1.0 - proba)
        tree = DecisionTreeRegressor(max_depth=LEAF_TREE_DEPTH, random_state=seed).fit(
            features, gradient, sample_weight=w)
        leaf = tree.apply(features)
        n_nodes = tree.tree_.node_count
        step = np.stack([np.bincount(leaf, w * gradient[:, k], n_nodes)
                         / np.maximum(np.bincount(leaf, w * hessian[:, k], n_nodes), 1e-12)
                         for k in range(gradient.shape[1])], axis=1)
        if not regression:
            step = np.clip(step, -_MAX_STEP, _MAX_STEP)
        scores += LEAF_LEARNING_RATE * step[leaf]
        trees.append(tree.tree_)
    return trees
