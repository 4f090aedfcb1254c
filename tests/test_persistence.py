"""save/load: identical predictions, a format that runs no code, clear errors on bad files."""

import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

import skmtl
from skmtl import ESMMClassifier, MMOEClassifier, load
from skmtl._encoding import NUMERIC_ENCODINGS

# the target bins, the path of most tables (numeric_encoding="auto" would
# standardise these smooth columns)
FAST = dict(max_epochs=3, batch_size=128, random_state=0,
            numeric_encoding="piecewise_linear")


def _outputs(model, X):
    out = model.predict_proba(X)
    out = list(out) if isinstance(out, list) else [out]
    out.append(model.predict(X))
    if isinstance(model, ESMMClassifier):
        out += model.predict_conditional_proba(X)
    return out


def _fitted(kind, tasks):
    X, Y, funnel = tasks
    if kind in NUMERIC_ENCODINGS:
        return MMOEClassifier(**{**FAST, "numeric_encoding": kind}).fit(X, Y)
    if kind == "mmoe":
        labels = Y.assign(t2=np.where(Y["t2"] == 1, "buy", "skip"),
                          grade=pd.cut(X["num_a"], [-np.inf, -0.5, 0.5, np.inf],
                                       labels=[0, 1, 2]).astype(int))
        return MMOEClassifier(early_stopping=True, **FAST).fit(X, labels)
    if kind == "single":
        return MMOEClassifier(**FAST).fit(X[["num_a", "num_b"]].to_numpy(), Y["t1"].to_numpy())
    stages = funnel.assign(purchase=funnel["conversion"] * (X["num_b"] > 3).astype(int))
    return ESMMClassifier(**FAST).fit(X, stages)


@pytest.mark.parametrize("kind", ["mmoe", "single", "esmm", *NUMERIC_ENCODINGS])
def test_round_trip_gives_identical_predictions(kind, tasks, holdout, tmp_path):
    model = _fitted(kind, tasks)
    X_test = holdout[0] if kind != "single" else holdout[0][["num_a", "num_b"]].to_numpy()
    model.save(tmp_path / "model.skmtl")
    loaded = load(tmp_path / "model.skmtl")
    assert type(loaded) is type(model)
    assert loaded.get_params() == model.get_params()
    for a, b in zip(_outputs(model, X_test), _outputs(loaded, X_test)):
        np.testing.assert_array_equal(a, b)
    assert loaded.task_names_ == model.task_names_
    if isinstance(model.classes_, list):
        assert len(loaded.classes_) == len(model.classes_)
        for a, b in zip(loaded.classes_, model.classes_):
            np.testing.assert_array_equal(a, b)
            assert a.dtype == b.dtype
    else:
        np.testing.assert_array_equal(loaded.classes_, model.classes_)
    assert loaded.n_iter_ == model.n_iter_
    assert loaded.history_[:, "train_loss"] == model.history_[:, "train_loss"]
    assert hasattr(loaded, "feature_names_in_") == hasattr(model, "feature_names_in_")


def test_load_leaves_torch_random_state_alone(tasks, tmp_path):
    # the rebuilt module's initialisation drew from it: a fit in another thread lost its
    # seeded stream
    MMOEClassifier(dropout=0.3, **FAST).fit(*tasks[:2]).save(tmp_path / "model.skmtl")
    torch.manual_seed(123)
    state = torch.get_rng_state()
    load(tmp_path / "model.skmtl")
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("numeric_encoding", ["piecewise_linear", "standard"])
def test_torch_default_dtype_changes_nothing(tasks, tmp_path, numeric_encoding):
    # under float64 the default encoding's fit failed (float32 buffers met float64 weights),
    # the others trained another model from the same seed, and load rebuilt in float64
    X, Y, _ = tasks
    params = dict(FAST, numeric_encoding=numeric_encoding)
    reference = MMOEClassifier(**params).fit(X, Y)
    reference.save(tmp_path / "model.skmtl")
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        model = MMOEClassifier(**params).fit(X, Y)
        loaded = load(tmp_path / "model.skmtl")
        assert torch.get_default_dtype() == torch.float64  # the caller's, restored
        for p, q, r in zip(model.predict_proba(X), reference.predict_proba(X),
                           loaded.predict_proba(X)):
            np.testing.assert_array_equal(p, q)
            np.testing.assert_array_equal(r, q)
        model.partial_fit(X, Y)
    finally:
        torch.set_default_dtype(default)


