"""Generators of synthetic multi-task data with known ground truth."""

import numbers
from statistics import NormalDist

import numpy as np
import pandas as pd
from sklearn.utils import Bunch, check_random_state

__all__ = ["make_entire_space", "make_multitask"]

# Standard deviation, on the logit scale, of the feature-driven part of the
# click and conversion logits of make_entire_space.
_LOGIT_SCALE = 1.5

# Shape of the latent scores of make_multitask (see its docstring).
_N_SINES = 10
_NOISE_STD = 0.1
# Number of levels of the categorical columns of make_multitask.
_N_BINS = 10


def make_entire_space(
    n_samples=10000,
    *,
    n_numeric=5,
    n_categorical=3,
    n_categories=10,
    click_rate=0.1,
    conversion_rate=0.2,
    selection_bias=1.0,
    n_stages=2,
    random_state=None,
    as_frame=True,
):
    """Generate impressions, clicks and conversions with known probabilities.

    Made for ESMM-style models: conversions are only observed after a click,
    and ``selection_bias`` sets how much the clicked rows misrepresent the
    conversion probability of all impressions. The true ``p(click | x)`` and
    ``p(conversion | click, x)`` are returned for every row, so that the bias
    of a pCVR estimate can be measured on rows that were never clicked.

    ``n_stages > 2`` makes a longer funnel (impression -> click -> cart ->
    purchase ...): each stage is only reached from the one before, and the
    true conditional probability of every stage is returned for every row.
    With the default ``n_stages=2`` the output is the same, draw for draw,
    as before the option existed.

    Generating process:

    1. Features. ``n_numeric`` numeric columns ``num_j`` drawn i.i.d. from
       N(0, 1) and ``n_categorical`` categorical columns ``cat_j`` drawn
       uniformly from ``n_categories`` levels ``"v0"``, ``"v1"``, ...
    2. Scores. ``n_stages`` standardised scores (mean 0, variance 1 over the
       feature distribution), each the sum of a linear function of the
       numeric features and one random effect per categorical level:
       ``s_click`` and, for each later stage ``k``, ``s_own_k``. Their
       coefficients are drawn at random and then made orthogonal, so the
       scores are uncorrelated (and, in their numeric part, independent).
    3. Click. ``logit p(click | x) = b_click + 1.5 * s_click``; the
       intercept ``b_click`` is solved for so that the mean of
       ``click_proba`` over the generated rows is ``click_rate``.
    4. Conversion. With ``r = selection_bias``, the conversion score is
       ``s_conv = (s_own + r * s_click) / sqrt(1 + r**2)``, whose correlation
       with the click score is ``r / sqrt(1 + r**2)``, and
       ``logit p(conversion | click, x) = b_conv + 1.5 * s_conv``, ``b_conv``
       solved for so that the mean of ``conversion_proba`` over all rows is
       ``conversion_rate``. Each further stage ``k`` follows from stage
       ``k - 1`` in the same way: its score is ``(s_own_k + r * s_{k-1}) /
       sqrt(1 + r**2)`` (variance 1 again), with ``s_{k-1}`` the score of
       stage ``k - 1``, and its intercept is solved for the ``k``-th rate of
       ``conversion_rate``.
    5. Labels. ``click ~ Bernoulli(click_proba)``; ``conversion ~
       Bernoulli(conversion_proba)`` where ``click == 1``, else 0; each
       further stage is drawn from its conditional probability where the
       stage before is 1, else 0.

    With ``selection_bias=0`` the conversion score is uncorrelated with the
    click score (independent of it when all features are numeric), and the
    clicked rows are a fair sample of the conversion probability. With
    ``selection_bias > 0``, rows likely to be clicked are also likely to
    convert, so a conversion model fitted on clicked rows only overestimates
    the conversion probability of the rest (negative values give the opposite
    bias). The same holds between any two consecutive stages.

    Parameters
    ----------
    n_samples : int, default=10000
        Number of impressions.
    n_numeric : int, default=5
        Number of numeric features.
    n_categorical : int, default=3
        Number of categorical features.
    n_categories : int, default=10
        Number of levels of each categorical feature (at least 2).
    click_rate : float, default=0.1
        Mean click probability, in (0, 1).
    conversion_rate : float or sequence of float, default=0.2
        Mean of ``p(conversion | click, x)`` over all impressions, in (0, 1).
        The conversion rate among clicked rows differs from it when
        ``selection_bias`` is not 0. With ``n_stages > 2``, the mean of each
        later stage's probability given the stage before: one number for
        all of them, or ``n_stages - 1`` numbers in funnel order.
    selection_bias : float, default=1.0
        Weight of the click score in the conversion score (of each stage's
        score in the next one's); see above.
    n_stages : int, default=2
        Length of the funnel, click included (at least 2). Needs
        ``n_numeric + n_categorical * (n_categories - 1) >= n_stages``
        (one direction in feature space per stage score).
    random_state : int, RandomState instance or None, default=None
        Seed or generator; pass an int for reproducible output.
    as_frame : bool, default=True
        If True, ``data`` and ``target`` are DataFrames. If False, ``data`` is
        a float array whose categorical columns hold the level codes 0, 1, ...
        and ``target`` an int array.

    Returns
    -------
    bunch : sklearn.utils.Bunch
        Dictionary-like object with the attributes:

        data : DataFrame of shape (n_samples, n_numeric + n_categorical) or ndarray
            Numeric columns (float) ``num_0``, ... then categorical columns
            (``category`` dtype) ``cat_0``, ...
        target : DataFrame of shape (n_samples, n_stages) or ndarray
            Int columns ``click`` and ``conversion`` (0 wherever click is 0);
            with ``n_stages > 2``, ``click``, ``stage_2``, ``stage_3``, ...,
            each 0 wherever the stage before is 0.
        click_proba : ndarray of shape (n_samples,)
            True ``p(click | x)``.
        conversion_proba : ndarray of shape (n_samples,)
            True ``p(conversion | click, x)``, for every row, clicked or not
            (with ``n_stages > 2``: of the second stage).
        conditional_proba : ndarray of shape (n_samples, n_stages)
            True probability of each stage given the stage before, for every
            row (column 0 is ``click_proba``, column 1 ``conversion_proba``).
        entire_space_proba : ndarray of shape (n_samples, n_stages)
            True probability of reaching each stage from the impression: the
            running product of ``conditional_proba`` (pCTR, pCTCVR, ...).
        feature_names : list of str
            Names of the feature columns.
        target_names : list of str
            ``["click", "conversion"]``, or ``["click", "stage_2", ...]``.
        categorical_features : ndarray of bool of shape (n_features,)
            Mask of the categorical features.

    Examples
    --------
    >>> from skmtl.datasets import make_entire_space
    >>> ds = make_entire_space(1000, random_state=0)
    >>> ds.data.shape, list(ds.target.columns)
    ((1000, 8), ['click', 'conversion'])
    >>> funnel = make_entire_space(1000, n_stages=4, conversion_rate=(0.3, 0.4, 0.5),
    ...                            random_state=0)
    >>> list(funnel.target.columns), funnel.entire_space_proba.shape
    (['click', 'stage_2', 'stage_3', 'stage_4'], (1000, 4))
    """
    n_samples = _check_int(n_samples, "n_samples", minimum=1)
    n_numeric = _check_int(n_numeric, "n_numeric", minimum=0)
    n_categorical = _check_int(n_categorical, "n_categorical", minimum=0)
    n_categories = _check_int(n_categories, "n_categories", minimum=2)
    n_stages = _check_int(n_stages, "n_stages", minimum=2)
    if n_numeric + n_categorical * (n_categories - 1) < n_stages:
        raise ValueError(
            f"{n_stages} uncorrelated scores (one per stage) need at least {n_stages} "
            "directions in feature space: n_numeric + n_categorical * (n_categories - 1) "
            f"must be at least {n_stages}; got n_numeric={n_numeric}, "
            f"n_categorical={n_categorical}, n_categories={n_categories}."
        )
    click_rate = _check_probability(click_rate, "click_rate")
    stage_rates = [click_rate] + _conversion_rates(conversion_rate, n_stages)
    selection_bias = _check_real(selection_bias, "selection_bias")
    rng = check_random_state(random_state)

    numeric = rng.standard_normal((n_samples, n_numeric))
    codes = rng.randint(n_categories, size=(n_samples, n_categorical))

    # Each score is numeric @ w + sum_j effects[j, codes[:, j]]. Stack the
    # numeric weights and the level effects of the n_stages scores as the
    # rows of an n_stages x n_coefficients matrix and orthonormalise it: the
    # scores then have variance 1 and are uncorrelated (features are
    # independent, numeric ones standard normal, levels uniform with centred
    # effects).
    weights = rng.standard_normal((n_stages, n_numeric))
    effects = rng.standard_normal((n_stages, n_categorical, n_categories))
    effects -= effects.mean(axis=2, keepdims=True)
    # Under uniform levels, the variance of an effect term is mean(effect**2):
    # scale by 1/sqrt(n_categories) so a plain dot product gives variances.
    coefficients = np.hstack(
        [weights, effects.reshape(n_stages, -1) / np.sqrt(n_categories)]
    )
    coefficients = _orthonormal_rows(coefficients)
    weights = coefficients[:, :n_numeric]
    effects = coefficients[:, n_numeric:].reshape(n_stages, n_categorical, n_categories)
    effects *= np.sqrt(n_categories)

    columns = np.arange(n_categorical)
    own_scores = [
        numeric @ weights[k] + effects[k][columns, codes].sum(axis=1) for k in range(n_stages)
    ]
    # Stage k's score leans on stage k - 1's by selection_bias, and keeps
    # variance 1: the previous score is a unit-variance combination of the
    # earlier own scores, all uncorrelated with s_own_k.
    # (hypot: selection_bias**2 overflows from about 1e154 on)
    norm = np.hypot(1.0, selection_bias)
    keep, lean = 1.0 / norm, selection_bias / norm
    stage_scores = [own_scores[0]]
    for own in own_scores[1:]:
        stage_scores.append(keep * own + lean * stage_scores[-1])

    conditional_proba = np.empty((n_samples, n_stages))
    for k, (score, rate) in enumerate(zip(stage_scores, stage_rates)):
        logit = _LOGIT_SCALE * score
        conditional_proba[:, k] = _sigmoid(_solve_intercept(logit, rate) + logit)
    # Each stage is drawn where the stage before was reached (the click
    # everywhere), one uniform per row and stage, in funnel order.
    reached = np.empty((n_samples, n_stages), dtype=np.int64)
    reached[:, 0] = rng.uniform(size=n_samples) < conditional_proba[:, 0]
    for k in range(1, n_stages):
        reached[:, k] = reached[:, k - 1] * (rng.uniform(size=n_samples) < conditional_proba[:, k])

    numeric_names = [f"num_{j}" for j in range(n_numeric)]
    categorical_names = [f"cat_{j}" for j in range(n_categorical)]
    feature_names = numeric_names + categorical_names
    target_names = (["click", "conversion"] if n_stages == 2
                    else ["click"] + [f"stage_{k}" for k in range(2, n_stages + 1)])
    categorical_features = np.array(
        [False] * n_numeric + [True] * n_categorical, dtype=bool
    )
    target = reached

    if as_frame:
        levels = [f"v{k}" for k in range(n_categories)]
        frame = {name: numeric[:, j] for j, name in enumerate(numeric_names)}
        frame.update(
            {
                name: pd.Categorical.from_codes(codes[:, j], categories=levels)
                for j, name in enumerate(categorical_names)
            }
        )
        data = pd.DataFrame(frame, columns=feature_names)
        target = pd.DataFrame(target, columns=target_names)
    else:
        data = np.hstack([numeric, codes.astype(np.float64)])

    return Bunch(
        data=data,
        target=target,
        click_proba=conditional_proba[:, 0].copy(),
        conversion_proba=conditional_proba[:, 1].copy(),
        conditional_proba=conditional_proba,
        entire_space_proba=np.cumprod(conditional_proba, axis=1),
        feature_names=feature_names,
        target_names=target_names,
        categorical_features=categorical_features,
    )


