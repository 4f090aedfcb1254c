"""What every contender implements."""


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
        """Census: ``{task: p(task = 1)}``. Coat: ``{"pcvr": p(conversion | click)}``."""
        raise NotImplementedError