def test_metadata_requests_are_kept(tasks, tmp_path):
    # they were dropped: a loaded model in a routed search ignored sample_weight
    import sklearn

    X, Y, _ = tasks
    with sklearn.config_context(enable_metadata_routing=True):
        model = MMOEClassifier(**{**FAST, "max_epochs": 1}).set_fit_request(
            sample_weight=True).set_score_request(sample_weight="score_weight")
    model.fit(X, Y).save(tmp_path / "model.skmtl")
    routing = load(tmp_path / "model.skmtl").get_metadata_routing()
    assert routing.fit.requests == {"sample_weight": True}
    assert routing.score.requests == {"sample_weight": "score_weight"}
    assert routing.partial_fit.requests == {"classes": None, "sample_weight": None}


def test_loaded_model_continues_training(tasks, tmp_path):
    X, Y, _ = tasks
    model = MMOEClassifier(warm_start=True, **FAST).fit(X, Y)
    model.save(tmp_path / "m.skmtl")
    resumed = load(tmp_path / "m.skmtl").fit(X, Y)
    continued = model.fit(X, Y)
    assert resumed.n_iter_ == continued.n_iter_ == 6
    for a, b in zip(resumed.predict_proba(X), continued.predict_proba(X)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_file_is_stamped_with_versions(tasks, tmp_path):
    _fitted("esmm", tasks).save(tmp_path / "m.skmtl")
    with zipfile.ZipFile(tmp_path / "m.skmtl") as zf:
        assert sorted(zf.namelist()) == ["skmtl.json", "weights.pt"]
        config = json.loads(zf.read("skmtl.json"))
    assert config["skmtl_version"] == skmtl.__version__
    assert config["torch_version"] == torch.__version__
    assert config["format_version"] == 10 and config["estimator"] == "ESMMClassifier"


def test_numpy_values_and_column_positions_in_parameters(tasks, tmp_path):
    X, Y, _ = tasks
    model = MMOEClassifier(**FAST, categories={"shop": np.unique(X["shop"]),
                                               "color": np.array(["blue", "green", "red"])})
    model.fit(X, Y).save(tmp_path / "named.skmtl")
    loaded = load(tmp_path / "named.skmtl")
    np.testing.assert_array_equal(loaded.predict_proba(X)[0], model.predict_proba(X)[0])
    assert loaded.get_params()["categories"]["color"] == ["blue", "green", "red"]

    # A NumPy X names its columns by position; the positions stay integers.
    values = X[["color", "shop", "num_a"]].to_numpy()
    model = MMOEClassifier(**FAST, categorical_features=[0, 1],
                           categories={0: ["blue", "green", "red"]}, hash_buckets={1: 8})
    model.fit(values, Y).save(tmp_path / "positions.skmtl")
    loaded = load(tmp_path / "positions.skmtl")
    assert loaded.get_params()["categories"] == {0: ["blue", "green", "red"]}
    assert loaded.get_params()["hash_buckets"] == {1: 8}
    np.testing.assert_array_equal(loaded.predict_proba(values)[1], model.predict_proba(values)[1])
    refitted = clone(loaded).fit(values, Y)
    np.testing.assert_allclose(refitted.predict_proba(values)[1], model.predict_proba(values)[1])


def test_tuple_and_reserved_keys_in_parameters(tasks, tmp_path):
    # a MultiIndex names tasks by tuples; "__items__" is the file's own marker
    X, Y, _ = tasks
    Y = Y.set_axis(pd.MultiIndex.from_tuples([("y", "t1"), ("y", "t2")]), axis=1)
    model = MMOEClassifier(**FAST, task_weights={("y", "t1"): 2.0, ("y", "t2"): 1.0},
                           tower_units={("y", "t1"): (8,), ("y", "t2"): (4,)}).fit(X, Y)
    model.save(tmp_path / "tuples.skmtl")
    loaded = load(tmp_path / "tuples.skmtl")
    assert loaded.get_params()["task_weights"] == model.task_weights
    assert loaded.get_params()["tower_units"] == model.tower_units
    np.testing.assert_array_equal(loaded.predict_proba(X)[1], model.predict_proba(X)[1])

    X = X.rename(columns={"color": "__items__"})
    model = MMOEClassifier(**FAST, categories={"__items__": ["blue", "green", "red"]})
    model.fit(X, Y).save(tmp_path / "reserved.skmtl")
    assert load(tmp_path / "reserved.skmtl").categories == {"__items__": ["blue", "green", "red"]}


def test_pandas_containers_in_parameters(tasks, tmp_path):
    # an Index of categories or of column names broke every later partial_fit and warm fit
    # (the truth value of an array is ambiguous) and save (not JSON)
    X, Y, _ = tasks
    model = MMOEClassifier(**FAST, categories={"color": pd.Index(["blue", "green", "red"]),
                                               "shop": X["shop"].cat.categories},
                           categorical_features=X.select_dtypes(exclude="number").columns)
    model.partial_fit(X[:1000], Y[:1000]).partial_fit(X[1000:], Y[1000:])
    model.save(tmp_path / "m.skmtl")
    loaded = load(tmp_path / "m.skmtl")
    assert loaded.get_params()["categories"]["color"] == ["blue", "green", "red"]
    assert loaded.get_params()["categorical_features"] == ["color", "shop"]
    np.testing.assert_array_equal(loaded.predict_proba(X)[0], model.predict_proba(X)[0])
    warm = MMOEClassifier(**FAST, warm_start=True,
                          categorical_features=pd.Index(["color", "shop"])).fit(X, Y)
    assert warm.fit(X, Y).n_iter_ == 6



@pytest.mark.parametrize("task_weights, saved", [
    (torch.tensor([1.0, 2.0]), [1.0, 2.0]), ({"t2": torch.tensor(0.5)}, {"t2": 0.5})])
def test_torch_values_in_parameters(tasks, tmp_path, task_weights, saved):
    # fit took a tensor, and save refused it: "cannot save parameter ... as JSON"
    X, Y, _ = tasks
    model = MMOEClassifier(**FAST, task_weights=task_weights).fit(X, Y)
    model.save(tmp_path / "m.skmtl")
    loaded = load(tmp_path / "m.skmtl")
    assert loaded.get_params()["task_weights"] == saved
    np.testing.assert_array_equal(loaded.predict_proba(X)[0], model.predict_proba(X)[0])

@pytest.mark.parametrize("tower_units", [[(8,), (4, 2)], {"t1": (8,), "t2": (4, 2)}, (6, 3)])
def test_tower_units_come_back_in_the_form_given(tasks, tmp_path, tower_units):
    X, Y, _ = tasks
    model = MMOEClassifier(max_epochs=1, tower_units=tower_units, random_state=0).fit(X, Y)
    model.save(tmp_path / "m.skmtl")
    assert load(tmp_path / "m.skmtl").get_params()["tower_units"] == tower_units


def test_saving_an_unfitted_model():
    with pytest.raises(NotFittedError):
        MMOEClassifier().save("never.skmtl")


# -- bad files ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved(tasks, tmp_path_factory):
    path = tmp_path_factory.mktemp("saved") / "model.skmtl"
    _fitted("mmoe", tasks).save(path)
    with zipfile.ZipFile(path) as zf:
        return path, json.loads(zf.read("skmtl.json")), zf.read("weights.pt")


def _write(path, config, weights):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("skmtl.json", config if isinstance(config, (str, bytes))
                    else json.dumps(config))
        zf.writestr("weights.pt", weights)
    return path


def test_truncated_file(saved, tmp_path):
    data = saved[0].read_bytes()
    (tmp_path / "cut.skmtl").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a valid skmtl model file"):
        load(tmp_path / "cut.skmtl")


def test_corrupted_compressed_data(saved, tmp_path):
    # a damaged deflate stream is zlib's error, not zipfile's
    path = tmp_path / "bad.skmtl"
    path.write_bytes(saved[0].read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("skmtl.json")
    data = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data[start:start + 8] = b"\xff" * 8
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="not a valid skmtl model file"):
        load(path)


def test_saved_file_honours_the_umask(tasks, tmp_path):
    model = _fitted("mmoe", tasks)
    mask = os.umask(0o022)
    try:
        model.save(tmp_path / "shared.skmtl")
    finally:
        os.umask(mask)
    assert stat.S_IMODE(os.stat(tmp_path / "shared.skmtl").st_mode) == 0o644


def test_not_a_model_file(tmp_path):
    (tmp_path / "x.skmtl").write_text("hello")
    with pytest.raises(ValueError, match="not a valid skmtl model file"):
        load(tmp_path / "x.skmtl")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as zf:
        zf.writestr("readme.txt", "hi")
    with pytest.raises(ValueError, match="not a valid skmtl model file"):
        load(tmp_path / "other.zip")


def test_a_missing_file_is_not_a_damaged_one(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "no such model.skmtl")


def test_values_json_cannot_hold_are_named_when_saving(tasks, tmp_path):
    # the error named neither the column nor the task, after the whole fit
    X, Y, _ = tasks
    banded = X.assign(day=pd.date_range("2020-01-01", periods=len(X), freq="h").normalize(),
                      band=pd.cut(X["num_b"], [-np.inf, 0, np.inf]))
    model = MMOEClassifier(max_epochs=1, random_state=0,
                           categorical_features=["day", "band", "color", "shop"]).fit(banded, Y)
    with pytest.raises(TypeError, match=r"cannot store the categories of column 'day' as JSON: "
                                        r"they hold values of type \['datetime'\]; "
                                        r".*astype\(str\)"):
        model.save(tmp_path / "model.skmtl")
    model.set_params(categorical_features=["band", "color", "shop"])
    model.fit(banded.drop(columns="day"), Y)
    with pytest.raises(TypeError, match="categories of column 'band'.*'Interval'"):
        model.save(tmp_path / "model.skmtl")
    when = Y.assign(t2=np.where(Y["t2"] == 1, pd.Timestamp("2020-01-01").date(),
                                pd.Timestamp("2020-01-02").date()))
    model = MMOEClassifier(max_epochs=1, random_state=0).fit(X, when)
    with pytest.raises(TypeError, match="cannot store the classes of task 't2' as JSON"):
        model.save(tmp_path / "model.skmtl")
    assert not (tmp_path / "model.skmtl").exists()


def test_numpy_scalar_learning_rates_save_and_load(tasks, tmp_path):
    # the optimizer kept the NumPy scalar, which torch.load(weights_only=True) refuses
    X, Y, _ = tasks
    model = MMOEClassifier(learning_rate=np.float32(0.01), weight_decay=np.float64(1e-5),
                           **FAST).fit(X, Y)
    model.save(tmp_path / "np.skmtl")
    np.testing.assert_array_equal(load(tmp_path / "np.skmtl").predict_proba(X)[0],
                                  model.predict_proba(X)[0])


def test_tampered_weights(saved, tmp_path):
    _, config, weights = saved
    flipped = bytearray(weights)
    flipped[len(flipped) // 2] ^= 0xFF
    with pytest.raises(ValueError, match="do not match their checksum"):
        load(_write(tmp_path / "t.skmtl", config, bytes(flipped)))


def test_weights_of_the_wrong_shape(saved, tmp_path):
    _, config, weights = saved
    config = json.loads(json.dumps(config))
    config["params"]["n_experts"] = 2
    with pytest.raises(ValueError, match="does not match its weights"):
        load(_write(tmp_path / "w.skmtl", config, weights))


@pytest.mark.parametrize("change, message", [
    (lambda c: c.update(format_version=99), "model format 99"),
    (lambda c: c.update(format="something-else"), "not a skmtl model file"),
    (lambda c: c.update(estimator="os.system"), "unknown estimator"),
    (lambda c: c["params"].update(learning_rate=-1), "learning_rate"),
    # built on the meta device, one Python loop step per expert, for minutes
    (lambda c: c["params"].update(n_experts=10**7), "n_experts"),
    (lambda c: c["encoder"]["numeric"].update(knots=[[0.0]]), "column counts"),
    (lambda c: c["encoder"]["numeric"]["knots"][0].reverse(), "invalid knots"),
    (lambda c: c.update(format_version=1), "fit the model again"),
    (lambda c: c["classes"][0].update(dtype="<M8[ns]"), "unsupported dtype"),
    # what loaded before and then failed at predict, or predicted wrongly
    (lambda c: c.update(single_output=True), "single_output=True with 3 tasks"),
    (lambda c: c.update(single_output="false"), "single_output='false'"),
    (lambda c: c["classes"][0].update(values=[0, 0]), "distinct labels"),
    (lambda c: c["classes"][0].update(values=[0, 1.5]), "does not hold"),
    (lambda c: c["classes"][1].update(dtype="<U1"), "does not hold"),
    (lambda c: c["encoder"]["numeric"]["knots"][0].__setitem__(1, float("nan")),
     "invalid knots"),
    (lambda c: c["encoder"].update(feature_names_in=["color"]), "feature_names_in"),
    (lambda c: c["encoder"]["categories"][0]["values"].append(
        c["encoder"]["categories"][0]["values"][0]), "repeats a category"),
    (lambda c: c["encoder"].update(hash_buckets=[0, 10 ** 9]), "both a vocabulary"),
    (lambda c: c.update(split_seed=-5), "split_seed=-5"),
    (lambda c: c.update(estimator=["MMOEClassifier"]), "unknown estimator"),
    (lambda c: c["encoder"].update(n_features_in=float("inf")), "OverflowError"),
    (lambda c: c.update(metadata_requests={"fit": {"sample_weight": 3}}), "sample_weight"),
    (lambda c: c.update(metadata_requests={"fit": {"no_such_param": True}}), "no_such_param"),
    (lambda c: c.update(metadata_requests={"__init__": {}}), "not a set of requests"),
])
def test_tampered_description(saved, tmp_path, change, message):
    _, config, weights = saved
    config = json.loads(json.dumps(config))
    change(config)
    with pytest.raises(ValueError, match=message):
        load(_write(tmp_path / "d.skmtl", config, weights))


def _with_weights(config, change_state):
    """``config`` and its weights after ``change_state(state)``, with a matching checksum."""
    state = torch.load(io.BytesIO(config[1]), weights_only=True)
    change_state(state)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    weights = buffer.getvalue()
    return {**config[0], "weights_sha256": hashlib.sha256(weights).hexdigest()}, weights


@pytest.mark.parametrize("change, message", [
    # moments of another shape loaded, and the fused Adam kernel of the next
    # partial_fit wrote out of bounds (a crash, or a corrupted heap)
    (lambda s: s["optimizer"]["state"][0].update(exp_avg=torch.zeros(1)),
     "optimizer's state does not fit"),
    (lambda s: s["optimizer"]["state"][0].pop("exp_avg_sq"), "optimizer's state does not fit"),
    (lambda s: s["optimizer"]["param_groups"][0].update(betas=(5.0,)),
     "invalid optimizer settings"),
    (lambda s: s["optimizer"].update(state=[]), "does not hold an optimizer state"),
    # columns would read each other's embedding rows
    (lambda s: s["module"]["embedding.offsets"].zero_(), "buffers disagree"),
])
def test_tampered_weights_with_a_valid_checksum(saved, tmp_path, change, message):
    path, config, weights = saved
    config, weights = _with_weights((config, weights), change)
    with pytest.raises(ValueError, match=message):
        load(_write(tmp_path / "o.skmtl", config, weights))


@pytest.mark.parametrize("change, message", [
    (lambda s: s["module"]["experts.norms.0.running_var"].__setitem__(0, -1.0), "negative"),
    (lambda s: s["module"]["towers.0.1.running_mean"].__setitem__(0, float("nan")), "NaN"),
])
def test_tampered_batch_statistics(tasks, tmp_path, change, message):
    # learned buffers (unlike the embedding offsets), but a negative variance predicts NaN
    path = tmp_path / "bn.skmtl"
    model = MMOEClassifier(max_epochs=1, batch_norm=True, random_state=0).fit(*tasks[:2])
    model.save(path)
    with zipfile.ZipFile(path) as zf:
        config, weights = json.loads(zf.read("skmtl.json")), zf.read("weights.pt")
    assert load(_write(tmp_path / "same.skmtl", config, weights)).batch_norm is True
    # an infinite variance (a column of numbers near 1e19, say) zeroes its unit: it loads
    infinite = _with_weights((config, weights), lambda s: s["module"][
        "experts.norms.0.running_var"].__setitem__(0, float("inf")))
    with torch.no_grad():
        model.net_.module_.experts.norms[0].running_var[0] = float("inf")
    np.testing.assert_array_equal(
        load(_write(tmp_path / "inf.skmtl", *infinite)).predict_proba(tasks[0])[0],
        model.predict_proba(tasks[0])[0])
    config, weights = _with_weights((config, weights), change)
    with pytest.raises(ValueError, match=message):
        load(_write(tmp_path / "b.skmtl", config, weights))


def test_a_configuration_asking_for_a_huge_network_allocates_nothing(saved, tmp_path):
    _, config, weights = saved
    config = json.loads(json.dumps(config))
    config["encoder"]["categories"][1]["values"] = []
    config["encoder"]["hash_buckets"] = [0, 2 * 10 ** 9]   # 64 GB of embeddings
    with pytest.raises(ValueError, match="the saved weights 'embedding.*have shape"):
        load(_write(tmp_path / "h.skmtl", config, weights))


def test_archives_with_two_descriptions_or_a_bomb(saved, tmp_path):
    _, config, weights = saved
    with zipfile.ZipFile(tmp_path / "twice.skmtl", "w") as zf, \
            pytest.warns(UserWarning, match="Duplicate name"):
        for text in (json.dumps(config), json.dumps(config), weights):
            zf.writestr("weights.pt" if isinstance(text, bytes) else "skmtl.json", text)
    with pytest.raises(ValueError, match="2 members named 'skmtl.json'"):
        load(tmp_path / "twice.skmtl")
    with zipfile.ZipFile(tmp_path / "bomb.skmtl", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("skmtl.json", json.dumps(config) + " " * 30_000_000)
        zf.writestr("weights.pt", weights)
    with pytest.raises(ValueError, match="'skmtl.json' would expand"):
        load(tmp_path / "bomb.skmtl")


def test_categories_that_compress_like_a_bomb_save_and_load(tmp_path):
    # values of a CHAR(2000) database column: the description compresses ~300-fold
    rng = np.random.default_rng(0)
    products = np.array([f"p{i}".ljust(2000) for i in range(5000)], dtype=object)
    X = pd.DataFrame({"product": rng.permutation(products), "x": rng.normal(size=5000)})
    y = (X["x"] > 0).astype(int)
    model = MMOEClassifier(max_epochs=1, random_state=0).fit(X, y)
    model.save(tmp_path / "padded.skmtl")
    loaded = load(tmp_path / "padded.skmtl")
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


@pytest.mark.parametrize("name", ["mmoe", "esmm"])
def test_format_2_files_still_load(name):
    # Written by skmtl at commit a14e750 (format 2, before the model family)
    # from this data; the file's predictions were recorded then.
    rng = np.random.default_rng(7)
    X = pd.DataFrame({"a": rng.normal(size=200), "b": rng.exponential(size=200),
                      "c": rng.choice(["x", "y", "z"], 200)})
    folder = Path(__file__).parent / "data"
    with zipfile.ZipFile(folder / f"format2_{name}.skmtl") as zf:
        assert json.loads(zf.read("skmtl.json"))["format_version"] == 2
    model = load(folder / f"format2_{name}.skmtl")
    expected = json.loads((folder / "format2_predictions.json").read_text())[name]
    for proba, positive in zip(model.predict_proba(X), expected):
        np.testing.assert_allclose(proba[:, 1], positive, rtol=1e-6, atol=1e-9)


def test_regressor_file_without_its_target_scaling(tasks, tmp_path):
    X, Y, _ = tasks
    skmtl.MMOERegressor(**FAST).fit(X, X["num_a"] * 2 + 1).save(tmp_path / "r.skmtl")
    with zipfile.ZipFile(tmp_path / "r.skmtl") as zf:
        config, weights = json.loads(zf.read("skmtl.json")), zf.read("weights.pt")
    assert config["target_mean"] and config["target_scale"]
    del config["target_scale"]
    with pytest.raises(ValueError, match="target_scale"):
        load(_write(tmp_path / "bad.skmtl", config, weights))


def test_invalid_json(saved, tmp_path):
    with pytest.raises(ValueError, match="not valid JSON"):
        load(_write(tmp_path / "j.skmtl", b"{not json", saved[2]))


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_a_file_crafted_to_run_code_executes_nothing(saved, tmp_path):
    _, config, _ = saved
    marker = tmp_path / "pwned"
    buffer = io.BytesIO()
    torch.save({"module": _RunsCode(str(marker)), "optimizer": {}}, buffer)
    payload = buffer.getvalue()
    config = dict(config, weights_sha256=hashlib.sha256(payload).hexdigest())
    with pytest.raises(ValueError, match="cannot be read safely"):
        load(_write(tmp_path / "evil.skmtl", config, payload))
    assert not marker.exists()
    # the payload is real: unpickling it without the safeguard does run the code
    torch.load(io.BytesIO(payload), weights_only=False)
    assert marker.exists()


# -- determinism across processes ------------------------------------------------------------

_FIT_AND_HASH = """
import hashlib, sys
import numpy as np
sys.path.insert(0, {tests!r})
from conftest import make_tasks
from skmtl import {cls}
X, Y, funnel = make_tasks(1500, seed=3)
target = funnel if {cls!r} == "ESMMClassifier" else Y
model = {cls}(max_epochs=3, random_state=7).fit(X, target)
digest = hashlib.sha256()
for p in model.predict_proba(X):
    digest.update(np.ascontiguousarray(p).tobytes())
print(digest.hexdigest())
"""


@pytest.mark.parametrize("cls", ["MMOEClassifier", "ESMMClassifier"])
def test_same_random_state_same_predictions_across_processes(cls):
    code = _FIT_AND_HASH.format(tests=str(Path(__file__).parent), cls=cls)
    digests = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True).stdout.strip() for _ in range(2)]
    assert len(digests[0]) == 64
    assert digests[0] == digests[1]


def test_load_does_not_import_torch_dynamo(tasks, tmp_path):
    # load builds the network on the meta device first; some factory functions
    # there (arange, a product with a number) import torch._dynamo, two seconds
    X, Y, _ = tasks
    paths = []
    for model in (MMOEClassifier(**{**FAST, "numeric_encoding": "piecewise_linear"}),
                  MMOEClassifier(**{**FAST, "numeric_encoding": "periodic"}),
                  skmtl.PLEClassifier(**FAST)):
        paths.append(str(tmp_path / f"{len(paths)}.skmtl"))
        model.fit(X, Y).save(paths[-1])
    code = (f"import sys, skmtl\nfor path in {paths!r}:\n    skmtl.load(path)\n"
            "print('torch._dynamo' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"
