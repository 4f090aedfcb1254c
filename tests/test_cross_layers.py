"""cross_layers: low-rank cross layers (DCN-v2) on the embedded input of every network."""

import io
import json
import zipfile

import joblib
import numpy as np
import pytest
import torch
from sklearn.utils._param_validation import InvalidParameterError

import skmtl
from skmtl import (AITMClassifier, ESMMClassifier, MMOEClassifier, OMOEClassifier,
                   PLEClassifier, SharedBottomRegressor)
from skmtl.nn import CrossNetwork, FeatureEmbedding

from conftest import labels_for_model, reloaded_alike

FAST = dict(max_epochs=2, batch_size=128, random_state=0)


def test_each_layer_adds_the_input_times_a_low_rank_map_of_its_own_input():
    _ = torch.manual_seed(0)
    cross = CrossNetwork(5, n_layers=2, rank=3)
    x0 = torch.randn(7, 5)
    expected = x0
    for up, down, bias in zip(cross.up, cross.down, cross.bias):
        expected = x0 * (expected @ up @ down + bias) + expected
    torch.testing.assert_close(cross(x0), expected)
    # one layer that maps feature 1 onto feature 0: feature 0 becomes x0 + x0 * x1
    single = CrossNetwork(2, n_layers=1, rank=1)
    with torch.no_grad():
        single.up[0].copy_(torch.tensor([[0.0], [1.0]]))
        single.down[0].copy_(torch.tensor([[1.0, 0.0]]))
        single.bias[0].zero_()
    x = torch.tensor([[2.0, 3.0], [-1.0, 4.0]])
    torch.testing.assert_close(single(x), torch.tensor([[8.0, 3.0], [-5.0, 4.0]]))


def test_the_rank_is_at_most_the_width_and_sizes_are_checked():
    assert CrossNetwork(4, n_layers=1, rank=16).up[0].shape == (4, 4)
    for args in [(0, 1), (4, 0), (4, 1, 0)]:
        with pytest.raises(ValueError, match="CrossNetwork needs"):
            CrossNetwork(*args)


def test_the_embedding_keeps_its_width_and_trains_the_cross():
    embedding = FeatureEmbedding([4, 3], n_numeric=2, embedding_dim=5, cross_layers=1)
    plain = FeatureEmbedding([4, 3], n_numeric=2, embedding_dim=5)
    assert embedding.output_dim == plain.output_dim == 12 and plain.cross is None
    codes, numbers = torch.tensor([[1, 2], [3, 0]]), torch.tensor([[0.5, -1.0], [2.0, 0.0]])
    embedding(codes, numbers).square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0
               for p in embedding.cross.parameters())


@pytest.mark.parametrize("estimator_class", [MMOEClassifier, OMOEClassifier, PLEClassifier,
                                             SharedBottomRegressor, ESMMClassifier,
                                             AITMClassifier], ids=lambda c: c.__name__)
def test_every_model_crosses_its_input_and_saves_the_layers(estimator_class, tasks, holdout,
                                                            tmp_path):
    X = tasks[0]
    y = labels_for_model(estimator_class, tasks)
    model = estimator_class(**FAST, cross_layers=2).fit(X, y)
    cross = model.net_.module_.embedding.cross
    assert len(cross.up) == 2 and cross.up[0].shape[0] == model.net_.module_.embedding.output_dim
    for loaded in reloaded_alike(model, holdout[0], tmp_path / "model.skmtl"):
        assert loaded.cross_layers == 2


def test_predictions_read_the_crossed_input(tasks):
    X, Y, _ = tasks
    model = MMOEClassifier(**FAST, cross_layers=1).fit(X, Y)
    crossed = model.predict_proba(X)
    embedding = model.net_.module_.embedding
    with torch.no_grad():  # factors and bias of zero: the layer is the identity
        for parameter in embedding.cross.parameters():
            parameter.zero_()
    identity = model.predict_proba(X)
    embedding.cross = None
    for a, b, c in zip(crossed, identity, model.predict_proba(X)):
        assert np.abs(a - b).max() > 1e-3
        np.testing.assert_array_equal(b, c)


@pytest.mark.parametrize("value", [-1, 65, 1.5, "1", None])
def test_bad_cross_layers(tasks, value):
    X, Y, _ = tasks
    with pytest.raises(InvalidParameterError, match="cross_layers"):
        MMOEClassifier(cross_layers=value).fit(X, Y)


def test_warm_start_keeps_the_cross_layers(tasks):
    X, Y, _ = tasks
    model = MMOEClassifier(**FAST, cross_layers=1, warm_start=True).fit(X, Y)
    up = model.net_.module_.embedding.cross.up[0].detach().clone()
    model.fit(X, Y)  # continues the same layers
    assert not torch.equal(model.net_.module_.embedding.cross.up[0], up)
    with pytest.raises(ValueError, match="cross_layers"):  # another network: refit from scratch
        model.set_params(cross_layers=2).fit(X, Y)


def test_a_model_saved_or_pickled_before_cross_layers_still_predicts(tasks, tmp_path):
    X, Y, _ = tasks
    model = MMOEClassifier(**FAST).fit(X, Y)
    expected = model.predict_proba(X)
    # a file of format 9 names no cross_layers
    model.save(tmp_path / "model.skmtl")
    with zipfile.ZipFile(tmp_path / "model.skmtl") as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    config = json.loads(members["skmtl.json"])
    del config["params"]["cross_layers"]
    config["format_version"] = 9
    members["skmtl.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(tmp_path / "format9.skmtl", "w") as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    loaded = skmtl.load(tmp_path / "format9.skmtl")
    assert loaded.cross_layers == 0 and loaded.net_.module_.embedding.cross is None
    # as pickled before the parameter, the embedding had no cross attribute
    del model.net_.module_.embedding.__dict__["cross"]
    del model.cross_layers
    del model._fitted_network_params["cross_layers"]
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    restored = joblib.load(io.BytesIO(buffer.getvalue()))
    assert restored.get_params()["cross_layers"] == 0
    for fitted in (loaded, restored):
        for a, b in zip(fitted.predict_proba(X), expected):
            np.testing.assert_array_equal(a, b)
    restored.set_params(warm_start=True).fit(X, Y)  # continues: the same network
