"""What every contender implements, and a helper the funnel contenders share."""

import numpy as np


class Runner:
    """Prepare data, fit, predict; the worker times and measures each step.

    ``prepare`` turns the :class:`benchmarks.data.Problem` into whatever the
    contender is fed (for the peers and the hand-written loop: the shared
    encoding); it is timed on its own and is not part of the fit time, and the
    memory baseline is taken after it. ``fit`` trains; ``predict`` scores the
    test rows and is timed over several repeats.

    Parameters
    ----------
    settings : dict
        ``epochs`` and ``predict_batch_size``.
    """

    def __init__(self, settings):
        self.settings = settings
        self.epochs_run = None
        self.notes = []

    @property
    def epochs(self):
        return int(self.settings["epochs"])

    @property
    def predict_batch_size(self):
        return int(self.settings["predict_batch_size"])

    def prepare(self, problem):
        return problem

    def fit(self, data, seed):
        raise NotImplementedError

    def predict(self, data):
        """The test rows' probabilities.

        Census: ``{task: p(task = 1)}``. Coat: ``{"pcvr": p(conversion |
        click)}``. funnel4: ``{"conditional": p(stage k | stage k - 1),
        "entire_space": p(stage k reached)}``, each ``(n_test, n_stages)``.
        """
        raise NotImplementedError


def conditional_from_entire_space(reach):
    """p(stage k | stage k - 1) from the entire-space probabilities, ``(n, n_stages)``.

    Stage 0 is kept; later stages are ``reach[:, k] / reach[:, k - 1]``,
    clipped to [0, 1] (a model without a calibrator can rank a later stage
    above the one before), and 0 where the previous stage has probability 0.

    Returns
    -------
    conditional : ndarray of shape (n, n_stages)
    n_above_one : int
        Ratios clipped from above 1, over all stages.
    """
    previous, later = reach[:, :-1], reach[:, 1:]
    ratio = np.divide(later, previous, out=np.zeros_like(later), where=previous > 0)
    n_above_one = int(np.sum(ratio > 1.0))
    return np.column_stack([reach[:, :1], np.clip(ratio, 0.0, 1.0)]), n_above_one
