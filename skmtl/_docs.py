"""Parameter and attribute descriptions shared by the estimators' docstrings.

Each estimator's docstring is a template whose ``{name}`` fields
:func:`fill` replaces with the texts below, so the shared parameters are
described once.
"""

import inspect

import numpy as np

TOWER_UNITS = """\
    tower_units : tuple of int, list of tuples or dict, default={tower_default}
        Hidden layer widths of the task towers: one tuple for every task, a
        list with one tuple per task (in ``y``'s column order), or a dict
        ``{task_name: tuple}`` naming every task, so that a hard task can
        get a bigger tower."""

COUNTERFACTUAL = """\
    counterfactual : {None, "ips", "dr", "dcmt"}, default=None
        Debias each later stage's conditional probability (pCVR): add
        ``counterfactual_weight`` times a counterfactual risk over all
        impressions to the stage's loss, with the model's own probability of
        reaching the previous stage (pCTR) as the propensity. ``None`` (the
        default) turns it off.

        - ``"ips"`` (ESCM², Wang et al., SIGIR 2022): the
          inverse-propensity-weighted cross-entropy of the reached rows.
        - ``"dr"`` (ESCM²): doubly robust, with an imputation tower per later
          stage (sized as that stage's tower) that predicts the label where
          it is not observed; its own loss trains it but is left out of the
          stage's loss.
        - ``"dcmt"`` (Zhu et al., ICDE 2023): IPS on the reached rows plus a
          twin, counterfactual tower per later stage that learns *not*
          converting on the rows that stopped before the stage, tied to the
          stage's probability by the prior that the two sum to 1 (weight
          ``counterfactual_constraint_weight``).

        IPS and DR correct a bias explained by the features (on
        ``make_entire_space`` they lowered AITM's error of pCVR against the
        truth by 11–21 %; ESMM's, smaller, moved by −3 % to +5 % with the
        seeds), not one driven by the label itself: on Coat, where users
        choose what they rate, they left ESMM's mean pCVR above the rate
        observed on random exposures or raised it (AITM's IPS brought
        AITM's nearer). DCMT assumes the label drives it (a row that
        stopped would rather not have converted): on Coat it brought ESMM's
        mean pCVR to within 0.01 of the observed rate and raised its pCVR
        AUC (0.770 to 0.779 over nine seeds); on ``make_entire_space``,
        where that assumption is false, it biased pCVR low (see
        ``benchmarks/README.md``). A row whose stage label (or
        the previous stage's) is missing is left out of that stage's risk.
        The risk is part of the stage's training and validation loss, so
        early stopping watches it too.
    counterfactual_weight : float, default=0.3
        Weight of the counterfactual risk in the later stages' losses.
    propensity_clip : float, default=0.2
        Propensities below it are raised to it, bounding the inverse
        weights by ``1 / propensity_clip`` (for ``"dcmt"``, those of the
        rows that stopped too). 0.05 (inverse weights up to 20) made ESMM's
        IPS pCVR noisier on ``make_entire_space`` and Coat than 0.2.
    counterfactual_constraint_weight : float, default={counterfactual_constraint_weight}
        ``"dcmt"`` only: weight of the prior that the stage's probability
        and its counterfactual tower's sum to 1, inside the risk. Larger
        values pull pCVR down further where rows resemble those that
        stopped before the stage. How far is right depends on the data:
        on Coat, ESMM's mean pCVR came within 0.01 of the rate observed on
        random exposures at 0.07 with ``counterfactual_weight`` 0.3 or 1,
        0.01 below it at 0.1 and 0.004–0.012 above it at 0.05. Choose it
        on randomly exposed rows where you have some."""

