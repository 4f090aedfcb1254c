"""leaf_trees: boosted trees whose leaves the network embeds as categorical columns."""

import io
import json
import warnings
import zipfile

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score
from sklearn.utils._param_validation import InvalidParameterError

import skmtl
from skmtl import (AITMClassifier, ESMMClassifier, MMOEClassifier, MMOERegressor,
                   OMOEClassifier, PLEClassifier, SharedBottomRegressor)
from skmtl._encoding import LeafTrees
from skmtl._encoding._leaves import _boost
from skmtl.nn import TreeLeaves

from conftest import labels_for_model, reloaded_alike

FAST = dict(max_epochs=2, batch_size=128, random_state=0)


def test_the_network_finds_the_leaves_the_trees_find():
    # values a float32 step apart: a float64 threshold between two of them rounds, in
    # float32, to one of them; the network must still send each the tree's way
    rng = np.random.default_rng(0)
    steps = np.float32(1.0) + np.arange(3000, dtype=np.float32) * np.finfo(np.float32).eps
    features = np.column_stack([rng.permutation(steps), rng.integers(0, 30, 3000),
                                rng.normal(size=3000)]).astype(np.float32)
    target = ((features[:, 0] > 1.0 + 1500 * np.finfo(np.float32).eps)
              ^ (features[:, 1] % 3 == 0)).astype(float)
    reordered = features[:, [1, 0, 2]]  # the network's inputs: the codes, then the numbers
    trees = _boost(reordered, target, None, False, 6, seed=0)
    fitted = LeafTrees._from_sklearn(trees)
    leaves = fitted.module()(torch.from_numpy(reordered[:, :1].astype(np.int64)),
                             torch.from_numpy(reordered[:, 1:])).numpy()
    for t, tree in enumerate(trees):
        np.testing.assert_array_equal(leaves[:, t], fitted.leaf_code[t][tree.apply(reordered)])
    assert leaves.min() >= 1 and len(np.unique(leaves[:, 0])) == fitted.leaf_code[0].max() > 2


def test_missing_values_go_where_the_trees_send_them():
    # scikit-learn's trees learn where NaN goes at each split; the network sent it right
    rng = np.random.default_rng(0)
    features = rng.normal(size=(3000, 2)).astype(np.float32)
    target = (features[:, 0] > 0.3).astype(float)
    features[rng.random(3000) < 0.3, 0] = np.nan
    target[np.isnan(features[:, 0])] = rng.random(np.isnan(features[:, 0]).sum()) < 0.05
    trees = _boost(features, target, None, False, 4, seed=0)
    fitted = LeafTrees._from_sklearn(trees)
    assert fitted.missing_left.any()  # the test would pass with every NaN sent right
    leaves = fitted.module()(None, torch.from_numpy(features)).numpy()
    for t, tree in enumerate(trees):
        np.testing.assert_array_equal(leaves[:, t], fitted.leaf_code[t][tree.apply(features)])


def test_a_very_rare_class_does_not_overflow_the_boosting():
    # one negative row of weight 1e-3: each leaf isolating it stepped by 1 / (1 - p),
    # which grows as exp(score), and numpy warned of overflow in exp four times
    features = np.column_stack([np.arange(3000.0), np.zeros(3000)]).astype(np.float32)
    target = np.ones((3000, 1))
    target[-1] = 0.0
    weight = np.ones(3000)
    weight[-1] = 1e-3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trees = LeafTrees.fit(features, target, weight, n_trees=10, random_state=0)
    assert trees.n_trees == 10


def test_tree_leaves_checks_its_trees():
    good = dict(feature=[[0, 0, 0]], threshold=[[0.5, 0, 0]], children=[[[1, 1, 2]], [[2, 1, 2]]],
                leaf_code=[[0, 1, 2]], missing_left=[[False] * 3], depth=1)
    assert TreeLeaves(**good)(None, torch.tensor([[0.0], [1.0]])).tolist() == [[1], [2]]
    for change, message in [(dict(depth=0), "depth must be a positive int"),
                            (dict(children=[[[1, 1, 3]], [[2, 1, 2]]]), "outside their tree"),
                            (dict(leaf_code=[[0, 0, 2]]), "reaches no leaf within depth=1"),
                            (dict(children=[[[1, 2, 2]], [[2, 1, 2]]]), "its own child"),
                            (dict(threshold=[[np.nan, 0, 0]]), "NaN thresholds"),
                            (dict(missing_left=[[False]]), "missing_left must have the shape")]:
        with pytest.raises(ValueError, match=message):
            TreeLeaves(**{**good, **change})
    with pytest.raises(ValueError, match="needs categorical or numeric inputs"):
        TreeLeaves(**good)(None, None)
    on_two = TreeLeaves(**{**good, "feature": [[1, 0, 0]]})
    with pytest.raises(ValueError, match="split on 2 inputs, but there are 1 categorical and 0"):
        skmtl.nn.FeatureEmbedding([3], 0, 4, leaf_trees=on_two)


