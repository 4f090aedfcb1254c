"""skmtl.plotting: the displays draw what the estimators computed."""

import sys

import matplotlib
import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import calibration_curve
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

import skmtl
from skmtl.plotting import GateWeightsDisplay, HistoryDisplay, TaskCalibrationDisplay

from conftest import make_tasks

matplotlib.use("Agg")
plt = pytest.importorskip("matplotlib.pyplot")


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def data():
    X, Y, funnel = make_tasks(1500, seed=0)
    return X, Y, funnel


def test_history_display_draws_each_tasks_losses_and_scores(data):
    X, Y, _ = data
    model = skmtl.MMOEClassifier(max_epochs=3, early_stopping=True, random_state=0).fit(X, Y)
    display = HistoryDisplay.from_estimator(model)
    labels = [line.get_label() for line in display.lines_]
    assert labels == ["train t1", "valid t1", "train t2", "valid t2", "AUC t1", "AUC t2"]
    np.testing.assert_array_equal(display.lines_[1].get_ydata(),
                                  model.history_[:, "valid_loss_t1"])
    np.testing.assert_array_equal(display.lines_[5].get_ydata(),
                                  model.history_[:, "valid_auc_t2"])
    assert display.score_ax_.get_ylabel() == "validation ROC AUC"

    _, ax = plt.subplots()
    only = HistoryDisplay.from_estimator(model, tasks=["t2"], scores=False, ax=ax)
    assert only.ax_ is ax and only.score_ax_ is None
    assert [line.get_label() for line in only.lines_] == ["train t2", "valid t2"]
    with pytest.raises(ValueError, match=r"tasks \['t3'\]"):
        HistoryDisplay.from_estimator(model, tasks=["t3"])
    # one task by its name (was split into letters), and tasks named by integers
    one = HistoryDisplay.from_estimator(model, tasks="t2", scores=False)
    assert [line.get_label() for line in one.lines_] == ["train t2", "valid t2"]
    numbered = skmtl.MMOEClassifier(max_epochs=1, random_state=0).fit(X, Y.set_axis([0, 1],
                                                                                    axis=1))
    by_int = HistoryDisplay.from_estimator(numbered, tasks=[1], scores=False)
    assert [line.get_label() for line in HistoryDisplay.from_estimator(
        numbered, tasks=1, scores=False).lines_] == ["train 1"]
    assert [line.get_label() for line in by_int.lines_][0] == "train 1"


def test_history_display_of_a_regressor_without_validation(data):
    X, _, _ = data
    model = skmtl.PLERegressor(max_epochs=2, early_stopping=False, random_state=0)
    model.fit(X, X[["num_a", "num_b"]] * 2)
    display = HistoryDisplay.from_estimator(model)
    assert [line.get_label() for line in display.lines_] == ["train num_a", "train num_b"]

    validated = skmtl.PLERegressor(max_epochs=2, early_stopping=True, random_state=0)
    validated.fit(X, X[["num_a", "num_b"]] * 2)
    display = HistoryDisplay.from_estimator(validated)
    assert display.score_ax_.get_ylabel() == "validation R²"


def test_history_display_of_a_warm_start_that_added_validation(data):
    X, Y, _ = data
    model = skmtl.MMOEClassifier(max_epochs=2, early_stopping=False, random_state=0).fit(X, Y)
    model.set_params(warm_start=True, early_stopping=True).fit(X, Y)
    display = HistoryDisplay.from_estimator(model)
    assert [line.get_label() for line in display.lines_][:2] == ["train t1", "valid t1"]
    valid = display.lines_[1].get_ydata()
    assert len(valid) == len(display.epochs) == 4
    assert np.isnan(valid[:2]).all()  # the epochs without validation rows: a gap
    np.testing.assert_array_equal(valid[2:], model.history_[2:, "valid_loss_t1"])


