"""Embeddings of numeric features (Gorishniy et al., "On Embeddings for Numerical
Features in Tabular Deep Learning", NeurIPS 2022).

Each maps ``(batch, n_features)`` to ``(batch, n_features * embedding_dim)``:
every feature gets its own small network, and all features run as one batched
matrix product.
"""

import math

import torch
from torch import nn

from .layers import _gather_rows


class _PerFeatureLinear(nn.Module):
    """``n_features`` independent ``Linear(in_dim, out_dim)`` layers, then ReLU, batched."""

    def __init__(self, n_features, in_dim, out_dim):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_features, in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(n_features, 1, out_dim))
        bound = 1.0 / math.sqrt(in_dim)  # as nn.Linear
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        """Map ``(batch, n_features, in_dim)`` to ``(batch, n_features * out_dim)``."""
        # (F, B, in) @ (F, in, out) + (F, 1, out)
        h = torch.relu(torch.baddbmm(self.bias, x.transpose(0, 1), self.weight))
        return h.transpose(0, 1).reshape(x.shape[0], self.weight.shape[0] * self.weight.shape[2])


class PiecewiseLinearEmbedding(nn.Module):
    """Piecewise-linear encoding of each feature, then a linear layer and ReLU per feature.

    The input of feature ``j`` is its position among its bins, a number in
    ``[0, n_bins[j]]``: bin ``k`` covers ``[k, k + 1]`` (the estimators'
    encoder maps raw values there with the fitted bin edges). The encoding of
    position ``u`` has one component per bin, ``clip(u - k, 0, 1)``: 1 for
    the bins below ``u``, the fraction of its own bin covered, 0 above.
    Features with fewer bins than the widest have zeros in the extra
    components.

    Parameters
    ----------
    n_bins : sequence of int
        Number of bins of each feature (0 for a constant feature).
    embedding_dim : int
    missing_positions : sequence of float, optional
        Where each feature's missing value (a NaN position) starts: it is
        embedded as that position (the estimators give the median's) plus
        an offset of the layer's output learned per feature, zero at first.
        Without it, a NaN position is a ``ValueError``.

    Attributes
    ----------
    output_dim : int
        ``len(n_bins) * embedding_dim``.
    missing_offsets : Parameter of shape (n_features, embedding_dim) or None
        The learned offsets of missing values, with ``missing_positions``.

    Examples
    --------
    >>> import torch
    >>> from skmtl.nn import PiecewiseLinearEmbedding
    >>> _ = torch.manual_seed(0)
    >>> embedding = PiecewiseLinearEmbedding([4, 2], embedding_dim=3)  # 4 and 2 bins
    >>> embedding(torch.tensor([[2.5, 1.0], [0.0, 2.0]])).shape
    torch.Size([2, 6])
    >>> past_the_last_bin = torch.tensor([[9.0, 5.0]])  # encoded as the last bin's end
    >>> torch.equal(embedding(past_the_last_bin), embedding(torch.tensor([[4.0, 2.0]])))
    True
    >>> learning_missing = PiecewiseLinearEmbedding([4, 2], 3, missing_positions=[2.0, 1.0])
    >>> torch.equal(learning_missing(torch.tensor([[float("nan"), 1.0]])),
    ...             learning_missing(torch.tensor([[2.0, 1.0]])))  # before any training
    True
    """

    def __init__(self, n_bins, embedding_dim, missing_positions=None):
        super().__init__()
        n_bins = [int(b) for b in n_bins]
        if any(b < 0 for b in n_bins):
            raise ValueError(f"bin counts must be >= 0, got {n_bins}")
        width = max(n_bins + [1])
        self.n_features = len(n_bins)
        # The bins' lower ends and the per-feature layer: forward reads the layer's
        # weight and bias itself (see there); both stay the state of saved models.
        # (not torch.arange: on the meta device, where load builds it first, that
        # imports torch._dynamo, two seconds)
        self.register_buffer("bin_starts", torch.tensor([float(i) for i in range(width)],
                                                        dtype=torch.float32))
        self.linear = _PerFeatureLinear(self.n_features, width, int(embedding_dim))
        # Each feature's last position. Not in the state_dict: it comes from n_bins,
        # and models saved before it existed must load.
        self.register_buffer("last_positions", torch.tensor(n_bins, dtype=torch.float32),
                             persistent=False)
        self.output_dim = self.n_features * int(embedding_dim)
        self.missing_offsets = None
        if missing_positions is not None:
            # (checked as Python numbers: a module may be built on the meta device)
            missing_positions = [float(p) for p in missing_positions]
            if len(missing_positions) != self.n_features or \
                    not all(math.isfinite(p) for p in missing_positions):
                raise ValueError(f"missing_positions must hold one finite position per "
                                 f"feature; got {missing_positions}")
            # from the estimator's configuration, as n_bins: not in the state_dict
            self.register_buffer("missing_positions", torch.tensor(missing_positions),
                                 persistent=False)
            self.missing_offsets = nn.Parameter(torch.zeros(self.n_features,
                                                            int(embedding_dim)))

    def __setstate__(self, state):
        super().__setstate__(state)
        if "missing_offsets" not in self._parameters:  # pickled before missing values
            self.__dict__.setdefault("missing_offsets", None)

    def forward(self, positions):
        """Embed ``(batch, n_features)`` bin positions."""
        if positions.shape[-1] != self.n_features:  # one column would broadcast
            raise ValueError(f"expected {self.n_features} features; got {positions.shape[-1]}")
        # The encoding is 1 on the bins below the position's bin k, the fraction
        # u - k on bin k and 0 above, so its product with a feature's weight is
        # the sum of the weight's rows below k plus the fraction of row k: a
        # linear interpolation between two rows of the rows' running sums.
        # Two row lookups instead of a batched product over every bin, which
        # for a few features of narrow embeddings costs ten times more on CPU.
        weight, bias = self.linear.weight, self.linear.bias    # (F, W, d), (F, 1, d)
        n_features, width, dim = weight.shape
        if self.missing_offsets is not None:
            missing = torch.isnan(positions)
            positions = torch.where(missing, self.missing_positions, positions)
        sums = torch.cat([weight.new_zeros(n_features, 1, dim), weight.cumsum(dim=1)], dim=1)
        positions = torch.minimum(positions, self.last_positions)  # past its last bin: the end
        lower = positions.floor().clamp(0.0, width - 1.0)
        fraction = (positions - lower).clamp(0.0, 1.0).unsqueeze(-1)
        rows = lower.long() + torch.arange(n_features, device=positions.device) * (width + 1)
        try:
            below, above = _gather_rows(sums.reshape(-1, dim),
                                        torch.stack([rows, rows + 1]).reshape(-1)).view(
                2, *positions.shape, dim)
        except IndexError:  # checked only here: the check would cost every batch a pass
            if torch.isnan(positions).any():
                raise ValueError("positions hold NaN: build the embedding with "
                                 "missing_positions to embed missing values") from None
            raise
        embedded = torch.lerp(below, above, fraction) + bias.transpose(0, 1)
        if self.missing_offsets is not None:
            embedded = torch.addcmul(embedded, missing.unsqueeze(-1).to(embedded.dtype),
                                     self.missing_offsets)
        return torch.relu(embedded).reshape(positions.shape[0], n_features * dim)


