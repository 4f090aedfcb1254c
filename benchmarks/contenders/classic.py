"""Non-neural baselines: gradient boosting, a one-hot logistic regression, the ground truth."""

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from .base import Runner


class HGBPerTask(Runner):
    """One ``HistGradientBoostingClassifier`` per Census task, on the DataFrame.

    ``categorical_features="from_dtype"`` takes the ``category`` columns as
    categorical (at most 52 levels, under the 255-bin limit). Defaults
    otherwise: early stopping is on above 10,000 rows, with its own 10 %
    validation split.
    """

    def fit(self, problem, seed):
        self.models = {
            task: HistGradientBoostingClassifier(categorical_features="from_dtype",
                                                 random_state=seed)
            .fit(problem.X_train, problem.Y_train[task])
            for task in problem.Y_train.columns
        }
        self.notes.append("boosting iterations: " + ", ".join(
            f"{task} {model.n_iter_}" for task, model in self.models.items()))

    def predict(self, problem):
        return {task: model.predict_proba(problem.X_test)[:, 1]
                for task, model in self.models.items()}


def _clicked(problem):
    clicked = problem.Y_train["click"].to_numpy() == 1
    return problem.X_train[clicked], problem.Y_train["conversion"][clicked]


class LogisticClickedCVR(Runner):
    """One-hot encoded ``LogisticRegression`` of conversion on the clicked rows."""

    def fit(self, problem, seed):
        X, y = _clicked(problem)
        self.model = make_pipeline(OneHotEncoder(handle_unknown="ignore"),
                                   LogisticRegression(max_iter=1000)).fit(X, y)

    def predict(self, problem):
        return {"pcvr": self.model.predict_proba(problem.X_test)[:, 1]}


# Coat's id columns have 290 and 300 levels, over HistGradientBoosting's limit
# of 255 bins for a categorical feature.
_ID_COLUMNS = ("user_id", "item_id")


def ids_as_ordinal(X):
    """Replace the id columns by their integer codes, used as numeric features.

    The codes follow the loader's order (user and item numbers), so splits on
    them group neighbouring ids; the attributes stay categorical.
    """
    X = X.copy()
    for name in _ID_COLUMNS:
        X[name] = X[name].cat.codes.astype(np.float64)
    return X


class HGBClickedCVR(Runner):
    """``HistGradientBoostingClassifier`` of conversion on the clicked rows.

    The two id columns enter as ordinal codes (numeric), the eight attribute
    columns as categorical features (``categorical_features="from_dtype"``).
    """

    def prepare(self, problem):
        X, y = _clicked(problem)
        return {"X": ids_as_ordinal(X), "y": y, "X_test": ids_as_ordinal(problem.X_test)}

    def fit(self, data, seed):
        self.model = HistGradientBoostingClassifier(
            categorical_features="from_dtype", random_state=seed).fit(data["X"], data["y"])
        self.notes.append(f"boosting iterations: {self.model.n_iter_}")

    def predict(self, data):
        return {"pcvr": self.model.predict_proba(data["X_test"])[:, 1]}



class GroundTruth(Runner):
    """funnel4: the generator's own probabilities, the best any model can score.

    Nothing is fitted; ``predict`` returns the true probability of each stage
    given the one before for the test rows, and their running product (the
    entire-space probabilities).
    """

    def fit(self, problem, seed):
        pass

    def predict(self, problem):
        return {"conditional": problem.test_proba,
                "entire_space": np.cumprod(problem.test_proba, axis=1)}