def test_gate_weights_display_shows_the_mean_gate_weights(data):
    X, Y, funnel = data
    model = skmtl.MMOEClassifier(n_experts=3, max_epochs=1, random_state=0).fit(X, Y)
    display = GateWeightsDisplay.from_estimator(model, X)
    np.testing.assert_allclose(display.weights, model.gate_weights(X).mean(axis=0))
    np.testing.assert_allclose(display.weights.sum(axis=1), 1.0)
    assert display.gate_names == ["t1", "t2"]
    assert [t.get_text() for t in display.ax_.get_yticklabels()] == ["t1", "t2"]
    assert display.text_[0, 2].get_text() == f"{display.weights[0, 2]:.2f}"
    np.testing.assert_allclose(display.image_.get_array(), display.weights)
    n_axes = len(display.figure_.axes)  # the heat map and its colour bar
    assert n_axes == 2 and display.colorbar_ is not None
    display.plot(ax=display.ax_, cmap="magma", colorbar=False)
    assert len(display.figure_.axes) == n_axes and display.colorbar_ is None

    one_gate = skmtl.OMOEClassifier(n_experts=2, max_epochs=1, random_state=0).fit(X, Y)
    assert GateWeightsDisplay.from_estimator(one_gate, X).gate_names == ["all tasks"]

    ple = skmtl.PLEClassifier(n_levels=2, n_shared_experts=1, n_task_experts=2,
                              max_epochs=1, random_state=0).fit(X, Y)
    first = GateWeightsDisplay.from_estimator(ple, X, level=0)
    assert first.gate_names == ["t1", "t2", "shared"]
    assert first.expert_names == ["shared 0", "t1 0", "t1 1", "t2 0", "t2 1"]
    np.testing.assert_allclose(first.weights, ple.gate_weights(X)[0].mean(axis=0))
    assert GateWeightsDisplay.from_estimator(ple, X).gate_names == ["t1", "t2"]
    ple.set_params(n_shared_experts=2, n_task_experts=1)  # the next fit's; not this network's
    assert GateWeightsDisplay.from_estimator(ple, X, level=0).expert_names == first.expert_names
    with pytest.raises(ValueError, match="level must be in"):
        GateWeightsDisplay.from_estimator(ple, X, level=2)
    for level in (1.0, "1", True):  # an index error, a comparison error, level 1
        with pytest.raises(TypeError, match="level must be an integer"):
            GateWeightsDisplay.from_estimator(ple, X, level=level)
    esmm = skmtl.ESMMClassifier(max_epochs=1, random_state=0).fit(X, funnel)
    with pytest.raises(TypeError, match="has no gates"):
        GateWeightsDisplay.from_estimator(esmm, X)



def test_displays_check_their_arguments(data):
    # each was drawn without a word: a level MMoE does not have, "no" taken as True, an
    # empty plot; a shape mismatch was a bare IndexError from matplotlib's loop
    X, Y, funnel = data
    mmoe = skmtl.MMOEClassifier(n_experts=2, max_epochs=1, random_state=0).fit(X, Y)
    assert GateWeightsDisplay.from_estimator(mmoe, X, level=0).gate_names == ["t1", "t2"]
    with pytest.raises(ValueError, match=r"level must be in \[-1, 0\] for this 1-level"):
        GateWeightsDisplay.from_estimator(mmoe, X, level=99)
    with pytest.raises(TypeError, match="level must be an integer"):
        GateWeightsDisplay.from_estimator(mmoe, X, level="last")
    with pytest.raises(ValueError, match=r"gate_names has 1 names for weights of shape "
                                         r"\(2, 2\); it needs 2"):
        GateWeightsDisplay(weights=[[0.5, 0.5], [0.5, 0.5]], gate_names=["a"])
    with pytest.raises(ValueError, match="expert_names has 3 names"):
        GateWeightsDisplay(weights=[[0.5, 0.5]], gate_names=["a"], expert_names=list("xyz"))
    with pytest.raises(ValueError, match="weights must be 2-D"):
        GateWeightsDisplay(weights=[0.5, 0.5], gate_names=["a"])
    with pytest.raises(TypeError, match="scores must be True or False; got 'no'"):
        HistoryDisplay.from_estimator(mmoe, scores="no")
    with pytest.raises(ValueError, match=r"tasks \[\] are not among"):
        HistoryDisplay.from_estimator(mmoe, tasks=[])
    esmm = skmtl.ESMMClassifier(max_epochs=1, random_state=0).fit(X, funnel)
    with pytest.raises(TypeError, match="conditional must be True or False"):
        TaskCalibrationDisplay.from_estimator(esmm, X, funnel, task="conversion",
                                              conditional="no")