class PeriodicEmbedding(nn.Module):
    """Learned periodic features of each feature, then a linear layer and ReLU per feature.

    Feature ``x`` becomes ``[cos(2 pi c x), sin(2 pi c x)]`` for
    ``n_frequencies`` learned frequencies ``c``, initialised from
    ``N(0, sigma^2)`` (the "PLR" embedding of the paper). Inputs on a scale
    of about 1 suit the default ``sigma``.

    Parameters
    ----------
    n_features : int
    embedding_dim : int
    n_frequencies : int, default=16
    sigma : float, default=0.5
        Scale of the initial frequencies: larger fits finer detail.

    Attributes
    ----------
    output_dim : int
        ``n_features * embedding_dim``.

    Examples
    --------
    >>> import torch
    >>> from skmtl.nn import PeriodicEmbedding
    >>> _ = torch.manual_seed(0)
    >>> embedding = PeriodicEmbedding(3, embedding_dim=4, n_frequencies=8)
    >>> embedding.frequencies.shape, embedding.output_dim
    (torch.Size([3, 8]), 12)
    >>> embedding(torch.randn(5, 3)).shape
    torch.Size([5, 12])
    """

    def __init__(self, n_features, embedding_dim, n_frequencies=16, sigma=0.5):
        super().__init__()
        if int(n_features) < 1 or int(embedding_dim) < 1 or int(n_frequencies) < 1:
            raise ValueError(f"n_features, embedding_dim and n_frequencies must be >= 1; got "
                             f"{n_features}, {embedding_dim}, {n_frequencies}")
        self.n_features = int(n_features)
        # (in place: randn * sigma imports torch._dynamo on the meta device, two seconds)
        self.frequencies = nn.Parameter(
            torch.randn(self.n_features, int(n_frequencies)).mul_(sigma))
        self.linear = _PerFeatureLinear(self.n_features, 2 * int(n_frequencies),
                                        int(embedding_dim))
        self.output_dim = self.n_features * int(embedding_dim)

    def forward(self, x):
        """Embed ``(batch, n_features)`` values."""
        if x.shape[-1] != self.n_features:  # one column would broadcast
            raise ValueError(f"expected {self.n_features} features; got {x.shape[-1]}")
        angles = (2.0 * math.pi) * x.unsqueeze(-1) * self.frequencies
        return self.linear(torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1))
