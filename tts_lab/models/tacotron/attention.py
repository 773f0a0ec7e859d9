"""Step-wise attention mechanisms for the Tacotron decoder.

Every mechanism has the same API, so the decoder can take any of them:

* ``query_dim`` / ``memory_dim`` attributes (checked by the decoder),
* ``process_memory(memory (B, T_enc, D)) -> processed_memory``: work done once per utterance (key projection),
* ``init_state(memory (B, T_enc, D), mask (B, T_enc)) -> state``: a ``dict[str, Tensor]`` that always holds
  ``"weights"`` (B, T_enc), the previous step's alignment,
* ``forward(query (B, Q), memory, processed_memory, mask, state) -> (context (B, D), weights (B, T_enc), state)``.

``mask`` is True on valid encoder steps. Weights are fp32, sum to 1 over valid steps and are exactly 0 on padding
(see :func:`~tts_lab.models.tacotron.utils.masked_softmax`), also under fp16/bf16 autocast.
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tts_lab.models.tacotron.utils import masked_softmax

AttentionState = dict[str, Tensor]


def _context(weights: Tensor, memory: Tensor) -> Tensor:
    """Weighted sum of memory: (B, T_enc) x (B, T_enc, D) -> (B, D)."""
    return torch.bmm(weights.unsqueeze(1).to(memory.dtype), memory).squeeze(1)


class ContentAttention(nn.Module):
    """Additive content-based attention (Bahdanau et al., 2015): ``e_j = v^T tanh(W q + V m_j)``.

    Args:
        query_dim: size of the query (the attention RNN state).
        memory_dim: size of each encoder step.
        attention_dim: size of the hidden energy space.
    """

    def __init__(self, query_dim: int, memory_dim: int, attention_dim: int = 128) -> None:
        super().__init__()
        self.query_dim = query_dim
        self.memory_dim = memory_dim
        self.query_layer = nn.Linear(query_dim, attention_dim, bias=False)
        self.memory_layer = nn.Linear(memory_dim, attention_dim, bias=False)
        self.v = nn.Linear(attention_dim, 1, bias=False)

    def process_memory(self, memory: Tensor) -> Tensor:
        """(B, T_enc, D) -> keys (B, T_enc, A)."""
        return self.memory_layer(memory)

    def init_state(self, memory: Tensor, mask: Tensor) -> AttentionState:
        return {"weights": memory.new_zeros(mask.shape, dtype=torch.float32)}

    def _energies(self, query: Tensor, processed_memory: Tensor, state: AttentionState) -> Tensor:
        keys = processed_memory + self.query_layer(query).unsqueeze(1)  # (B, T_enc, A)
        return self.v(torch.tanh(keys)).squeeze(-1)  # (B, T_enc)

    def forward(
        self, query: Tensor, memory: Tensor, processed_memory: Tensor, mask: Tensor, state: AttentionState
    ) -> tuple[Tensor, Tensor, AttentionState]:
        weights = masked_softmax(self._energies(query, processed_memory, state), mask)  # (B, T_enc)
        return _context(weights, memory), weights, {"weights": weights}


class LocationSensitiveAttention(ContentAttention):
    """Location-sensitive attention (Chorowski et al., 2015), the Tacotron 2 default.

    Adds convolutional features of the previous and the cumulative alignment to the additive energies; knowing where
    it attended so far pushes the alignment forward and keeps it from skipping or repeating.

    Args:
        query_dim: size of the query (the attention RNN state).
        memory_dim: size of each encoder step.
        attention_dim: size of the hidden energy space.
        n_filters: location-feature channels.
        kernel_size: width of the location convolution (odd, so it is centred).
    """

    def __init__(
        self, query_dim: int, memory_dim: int, attention_dim: int = 128, n_filters: int = 32, kernel_size: int = 31
    ) -> None:
        super().__init__(query_dim, memory_dim, attention_dim)
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd to keep alignments centred, got {kernel_size}")
        self.location_conv = nn.Conv1d(2, n_filters, kernel_size, padding=kernel_size // 2, bias=False)
        self.location_layer = nn.Linear(n_filters, attention_dim, bias=False)

    def init_state(self, memory: Tensor, mask: Tensor) -> AttentionState:
        zeros = memory.new_zeros(mask.shape, dtype=torch.float32)  # (B, T_enc)
        return {"weights": zeros, "cumulative": zeros.clone()}

    def _energies(self, query: Tensor, processed_memory: Tensor, state: AttentionState) -> Tensor:
        previous = torch.stack([state["weights"], state["cumulative"]], dim=1)  # (B, 2, T_enc), fp32
        previous = previous.to(self.location_conv.weight.dtype)
        location = self.location_layer(self.location_conv(previous).transpose(1, 2))  # (B, T_enc, A)
        keys = processed_memory + location + self.query_layer(query).unsqueeze(1)  # (B, T_enc, A)
        return self.v(torch.tanh(keys)).squeeze(-1)  # (B, T_enc)

    def forward(
        self, query: Tensor, memory: Tensor, processed_memory: Tensor, mask: Tensor, state: AttentionState
    ) -> tuple[Tensor, Tensor, AttentionState]:
        weights = masked_softmax(self._energies(query, processed_memory, state), mask)  # (B, T_enc)
        new_state = {"weights": weights, "cumulative": state["cumulative"] + weights}
        return _context(weights, memory), weights, new_state


class GMMAttention(nn.Module):
    """Gaussian-mixture location attention (Graves, 2013), in the softplus ("V2") form.

    The query predicts K mixture weights (softmax), step sizes and widths (softplus). Means only move forward,
    ``mu_t = mu_{t-1} + softplus(.)``, which makes the alignment monotonic and lets it generalise to long inputs.
    The mixture density is evaluated in the log domain and normalised over valid encoder steps, so a mean that runs
    past the end still gives a proper distribution (peaked on the last valid step) instead of 0/0.

    Args:
        query_dim: size of the query (the attention RNN state).
        memory_dim: size of each encoder step (the mechanism ignores content; kept for the shared API check).
        n_mixtures: number of Gaussians K.
        hidden_dim: size of the MLP that maps the query to mixture parameters.
        min_sigma: lower bound on the standard deviations (in encoder steps), for numerical safety.
    """

    def __init__(
        self, query_dim: int, memory_dim: int, n_mixtures: int = 5, hidden_dim: int = 128, min_sigma: float = 0.01
    ) -> None:
        super().__init__()
        self.query_dim = query_dim
        self.memory_dim = memory_dim
        self.n_mixtures = n_mixtures
        self.min_sigma = min_sigma
        self.mlp = nn.Sequential(nn.Linear(query_dim, hidden_dim), nn.Tanh(), nn.Linear(hidden_dim, 3 * n_mixtures))
        # Start with steps of ~1 encoder position and widths of a few positions, a sensible initial pace.
        with torch.no_grad():
            bias = self.mlp[-1].bias.view(3, n_mixtures)
            bias[1].fill_(math.log(math.e - 1.0))  # softplus^-1(1)
            bias[2].fill_(2.0)  # softplus(2) ~ 2.1

    def process_memory(self, memory: Tensor) -> Tensor:
        """Location-only: nothing to precompute, memory is passed through."""
        return memory

    def init_state(self, memory: Tensor, mask: Tensor) -> AttentionState:
        batch = mask.size(0)
        return {
            "weights": memory.new_zeros(mask.shape, dtype=torch.float32),  # (B, T_enc)
            "mu": memory.new_zeros(batch, self.n_mixtures, dtype=torch.float32),  # (B, K)
        }

    def forward(
        self, query: Tensor, memory: Tensor, processed_memory: Tensor, mask: Tensor, state: AttentionState
    ) -> tuple[Tensor, Tensor, AttentionState]:
        params = self.mlp(query).float()  # (B, 3K), fp32: exp/log below are sensitive
        w_hat, delta_hat, sigma_hat = params.chunk(3, dim=-1)  # each (B, K)
        log_w = torch.log_softmax(w_hat, dim=-1)
        mu = state["mu"] + F.softplus(delta_hat)  # (B, K), non-decreasing
        sigma = F.softplus(sigma_hat) + self.min_sigma  # (B, K)

        positions = torch.arange(mask.size(1), device=mask.device, dtype=torch.float32)  # (T_enc,)
        z = (positions.view(1, 1, -1) - mu.unsqueeze(-1)) / sigma.unsqueeze(-1)  # (B, K, T_enc)
        log_density = log_w.unsqueeze(-1) - torch.log(sigma).unsqueeze(-1) - 0.5 * z.pow(2)  # (B, K, T_enc)
        weights = masked_softmax(torch.logsumexp(log_density, dim=1), mask)  # (B, T_enc)
        return _context(weights, memory), weights, {"weights": weights, "mu": mu}
