"""Global Style Tokens (Wang et al., 2018): a reference encoder attends over a bank of learned style embeddings."""

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from tts_lab.models.tacotron.encoders import run_packed
from tts_lab.models.tacotron.utils import lengths_to_mask


class ReferenceEncoder(nn.Module):
    """Summarises a reference mel into one vector: 2-D convs (3x3, stride 2, batch norm, ReLU) -> GRU final state.

    Args:
        n_mels: mel channels of the reference.
        conv_channels: channels of each conv; each halves time and frequency (ceil).
        gru_dim: GRU size = output size.

    Shapes: (B, T, n_mels), lengths (B,) | None -> (B, gru_dim).
    """

    def __init__(
        self, n_mels: int, conv_channels: Sequence[int] = (32, 32, 64, 64, 128, 128), gru_dim: int = 128
    ) -> None:
        super().__init__()
        channels = [1, *conv_channels]
        self.convs = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())
            for c_in, c_out in zip(channels[:-1], channels[1:])
        )
        freq = n_mels
        for _ in conv_channels:
            freq = (freq + 1) // 2
        self.gru = nn.GRU(channels[-1] * freq, gru_dim, batch_first=True)
        self.out_dim = gru_dim

    def forward(self, mel: Tensor, lengths: Tensor | None = None) -> Tensor:
        if lengths is None:
            lengths = torch.full((mel.size(0),), mel.size(1), dtype=torch.long, device=mel.device)
        x = mel.unsqueeze(1)  # (B, 1, T, n_mels)
        for conv in self.convs:
            x = conv(x.masked_fill(~lengths_to_mask(lengths, x.size(2))[:, None, :, None], 0.0))
            lengths = (lengths + 1) // 2  # stride 2, padding 1, kernel 3: ceil
        batch, channels, time, freq = x.shape
        x = x.permute(0, 2, 1, 3).reshape(batch, time, channels * freq)  # (B, T', C * F')
        out = run_packed(self.gru, x, lengths)  # (B, T', gru_dim)
        return out[torch.arange(batch, device=out.device), lengths - 1]  # last valid step, (B, gru_dim)


class GlobalStyleTokens(nn.Module):
    """Style embedding from multi-head attention of a reference embedding over ``n_tokens`` learned tokens.

    Args:
        ref_encoder: summarises the reference mel.
        n_tokens: number of style tokens.
        token_dim: size of the style embedding (output); each head works on ``token_dim // n_heads``.
        n_heads: attention heads.

    Shapes: reference (B, T, n_mels) -> style (B, token_dim).
    """

    def __init__(
        self, ref_encoder: ReferenceEncoder, n_tokens: int = 10, token_dim: int = 256, n_heads: int = 4
    ) -> None:
        super().__init__()
        if token_dim % n_heads:
            raise ValueError(f"token_dim={token_dim} must be divisible by n_heads={n_heads}")
        self.ref_encoder = ref_encoder
        self.n_tokens = n_tokens
        self.n_heads = n_heads
        self.token_dim = token_dim
        self.tokens = nn.Parameter(torch.randn(n_tokens, token_dim // n_heads) * 0.5)
        self.query = nn.Linear(ref_encoder.out_dim, token_dim, bias=False)
        self.key = nn.Linear(token_dim // n_heads, token_dim, bias=False)
        self.value = nn.Linear(token_dim // n_heads, token_dim, bias=False)

    def _heads(self, x: Tensor) -> Tensor:
        """(..., token_dim) -> (..., n_heads, token_dim // n_heads)."""
        return x.unflatten(-1, (self.n_heads, -1))

    def token_weights(self, reference: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Attention of the reference over the tokens: (B, T, n_mels) -> (B, n_heads, n_tokens)."""
        q = self._heads(self.query(self.ref_encoder(reference, lengths)))  # (B, h, d)
        k = self._heads(self.key(torch.tanh(self.tokens)))  # (N, h, d)
        scores = torch.einsum("bhd,nhd->bhn", q, k) / q.size(-1) ** 0.5
        return torch.softmax(scores.float(), dim=-1)  # (B, h, N)

    def from_weights(self, weights: Tensor) -> Tensor:
        """Style from token weights (B, n_heads, n_tokens) or (B, n_tokens) (shared by heads) -> (B, token_dim).

        Lets inference pick a style without a reference (e.g. uniform weights, or a one-hot token).
        """
        if weights.dim() == 2:
            weights = weights.unsqueeze(1).expand(-1, self.n_heads, -1)
        v = self._heads(self.value(torch.tanh(self.tokens)))  # (N, h, d)
        return torch.einsum("bhn,nhd->bhd", weights.to(v.dtype), v).flatten(1)  # (B, token_dim)

    def forward(self, reference: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self.from_weights(self.token_weights(reference, lengths))
