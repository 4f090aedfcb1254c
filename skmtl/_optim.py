"""Adam with torch's own kernels, without the one-off import of ``torch._dynamo``.

In torch 2.x, constructing any ``torch.optim`` optimizer imports
``torch._dynamo`` (``Optimizer.add_param_group``, ``zero_grad``,
``state_dict`` and ``load_state_dict`` are wrapped in
``torch._disable_dynamo``, whose wrapper imports it on first call), and
``Adam.step`` imports it on every call: about one second for the first fit of
every process, a quarter of a default fit on Census. This subclass calls the
undecorated base methods (exposed by ``functools.wraps`` as ``__wrapped__``)
and updates with the same kernels as ``torch.optim.Adam``: ``_fused_adam_``
where it runs, else the ``_foreach`` sequence of ``Adam(foreach=True)``. Its
results and its ``state_dict`` are those of ``torch.optim.Adam`` (tested).

A parameter with a sparse gradient (an embedding table with
``sparse=True``) is updated row by row: a step moves only the rows the
gradient holds, so its cost follows the batch, not the table. Unlike the
"lazy" Adam of TensorFlow's ``LazyAdam`` and ``torch.optim.SparseAdam``,
the steps a row misses while no batch looks it up are not lost: when one
does, or at :meth:`Adam.catch_up`, the row first takes them, in closed form
(its momentum's and the weight decay's, from sums over the steps it missed
of their learning rates and bias corrections; see ``_catch_up``). Lazily, a row
seen once moved about a tenth as far as under Adam, rows never seen kept
their random start where Adam's weight decay shrinks them to zero, and rare
ids learned less (benchmarks/README.md, "Sparse embedding updates").
"""

import math

import functools

import torch
from torch.optim import Optimizer


# catch_up works through an embedding table in blocks of this many rows
CATCH_UP_ROWS = 65_536
# the largest b1 / sqrt(b2) of sparse updates (0.9005 at Adam's default betas); a step's
# momentum then counts for at most about 37,000 steps
MAX_MOMENTUM_RATIO = 0.999


def _undecorated(name):
    method = getattr(Optimizer, name)
    return getattr(method, "__wrapped__", method)


_add_param_group = _undecorated("add_param_group")
_zero_grad = _undecorated("zero_grad")
_state_dict = _undecorated("state_dict")
_load_state_dict = _undecorated("load_state_dict")


@functools.cache
def fused_adam_supported(device):
    """Whether torch's fused Adam kernel runs on ``device`` (tried on one element)."""
    try:
        p, g, m, v = (torch.zeros(1, device=device) for _ in range(4))
        step = torch.ones((), device=device)
        torch._fused_adam_([p], [g], [m], [v], [], [step], lr=1e-3, beta1=0.9, beta2=0.999,
                           weight_decay=0.0, eps=1e-8, amsgrad=False, maximize=False)
    except (AttributeError, RuntimeError, NotImplementedError, TypeError):
        return False
    return True


