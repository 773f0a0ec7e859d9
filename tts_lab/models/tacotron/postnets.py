"""Postnets: Tacotron 2 residual conv postnet (mel -> refined mel) and Tacotron 1 CBHG (mel -> linear spectrogram).

Both take ``(mel (B, T, n_mels), lengths (B,) | None)``; with lengths, padded frames are zeroed before the convs
so that padding does not leak into valid frames.
"""

import torch
from torch import Tensor, nn

from tts_lab.models.tacotron.encoders import CBHG
from tts_lab.models.tacotron.utils import lengths_to_mask


def _full_lengths(x: Tensor) -> Tensor:
    return torch.full((x.size(0),), x.size(1), dtype=torch.long, device=x.device)


class ConvPostnet(nn.Module):
    """Tacotron 2 postnet: ``n_layers`` convs with batch norm (tanh on all but the last) predicting a residual.

    Args:
        n_mels: mel channels.
        channels: hidden conv channels.
        kernel_size: conv width (odd).
        n_layers: number of convs (>= 2).
        dropout: dropout after every conv.

    Shapes: (B, T, n_mels) -> (B, T, n_mels), returns ``mel + residual``.
    """

    def __init__(self, n_mels: int, channels: int = 512, kernel_size: int = 5, n_layers: int = 5,
                 dropout: float = 0.5) -> None:
        super().__init__()
        if n_layers < 2 or kernel_size % 2 == 0:
            raise ValueError(f"need n_layers >= 2 and odd kernel_size, got {n_layers}, {kernel_size}")
        dims = [n_mels] + [channels] * (n_layers - 1) + [n_mels]
        layers: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(zip(dims[:-1], dims[1:])):
            layers += [nn.Conv1d(c_in, c_out, kernel_size, padding=kernel_size // 2, bias=False), nn.BatchNorm1d(c_out)]
            if i < n_layers - 1:
                layers.append(nn.Tanh())
            layers.append(nn.Dropout(dropout))
        self.net = nn.Sequential(*layers)

    def forward(self, mel: Tensor, lengths: Tensor | None = None) -> Tensor:
        x = mel
        if lengths is not None:
            x = x.masked_fill(~lengths_to_mask(lengths, mel.size(1)).unsqueeze(-1), 0.0)
        residual = self.net(x.transpose(1, 2)).transpose(1, 2)  # (B, T, n_mels)
        return mel + residual


class CBHGLinearPostnet(nn.Module):
    """Tacotron 1 postnet: CBHG over mel frames, then a linear layer to linear-magnitude frames.

    Args:
        n_mels: mel channels of the input.
        n_linear: linear-spectrogram bins of the output (``n_fft // 2 + 1``).
        K, bank_channels, projection_channels, highway_dim, n_highway, gru_dim: see :class:`CBHG` (Tacotron 1
            defaults for the postnet).

    Shapes: (B, T, n_mels) -> (B, T, n_linear). Griffin-Lim lives in :mod:`tts_lab.audio`.
    """

    def __init__(
        self,
        n_mels: int,
        n_linear: int,
        K: int = 8,
        bank_channels: int = 128,
        projection_channels: int = 256,
        highway_dim: int = 128,
        n_highway: int = 4,
        gru_dim: int = 128,
    ) -> None:
        super().__init__()
        self.n_linear = n_linear
        self.cbhg = CBHG(n_mels, K, bank_channels, projection_channels, highway_dim, n_highway, gru_dim)
        self.proj = nn.Linear(self.cbhg.out_dim, n_linear)

    def forward(self, mel: Tensor, lengths: Tensor | None = None) -> Tensor:
        lengths = _full_lengths(mel) if lengths is None else lengths.clamp(max=mel.size(1))
        return self.proj(self.cbhg(mel, lengths))  # (B, T, n_linear)
