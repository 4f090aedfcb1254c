"""Data-parallel fit under torch.distributed: 2 CPU processes on gloo, spawned by the test."""

import contextlib
import datetime
import io
import os
import pickle
import re
import socket
import time

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from conftest import make_tasks

# fits in other processes (workers, ranks) are compared with fits here: every
# process with the shipped batch_size="auto" (see conftest.py)
pytestmark = pytest.mark.shipped_batch_floor

TIMEOUT_SECONDS = 120


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _shard(rank, case):
    X, Y, _ = make_tasks(3000, seed=0)
    X, Y = X.iloc[rank::2].reset_index(drop=True), Y.iloc[rank::2].reset_index(drop=True)
    if rank == 1:
        X.loc[:20, "color"] = "purple"  # a category only rank 1 has
        if case == "other columns":
            X = X.assign(extra=1.0)
    return X, Y


def _prediction(model):
    X = make_tasks(500, seed=1)[0]
    if hasattr(model, "predict_proba"):
        return model.predict_proba(X)[0]
    return model.predict(X[model.feature_names_in_])


def _worker(rank, world_size, port, out_dir, case):
    from torch import distributed as dist

    from skmtl import MMOEClassifier, PLERegressor

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size,
                            timeout=datetime.timedelta(seconds=TIMEOUT_SECONDS))
    result = None
    try:
        if case == "bad fits":
            result = _bad_fits(rank)
            return
        X, Y = _shard(rank, case)
        if case == "same columns":
            # "auto" would update the embeddings sparsely here, but not under torch.distributed
            # (the ranks all-reduce dense gradients); partial_fit below, alone, does
            import skmtl._base
            skmtl._base.AUTO_SPARSE_EMBEDDING_VALUES = 1
        kind = PLERegressor if case == "regressor" else MMOEClassifier
        if case == "regressor":
            Y = X[["num_a", "num_b"]] * [3.0, 0.5] + rank  # the shards' scales differ
            X = X.drop(columns=["num_a"])
        # batch normalisation's running statistics come from each rank's own batches
        model = kind(max_epochs=4, batch_size=128, early_stopping=True, n_iter_no_change=2,
                     random_state=rank, loss_weighting="uncertainty", batch_norm=True)
        try:
            model.fit(X, Y)
        except ValueError as exc:
            result = {"error": str(exc)}
        else:
            result = {"state": {k: v.numpy().copy()
                                for k, v in model.net_.module_.state_dict().items()},
                      "history": [dict(row) for row in model.history_],
                      "categories": [list(c) for c in model._encoder.categories_],
                      "weighting": model.net_.loss_weighting_.log_variance.detach().numpy().copy(),
                      "proba": _prediction(model)}
            try:
                model.partial_fit(X, Y)
            except ValueError as exc:
                result["partial_fit_error"] = str(exc)
    finally:
        dist.destroy_process_group()
        if case == "bad fits" and result is not None:
            with open(os.path.join(out_dir, f"rank{rank}.pkl"), "wb") as f:
                pickle.dump(result, f)
    if "error" not in result:
        # outside the group the fitted model trains on alone, on every batch
        model.partial_fit(X, Y)
        result["batches_after"] = model.history_[-1, "train_batch_count"]
    with open(os.path.join(out_dir, f"rank{rank}.pkl"), "wb") as f:
        pickle.dump(result, f)