COMMON_PARAMETERS = """\
    categorical_features : "from_dtype", array-like or None, default="from_dtype"
        Which columns are categorical, as in
        :class:`~sklearn.ensemble.HistGradientBoostingClassifier`:
        ``"from_dtype"`` takes pandas ``category``, ``object`` and string
        columns, every column of a string array, and the columns of an
        object array that hold anything but numbers and booleans; or give
        column names, indices or a boolean mask; ``None`` means none.
        Categorical columns are embedded (missing values and categories
        unseen in ``fit`` share a reserved embedding); the others are
        numeric.
    categories : dict or None, default=None
        ``{column: list_of_values}`` fixes a categorical column's vocabulary
        up front instead of learning it from ``X`` (other values are
        unknown). Needed by :meth:`partial_fit` for string columns that are
        not hashed.
    hash_buckets : int, dict or None, default=None
        Hash a categorical column's values into that many buckets instead of
        learning a vocabulary: an int for every categorical column that has
        no vocabulary in ``categories``, or ``{column: n}``. The hash
        (pandas' ``hash_array``) is the same in every process and on every
        machine, and values need not have been seen in ``fit``: the usual
        answer for ids with millions of values. A number hashes as its value,
        whatever holds it: ``1`` of an int32, int64, ``Int64`` or object
        column and ``1.0`` of the float column pandas makes of integer ids
        once one is missing share a bucket; the text ``"1"`` does not. At
        most 2,147,483,647 buckets; colliding values share an embedding.
    embedding_dim : int, default=8
        Size of each categorical column's embedding, and of each numeric
        column's with the ``"piecewise_linear"`` and ``"periodic"`` encodings.
    sparse_embeddings : "auto" or bool, default="auto"
        Update only the rows of the embedding table that a batch looks up
        (sparse gradients). A row no batch uses takes the steps of Adam it
        missed (its momentum's and weight decay's) when a batch next looks it
        up, or at the end of the epoch; unlike "lazy" Adam, which drops them.
        A step then costs the same however many ids the table holds, where a
        dense update touches every row at every step. ``"auto"``: sparse when the table holds at
        least 2,097,152 values (262,144 ids of ``embedding_dim=8``), and not
        with ``loss_weighting="gradnorm"`` or ``"pcgrad"`` or under
        ``torch.distributed``, which need dense gradients (``True`` there is
        a ``ValueError``). May change between fits of a ``warm_start``.
    numeric_encoding : {"auto", "piecewise_linear", "periodic", "quantile", "standard", \
"passthrough"}, default="auto"
        How numeric columns enter the network (after Gorishniy et al., "On
        Embeddings for Numerical Features in Tabular Deep Learning", NeurIPS
        2022). ``"auto"``: ``"piecewise_linear"`` when some numeric column is
        mostly one value or heavy-tailed (one value on at least half the
        rows, or a skewness of at least 2, among the rows the bins are
        learned from: incomes, amounts, counts that are 0 on most rows, where
        the bins pay) or has missing values (which the bins learn),
        ``"standard"`` when every numeric column is smooth and complete (see
        ``numeric_encoding_``). ``"piecewise_linear"``: each column is cut into at most
        ``n_bins`` bins; a value is encoded by how far it fills each bin,
        then embedded by a small linear layer with ReLU per column.
        ``"periodic"``: the column's rank-Gaussian value is embedded by
        learned sines and cosines, then a linear layer with ReLU.
        ``"quantile"``: the rank-Gaussian value itself, the normal quantile
        of the value's middle rank among the training values (close to
        :class:`~sklearn.preprocessing.QuantileTransformer` with
        ``output_distribution="normal"`` on large columns; it differs on
        small ones and at values many rows share). ``"standard"``: standardised with
        the training mean and standard deviation. ``"passthrough"``: as
        given. Bins and quantiles are learned in ``fit`` (sample-weighted, on
        at most 200,000 rows drawn at random); values outside the training
        range are treated as the nearest end of it, except by
        ``"standard"`` and ``"passthrough"``. Missing values (NaN) are
        learned: with ``"piecewise_linear"``, those of a column that has
        some in ``fit`` are embedded at the column's median plus an offset
        the network learns (as gradient boosting learns where missing
        values go); otherwise they count as the column's training median
        (``"standard"``: its mean). ``"passthrough"`` refuses them.
    n_bins : int, default=32
        Largest number of bins per numeric column for ``"piecewise_linear"``
        (a column with fewer distinct values, or fewer useful splits, gets
        fewer).
    bin_strategy : {"target", "quantile"}, default="target"
        Bin edges for ``"piecewise_linear"``: ``"target"`` takes the
        thresholds of one decision tree of at most ``n_bins`` leaves fitted
        to all tasks' targets on that column alone (a classification tree on
        the labels; for the regressors a regression tree on the
        standardised targets); ``"quantile"`` takes equal-frequency bins.
    frequent_values : {"auto", "all"} or None, default="auto"
        Embed each value that at least 20 training rows of a numeric column
        hold (counted among the rows the bins are learned from, positive
        weights only; a column keeps its 255 most frequent) as a category of
        its own, one more categorical column beside the column's numeric
        encoding; any other value, or a missing one, is the column's
        unknown category. Gradient boosting's bins isolate such values
        (capital gains of exactly 99,999, a price point, a count's 0), which
        a smooth encoding blends with their neighbours. ``"auto"``: for the
        numeric columns mostly of one value or heavy-tailed (the test of
        ``numeric_encoding="auto"``), not for smooth ones; ``"all"``: for
        every numeric column; None: for none. On Census, ``"auto"`` (four
        columns: wage per hour, capital gains and losses, dividends) lifted
        MMoE's income AUC from 0.9486 to 0.9505 over six splits (gradient
        boosting: 0.9505). With ``partial_fit`` the values come from the
        first chunk. Values match in the coarser of the column's precision
        in ``fit`` and the one given: a float32 column's 9.99 is a float64
        column's 9.99.
    leaf_trees : int, default=0
        Boost this many decision trees of depth 3 per task in ``fit``, on
        the encoded inputs of at most 20,000 training rows drawn at random
        (each tree fitted to the gradient of the task's loss after the trees
        before it), and embed the leaf each row falls in, in each tree, as
        one more categorical column (after He et al., ADKDD 2014). A leaf
        is a conjunction of conditions on several columns: the network
        starts from interactions a boosting model found. The trees are part
        of the network (saved with it, applied by ``predict`` and the ONNX
        export). With ``partial_fit`` (and so ``fit_parquet`` and Dask's
        ``Incremental``) they grow on the first chunk. A multiclass task
        grows trees of one output per class: with hundreds of classes they
        are slow to grow. On Census, 20 trees per task lift MMoE's income
        AUC from 0.9512 to 0.9523 (gradient boosting: 0.9513; three splits
        the defaults were not chosen on; before ``frequent_values``, from
        0.9492 to 0.9510), for about twice the fit time; on
        scikit-learn's tables (442 to 20,000 rows, mostly smooth columns) it
        lost accuracy on 7 of 9, up to 0.02 AUC: the leaves' coarse boxes
        then stand in for a smooth function the network would learn
        (``benchmarks/README.md``). Not under ``torch.distributed`` yet.
    cross_layers : int, default=0
        Low-rank cross layers on the embedded input, before the rest of the
        network (the cross network of DCN-v2, Wang et al., WWW 2021): each
        multiplies the embedded input, feature by feature, with a linear map
        of rank 16 (at most the width) of the layer's own input and adds the
        product to it, so that the network reads explicit products of up to
        ``cross_layers + 1`` features rather than learn them through its
        hidden layers. The layers start close to the identity. The products
        grow as powers of the inputs: with ``numeric_encoding="standard"``
        or ``"passthrough"``, a number beyond about 1e19 times its column's
        scale (1e13 with two layers) overflows float32 and ``predict``
        raises. On Census, one layer lifted MMoE's income AUC from 0.9512
        to 0.9517 (three splits the defaults were not chosen on; 0.9498 to
        0.9504 on those they were) and two to 0.9520, never married
        unchanged, for 1.2 and 1.5 times the fit time; on Coat, ESMM's pCVR
        AUC fell by 0.006 and 0.014 (``benchmarks/README.md``).
    dropout : float, default=0.0
        Dropout rate after every hidden layer.
    batch_norm : bool, default={batch_norm}
        Normalise every hidden layer's outputs over the batch before its
        activation (batch normalisation), in the experts, the bottom and the
        towers (not in AITM's transfer layers). On by default in the
        classifiers of MMoE, OMoE, PLE and Shared-Bottom, with
        ``weight_decay=1e-4`` and ``max_epochs=4``: on Census MMoE's test
        AUC rose from 0.9509 to 0.9524 (income) and from 0.9944 to 0.9946
        (never married) over nine splits the defaults were not chosen on,
        in less fit time, and it rose on five of six other classification
        tables; on Census subsets of 500 to 5,000 rows it lowered never
        married by 0.0006 to 0.003 and, from 1,000 rows, income by about
        0.005 (there ``batch_norm=False`` may pay). Off in the
        regressors, whose R² fell on each of three regression tables (by
        0.006 to 0.034), and in the funnels: ESMM's pCVR AUC fell by about
        0.01 on Coat and on a synthetic funnel, and AITM keeps ESMM's
        setting (``benchmarks/README.md``, "Batch normalisation by
        default"). The
        statistics count rows, not their weights: rows of weight 0 count,
        and an integer ``sample_weight`` is not the same as repeating rows.
        The running statistics average the first 10 batches alike, then
        move by 0.1 a batch; a training batch of one row is normalised with
        them.
    learning_rate : float, default=6e-3
        Adam's (peak) learning rate.
    learning_rate_schedule : {"cosine", "constant"}, default="cosine"
        ``"cosine"``: a linear warm-up over the first 5 % of the training
        steps, then a cosine decay to zero at the end of ``max_epochs``.
    weight_decay : float, default={weight_decay}
        Adam's L2 penalty (``torch.optim.Adam``'s ``weight_decay``, added to
        the gradient of the mean loss, not decoupled as AdamW's): strong at
        1e-3 already; at 1e-2 a network on a few thousand rows shrinks to
        constant predictions.
    batch_size : int or "auto", default="auto"
        Rows per training step; ``"auto"``: 1/64 of the training rows, at
        least 32 and at most 1024.
    max_epochs : int, default={max_epochs}
        Number of passes over the training data (fewer if early stopping
        ends training).{max_epochs_note}
    early_stopping : "auto" or bool, default={early_stopping}
        Hold ``validation_fraction`` of the rows out, stop when their loss
        (or ``scoring``) has not improved by ``tol`` for
        ``n_iter_no_change`` epochs, then restore the best weights.
        ``"auto"`` turns it on when there are more than 10,000 samples.
{early_stopping_note}
    validation_fraction : float, int or None, default=0.1
        Share (or number) of the training rows held out for early stopping;
        ``None`` stops on the training loss instead. Unused without early
        stopping.
    n_iter_no_change : int, default=5
        Patience of early stopping, in epochs.
    tol : float, default=1e-4
        Smallest improvement of the monitored quantity that counts.
{scoring}
    task_weights : array-like, dict or None, default=None
        A non-negative weight per task scaling its loss: one per task in
        ``y``'s column order, or ``{task_name: weight}`` (tasks not named
        weigh 1). ``None`` weighs every task 1. Only their ratios count:
        they are divided by the largest (``[2, 1]`` trains as ``[1, 0.5]``,
        and ``history_`` records the divided weights). The recorded
        ``train_loss``/``valid_loss`` are the losses' sum under these
        weights.
    loss_weighting : {"equal", "uncertainty", "gradnorm", "dwa", "pcgrad"}, \
default="equal"
        How the tasks' losses are balanced on top of ``task_weights``.
        ``"equal"``: fixed weights. ``"uncertainty"``: a learned
        log-variance ``s_t`` per task, minimising ``exp(-s_t) L_t + s_t``
        (Kendall et al., CVPR 2018). ``"gradnorm"``: weights learned to
        balance the norms of the tasks' gradients of the shared parameters
        (Chen et al., ICML 2018; see ``gradnorm_alpha``). ``"dwa"``: dynamic
        weight average, each epoch from the ratio of the tasks' last two
        training losses (Liu et al., CVPR 2019). ``"pcgrad"``: projecting
        conflicting gradients of the shared parameters (Yu et al., NeurIPS
        2020). ``history_`` records each epoch's weights as
        ``task_weight_<task>``. ``"gradnorm"`` and ``"pcgrad"`` compute every
        task's gradient of the shared parameters at each step, which costs
        time (see ``benchmarks/README.md``).
    gradnorm_alpha : float, default=1.5
        GradNorm's ``alpha``: how strongly a task that trains slower than the
        others gets a larger gradient; used by ``loss_weighting="gradnorm"``.
    random_state : int, RandomState or None, default=None
        Seeds weight initialisation, dropout, shuffling, the validation
        split, and the rows sampled to learn quantiles and bins and the
        trees of ``bin_strategy="target"``. A fixed value gives identical
        predictions on the CPU with the same number of torch threads (other
        numbers may differ in the last float32 bits).
    device : str or torch.device, default="cpu"
        Where the network is trained, e.g. ``"cuda"``.
    verbose : int, default=0
        0: print nothing (warnings still show). 1: a table with one row per
        epoch (or ``partial_fit`` call): the loss and validation score of
        each task, the learned task weights, the seconds. 2: also the
        progress within each epoch, a progress bar when standard error is a
        terminal, a line at each quarter of the epoch otherwise.
    warm_start : bool, default=False
        Keep the fitted network, encoders and targets' classes (or scaling),
        and continue training for ``max_epochs`` more epochs on the next
        ``fit``. The vocabularies stay the first fit's: a value it did not
        see (a new id) gets the unknown category's embedding, with a warning
        for a ``category`` column whose dtype lists it. Fit anew, or hash the
        column (``hash_buckets``), to learn new values. A warm fit with
        early stopping after a first fit without it holds out rows the
        network has trained on: its validation scores are optimistic.
"""

