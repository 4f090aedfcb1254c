"""Ways to combine per-task losses into one training step: fixed, learned or projected weights.

Every class here takes the per-task losses of a batch and runs the backward
pass (:meth:`LossWeighting.backward`), so that the methods that need each
task's own gradient of the shared parameters (GradNorm, PCGrad) can compute
it. :meth:`LossWeighting.weights` gives the weights in force, for the record.
"""

import torch
from torch import nn

__all__ = ["DynamicWeightAverage", "GradNorm", "LossWeighting", "PCGrad",
           "UncertaintyWeighting", "project_conflicting", "split_parameters", "task_gradients"]

# The modules of a network that belong to one task (dotted names of
# submodules); a network may name others in a ``task_specific`` attribute.
DEFAULT_TASK_SPECIFIC = ("towers",)


def split_parameters(module):
    """``(shared, task_specific)``: the parameters of ``module`` that several tasks train.

    A parameter is task-specific when it belongs to a submodule named in
    ``module.task_specific`` (dotted names such as ``"towers"`` or
    ``"towers.1"``; default ``("towers",)``): only one task's loss trains it.

    Examples
    --------
    >>> from skmtl.nn import MMoE
    >>> from skmtl.nn.weighting import split_parameters
    >>> net = MMoE([4], n_numeric=2, task_output_dims=[1, 1])
    >>> shared, specific = split_parameters(net)
    >>> net.task_specific, len(shared), len(specific)
    (('gates', 'towers'), 3, 10)
    >>> sorted({name.split(".")[0] for name, parameter in net.named_parameters()
    ...         if any(parameter is p for p in shared)})
    ['embedding', 'experts']
    """
    prefixes = tuple(name + "." for name in getattr(module, "task_specific",
                                                    DEFAULT_TASK_SPECIFIC))
    shared, specific = [], []
    for name, parameter in module.named_parameters():
        if parameter.requires_grad:
            (specific if name.startswith(prefixes) else shared).append(parameter)
    return shared, specific


def task_gradients(task_losses, parameters):
    """Each task's gradient of ``parameters``, flattened: ``(n_tasks, n_parameters)``.

    One batched backward pass (``is_grads_batched``) computes every task's
    gradient; the graph is kept for the backward pass that follows.

    Examples
    --------
    >>> import torch
    >>> from skmtl.nn.weighting import task_gradients
    >>> w = torch.tensor([1.0, 2.0], requires_grad=True)
    >>> task_gradients(torch.stack([w.sum(), (w ** 2).sum()]), [w])  # 1 and 2 w
    tensor([[1., 1.],
            [2., 4.]])
    """
    n_tasks = task_losses.shape[0]
    eye = torch.eye(n_tasks, dtype=task_losses.dtype, device=task_losses.device)
    grads = torch.autograd.grad(task_losses, parameters, grad_outputs=eye,
                                is_grads_batched=True, retain_graph=True, allow_unused=True)
    return torch.cat([(torch.zeros((n_tasks, p.numel()), dtype=p.dtype, device=p.device)
                       if g is None else g.reshape(n_tasks, -1))
                      for g, p in zip(grads, parameters)], dim=1)


def _set_gradients(parameters, flat):
    """Add the flat gradient ``flat`` to the ``.grad`` of ``parameters``."""
    for parameter, grad in zip(parameters, torch.split(flat, [p.numel() for p in parameters])):
        grad = grad.view_as(parameter)
        if parameter.grad is None:
            parameter.grad = grad.clone()
        else:
            parameter.grad.add_(grad)


