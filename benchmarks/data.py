"""The benchmark problems and the one encoding every neural contender is given.

A *problem* is a data set split the same way for every contender of a seed:

* Census-Income: ``fetch_census_income(subset="test")`` (optionally a fixed
  random subsample of its rows), a random 80/20 train/test split per seed,
  and a random 10 % of the training part marked as the validation rows.
* Coat: every user x item impression of ``fetch_coat()`` for training (or a
  fixed random subsample of them), the random-exposure ratings
  (``test_data``) for testing, and a random 10 % of the training rows marked
  as the validation rows.
* funnel4: ``make_entire_space`` with four nested stages (100,000
  impressions generated once with a fixed seed; optionally a fixed random
  subsample), a random 80/20 train/test split per seed and a random 10 % of
  the training part as the validation rows; the test rows come with the
  generator's true probability of each stage given the one before.

Contenders that take a validation set from the caller (torch-rechub,
DeepCTR-Torch, the hand-written loop) train on the other 90 % and validate
on those rows; the skmtl estimators and ``HistGradientBoostingClassifier``
receive the whole training part and hold out their own 10 %.

:class:`SharedEncoding` is the preprocessing all neural contenders other than
the skmtl estimators receive (the estimators encode the DataFrame themselves,
inside ``fit``): categorical columns become integer codes ``1..K`` for the
``K`` categories of the training part and ``0`` for anything else (missing or
unseen), numeric columns are standardised with the training part's mean and
standard deviation.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

CENSUS_TASKS = ("income_50k", "never_married")
TEST_FRACTION = 0.2
VALIDATION_FRACTION = 0.1
# Subsamples (--census-rows, --coat-rows) are drawn with this fixed seed, so
# every seed and every contender sees the same rows.
SUBSAMPLE_SEED = 12345
UNKNOWN_CODE = 0


@dataclass
class Problem:
    """One data set, split for one seed.

    Attributes
    ----------
    name : {"census", "coat", "funnel4"}
    X_train : DataFrame
        The whole training part, validation rows included.
    Y_train : DataFrame
        Census: ``income_50k``, ``never_married``. Coat: ``click``,
        ``conversion``. funnel4: ``click``, ``stage_2``, ``stage_3``,
        ``stage_4`` (each 0 where the stage before is 0).
    valid_mask : ndarray of bool
        The validation rows of ``X_train`` for contenders given a validation set.
    X_test : DataFrame
    Y_test : DataFrame
        Census: both tasks. Coat: ``conversion`` of the random-exposure
        ratings. funnel4: the four stages.
    test_proba : ndarray of shape (n_test, n_stages) or None
        funnel4 only: the true probability of each stage given the stage
        before, for every test row (what the contenders are scored against).
    """

    name: str
    X_train: pd.DataFrame
    Y_train: pd.DataFrame
    valid_mask: np.ndarray
    X_test: pd.DataFrame
    Y_test: pd.DataFrame
    test_proba: np.ndarray = None

    @property
    def fit_mask(self):
        return ~self.valid_mask


def holdout_mask(n_samples, fraction, seed):
    """Boolean mask of ``ceil(fraction * n_samples)`` random rows."""
    n_valid = int(np.ceil(fraction * n_samples))
    mask = np.zeros(n_samples, dtype=bool)
    mask[np.random.default_rng(seed).permutation(n_samples)[:n_valid]] = True
    return mask


def _subsample(frames, n_rows):
    n_samples = len(frames[0])
    if n_rows is None or n_rows >= n_samples:
        return frames
    rows = np.sort(np.random.default_rng(SUBSAMPLE_SEED).choice(n_samples, n_rows, replace=False))
    return [frame.iloc[rows].reset_index(drop=True) for frame in frames]


def load_census(seed, n_rows=None, download_if_missing=True):
    """Census-Income (KDD) test file, random 80/20 split for ``seed``."""
    from skmtl.datasets import fetch_census_income

    bunch = fetch_census_income(subset="test", download_if_missing=download_if_missing)
    X, Y = _subsample([bunch.data, bunch.target[list(CENSUS_TASKS)]], n_rows)
    X_train, X_test, Y_train, Y_test = train_test_split(
        X, Y, test_size=TEST_FRACTION, random_state=seed)
    X_train, X_test, Y_train, Y_test = (
        frame.reset_index(drop=True) for frame in (X_train, X_test, Y_train, Y_test))
    valid = holdout_mask(len(X_train), VALIDATION_FRACTION, seed)
    return Problem("census", X_train, Y_train, valid, X_test, Y_test)


def load_coat(seed, n_rows=None, download_if_missing=True):
    """All Coat impressions for training, the random-exposure ratings for testing."""
    from skmtl.datasets import fetch_coat

    bunch = fetch_coat(download_if_missing=download_if_missing)
    X_train, Y_train = _subsample([bunch.data, bunch.target[["click", "conversion"]]], n_rows)
    Y_test = bunch.test_target[["conversion"]].reset_index(drop=True)
    return Problem("coat", X_train, Y_train, holdout_mask(len(X_train), VALIDATION_FRACTION, seed),
                   bunch.test_data.reset_index(drop=True), Y_test)


def load_funnel4(seed, n_rows=None, download_if_missing=True):
    """A four-stage funnel with known probabilities, random 80/20 split for ``seed``.

    ``make_entire_space(100_000, n_stages=4, click_rate=0.15,
    conversion_rate=(0.3, 0.4, 0.5))`` with a fixed generator seed (the same
    data for every seed; ``download_if_missing`` is not used: nothing is
    downloaded).
    """
    from skmtl.datasets import make_entire_space

    from .config import (FUNNEL4_CLICK_RATE, FUNNEL4_CONVERSION_RATES, FUNNEL4_DATA_SEED,
                         FUNNEL4_ROWS)

    bunch = make_entire_space(FUNNEL4_ROWS, n_stages=len(FUNNEL4_CONVERSION_RATES) + 1,
                              click_rate=FUNNEL4_CLICK_RATE,
                              conversion_rate=FUNNEL4_CONVERSION_RATES,
                              random_state=FUNNEL4_DATA_SEED)
    proba = pd.DataFrame(bunch.conditional_proba, columns=bunch.target_names)
    X, Y, proba = _subsample([bunch.data, bunch.target, proba], n_rows)
    X_train, X_test, Y_train, Y_test, _, proba_test = train_test_split(
        X, Y, proba, test_size=TEST_FRACTION, random_state=seed)
    X_train, X_test, Y_train, Y_test = (
        frame.reset_index(drop=True) for frame in (X_train, X_test, Y_train, Y_test))
    valid = holdout_mask(len(X_train), VALIDATION_FRACTION, seed)
    return Problem("funnel4", X_train, Y_train, valid, X_test, Y_test,
                   test_proba=proba_test.to_numpy())


LOADERS = {"census": load_census, "coat": load_coat, "funnel4": load_funnel4}


def is_categorical(dtype):
    return (isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(dtype)
            or pd.api.types.is_string_dtype(dtype))


@dataclass
class Encoded:
    """Rows encoded by :class:`SharedEncoding`."""

    codes: np.ndarray     # int64 (n, n_categorical)
    numeric: np.ndarray   # float32 (n, n_numeric)
    categorical_names: list
    numeric_names: list

    def __len__(self):
        return self.codes.shape[0]

    def take(self, mask):
        return Encoded(self.codes[mask], self.numeric[mask], self.categorical_names,
                       self.numeric_names)

    def columns(self):
        """``{column name: 1-D array}``, the input format of torch-rechub and DeepCTR-Torch."""
        out = {name: self.codes[:, j] for j, name in enumerate(self.categorical_names)}
        out.update({name: self.numeric[:, j] for j, name in enumerate(self.numeric_names)})
        return out


class SharedEncoding:
    """Integer codes for categorical columns, standardised floats for numeric ones.

    Fit on the training part. Codes ``1..K`` are the training categories of a
    column (sorted), ``0`` is reserved for missing and unseen values.
    """

    def fit(self, X):
        self.categorical_names_ = [c for c in X.columns if is_categorical(X[c].dtype)]
        self.numeric_names_ = [c for c in X.columns if c not in set(self.categorical_names_)]
        self.categories_ = {}
        for name in self.categorical_names_:
            values = pd.unique(X[name].dropna())
            values = np.asarray(values)
            try:
                values = np.sort(values)
            except TypeError:
                pass
            self.categories_[name] = pd.Index(values)
        numeric = X[self.numeric_names_].to_numpy(dtype=np.float64)
        self.mean_ = numeric.mean(axis=0) if numeric.size else np.zeros(0)
        scale = numeric.std(axis=0) if numeric.size else np.ones(0)
        scale[scale == 0.0] = 1.0
        self.scale_ = scale
        return self

    @property
    def cardinalities(self):
        """Codes per categorical column, the reserved code included."""
        return [len(self.categories_[name]) + 1 for name in self.categorical_names_]

    def transform(self, X):
        codes = np.empty((len(X), len(self.categorical_names_)), dtype=np.int64)
        for j, name in enumerate(self.categorical_names_):
            codes[:, j] = self.categories_[name].get_indexer(np.asarray(X[name], dtype=object)) + 1
        numeric = ((X[self.numeric_names_].to_numpy(dtype=np.float64) - self.mean_)
                   / self.scale_).astype(np.float32)
        return Encoded(codes, np.ascontiguousarray(numeric), list(self.categorical_names_),
                       list(self.numeric_names_))


@dataclass
class EncodedProblem:
    """A problem in the shared encoding: fit / validation / test rows."""

    train: Encoded
    y_train: np.ndarray   # float32 (n, n_tasks)
    valid: Encoded
    y_valid: np.ndarray
    test: Encoded
    cardinalities: list
    task_names: list


def encode(problem):
    """Apply :class:`SharedEncoding` (fit on the whole training part) to ``problem``."""
    encoding = SharedEncoding().fit(problem.X_train)
    train_all = encoding.transform(problem.X_train)
    Y = problem.Y_train.to_numpy(dtype=np.float32)
    fit, valid = problem.fit_mask, problem.valid_mask
    return EncodedProblem(
        train=train_all.take(fit), y_train=np.ascontiguousarray(Y[fit]),
        valid=train_all.take(valid), y_valid=np.ascontiguousarray(Y[valid]),
        test=encoding.transform(problem.X_test), cardinalities=encoding.cardinalities,
        task_names=list(problem.Y_train.columns))