def test_task_calibration_display_matches_calibration_curve(data):
    X, Y, funnel = data
    model = skmtl.MMOEClassifier(max_epochs=2, random_state=0).fit(X, Y)
    Y_missing = Y.astype(float)
    Y_missing.loc[:99, "t2"] = np.nan
    display = TaskCalibrationDisplay.from_estimator(model, X, Y_missing, task="t2", n_bins=5)
    expected = calibration_curve(Y["t2"][100:], model.predict_proba(X)[1][100:, 1], n_bins=5)
    np.testing.assert_allclose(display.prob_true, expected[0])
    np.testing.assert_allclose(display.prob_pred, expected[1])
    np.testing.assert_allclose(display.line_.get_xdata(), expected[1])
    assert display.line_.get_label() == "MMOEClassifier: t2"
    # the same from an array of every task's labels
    by_array = TaskCalibrationDisplay.from_estimator(model, X, Y.to_numpy(), task="t1")
    np.testing.assert_allclose(by_array.prob_true, calibration_curve(
        Y["t1"], model.predict_proba(X)[0][:, 1], n_bins=10)[0])

    esmm = skmtl.ESMMClassifier(max_epochs=2, random_state=0).fit(X, funnel)
    conditional = TaskCalibrationDisplay.from_estimator(
        esmm, X, funnel["conversion"], task="conversion", conditional=True, n_bins=4,
        ax=display.ax_)
    expected = calibration_curve(funnel["conversion"],
                                 esmm.predict_conditional_proba(X)[1][:, 1], n_bins=4)
    np.testing.assert_allclose(conditional.prob_true, expected[0])
    assert conditional.ax_ is display.ax_
    labels = [line.get_label() for line in display.ax_.get_lines()]
    assert labels.count("perfectly calibrated") == 1
    # a name and plot options, as scikit-learn's CalibrationDisplay takes them
    named = TaskCalibrationDisplay.from_estimator(
        esmm, X, funnel["conversion"], task="conversion", conditional=True, ax=display.ax_,
        name="ESMM, debiased", color="tab:red", linestyle="--")
    assert named.line_.get_label() == "ESMM, debiased"
    assert named.line_.get_color() == "tab:red" and named.line_.get_linestyle() == "--"


def test_task_calibration_display_errors(data):
    X, Y, _ = data
    model = skmtl.MMOEClassifier(max_epochs=1, random_state=0).fit(X, Y)
    with pytest.raises(ValueError, match="say which with task="):
        TaskCalibrationDisplay.from_estimator(model, X, Y)
    with pytest.raises(ValueError, match="conditional=True needs a funnel model"):
        TaskCalibrationDisplay.from_estimator(model, X, Y, task="t1", conditional=True)
    with pytest.raises(ValueError, match="y has no column 't1'"):
        TaskCalibrationDisplay.from_estimator(model, X, Y.rename(columns={"t1": "a"}), task="t1")
    with pytest.raises(ValueError, match="different numbers of samples: 1500 and 10"):
        TaskCalibrationDisplay.from_estimator(model, X, Y.head(10), task="t1")
    # a Y with integer column names: its tasks are "0" and "1", named either way
    Y_numbered = Y.set_axis([0, 1], axis=1)
    numbered = skmtl.MMOEClassifier(max_epochs=1, random_state=0).fit(X, Y_numbered)
    for task in (1, "1"):
        display = TaskCalibrationDisplay.from_estimator(numbered, X, Y_numbered, task=task)
        np.testing.assert_allclose(display.y_prob, numbered.predict_proba(X)[1][:, 1])
    multiclass = skmtl.MMOEClassifier(max_epochs=1, random_state=0).fit(
        X, pd.Series(np.digitize(X["num_a"], [-1, 1]), name="level"))
    with pytest.raises(ValueError, match="3 classes"):
        TaskCalibrationDisplay.from_estimator(multiclass, X, np.zeros(len(X)))
    regressor = skmtl.SharedBottomRegressor(max_epochs=1).fit(X, X["num_a"])
    with pytest.raises(TypeError, match="predicts no probabilities"):
        TaskCalibrationDisplay.from_estimator(regressor, X, X["num_a"])