def make_multitask(
    n_samples=10000,
    *,
    n_features=10,
    n_tasks=2,
    task_correlation=0.5,
    n_categorical=0,
    random_state=None,
    as_frame=True,
):
    """Generate binary tasks whose relatedness is set by one number.

    After the synthetic experiment of the MMoE paper [1]_, where the cosine
    similarity of the tasks' weight vectors controls how related the tasks
    are; the paper's tasks are regressions, these are turned into binary
    classification.

    Generating process:

    1. Task weights. ``n_tasks`` unit vectors ``w_t`` of dimension
       ``n_features`` whose pairwise cosine similarity is exactly
       ``task_correlation``, built as combinations of orthonormal random
       unit vectors ``u_1, u_2, ...``. For two tasks this is the paper's
       construction: ``w_1 = u_1`` and
       ``w_2 = task_correlation * u_1 + sqrt(1 - task_correlation**2) * u_2``.
    2. Inputs. ``x ~ N(0, I)`` of dimension ``n_features``.
    3. Latent scores. For each task, with 10 sine terms whose frequencies
       ``alpha_i ~ N(0, 1)`` and phases ``beta_i ~ U(0, 2 pi)`` are shared by
       all tasks::

           y_t = w_t . x + sum_i sin(alpha_i * (w_t . x) + beta_i) + eps_t,
           eps_t ~ N(0, 0.1**2).

       Only ``w_t`` differs between tasks, so ``task_correlation`` alone sets
       their relatedness, as in the paper.
    4. Labels. ``task_t = 1`` where ``y_t`` is above its median over the
       generated rows, so each task is balanced.
    5. Categorical inputs. The last ``n_categorical`` inputs are shown
       binned: each is replaced by the decile of N(0, 1) it falls in, a
       categorical column with levels ``"b0"`` to ``"b9"``. The latent
       scores still use the exact values.

    Parameters
    ----------
    n_samples : int, default=10000
        Number of rows.
    n_features : int, default=10
        Number of inputs, at least ``n_tasks``.
    n_tasks : int, default=2
        Number of tasks, at least 1.
    task_correlation : float, default=0.5
        Cosine similarity of every pair of task weight vectors, in [-1, 1].
        With more than two tasks it must be at least ``-1 / (n_tasks - 1)``
        (more negative pairwise similarities are impossible).
    n_categorical : int, default=0
        How many of the ``n_features`` inputs are shown as categorical
        columns, between 0 and ``n_features``.
    random_state : int, RandomState instance or None, default=None
        Seed or generator; pass an int for reproducible output.
    as_frame : bool, default=True
        If True, ``data``, ``target`` and ``target_scores`` are DataFrames.
        If False, they are arrays; categorical columns of ``data`` then hold
        the bin codes 0 to 9.

    Returns
    -------
    bunch : sklearn.utils.Bunch
        Dictionary-like object with the attributes:

        data : DataFrame of shape (n_samples, n_features) or ndarray
            Inputs ``x_0``, ...; the last ``n_categorical`` have the
            ``category`` dtype, the others are float.
        target : DataFrame of shape (n_samples, n_tasks) or ndarray
            Int labels ``task_0``, ``task_1``, ...
        target_scores : DataFrame of shape (n_samples, n_tasks) or ndarray
            The latent scores ``y_t``.
        task_weights : ndarray of shape (n_tasks, n_features)
            The unit weight vectors ``w_t``.
        feature_names : list of str
            Names of the feature columns.
        target_names : list of str
            ``["task_0", "task_1", ...]``.
        categorical_features : ndarray of bool of shape (n_features,)
            Mask of the categorical features.

    Raises
    ------
    ValueError
        If an argument is out of range.

    References
    ----------
    .. [1] J. Ma, Z. Zhao, X. Yi, J. Chen, L. Hong and E. H. Chi, "Modeling
       Task Relationships in Multi-task Learning with Multi-gate
       Mixture-of-Experts", KDD 2018, section 3.2.

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.datasets import make_multitask
    >>> ds = make_multitask(1000, task_correlation=0.8, random_state=0)
    >>> w = ds.task_weights
    >>> float(np.round(w[0] @ w[1], 6))
    0.8
    """
    n_samples = _check_int(n_samples, "n_samples", minimum=1)
    n_tasks = _check_int(n_tasks, "n_tasks", minimum=1)
    n_features = _check_int(n_features, "n_features", minimum=1)
    n_categorical = _check_int(n_categorical, "n_categorical", minimum=0)
    task_correlation = _check_real(task_correlation, "task_correlation")
    if not -1.0 <= task_correlation <= 1.0:
        raise ValueError(
            f"task_correlation must be in [-1, 1]; got {task_correlation}."
        )
    if n_tasks > 2 and task_correlation < -1.0 / (n_tasks - 1):
        raise ValueError(
            f"With {n_tasks} tasks, task_correlation must be at least "
            f"-1/(n_tasks - 1) = {-1.0 / (n_tasks - 1):.4g} (no {n_tasks} vectors "
            f"have a lower pairwise cosine similarity); got {task_correlation}."
        )
    if n_features < n_tasks:
        raise ValueError(
            f"n_features must be at least n_tasks ({n_tasks}) to build the task "
            f"weights from orthogonal vectors; got {n_features}."
        )
    if n_categorical > n_features:
        raise ValueError(
            f"n_categorical must be between 0 and n_features ({n_features}); "
            f"got {n_categorical}."
        )
    rng = check_random_state(random_state)

    # Orthonormal random vectors u_1..u_T (rows), then w = L @ u where L is
    # a Cholesky factor of the target Gram matrix (1 on the diagonal,
    # task_correlation elsewhere): w_s . w_t = (L L^T)[s, t].
    basis, _ = np.linalg.qr(rng.standard_normal((n_features, n_tasks)))
    gram = np.full((n_tasks, n_tasks), task_correlation)
    np.fill_diagonal(gram, 1.0)
    task_weights = _cholesky_psd(gram) @ basis.T

    x = rng.standard_normal((n_samples, n_features))
    alphas = rng.standard_normal(_N_SINES)
    betas = rng.uniform(0.0, 2.0 * np.pi, size=_N_SINES)
    projections = x @ task_weights.T  # (n_samples, n_tasks)
    scores = (
        projections
        + np.sin(projections[:, :, None] * alphas + betas).sum(axis=2)
        + _NOISE_STD * rng.standard_normal((n_samples, n_tasks))
    )
    labels = (scores > np.median(scores, axis=0)).astype(np.int64)

    feature_names = [f"x_{j}" for j in range(n_features)]
    target_names = [f"task_{t}" for t in range(n_tasks)]
    n_numeric = n_features - n_categorical
    categorical_features = np.arange(n_features) >= n_numeric

    edges = np.array([NormalDist().inv_cdf(q / _N_BINS) for q in range(1, _N_BINS)])
    bins = np.searchsorted(edges, x[:, n_numeric:])

    if as_frame:
        levels = [f"b{k}" for k in range(_N_BINS)]
        frame = {name: x[:, j] for j, name in enumerate(feature_names[:n_numeric])}
        frame.update(
            {
                name: pd.Categorical.from_codes(bins[:, j], categories=levels)
                for j, name in enumerate(feature_names[n_numeric:])
            }
        )
        data = pd.DataFrame(frame, columns=feature_names)
        target = pd.DataFrame(labels, columns=target_names)
        target_scores = pd.DataFrame(scores, columns=target_names)
    else:
        data = np.hstack([x[:, :n_numeric], bins.astype(np.float64)])
        target = labels
        target_scores = scores

    return Bunch(
        data=data,
        target=target,
        target_scores=target_scores,
        task_weights=task_weights,
        feature_names=feature_names,
        target_names=target_names,
        categorical_features=categorical_features,
    )


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _solve_intercept(logits, rate):
    """Intercept b such that mean(sigmoid(b + logits)) == rate (bisection)."""
    low, high = -50.0 - logits.max(), 50.0 - logits.min()
    for _ in range(100):
        middle = 0.5 * (low + high)
        if _sigmoid(middle + logits).mean() < rate:
            low = middle
        else:
            high = middle
    return 0.5 * (low + high)