class LossWeighting(nn.Module):
    """Fixed task weights: minimise ``sum_t task_weights[t] * loss_t``.

    Parameters
    ----------
    task_weights : sequence of float
        One non-negative weight per task.

    Examples
    --------
    >>> import torch
    >>> from skmtl.nn.weighting import LossWeighting
    >>> weighting = LossWeighting([1.0, 0.5])
    >>> weighting.objective(torch.tensor([2.0, 4.0]))  # 1 * 2 + 0.5 * 4
    tensor(4.)
    >>> w = torch.tensor(1.0, requires_grad=True)
    >>> _ = weighting.backward(torch.stack([2 * w, 4 * w]), shared=[w], specific=[])
    >>> w.grad
    tensor(4.)
    """

    # whether the weights change in training (else they are ``task_weights``)
    learned = False

    def __init__(self, task_weights):
        super().__init__()
        self.register_buffer("task_weights", torch.as_tensor(task_weights, dtype=torch.float32))

    @property
    def n_tasks(self):
        return self.task_weights.shape[0]

    def weights(self):
        """The weight of each task's loss in force now, shape ``(n_tasks,)``."""
        return self.task_weights

    def objective(self, task_losses, label_shares=None, mean_losses=None):
        """The scalar to minimise for these per-task losses (see :meth:`backward`)."""
        return (self.weights() * task_losses).sum()

    def backward(self, task_losses, shared, specific, label_shares=None, mean_losses=None):
        """Accumulate the gradients of one batch into ``.grad``; return the objective.

        Parameters
        ----------
        task_losses : Tensor of shape (n_tasks,)
            The losses to train on.
        shared, specific : lists of Parameters
            The network's parameters, split by :func:`split_parameters`.
        label_shares : Tensor of shape (n_tasks,), default=None
            The share of the batch's weight that each task's known labels
            hold (0: the task has no known label in the batch and takes no
            part in learning the weights). None: inferred, a task whose loss
            (GradNorm: whose gradient) is exactly 0 having no known label.
        mean_losses : Tensor of shape (n_tasks,), default=None
            Each task's loss as a mean over its known labels, when
            ``task_losses`` were scaled by ``label_shares``: the losses a
            weighting compares between batches. None: ``task_losses``.
        """
        objective = self.objective(task_losses, label_shares, mean_losses)
        objective.backward()
        return objective

    def end_epoch(self, task_losses):
        """Called with each task's mean training loss at the end of an epoch (NaN for a task
        with no known label in it)."""

    def before_step(self):
        """Called before the optimizer's step; what it returns goes to :meth:`after_step`."""

    def after_step(self, kept):
        """Called after the optimizer's step with what :meth:`before_step` returned."""


class UncertaintyWeighting(LossWeighting):
    """Homoscedastic uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018).

    Minimises ``sum_t task_weights[t] * (exp(-s_t) * loss_t + s_t)`` with a
    learned log-variance ``s_t`` per task (trained with the network), so a
    task's weight ``exp(-s_t)`` settles near the inverse of its loss. With
    ``label_shares`` (losses scaled by the share of the batch their known
    labels hold), ``s_t`` learns as if every known label added its own
    ``exp(-s_t) * loss + s_t``: the weight settles near the inverse of the
    task's mean loss (``mean_losses``), however few its labels, and a part
    of the loss that needs no label (AITM's calibrator) does not move it. A
    task with no known label in a batch leaves its ``s_t`` alone there.

    Parameters
    ----------
    task_weights : sequence of float
        One non-negative fixed weight per task, on top of the learned ones.

    Examples
    --------
    >>> import torch
    >>> from skmtl.nn.weighting import UncertaintyWeighting
    >>> weighting = UncertaintyWeighting([1.0, 1.0])
    >>> [name for name, _ in weighting.named_parameters()], weighting.weights()
    (['log_variance'], tensor([1., 1.]))
    >>> with torch.no_grad():  # as training would set them for losses 1 and 4
    ...     _ = weighting.log_variance.copy_(torch.log(torch.tensor([1.0, 4.0])))
    >>> weighting.weights()
    tensor([1.0000, 0.2500])
    """

    learned = True

    def __init__(self, task_weights):
        super().__init__(task_weights)
        self.log_variance = nn.Parameter(torch.zeros(self.n_tasks))

    def weights(self):
        return self.task_weights * torch.exp(-self.log_variance.detach())

    def objective(self, task_losses, label_shares=None, mean_losses=None):
        if label_shares is None:
            label_shares = (task_losses.detach() != 0).to(task_losses.dtype)
        if mean_losses is None:
            mean_losses = task_losses
        precision = torch.exp(-self.log_variance)
        fixed = precision.detach()
        # The network trains on precision * task_losses; s on share * (precision *
        # mean_loss + s) (the first term's value is fixed * task_losses, its gradient
        # to s that of the second). A task without labels gives s no gradient (after_step
        # then keeps it).
        pull_on_s = torch.where(label_shares > 0,
                                (precision - fixed) * label_shares * mean_losses.detach(), 0.0)
        return (self.task_weights * (fixed * task_losses + pull_on_s
                                     + self.log_variance * label_shares)).sum()

    def before_step(self):
        return self.log_variance.detach().clone()

    def after_step(self, kept):
        # The optimizer trains s with the network: its momentum would still move
        # the s of a task without a label in the batch (whose gradient is 0, on
        # every rank of a distributed fit). Such a task's s stays as it was.
        if self.log_variance.grad is not None:
            with torch.no_grad():
                absent = self.log_variance.grad == 0
                self.log_variance.copy_(torch.where(absent, kept, self.log_variance))