def test_each_task_gets_its_own_boosted_trees():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(2000, 4)).astype(np.float32)
    targets = np.column_stack([
        (features[:, 0] + features[:, 1] > 0).astype(float),  # binary
        np.digitize(features[:, 2], [-0.5, 0.5]).astype(float),  # three classes
        np.full(2000, np.nan)])  # no known label: no trees
    targets[::2, 1] = np.nan
    trees = LeafTrees.fit(features, targets, n_trees=4, random_state=np.random.RandomState(0))
    assert trees.n_trees == 8
    leaves = trees.module()(None, torch.from_numpy(features)).numpy()
    # the first task's trees split on its columns first and separate its classes
    assert set(trees.feature[:4, 0]) <= {0, 1} and set(trees.feature[4:, 0]) == {2}
    onehot = np.concatenate([np.eye(9)[leaves[:, t]] for t in range(4)], axis=1)
    from sklearn.linear_model import LogisticRegression
    proba = LogisticRegression().fit(onehot, targets[:, 0]).predict_proba(onehot)[:, 1]
    assert roc_auc_score(targets[:, 0], proba) > 0.95
    regression = LeafTrees.fit(features, features[:, [3]] ** 2, regression=True, n_trees=3,
                               random_state=np.random.RandomState(0))
    inner = regression.children[0] != np.arange(regression.children.shape[2])
    assert regression.n_trees == 3 and set(regression.feature[inner]) == {3}
    assert inner.sum() == 3 * 7  # depth 3, every node split


def test_rows_without_a_label_or_weight_do_not_shape_the_trees():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(1500, 3)).astype(np.float32)
    targets = (features[:, :2] > 0).astype(float)
    weight = rng.uniform(0.5, 2.0, 1500)
    # rows of weight 0, and rows whose label is missing, hold misleading labels
    weight[:300] = 0.0
    targets[:300] = 1.0 - targets[:300]
    targets[300:500, 1] = np.nan
    kept = LeafTrees.fit(features, targets, weight, n_trees=3,
                         random_state=np.random.RandomState(0))
    rows = slice(300, None)
    alone = LeafTrees.fit(features[rows], targets[rows], weight[rows], n_trees=3,
                          random_state=np.random.RandomState(0))
    for name in ("feature", "threshold", "children", "leaf_code"):
        np.testing.assert_array_equal(getattr(kept, name), getattr(alone, name))
    unweighted = LeafTrees.fit(features[rows], targets[rows], n_trees=3,
                               random_state=np.random.RandomState(0))
    assert not np.array_equal(unweighted.threshold, kept.threshold)  # the weights count


@pytest.mark.parametrize("estimator_class", [MMOEClassifier, OMOEClassifier, PLEClassifier,
                                             SharedBottomRegressor, ESMMClassifier,
                                             AITMClassifier], ids=lambda c: c.__name__)
def test_every_model_embeds_the_leaves_and_saves_them(estimator_class, tasks, holdout,
                                                      tmp_path):
    X = tasks[0]
    y = labels_for_model(estimator_class, tasks)
    model = estimator_class(**FAST, leaf_trees=3).fit(X, y)
    embedding = model.net_.module_.embedding
    plain = estimator_class(**FAST).fit(X, y).net_.module_.embedding
    assert embedding.leaf_trees.n_trees == 6 and plain.leaf_trees is None
    assert embedding.output_dim == plain.output_dim + 6 * embedding.embedding_dim
    for loaded in reloaded_alike(model, holdout[0], tmp_path / "model.skmtl"):
        assert loaded._encoder.leaf_trees == 3


def test_leaves_lift_a_task_of_interactions(holdout):
    # a task of an interaction of two columns, which boosted trees find at once
    rng = np.random.default_rng(0)

    def table(n):
        X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n),
                          "c": rng.choice(list("pqrs"), n)})
        Y = pd.DataFrame({"xor": ((X["a"] > 0) ^ (X["b"] > 0.5)).astype(int),
                          "c": (X["c"] == "p").astype(int)})
        return X, Y

    (X, Y), (X_test, Y_test) = table(3000), table(2000)
    aucs = {}
    for leaf_trees in (0, 5):
        # (with batch normalisation, the classifier's default, two epochs find the
        # interaction without the trees)
        model = MMOEClassifier(max_epochs=2, batch_norm=False, random_state=0,
                               leaf_trees=leaf_trees).fit(X, Y)
        aucs[leaf_trees] = roc_auc_score(Y_test["xor"], model.predict_proba(X_test)[0][:, 1])
    assert aucs[5] > 0.97 and aucs[5] > aucs[0] + 0.02, aucs


