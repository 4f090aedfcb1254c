"""Exceptions and warnings raised by skmtl."""


class DivergenceError(FloatingPointError):
    """A task's training loss became NaN or infinite.

    Raised by ``fit``; the message names the task(s). The estimator keeps the
    state it had before that ``fit``.
    """


class TrainingInterruptedWarning(UserWarning):
    """``fit`` was interrupted (``KeyboardInterrupt``) and returned early.

    The estimator is usable: it keeps the best weights seen so far (by
    validation loss when early stopping is on, else the latest).
    """