class DynamicWeightAverage(LossWeighting):
    """Dynamic weight average (Liu, Johns & Davison, CVPR 2019).

    Each epoch's weights are ``n_tasks * softmax(r / temperature)`` with
    ``r_t`` the ratio of task ``t``'s mean training loss in the last two
    epochs: a task whose loss fell least gets more weight. The first two
    epochs weigh every task 1. A task of task weight 0 (not trained) keeps
    its weight, as does a task without a known label in an epoch; the other
    tasks share the rest.

    Parameters
    ----------
    task_weights : sequence of float
    temperature : float, default=2.0

    Examples
    --------
    >>> from skmtl.nn.weighting import DynamicWeightAverage
    >>> weighting = DynamicWeightAverage([1.0, 1.0])
    >>> weighting.end_epoch([1.0, 1.0])
    >>> weighting.weights()
    tensor([1., 1.])
    >>> weighting.end_epoch([0.5, 0.9])  # task 1's loss fell least
    >>> weighting.weights()
    tensor([0.9003, 1.0997])
    """

    learned = True

    def __init__(self, task_weights, temperature=2.0):
        super().__init__(task_weights)
        self.temperature = float(temperature)
        self.register_buffer("balance", torch.ones(self.n_tasks))
        # the mean training loss per task of the last two epochs, oldest first
        self.register_buffer("recent_losses", torch.full((2, self.n_tasks), float("nan")))

    def weights(self):
        return self.task_weights * self.balance

    def end_epoch(self, task_losses):
        losses = torch.as_tensor(task_losses, dtype=torch.float32,
                                 device=self.recent_losses.device)
        # a task without labels this epoch, or of task weight 0 (not trained), keeps its
        # last two losses and its weight; the others share the rest as their ratios say
        labelled = ~torch.isnan(losses) & (self.task_weights > 0)
        shifted = torch.stack([self.recent_losses[1], losses])
        self.recent_losses.copy_(torch.where(labelled, shifted, self.recent_losses))
        if not torch.isnan(self.recent_losses).any() and labelled.any():
            ratio = self.recent_losses[1] / self.recent_losses[0].clamp(
                min=torch.finfo(torch.float32).tiny)
            balance = self.n_tasks * torch.softmax(ratio / self.temperature, dim=0)
            if not labelled.all():
                balance = torch.where(labelled, balance * self.balance[labelled].sum()
                                      / balance[labelled].sum(), self.balance)
            self.balance.copy_(balance)


class _SharedGradientWeighting(LossWeighting):
    """A weighting that sets the shared parameters' gradient from each task's own.

    Subclasses say how, in :meth:`_shared_gradient`; the task-specific
    parameters get the ordinary gradient of the weighted sum.
    """

    def backward(self, task_losses, shared, specific, label_shares=None, mean_losses=None):
        weights = self.weights()
        objective = (weights * task_losses).sum()
        if not shared:
            objective.backward()
            return objective
        gradients = task_gradients(task_losses, shared)
        if specific:
            torch.autograd.backward(objective, inputs=specific)
        mean_losses = task_losses if mean_losses is None else mean_losses
        _set_gradients(shared, self._shared_gradient(gradients, weights, mean_losses.detach(),
                                                     label_shares))
        return objective

    def _shared_gradient(self, gradients, weights, mean_losses, label_shares):
        """The shared parameters' flat gradient from the tasks' ``(n_tasks, n)`` ones."""
        raise NotImplementedError


