"""Tacotron encoders: text (Tacotron 1 CBHG, Tacotron 2 conv + BiLSTM) and a pyramidal mel encoder.

Every encoder maps ``(x, lengths)`` to ``(memory (B, T_enc, out_dim), memory_lengths (B,))`` and exposes
``input_type`` ("text": x is (B, T) int64 symbol ids; "mel": x is (B, T, n_mels)), ``time_reduction`` (input steps per
memory step) and ``out_dim``. Memory is exactly zero on padded steps.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from tts_lab.models.tacotron.decoder import Prenet
from tts_lab.models.tacotron.utils import lengths_to_mask


def run_packed(rnn: nn.RNNBase, x: Tensor, lengths: Tensor) -> Tensor:
    """Run a batch-first RNN over (B, T, C) so that padding never enters the backward direction; pads with zeros."""
    packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
    out, _ = rnn(packed)
    return pad_packed_sequence(out, batch_first=True, total_length=x.size(1))[0]  # (B, T, H)


class Highway(nn.Module):
    """Highway layer: ``y = relu(W x) * g + x * (1 - g)`` with gate ``g = sigmoid(W_g x)``, biased towards carry."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.transform = nn.Linear(dim, dim)
        self.gate = nn.Linear(dim, dim)
        nn.init.constant_(self.gate.bias, -1.0)  # start close to identity, as in Srivastava et al.

    def forward(self, x: Tensor) -> Tensor:
        g = torch.sigmoid(self.gate(x))
        return F.relu(self.transform(x)) * g + x * (1 - g)