_ATTRIBUTES_AFTER_TARGETS = """\
    task_names_ : list of str
        Names of the tasks: ``Y``'s columns when it is a DataFrame, else
        ``task_0``, ``task_1``, ...
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Defined only when ``X`` has string column names.
    is_categorical_ : ndarray of bool
        Which input columns were treated as categorical.
    numeric_encoding_ : str
        The encoding of the numeric columns: ``numeric_encoding``, or the one
        ``"auto"`` chose.
    history_ : skorch.History
        One entry per epoch: ``train_loss``, ``train_loss_<task>`` (over the
        rows where that task's label is known) and ``task_weight_<task>``;
        with early stopping on validation rows also ``valid_loss``,
        ``valid_loss_<task>``, ``valid_{metric}_<task>``, and
        ``valid_{scoring}`` with ``scoring="{scoring}"``; ``dur`` in
        seconds.
    n_iter_ : int
        Number of epochs run (over all fits with ``warm_start``).
    net_ : skmtl._training.MultiTaskNet
        The fitted skorch net; ``net_.module_`` is the :class:`skmtl.nn.{module}`."""

CLASSIFIER_ATTRIBUTES = """\
    classes_ : list of ndarrays
        The classes of each task (a single ndarray when fitted on a 1-D ``y``).
""" + _ATTRIBUTES_AFTER_TARGETS.replace("{metric}", "auc").replace("{scoring}", "roc_auc")

