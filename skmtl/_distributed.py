"""Data-parallel training under ``torch.distributed``: what the ranks agree on.

When a process group of more than one rank is initialised (``torchrun``,
then ``torch.distributed.init_process_group``), every rank calls ``fit`` on
its own shard. Before training the ranks agree on their inputs (the same
columns and tasks; an error on any rank is raised on every rank, so none
waits for the others), the classes (the union of every shard's), the
vocabularies (the union of every shard's categories; hashed and given ones
agree already), the numeric encoding, target scaling and batch size (rank
0's) and the initial weights (rank 0's). In training, every step averages
the gradients over the ranks (one all-reduce of the module's and the loss
weighting's gradients, after whatever backward pass the loss weighting
runs), every rank takes the same number of steps per epoch (the smallest
shard's), and the epoch's losses and validation scores are computed over
every rank's rows, so early stopping stops every rank at the same epoch and
every rank ends with the same weights.
"""

import contextlib
from types import SimpleNamespace

import numpy as np
import torch
from torch import distributed as dist


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


def from_rank_zero(obj):
    """Rank 0's ``obj`` on every rank."""
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@contextlib.contextmanager
def agreement(active):
    """Run a block of checks on every rank; raise on every rank if one failed or disagrees.

    The block may set ``agreed.signature``: what every rank must have alike
    (rank 0's is the reference). The block must hold no collective operation.
    """
    agreed = SimpleNamespace(signature=None)
    if not active:
        yield agreed
        return
    try:
        yield agreed
    except (ValueError, TypeError) as exc:
        _settle(f"{type(exc).__name__}: {exc}", None)
        raise  # _settle raised already; kept for readers
    _settle(None, agreed.signature)


def _settle(error, signature):
    reports = gather((error, signature))
    failed = [(rank, message) for rank, (message, _) in enumerate(reports) if message]
    if failed:
        raise ValueError("fit failed on rank(s) " + "; ".join(
            f"{rank}: {message}" for rank, message in failed))
    reference = reports[0][1]
    differ = [rank for rank, (_, signature) in enumerate(reports) if signature != reference]
    if differ:
        raise ValueError(f"rank(s) {differ} have other columns or tasks than rank 0 "
                         f"({reference}); every rank must fit the same columns and tasks.")


def union(arrays):
    """The sorted union of 1-D arrays."""
    return np.unique(np.concatenate([np.asarray(a) for a in arrays]))


def smallest(value, device="cpu"):
    """The smallest of every rank's integer ``value`` (``device``: where the backend works,
    the GPU for NCCL)."""
    tensor = torch.tensor([int(value)], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
    return int(tensor.item())


def average_gradients(parameters):
    """Average the ``.grad`` of ``parameters`` over the ranks, in one all-reduce."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    for grad, part in zip(grads, torch.split(flat, [g.numel() for g in grads])):
        grad.copy_(part.view_as(grad))


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