def test_task_calibration_display_refuses_labels_outside_the_classes(data):
    X, Y, _ = data
    words = pd.Series(np.where(Y["t1"] == 1, "yes", "no"), name="bought")
    model = skmtl.MMOEClassifier(max_epochs=1, random_state=0).fit(X, words)
    with pytest.raises(ValueError, match=r"not among its classes \['no', 'yes'\]: \[0, 1\]"):
        TaskCalibrationDisplay.from_estimator(model, X, Y["t1"])  # 0/1, not "no"/"yes"
    with pytest.raises(ValueError, match="Every label of task 'bought' in y is missing"):
        TaskCalibrationDisplay.from_estimator(model, X, pd.Series([None] * len(X), name="bought",
                                                                  dtype=object))


def test_displays_refuse_what_is_not_a_skmtl_estimator(data):
    X, Y, _ = data
    pipeline = make_pipeline(FunctionTransformer(), skmtl.MMOEClassifier(max_epochs=1)).fit(X, Y)
    with pytest.raises(TypeError, match=r"skmtl estimator; got Pipeline \(.*pipeline\[-1\]"):
        TaskCalibrationDisplay.from_estimator(pipeline, X, Y, task="t1")
    with pytest.raises(TypeError, match="HistoryDisplay draws a skmtl estimator; got "
                                        "LogisticRegression"):
        HistoryDisplay.from_estimator(LogisticRegression().fit(X[["num_a"]], Y["t1"]))
    HistoryDisplay.from_estimator(pipeline[-1])
    with pytest.raises(TypeError, match=r"GateWeightsDisplay draws a skmtl estimator; got "
                                        r"Pipeline \(.*pipeline\[-1\]"):
        GateWeightsDisplay.from_estimator(pipeline, X)


def test_task_calibration_display_reads_arrow_labels_and_labels_its_curve(data):
    pa = pytest.importorskip("pyarrow")
    X, Y, _ = data
    model = skmtl.MMOEClassifier(max_epochs=1, random_state=0).fit(X, Y)
    from_arrow = TaskCalibrationDisplay.from_estimator(model, X, pa.Table.from_pandas(Y),
                                                       task="t2")
    from_pandas = TaskCalibrationDisplay.from_estimator(model, X, Y, task="t2")
    np.testing.assert_array_equal(from_arrow.prob_true, from_pandas.prob_true)
    # built by hand without names, the curve still has a label (matplotlib hides "")
    bare = TaskCalibrationDisplay(prob_true=[0.1, 0.5], prob_pred=[0.2, 0.4], y_prob=[0.1])
    assert bare.plot().line_.get_label() == "predictions"


def test_displays_without_matplotlib_name_the_extra_before_predicting(data, monkeypatch):
    X, Y, _ = data
    model = skmtl.MMOEClassifier(max_epochs=1, random_state=0).fit(X, Y)

    def must_not_run(*args, **kwargs):
        raise AssertionError("the estimator ran on X before matplotlib was checked")

    monkeypatch.setattr(model, "predict_proba", must_not_run)
    monkeypatch.setattr(model, "gate_weights", must_not_run)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)  # import fails
    calls = [lambda: HistoryDisplay.from_estimator(model),
             lambda: GateWeightsDisplay.from_estimator(model, X),
             lambda: TaskCalibrationDisplay.from_estimator(model, X, Y, task="t1"),
             lambda: HistoryDisplay(epochs=[1], losses={"train t1": [0.5]}).plot()]
    for call in calls:
        with pytest.raises(ImportError, match=r"needs matplotlib: pip install '\.\[plot\]'"):
            call()