def test_the_trees_stay_through_partial_fit_and_warm_start(tasks):
    X, Y, _ = tasks
    model = MMOERegressor(**FAST, leaf_trees=2, hash_buckets={"color": 8}).partial_fit(
        X[:1000], pd.DataFrame({"a": X["num_a"][:1000], "b": X["num_b"][:1000]}))
    trees = model._encoder.leaf_trees_.threshold.copy()
    buffers = model.net_.module_.embedding.leaf_trees.threshold.clone()
    model.partial_fit(X[1000:], pd.DataFrame({"a": -X["num_a"][1000:], "b": X["num_b"][1000:]}))
    np.testing.assert_array_equal(model._encoder.leaf_trees_.threshold, trees)
    assert torch.equal(model.net_.module_.embedding.leaf_trees.threshold, buffers)
    # a first chunk without labels (its classes given) grows no trees: none to embed
    with pytest.warns(UserWarning, match=r"leaf_trees=2 grew no tree") as warned:
        unlabelled = MMOEClassifier(**FAST, leaf_trees=2, hash_buckets={"color": 8}).partial_fit(
            X[:500], Y[:500] * np.nan, classes=[[0, 1], [0, 1]])
    assert warned[0].filename == __file__
    assert unlabelled._encoder.leaf_trees_ is None
    assert unlabelled.net_.module_.embedding.leaf_trees is None
    warm = MMOEClassifier(**FAST, leaf_trees=2, warm_start=True).fit(X, Y)
    trees = warm._encoder.leaf_trees_.threshold.copy()
    np.testing.assert_array_equal(warm.fit(X, 1 - Y)._encoder.leaf_trees_.threshold, trees)
    with pytest.raises(ValueError, match="leaf_trees"):  # another network: refit from scratch
        warm.set_params(leaf_trees=3).fit(X, Y)


@pytest.mark.parametrize("value", [-1, 1025, 2.5, "10", None])
def test_bad_leaf_trees(tasks, value):
    X, Y, _ = tasks
    with pytest.raises(InvalidParameterError, match="leaf_trees"):
        MMOEClassifier(leaf_trees=value).fit(X, Y)


def test_leaf_trees_are_refused_under_torch_distributed():
    with pytest.raises(ValueError, match="leaf_trees is not supported under torch.distributed"):
        MMOEClassifier(leaf_trees=2)._check_distributed(warm=False)


@pytest.mark.parametrize("change, message", [
    (lambda trees: trees["feature"][0].__setitem__(0, 99), "inputs beyond the 4 columns"),
    (lambda trees: trees["children"][0][0].__setitem__(0, 0), "reaches no leaf within depth=3"),
    (lambda trees: trees["leaf_code"][0].__setitem__(int(np.argmax(trees["leaf_code"][0])), 0),
     "reaches no leaf within depth=3"),
    (lambda trees: trees.pop("threshold"), "the leaf trees"),
    (lambda trees: trees["threshold"][0].__setitem__(0, float("nan")), "NaN thresholds"),
    # valid trees, but not those of the saved network
    (lambda trees: trees["threshold"][0].__setitem__(0, trees["threshold"][0][0] + 1.0),
     "buffers disagree with its configuration"),
])
def test_a_file_with_broken_trees_is_refused(tasks, tmp_path, change, message):
    X, Y, _ = tasks
    MMOEClassifier(**FAST, leaf_trees=2).fit(X, Y).save(tmp_path / "model.skmtl")
    with zipfile.ZipFile(tmp_path / "model.skmtl") as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    config = json.loads(members["skmtl.json"])
    change(config["encoder"]["leaf_trees"])
    members["skmtl.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(tmp_path / "broken.skmtl", "w") as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    with pytest.raises(ValueError, match=message):
        skmtl.load(tmp_path / "broken.skmtl")


def test_a_model_pickled_before_leaf_trees_still_predicts(tasks, tmp_path):
    X, Y, _ = tasks
    model = MMOEClassifier(**FAST).fit(X, Y)
    expected = model.predict_proba(X)
    # as pickled before the parameter, the network's module and the encoder's trees existed
    del model.net_.module_.embedding.__dict__["leaf_trees"]
    del model.leaf_trees, model._encoder.leaf_trees, model._encoder.leaf_trees_
    del model._fitted_network_params["leaf_trees"]
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    restored = joblib.load(io.BytesIO(buffer.getvalue()))
    assert restored.get_params()["leaf_trees"] == 0
    for a, b in zip(restored.predict_proba(X), expected):
        np.testing.assert_array_equal(a, b)
    restored.set_params(warm_start=True).fit(X, Y)  # continues: the same network
    restored.save(tmp_path / "model.skmtl")
    assert skmtl.load(tmp_path / "model.skmtl")._encoder.leaf_trees_ is None