REGRESSOR_ATTRIBUTES = _ATTRIBUTES_AFTER_TARGETS.replace("{metric}", "r2").replace(
    "{scoring}", "r2")

CLASSIFIER_SCORING = """\
    scoring : {"loss", "roc_auc"}, default="loss"
        What early stopping watches on the validation rows: the loss, or
        ``"roc_auc"``, the mean ROC AUC of the binary tasks (weighted by
        ``task_weights``), higher being better; the best epoch's weights are
        restored. Used only with early stopping, and then needs
        ``validation_fraction``."""

REGRESSOR_SCORING = """\
    scoring : {"loss", "r2"}, default="loss"
        What early stopping watches on the validation rows: the loss, or
        ``"r2"``, the mean R² of the tasks (weighted by ``task_weights``),
        higher being better; the best epoch's weights are restored. Used
        only with early stopping, and then needs ``validation_fraction``."""


def fill(**fields):
    """Class decorator: replace ``{name}`` in the docstring by ``fields[name]``.

    A field's text may itself hold fields; replacing repeats until none is
    left.
    """
    def decorate(cls):
        doc = cls.__doc__
        for _ in range(len(fields) + 1):
            before = doc
            for name, text in fields.items():
                doc = doc.replace("{" + name + "}", str(text))
            if doc == before:
                break
        cls.__doc__ = doc
        return cls
    return decorate


