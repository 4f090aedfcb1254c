"""Data-parallel training under ``torch.distributed``: what the ranks agree on.

When a process group of more than one rank is initialised (``torchrun``,
then ``torch.distributed.init_process_group``), every rank calls ``fit`` on
its own shard. Before training the ranks agree on their inputs (the same
columns, categorical columns, tasks and parameters, but for each rank's
``device``, ``verbose`` and ``random_state``; an error on any rank is raised
on every rank, so none waits for the others), on ``early_stopping="auto"``
(decided on every rank's rows), the classes (the union of every shard's),
the vocabularies (the union of every shard's categories; hashed and given
ones agree already), the numeric encoding, target scaling and batch size
(rank 0's) and the initial weights (rank 0's). In training, every step
averages the gradients over the ranks (one all-reduce of the module's and
the loss weighting's gradients, after whatever backward pass the loss
weighting runs), every rank takes the same number of steps per epoch (the
smallest shard's), and the epoch's losses and validation scores are computed
over every rank's rows, so early stopping stops every rank at the same epoch
and every rank ends with the same weights."""

import contextlib
from types import SimpleNamespace

import numpy as np
import torch
from torch import distributed as dist

from .nn.layers import batch_statistics


def world():
    """``(rank, world_size)`` inside a process group of several ranks, else None."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return dist.get_rank(), dist.get_world_size()
    return None


def gather(obj):
    """Every rank's ``obj`` (picklable), in rank order."""
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


# parameters that may differ between ranks: each rank's own GPU, its own
# printing, its own seed (the initial weights are rank 0's anyway)
RANK_OWN_PARAMETERS = ("device", "verbose", "random_state")


@contextlib.contextmanager
def agreement(active):
    """Run a block of rank-local work on every rank; raise on every rank if one failed or
    disagrees.

    The block may set ``agreed.signature``, a dict of what every rank must
    have alike (rank 0's is the reference), and ``agreed.share``, anything
    picklable; when the block ends, ``agreed.shared`` holds every rank's
    share in rank order (outside a process group, ``[agreed.share]``). The
    block must hold no collective operation.
    """
    agreed = SimpleNamespace(signature=None, share=None, shared=None)
    if not active:
        yield agreed
        agreed.shared = [agreed.share]
        return
    try:
        yield agreed
    except Exception as exc:
        _settle(exc, None, None)
        raise  # _settle raised already; kept for readers
    agreed.shared = _settle(None, agreed.signature, agreed.share)


def _settle(error, signature, share):
    """Every rank's share, once no rank failed and every signature is rank 0's."""
    reports = gather((None if error is None else (type(error), f"{type(error).__name__}: {error}"),
                      signature, share))
    failed = [(rank, error) for rank, (error, _, _) in enumerate(reports) if error]
    if failed:
        # a bug on some rank stays a bug on every rank; bad input stays bad input
        kind = (ValueError if all(issubclass(error[0], (ValueError, TypeError))
                                  for _, error in failed) else RuntimeError)
        raise kind("fit failed on rank(s) " + "; ".join(
            f"{rank}: {message}" for rank, (_, message) in failed))
    reference = reports[0][1]
    disagreements = []
    for rank, (_, signature, _) in enumerate(reports[1:], start=1):
        for part in reference or {}:
            if signature[part] != reference[part]:
                disagreements.append(f"rank {rank} has other {part} "
                                     f"({_difference(reference[part], signature[part])})")
    if disagreements:
        raise ValueError("; ".join(disagreements) + ". Every rank must fit the same columns "
                         "and tasks with the same parameters.")
    return [share for _, _, share in reports]


def _difference(reference, other):
    """What differs between rank 0's part of the signature and another rank's, in words."""
    if isinstance(reference, dict):
        return ", ".join(f"{name}={other.get(name)} against {value} on rank 0"
                         for name, value in reference.items() if other.get(name) != value)
    return f"{other} against {reference} on rank 0"


def parameters_signature(estimator):
    """The estimator's parameters that every rank must share, to compare across ranks."""
    return {name: _Parameter(value) for name, value in estimator.get_params(deep=False).items()
            if name not in RANK_OWN_PARAMETERS}


class _Parameter:
    """A parameter's value as its ``repr`` shows it, compared by its canonical form."""

    __hash__ = None

    def __init__(self, value):
        self.shown, self.canonical = repr(value), repr(_canonical(value))

    def __eq__(self, other):
        return isinstance(other, _Parameter) and self.canonical == other.canonical

    def __repr__(self):
        return self.shown


def _canonical(value):
    """``value`` in a form that equal values share in every process: sets and dicts sorted
    (a set of strings iterates in an order each process's hash seed decides), tuples and
    arrays as lists."""
    if isinstance(value, (set, frozenset)):
        return sorted((_canonical(item) for item in value), key=repr)
    if isinstance(value, dict):
        return sorted(((repr(_canonical(key)), _canonical(item)) for key, item in value.items()),
                      key=lambda pair: pair[0])
    if isinstance(value, (tuple, list, np.ndarray)):
        return [_canonical(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def union(arrays, what):
    """The sorted union of every rank's 1-D array of ``what`` (e.g. "Labels of task 'a'").

    Raises TypeError if the ranks' values are of types that do not mix: text
    on one rank and numbers on another would otherwise become text silently.
    """
    arrays = [np.asarray(a) for a in arrays]
    text = [rank for rank, a in enumerate(arrays)
            if len(a) and (a.dtype.kind in "SU" or isinstance(a[0], (str, bytes)))]
    numbers = [rank for rank, a in enumerate(arrays) if len(a) and rank not in text]
    if text and numbers:
        raise TypeError(f"{what} are text on rank(s) {text} and numbers on rank(s) {numbers}; "
                        "convert them to one type on every rank.")
    try:
        return np.unique(np.concatenate(arrays))
    except TypeError:
        raise TypeError(f"{what} are of types that cannot be compared across the ranks; "
                        "convert them to one type on every rank.") from None


def average_gradients(parameters):
    """Average the ``.grad`` of ``parameters`` over the ranks, in one all-reduce."""
    _average([p.grad for p in parameters if p.grad is not None])


def average_batch_statistics(module):
    """Average the running statistics of ``module``'s batch normalisations over the ranks,
    in one all-reduce (each rank's come from its own batches)."""
    _average([buffer for buffer in batch_statistics(module).values()
              if buffer.is_floating_point()])   # (not the integer count of batches)


def _average(tensors):
    """Replace each of ``tensors`` by its mean over the ranks."""
    if not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    for tensor, part in zip(tensors, torch.split(flat, [t.numel() for t in tensors])):
        tensor.copy_(part.view_as(tensor))


def sum_over_ranks(tensor):
    """``tensor`` summed over the ranks (a new tensor)."""
    total = tensor.clone()
    dist.all_reduce(total)
    return total


def broadcast_module(module):
    """Give every rank rank 0's parameters and buffers."""
    with torch.no_grad():
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, src=0)