def _bad_fits(rank):
    """Fits that must fail on both ranks although only rank 1's input or parameters are bad,
    then one that must work: ``{name: (error type, message) or history}``."""
    from skmtl import MMOEClassifier, MMOERegressor

    X, Y = _shard(rank, "same columns")
    fast = dict(max_epochs=1, batch_size=128)
    cases = {}
    if rank == 1:
        cases["infinity in a numeric column"] = (
            MMOEClassifier(**fast), X.assign(num_a=X["num_a"].where(X.index > 5, np.inf)), Y)
        cases["a column categorical on one rank"] = (
            MMOEClassifier(**fast), X.assign(num_b=X["num_b"].round().astype(str)), Y)
        cases["other parameters"] = (MMOEClassifier(**fast, tower_units=(8,)), X, Y)
        cases["an invalid parameter"] = (MMOEClassifier(max_epochs=0), X, Y)
        cases["labels of another type"] = (MMOEClassifier(**fast), X,
                                           Y.assign(t1=Y["t1"].map({0: "no", 1: "yes"})))
        cases["sparse embedding updates"] = (MMOEClassifier(**fast, sparse_embeddings=True), X, Y)
        cases["a target too large to standardise"] = (
            MMOERegressor(**fast), X.drop(columns=["num_a"]),
            X[["num_a"]] * 1e300)
    else:
        for name in ("infinity in a numeric column", "a column categorical on one rank",
                     "other parameters", "an invalid parameter", "labels of another type",
                     "sparse embedding updates"):
            cases[name] = (MMOEClassifier(**fast), X, Y)
        cases["a target too large to standardise"] = (
            MMOERegressor(**fast), X.drop(columns=["num_a"]), X[["num_a"]])
    outcomes = {}
    for name, (model, features, targets) in cases.items():
        try:
            model.fit(features, targets)
        except (ValueError, TypeError) as exc:
            outcomes[name] = (type(exc).__name__, str(exc))
        else:
            outcomes[name] = None
    # early_stopping="auto" on every rank's rows: 10,500 in all, 9,000 of them on rank 1
    X, Y, _ = make_tasks(10_500, seed=2)
    rows = slice(0, 1500) if rank == 0 else slice(1500, None)
    model = MMOEClassifier(**fast, early_stopping="auto").fit(X.iloc[rows], Y.iloc[rows])
    outcomes["uneven shards"] = [dict(row) for row in model.history_]
    # sample_weight on rank 0 only: rank 1's rows weigh 1 each, in the scores too
    X, Y = _shard(rank, "same columns")
    weight = np.random.default_rng(0).choice([0.1, 5.0], len(X))
    for name, own in (("weights on rank 0 only", None), ("weights of 1 on rank 1", 1.0)):
        model = MMOEClassifier(**fast, early_stopping=True, random_state=0)
        model.fit(X, Y, sample_weight=weight if rank == 0 else own and np.ones(len(X)))
        outcomes[name] = model.history_[-1, "valid_auc_t1"]
    # a vocabulary given as a set (its order differs between processes); early
    # stopping's messages printed by rank 0 alone
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        MMOEClassifier(max_epochs=5, batch_size=128, early_stopping=True, n_iter_no_change=1,
                       tol=10.0, verbose=1, categories={"color": {"red", "green", "blue",
                                                                  "black", "purple"}}).fit(X, Y)
    outcomes["printed"] = printed.getvalue()
    # missing values on rank 1 only: both ranks learn them (rank 0's encoding alone did not)
    X, Y = _shard(rank, "same columns")
    if rank == 1:
        X = X.assign(num_a=X["num_a"].where(X.index % 3 != 0))
    model = MMOEClassifier(**fast, random_state=0).fit(X, Y)
    outcomes["learned missing"] = model._encoder.numeric_.learned_missing_
    outcomes["offsets"] = model.net_.module_.embedding.numeric_embedding.missing_offsets.detach()
    return outcomes


def _run(tmp_path, case):
    context = mp.start_processes(_worker, args=(2, _free_port(), str(tmp_path), case),
                                 nprocs=2, join=False, start_method="spawn")
    deadline = time.monotonic() + TIMEOUT_SECONDS + 30
    while not context.join(timeout=5):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("the ranks did not finish in time")
    results = []
    for rank in range(2):
        with open(tmp_path / f"rank{rank}.pkl", "rb") as f:
            results.append(pickle.load(f))
    return results