class CBHG(nn.Module):
    """Convolution bank + highway + bidirectional GRU (Tacotron 1); summarises n-gram-like context.

    Bank of 1-D convs of widths 1..K stacked on channels -> max-pool (width 2, stride 1) -> two conv projections
    (the last back to ``in_dim``) -> residual with the input -> highway layers -> BiGRU.

    Args:
        in_dim: input channels.
        K: widest conv in the bank.
        bank_channels: channels per bank conv.
        projection_channels: channels of the first projection conv.
        highway_dim: highway size (a linear layer maps ``in_dim`` to it when they differ).
        n_highway: number of highway layers.
        gru_dim: GRU size per direction; ``out_dim = 2 * gru_dim``.

    Shapes: (B, T, in_dim), lengths (B,) -> (B, T, out_dim), zero on padded frames.
    """

    def __init__(
        self,
        in_dim: int,
        K: int = 16,
        bank_channels: int = 128,
        projection_channels: int = 128,
        highway_dim: int = 128,
        n_highway: int = 4,
        gru_dim: int = 128,
    ) -> None:
        super().__init__()
        self.bank = nn.ModuleList(
            nn.Sequential(
                nn.Conv1d(in_dim, bank_channels, k, padding=k // 2, bias=False), nn.BatchNorm1d(bank_channels)
            )
            for k in range(1, K + 1)
        )
        self.pool = nn.MaxPool1d(2, stride=1, padding=1)
        self.projections = nn.ModuleList(
            nn.Sequential(nn.Conv1d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm1d(c_out))
            for c_in, c_out in [(K * bank_channels, projection_channels), (projection_channels, in_dim)]
        )
        self.pre_highway = nn.Linear(in_dim, highway_dim, bias=False) if in_dim != highway_dim else nn.Identity()
        self.highways = nn.Sequential(*(Highway(highway_dim) for _ in range(n_highway)))
        self.gru = nn.GRU(highway_dim, gru_dim, batch_first=True, bidirectional=True)
        self.out_dim = 2 * gru_dim

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        time = x.size(1)
        mask = lengths_to_mask(lengths, time).unsqueeze(1).to(x.dtype)  # (B, 1, T); re-zero padding after each conv
        y = x.transpose(1, 2) * mask  # (B, in_dim, T)
        # Even widths give T + 1 outputs with symmetric padding: crop back to T.
        bank = torch.cat([F.relu(conv(y)[..., :time]) for conv in self.bank], dim=1) * mask  # (B, K * bank, T)
        pooled = self.pool(bank)[..., :time] * mask
        projected = F.relu(self.projections[0](pooled)) * mask  # (B, projection_channels, T)
        projected = self.projections[1](projected) * mask  # (B, in_dim, T)
        h = self.highways(self.pre_highway((projected + y).transpose(1, 2)))  # (B, T, highway_dim), residual
        return run_packed(self.gru, h, lengths)  # (B, T, 2 * gru_dim)


class CBHGTextEncoder(nn.Module):
    """Tacotron 1 text encoder: embedding -> prenet -> CBHG.

    Args:
        n_symbols: vocabulary size.
        embedding_dim: symbol embedding size.
        prenet_dims: encoder prenet sizes (dropout only while training, see :class:`Prenet`).
        prenet_dropout: encoder prenet dropout.
        K, bank_channels, projection_channels, n_highway, gru_dim: see :class:`CBHG`; ``out_dim = 2 * gru_dim``.
    """

    input_type = "text"
    time_reduction = 1

    def __init__(
        self,
        n_symbols: int,
        embedding_dim: int = 256,
        prenet_dims: Sequence[int] = (256, 128),
        prenet_dropout: float = 0.5,
        K: int = 16,
        bank_channels: int = 128,
        projection_channels: int = 128,
        n_highway: int = 4,
        gru_dim: int = 128,
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_symbols, embedding_dim)
        self.prenet = Prenet(embedding_dim, prenet_dims, prenet_dropout, always_on=False)
        dim = self.prenet.out_dim
        self.cbhg = CBHG(dim, K, bank_channels, projection_channels, dim, n_highway, gru_dim)
        self.out_dim = self.cbhg.out_dim

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """x: (B, T) symbol ids, lengths: (B,) -> memory (B, T, out_dim), lengths (B,)."""
        return self.cbhg(self.prenet(self.embedding(x)), lengths), lengths


class ConvTextEncoder(nn.Module):
    """Tacotron 2 text encoder: embedding -> ``n_convs`` x (conv, batch norm, ReLU, dropout) -> BiLSTM.

    Args:
        n_symbols: vocabulary size.
        embedding_dim: symbol embedding size, also the conv channels.
        n_convs: number of conv layers.
        kernel_size: conv width (odd).
        hidden: output size; the BiLSTM has ``hidden // 2`` units per direction.
        dropout: dropout after each conv.
    """

    input_type = "text"
    time_reduction = 1

    def __init__(
        self,
        n_symbols: int,
        embedding_dim: int = 512,
        n_convs: int = 3,
        kernel_size: int = 5,
        hidden: int = 512,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if hidden % 2 or kernel_size % 2 == 0:
            raise ValueError(f"hidden must be even and kernel_size odd, got hidden={hidden}, kernel_size={kernel_size}")
        self.embedding = nn.Embedding(n_symbols, embedding_dim)
        self.convs = nn.ModuleList(
            nn.Sequential(
                nn.Conv1d(embedding_dim, embedding_dim, kernel_size, padding=kernel_size // 2, bias=False),
                nn.BatchNorm1d(embedding_dim),
                nn.ReLU(),
                nn.Dropout(dropout),
            )
            for _ in range(n_convs)
        )
        self.lstm = nn.LSTM(embedding_dim, hidden // 2, batch_first=True, bidirectional=True)
        self.out_dim = hidden

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """x: (B, T) symbol ids, lengths: (B,) -> memory (B, T, hidden), lengths (B,)."""
        mask = lengths_to_mask(lengths, x.size(1)).unsqueeze(1)  # (B, 1, T)
        y = self.embedding(x).transpose(1, 2).masked_fill(~mask, 0.0)  # (B, E, T)
        for conv in self.convs:
            y = conv(y).masked_fill(~mask, 0.0)  # keep padding from leaking into valid edges
        return run_packed(self.lstm, y.transpose(1, 2), lengths), lengths


class PyramidalMelEncoder(nn.Module):
    """Listen-Attend-Spell style pyramidal BiLSTM over mel frames (for autoencoding / voice conversion).

    ``n_layers`` BiLSTM layers; the last ``n_pyramid`` of them read pairs of adjacent outputs of the layer below
    concatenated on channels, halving time each (an odd length is padded with one zero frame; lengths become
    ``ceil(length / 2)``). Attention then runs over ``2 ** n_pyramid`` times fewer steps.

    Args:
        n_mels: mel channels of the input.
        hidden: output size of every layer (``hidden // 2`` units per direction).
        n_layers: number of BiLSTM layers.
        n_pyramid: how many of them halve time (``0 <= n_pyramid <= n_layers``).
        dropout: dropout between layers.
    """

    input_type = "mel"

    def __init__(self, n_mels: int = 80, hidden: int = 256, n_layers: int = 3, n_pyramid: int = 1,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if hidden % 2 or not 0 <= n_pyramid <= n_layers:
            raise ValueError(f"need even hidden and 0 <= n_pyramid <= n_layers, got {hidden}, {n_pyramid}, {n_layers}")
        self.pyramidal = [i >= n_layers - n_pyramid for i in range(n_layers)]
        in_dims = [(n_mels if i == 0 else hidden) * (2 if p else 1) for i, p in enumerate(self.pyramidal)]
        self.lstms = nn.ModuleList(nn.LSTM(d, hidden // 2, batch_first=True, bidirectional=True) for d in in_dims)
        self.dropout = nn.Dropout(dropout)
        self.time_reduction = 2**n_pyramid
        self.out_dim = hidden

    @staticmethod
    def halve(x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Concatenate adjacent frames: (B, T, C) -> (B, ceil(T / 2), 2C); lengths -> ceil(lengths / 2)."""
        if x.size(1) % 2:
            x = F.pad(x, (0, 0, 0, 1))  # one zero frame so pairs line up
        batch, time, channels = x.shape
        return x.reshape(batch, time // 2, 2 * channels), (lengths + 1) // 2

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """x: (B, T, n_mels), lengths: (B,) -> memory (B, ceil(T / 2**n_pyramid), hidden), lengths (B,)."""
        x = x.masked_fill(~lengths_to_mask(lengths, x.size(1)).unsqueeze(-1), 0.0)
        for i, (lstm, pyramidal) in enumerate(zip(self.lstms, self.pyramidal)):
            if pyramidal:
                x, lengths = self.halve(x, lengths)
            x = run_packed(lstm, x if i == 0 else self.dropout(x), lengths)  # (B, T_i, hidden)
        return x, lengths