class GradNorm(_SharedGradientWeighting):
    """GradNorm (Chen et al., ICML 2018): weights that balance the tasks' gradient norms.

    After each batch, the weight ``w_t`` moves (by Adam, at ``learning_rate``)
    to bring the norm of task ``t``'s weighted gradient of the shared
    parameters towards the mean norm times ``r_t ** alpha``, where ``r_t``
    is the task's loss relative to its first batch's, divided by the mean of
    those ratios: a task that trains slower gets a larger gradient. The
    weights are then renormalised to sum to ``n_tasks``. They balance the
    tasks' own gradients; ``task_weights`` scale the balanced weights (a task
    weighted 2 keeps twice the weight of an otherwise equal one). The
    ratios compare each task's mean loss over its known labels (``mean_losses``
    of :meth:`backward`), however many labels a batch holds. The norms are
    those of the gradients trained on: where the losses are scaled by the
    share of known labels, GradNorm makes up for a sparse task's smaller
    gradient (on Census with 90 % of one task's labels missing, that task
    kept 0.9938 AUC, against 0.9927 when the norms were of its mean loss). A task with no
    known label in a batch (or a zero gradient) sits that batch out, and a task
    of task weight 0 sits out every batch. The norms
    are taken over every shared parameter (the paper takes the last shared
    layer), so the per-task gradients hold ``n_tasks`` times the shared
    parameters, embedding tables included.

    Parameters
    ----------
    task_weights : sequence of float
    alpha : float, default=1.5
        Strength of the pull towards equal training rates.
    learning_rate : float, default=0.025

    Examples
    --------
    >>> import torch
    >>> from skmtl.nn.weighting import GradNorm
    >>> w = torch.ones(3, requires_grad=True)
    >>> weighting = GradNorm([1.0, 1.0])
    >>> _ = weighting.backward(torch.stack([w.sum(), 10 * w.sum()]), shared=[w], specific=[])
    >>> w.grad  # the gradient of the weighted sum, with the weights before the update
    tensor([11., 11., 11.])
    >>> weighting.weights()  # task 1's gradient is 10 times larger: its weight drops
    tensor([1.0250, 0.9750])
    """

    learned = True

    def __init__(self, task_weights, alpha=1.5, learning_rate=0.025):
        super().__init__(task_weights)
        self.alpha = float(alpha)
        self.learning_rate = float(learning_rate)
        self.register_buffer("balance", torch.ones(self.n_tasks))
        self.register_buffer("initial_losses", torch.full((self.n_tasks,), float("nan")))
        # Adam's moments and step count for the balance
        self.register_buffer("moments", torch.zeros(2, self.n_tasks))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def weights(self):
        return self.task_weights * self.balance

    def _shared_gradient(self, gradients, weights, mean_losses, label_shares):
        self._update_balance(mean_losses, gradients.norm(dim=1), label_shares)
        # the weights in force before the update (in the gradients' dtype: @ does not promote)
        return weights.to(gradients.dtype) @ gradients

    def _update_balance(self, losses, gradient_norms, label_shares=None):
        # A task without a known label in the batch, or of task weight 0 (never
        # trained, so its loss would never fall and its balance only grow), takes
        # no part in this update; its initial loss waits for a batch with one.
        present = (gradient_norms > 0) & (self.task_weights > 0)
        if label_shares is not None:
            present &= label_shares > 0
        self.initial_losses.copy_(torch.where(torch.isnan(self.initial_losses) & present,
                                              losses, self.initial_losses))
        counted = present & ~torch.isnan(self.initial_losses)
        if int(counted.sum()) < 2:  # one task alone is its own target: nothing to balance
            return
        tiny = torch.finfo(losses.dtype).tiny
        # balanced without task_weights, which then scale the result (see weights)
        weighted_norms = self.balance * gradient_norms
        ratios = losses / self.initial_losses.clamp(min=tiny)
        relative = ratios / ratios[counted].mean().clamp(min=tiny)
        targets = weighted_norms[counted].mean() * relative ** self.alpha
        # gradient of sum_t |weighted_norm_t - target_t| with respect to the balance
        grad = torch.where(counted, torch.sign(weighted_norms - targets) * gradient_norms,
                           torch.zeros_like(losses))
        self.steps += 1
        beta1, beta2 = 0.9, 0.999
        # the tasks sitting out keep their moments and balance; the counted ones
        # are renormalised to the share of the sum they had
        moments = torch.stack([self.moments[0] * beta1 + (1 - beta1) * grad,
                               self.moments[1] * beta2 + (1 - beta2) * grad * grad])
        self.moments.copy_(torch.where(counted, moments, self.moments))
        step = int(self.steps)
        first = self.moments[0] / (1 - beta1 ** step)
        second = self.moments[1] / (1 - beta2 ** step)
        balance = (self.balance - self.learning_rate * first / (second.sqrt() + 1e-8)).clamp(
            min=1e-3)
        share = self.balance[counted].sum()
        self.balance.copy_(torch.where(counted, balance * share / balance[counted].sum(),
                                       self.balance))