EVERY_ROW_TRAINS = """\
        Off by default: the cosine schedule ends at ``max_epochs`` anyway,
        and the held-out rows are worth more in training (the classifiers
        reached an equal or higher test AUC on Census, Coat and the
        synthetic funnels, ``benchmarks/README.md``). Turn it on to see
        validation scores in ``history_``, or with many epochs."""


def estimator(module, *, regressor=False, tower_default="(32,)", max_epochs_note="",
              early_stopping_note=EVERY_ROW_TRAINS, **fields):
    """:func:`fill` with the shared texts of an estimator's docstring.

    ``{tower_units}``, ``{common_parameters}`` and ``{attributes}`` (of a
    classifier, or with ``regressor`` of a regressor) are filled in; the
    model's network is :class:`skmtl.nn.<module>`. The defaults of
    ``max_epochs``, ``early_stopping``, ``batch_norm``, ``weight_decay``
    and (of the funnel models) ``counterfactual_constraint_weight``, which
    differ between models, are read from the class's signature.
    """
    def decorate(cls):
        defaults = inspect.signature(cls).parameters
        funnel_defaults = {name: defaults[name].default
                           for name in ("counterfactual_constraint_weight",) if name in defaults}
        return fill(**fields, tower_units=TOWER_UNITS, common_parameters=COMMON_PARAMETERS,
                    counterfactual=COUNTERFACTUAL,
                    attributes=REGRESSOR_ATTRIBUTES if regressor else CLASSIFIER_ATTRIBUTES,
                    scoring=REGRESSOR_SCORING if regressor else CLASSIFIER_SCORING,
                    module=module, tower_default=tower_default,
                    max_epochs=defaults["max_epochs"].default, max_epochs_note=max_epochs_note,
                    batch_norm=defaults["batch_norm"].default,
                    weight_decay=np.format_float_scientific(defaults["weight_decay"].default,
                                                            trim="-", exp_digits=1),
                    early_stopping=repr(defaults["early_stopping"].default).replace("'", '"'),
                    early_stopping_note=early_stopping_note, **funnel_defaults)(cls)
    return decorate