@pytest.mark.parametrize("case", ["same columns", "regressor"])
def test_two_ranks_end_with_the_same_model(tmp_path, case):
    first, second = _run(tmp_path, case)
    assert first.keys() == second.keys() and "error" not in first
    for key, value in first["state"].items():
        np.testing.assert_array_equal(value, second["state"][key], err_msg=key)
    # the same epochs, losses and validation scores, over both shards
    for a, b in zip(first["history"], second["history"]):
        for key in ("train_loss", "valid_loss", "task_weight_" + ("t1" if case != "regressor"
                                                                   else "num_a")):
            assert a[key] == b[key], key
    assert len(first["history"]) == len(second["history"])
    assert "purple" in first["categories"][0] and first["categories"] == second["categories"]
    np.testing.assert_array_equal(first["weighting"], second["weighting"])
    np.testing.assert_array_equal(first["proba"], second["proba"])
    assert "not supported under torch.distributed" in first["partial_fit_error"]
    assert first["batches_after"] == int(np.ceil(1500 / 128))
    if case == "regressor":
        assert first["history"][-1]["valid_r2_num_b"] > 0.5
    else:
        assert first["history"][-1]["valid_auc_t1"] > 0.8


def test_a_rank_with_other_columns_fails_on_every_rank(tmp_path):
    results = _run(tmp_path, "other columns")
    for result in results:
        assert "error" in result
        assert "rank 1 has other columns ((5, ['color', 'num_a', 'shop', 'num_b', 'extra']) " \
               "against (4, ['color', 'num_a', 'shop', 'num_b']) on rank 0)" in result["error"]


BAD_FITS = {
    "infinity in a numeric column": (
        "ValueError", r"fit failed on rank\(s\) 1: ValueError: Numeric columns \['num_a'\] "
                      "contain infinite"),
    "a column categorical on one rank": (
        "ValueError", r"rank 1 has other categorical columns \(\[0, 2, 3\] against \[0, 2\]"),
    "other parameters": (
        "ValueError", r"rank 1 has other parameters \(tower_units=\(8,\) against \(32,\) on "
                      r"rank 0\)"),
    "an invalid parameter": (
        "ValueError", r"fit failed on rank\(s\) 1: InvalidParameterError: The 'max_epochs' "
                      "parameter"),
    "sparse embedding updates": (
        "ValueError", r"fit failed on rank\(s\) 1: ValueError: sparse_embeddings=True is not "
                      "supported under torch.distributed"),
    "labels of another type": (
        "TypeError", r"The labels of task 't1' are text on rank\(s\) \[1\] and numbers on "
                     r"rank\(s\) \[0\]"),
    "a target too large to standardise": (
        "ValueError", r"fit failed on rank\(s\) 1: ValueError: The targets of task\(s\) "
                      r"\['num_a'\] are too large to standardise"),
}


def test_an_error_on_one_rank_is_raised_on_every_rank(tmp_path):
    # the process group stays usable after each failure: the ranks never wait for each other
    results = _run(tmp_path, "bad fits")
    for rank, outcomes in enumerate(results):
        for name, (kind, message) in BAD_FITS.items():
            assert outcomes[name] is not None, (rank, name)
            assert outcomes[name][0] == kind, (rank, name, outcomes[name])
            assert re.search(message, outcomes[name][1]), (rank, name, outcomes[name])
        # rank 1's 9,000 rows alone would not early-stop; every rank's 10,500 do
        assert "valid_loss" in outcomes["uneven shards"][-1], rank
    for first, second in zip(results[0]["uneven shards"], results[1]["uneven shards"]):
        assert first["valid_loss"] == second["valid_loss"]
    for outcomes in results:
        assert outcomes["weights on rank 0 only"] == outcomes["weights of 1 on rank 1"]
    assert "Stopping since valid_loss has not improved" in results[0]["printed"]
    assert results[1]["printed"] == ""
    assert results[0]["learned missing"] == results[1]["learned missing"] == [True, False]
    assert results[0]["offsets"][0].abs().sum() > 0
    assert torch.equal(results[0]["offsets"], results[1]["offsets"])