class PCGrad(_SharedGradientWeighting):
    """Projecting conflicting gradients (Yu et al., "Gradient Surgery", NeurIPS 2020).

    For the shared parameters, each task's weighted gradient is projected,
    task by task in a random order, onto the normal plane of every other
    task's gradient it conflicts with (negative inner product); the
    projected gradients are summed. Task-specific parameters get their
    ordinary gradient.

    Parameters
    ----------
    task_weights : sequence of float
        One non-negative weight per task, applied to its gradient before
        the projections.

    Examples
    --------
    The tasks' gradients ``(1, 0)`` and ``(-1, 1)`` conflict; each loses
    its component against the other before they are summed:

    >>> import torch
    >>> from skmtl.nn.weighting import PCGrad
    >>> w = torch.zeros(2, requires_grad=True)
    >>> losses = torch.stack([w @ torch.tensor([1.0, 0.0]), w @ torch.tensor([-1.0, 1.0])])
    >>> _ = PCGrad([1.0, 1.0]).backward(losses, shared=[w], specific=[])
    >>> w.grad  # (0.5, 0.5) + (0, 1), not (1, 0) + (-1, 1)
    tensor([0.5000, 1.5000])
    """

    def _shared_gradient(self, gradients, weights, mean_losses, label_shares):
        return project_conflicting(weights[:, None] * gradients).sum(dim=0)


def project_conflicting(gradients):
    """PCGrad's projection of each row of ``gradients`` (``(n_tasks, n)``) against the others.

    The other tasks are visited in a random order (torch's global generator).

    Examples
    --------
    >>> import torch
    >>> from skmtl.nn.weighting import project_conflicting
    >>> project_conflicting(torch.tensor([[1.0, 0.0], [-1.0, 1.0]]))  # in conflict
    tensor([[0.5000, 0.5000],
            [0.0000, 1.0000]])
    >>> project_conflicting(torch.tensor([[1.0, 0.0], [1.0, 1.0]]))  # no conflict: unchanged
    tensor([[1., 0.],
            [1., 1.]])
    """
    n_tasks = gradients.shape[0]
    squared_norms = (gradients * gradients).sum(dim=1).clamp(
        min=torch.finfo(gradients.dtype).tiny)
    projected = gradients.clone()
    for i in range(n_tasks):
        for j in torch.randperm(n_tasks).tolist():
            if j == i:
                continue
            conflict = (projected[i] @ gradients[j]).clamp(max=0.0)  # 0 when none
            projected[i] -= (conflict / squared_norms[j]) * gradients[j]
    return projected


LOSS_WEIGHTINGS = {"equal": LossWeighting, "uncertainty": UncertaintyWeighting,
                   "dwa": DynamicWeightAverage, "gradnorm": GradNorm, "pcgrad": PCGrad}