class Adam(Optimizer):
    """Adam with L2 weight decay, numerically ``torch.optim.Adam(fused=fused)``.

    Parameters
    ----------
    params : iterable of tensors or parameter groups
    lr : float, default=1e-3
    betas : (float, float), default=(0.9, 0.999)
    eps : float, default=1e-8
    weight_decay : float, default=0.0
    fused : bool, optional
        Use the fused kernel; by default where it runs for the parameters' device.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 fused=None):
        if lr < 0 or eps < 0 or weight_decay < 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"invalid Adam settings: lr={lr}, betas={betas}, eps={eps}, "
                             f"weight_decay={weight_decay}")
        # The keys of torch.optim.Adam's groups, so that state dicts go both ways.
        defaults = dict(lr=lr, betas=(float(betas[0]), float(betas[1])), eps=eps,
                        weight_decay=weight_decay, amsgrad=False, maximize=False, foreach=None,
                        capturable=False, differentiable=False, fused=fused,
                        decoupled_weight_decay=False)
        super().__init__(params, defaults)
        if fused is None:  # the groups hold lists of tensors now, whatever params was
            device = self.param_groups[0]["params"][0].device
            for group in self.param_groups:
                group["fused"] = fused_adam_supported(device)

    def add_param_group(self, param_group):
        _add_param_group(self, param_group)

    def zero_grad(self, set_to_none=True):
        _zero_grad(self, set_to_none)

    def state_dict(self):
        return _state_dict(self)

    def load_state_dict(self, state_dict):
        _load_state_dict(self, state_dict)

    @torch.no_grad()
    def catch_up(self):
        """Bring every row that sparse steps left behind up to date (see the module's
        docstring); called at the end of each epoch, before the weights are read."""
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state.get(p)
                if not (state and "last_update" in state):
                    continue
                last_update, missed = state["last_update"], state["missed_steps"]
                for start in range(0, p.shape[0], CATCH_UP_ROWS):  # bounded temporaries
                    block = slice(start, start + CATCH_UP_ROWS)
                    exp_avg = state["exp_avg"][block].clone()
                    exp_avg_sq = state["exp_avg_sq"][block].clone()
                    rows = _catch_up(group, p, block, exp_avg, exp_avg_sq, last_update[block],
                                     missed)
                    # Computed aside, written together with the block's marks: an interrupt
                    # (the training loop then calls again) leaves each block before or
                    # after, unless it lands within these few writes.
                    if rows is not None:
                        p[block], state["exp_avg"][block] = rows, exp_avg
                        state["exp_avg_sq"][block] = exp_avg_sq
                    last_update[block] = missed.now
                del state["last_update"], state["missed_steps"]

    def check_state(self):
        """Raise ValueError unless the settings and moments fit the parameters.

        For a state read from a file: torch's ``load_state_dict`` checks
        neither, and the fused kernel writes out of bounds for moments of
        another shape.
        """
        for group in self.param_groups:
            betas = group.get("betas")
            settings = [group.get(key) for key in ("lr", "eps", "weight_decay")]
            if not (isinstance(betas, (tuple, list)) and len(betas) == 2
                    and all(_real(b) and 0 <= b < 1 for b in betas)
                    and all(_real(v) and 0 <= v < float("inf") for v in settings)):
                raise ValueError(f"invalid optimizer settings: betas={betas!r}, lr, eps, "
                                 f"weight_decay={settings!r}.")
            for p in group["params"]:
                state = self.state.get(p)
                if not state:
                    continue
                step = state.get("step")
                moments = [state.get("exp_avg"), state.get("exp_avg_sq")]
                if not (set(state) == {"step", "exp_avg", "exp_avg_sq"}
                        and isinstance(step, torch.Tensor) and step.dim() == 0
                        and step.is_floating_point() and 0 <= float(step) < float("inf")
                        and all(isinstance(m, torch.Tensor) and m.shape == p.shape
                                and m.dtype == p.dtype and m.device == p.device
                                for m in moments)):
                    raise ValueError(f"the optimizer's state does not fit a parameter of "
                                     f"shape {tuple(p.shape)}.")

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            for p in params:
                state = self.state[p]
                if not state:
                    # where torch.optim.Adam keeps it: beside the parameter when fused
                    state["step"] = (torch.zeros((), device=p.device) if group["fused"]
                                     else torch.tensor(0.0))
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            for p in params:
                if p.grad.is_sparse:
                    _sparse_update(group, p, p.grad, self.state[p])
            params = [p for p in params if not p.grad.is_sparse]
            if not params:
                continue
            states = [self.state[p] for p in params]
            update = _fused_update if group["fused"] else _foreach_update
            update(group, params, [p.grad for p in params], [s["exp_avg"] for s in states],
                   [s["exp_avg_sq"] for s in states], [s["step"] for s in states])
        return loss


def _real(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fused_update(group, params, grads, exp_avgs, exp_avg_sqs, steps):
    torch._foreach_add_(steps, 1)
    beta1, beta2 = group["betas"]
    torch._fused_adam_(params, grads, exp_avgs, exp_avg_sqs, [], steps, lr=group["lr"],
                       beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"],
                       eps=group["eps"], amsgrad=False, maximize=False)


def _foreach_update(group, params, grads, exp_avgs, exp_avg_sqs, steps):
    beta1, beta2 = group["betas"]
    lr, weight_decay = group["lr"], group["weight_decay"]
    torch._foreach_add_(steps, 1)
    if weight_decay:
        grads = torch._foreach_add(grads, params, alpha=weight_decay)
    torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)
    counts = [float(s) for s in steps]
    denominators = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_div_(denominators, [(1 - beta2 ** n) ** 0.5 for n in counts])
    torch._foreach_add_(denominators, group["eps"])
    torch._foreach_addcdiv_(params, exp_avgs, denominators,
                            [-lr / (1 - beta1 ** n) for n in counts])


def _sparse_update(group, param, grad, state):
    """Adam's update of the rows of ``param`` that the sparse ``grad`` holds, after
    catching them up with the steps they missed."""
    beta1, beta2 = group["betas"]
    grad = grad.coalesce()
    rows, values = grad.indices()[0], grad.values()
    exp_avg = state["exp_avg"].index_select(0, rows)
    exp_avg_sq = state["exp_avg_sq"].index_select(0, rows)
    if "last_update" in state:
        caught_up = _catch_up(group, param, rows, exp_avg, exp_avg_sq,
                              state["last_update"].index_select(0, rows),
                              state["missed_steps"])
        if caught_up is not None:
            param.index_copy_(0, rows, caught_up)
    else:  # every row is up to date (a first step, or one after catch_up)
        state["last_update"] = torch.full(param.shape[:1], float(state["step"]),
                                          dtype=torch.float64, device=param.device)
        state["missed_steps"] = _MissedSteps(float(state["step"]), group["betas"],
                                             param.device)
    state["step"].add_(1)
    n = float(state["step"])
    state["missed_steps"].record(group["lr"])
    if group["weight_decay"]:
        values = values.add(param.index_select(0, rows), alpha=group["weight_decay"])
    exp_avg.lerp_(values, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(values, values, value=1 - beta2)
    state["exp_avg"].index_copy_(0, rows, exp_avg)
    state["exp_avg_sq"].index_copy_(0, rows, exp_avg_sq)
    state["last_update"].index_fill_(0, rows, n)
    denominator = exp_avg_sq.sqrt_().div_((1 - beta2 ** n) ** 0.5).add_(group["eps"])
    param.index_add_(0, rows, exp_avg.div_(denominator), alpha=-group["lr"] / (1 - beta1 ** n))


class _MissedSteps:
    """The steps since ``first`` summed for rows that missed them, by their last step.

    A row with no gradient of the loss from step ``t + 1`` on moves at step
    ``s = t + j`` by ``lr_s * c_s * r**j * m / sqrt(v)`` under Adam (leaving out
    ``eps`` and the weight decay), where ``m`` and ``v`` are its moments after step
    ``t``, ``c_s = sqrt(1 - b2**s) / (1 - b1**s)`` the bias corrections and
    ``r = b1 / sqrt(b2)``. ``momentum[t - first]`` holds ``sum_s lr_s c_s r**(s - t)``
    over the steps recorded after ``t``; each step adds its term to the rows of the
    steps before it for as long as ``r**j`` counts (about 350 steps at Adam's default
    betas). ``rates`` and ``learning_rates`` hold running sums of ``lr_s c_s`` and
    ``lr_s``, for the weight decay's part of the moves.
    """

    def __init__(self, first, betas, device):
        self.first = self.now = first
        self.betas = betas
        beta1, beta2 = betas
        ratio = beta1 / math.sqrt(beta2) if beta2 > 0 else math.inf
        # With r near or above 1 the sums leave out what bounds Adam's moves (eps, once
        # the second moment has decayed to it), and they would take far more steps.
        if ratio > MAX_MOMENTUM_RATIO:
            raise ValueError(f"sparse gradients need Adam's beta1 / sqrt(beta2) at most "
                             f"{MAX_MOMENTUM_RATIO}; got betas={betas}.")
        window = math.ceil(math.log(1e-16) / math.log(ratio)) if ratio > 0 else 1
        self.powers = ratio ** torch.arange(window, 0, -1, dtype=torch.float64, device=device)
        self.momentum, self.rates, self.learning_rates = (
            torch.zeros(256, dtype=torch.float64, device=device) for _ in range(3))

    def record(self, lr):
        """Record the next step, taken at the learning rate ``lr``."""
        beta1, beta2 = self.betas
        self.now += 1
        k = int(self.now - self.first)
        if k >= len(self.momentum):
            self.momentum, self.rates, self.learning_rates = (
                torch.cat([table, torch.zeros_like(table)])
                for table in (self.momentum, self.rates, self.learning_rates))
        rate = lr * math.sqrt(1 - beta2 ** self.now) / (1 - beta1 ** self.now)
        powers = self.powers[-k:]
        self.momentum[k - len(powers):k] += rate * powers
        self.rates[k] = self.rates[k - 1] + rate
        self.learning_rates[k] = self.learning_rates[k - 1] + lr


def _catch_up(group, param, rows, exp_avg, exp_avg_sq, last_update, missed):
    """The rows ``rows`` of ``param`` (an index tensor or a slice), last updated at the
    steps ``last_update``, moved as Adam's steps up to ``missed.now`` without a gradient
    of the loss would have (None if none was missed; the caller writes them), and their
    moments ``exp_avg`` and ``exp_avg_sq`` (those rows' own) decayed in place.

    Such a step ``s = t + j`` moves a row by ``lr_s c_s m_j / (sqrt(v_j) + eps)`` where
    ``c_s`` are the bias corrections, the momentum ``m_j = b1**j m + (1 - b1**j) wd w``
    holds what is left of the row's last gradient and the weight decay's gradient, and
    ``v_j = b2**j v`` (plus the decay's ``(1 - b2**j) (wd w)**2``, left out of the steps
    but not of the moments). Summed over the missed steps with ``eps`` kept out of the
    sums and ``w`` held fixed: ``(m * sum lr_s c_s r**j + wd w * sum lr_s c_s (q**j -
    r**j)) / (sqrt(v) + eps)`` with ``r = b1 / sqrt(b2)`` and ``q = 1 / sqrt(b2)``. The
    first sum is ``missed.momentum``'s; the second takes the mean of ``q**j`` over the
    steps for a weighted one (``q**j`` grows slowly: 1.65 after a thousand steps at
    Adam's default ``b2``). Adam
    normalises the weight decay's small gradient to steps of up to ``lr``: a row with no
    gradient of the loss (``v`` of 0) shrinks to zero at ``lr`` a step. The decay's move
    is bounded by that and by the row's size.
    """
    beta1, beta2 = group["betas"]
    weight_decay = group["weight_decay"]
    idle = missed.now - last_update
    if not bool((idle > 0).any()):
        return None
    since = (last_update - missed.first).long()
    momentum_move = missed.momentum[since]
    values = param[rows].clone() if isinstance(rows, slice) else param.index_select(0, rows)
    denominator = exp_avg_sq.sqrt().add_(group["eps"])
    values -= exp_avg / denominator * _column(momentum_move, param)
    if weight_decay:
        now = int(missed.now - missed.first)
        growth = 1 / math.sqrt(beta2)
        capped = idle.clamp(min=1, max=100_000)  # saturated long before: q**k overflows at 1.4M
        mean_growth = growth * (growth ** capped - 1) / ((growth - 1) * capped)
        decay_steps = (missed.rates[now] - missed.rates[since]) * mean_growth - momentum_move
        shrink = torch.minimum(
            values.abs() / denominator * _column(decay_steps * weight_decay, param),
            _column(missed.learning_rates[now] - missed.learning_rates[since], param))
        values = values.sign() * (values.abs() - shrink).clamp_(min=0)
    kept_avg, kept_avg_sq = beta1 ** idle, beta2 ** idle
    exp_avg.mul_(_column(kept_avg, exp_avg))
    exp_avg_sq.mul_(_column(kept_avg_sq, exp_avg_sq))
    if weight_decay:  # the moments took in the decay's gradient meanwhile
        decay_gradient = values * weight_decay
        exp_avg.add_(decay_gradient * _column(1 - kept_avg, exp_avg))
        exp_avg_sq.addcmul_(decay_gradient, decay_gradient * _column(1 - kept_avg_sq, exp_avg_sq))
    return values


def _column(per_row, like):
    """``per_row`` (float64, one value per row) as a column of ``like``'s dtype."""
    return per_row.to(like.dtype).unsqueeze(1)