def _orthonormal_rows(matrix):
    """Gram-Schmidt (modified) on the rows of a k x n matrix, k <= n.

    The result rows are linear combinations of the input rows, so blocks of
    coefficients that sum to 0 (centred level effects) still do.
    """
    rows = []
    for row in matrix:
        for done in rows:
            row = row - (row @ done) * done
        rows.append(row / np.linalg.norm(row))
    return np.vstack(rows)


def _cholesky_psd(gram):
    """Lower-triangular L with L @ L.T == gram, for a positive semi-definite gram.

    Unlike ``np.linalg.cholesky``, accepts singular matrices (for example a
    task correlation of 1), setting the columns of null pivots to 0.
    """
    n = gram.shape[0]
    factor = np.zeros_like(gram)
    for j in range(n):
        pivot = gram[j, j] - factor[j, :j] @ factor[j, :j]
        factor[j, j] = np.sqrt(max(pivot, 0.0))
        if factor[j, j] > 1e-12:
            for i in range(j + 1, n):
                factor[i, j] = (gram[i, j] - factor[i, :j] @ factor[j, :j]) / factor[j, j]
    return factor


def _check_int(value, name, *, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int; got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}; got {value}.")
    return int(value)


def _check_real(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {value!r}.")
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite; got {value}.")
    return float(value)


def _conversion_rates(conversion_rate, n_stages):
    """The rates of the stages after the click: a list of ``n_stages - 1`` probabilities."""
    if isinstance(conversion_rate, (str, bytes)) or not np.iterable(conversion_rate):
        return [_check_probability(conversion_rate, "conversion_rate")] * (n_stages - 1)
    rates = list(conversion_rate)
    if len(rates) != n_stages - 1:
        raise ValueError(
            f"conversion_rate must be one number or n_stages - 1 = {n_stages - 1} numbers "
            f"(one per stage after the click); got {len(rates)}."
        )
    return [_check_probability(rate, f"conversion_rate[{k}]") for k, rate in enumerate(rates)]


def _check_probability(value, name):
    value = _check_real(value, name)
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be strictly between 0 and 1; got {value}.")
    return value
