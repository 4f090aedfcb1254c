"""Exceptions and warnings raised by skmtl."""


class DivergenceError(FloatingPointError):
    """A task's training loss became NaN or infinite.

    Raised by ``fit``; the message names the task(s). The estimator keeps the
    state it had before that ``fit``.

    Examples
    --------
    >>> from skmtl import MMOERegressor
    >>> from skmtl.datasets import make_multitask
    >>> from skmtl.exceptions import DivergenceError
    >>> data = make_multitask(200, random_state=0)
    >>> model = MMOERegressor(learning_rate=1e20, batch_size=50, max_epochs=1, random_state=0)
    >>> try:
    ...     model.fit(data.data, data.target_scores)
    ... except DivergenceError as error:  # also a FloatingPointError
    ...     print(error)
    The train loss of task(s) ['task_0', 'task_1'] became NaN or infinite at epoch 1; lower
    learning_rate or check the input scale.
    >>> hasattr(model, "net_")  # still unfitted
    False
    """


class TrainingInterruptedWarning(UserWarning):
    """``fit`` was interrupted (``KeyboardInterrupt``) and returned early.

    The estimator is usable: it keeps the best weights seen so far (by
    validation loss when early stopping is on, else the latest).

    Examples
    --------
    A ``UserWarning``: filter it as one, or turn it into an error where a
    cut-short ``fit`` must not pass unnoticed (a scheduled job, say).

    >>> import warnings
    >>> from skmtl.exceptions import TrainingInterruptedWarning
    >>> issubclass(TrainingInterruptedWarning, UserWarning)
    True
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("error", TrainingInterruptedWarning)
    ...     try:
    ...         warnings.warn("fit was interrupted", TrainingInterruptedWarning)
    ...     except TrainingInterruptedWarning as warning:
    ...         print("caught:", warning)
    caught: fit was interrupted
    """
