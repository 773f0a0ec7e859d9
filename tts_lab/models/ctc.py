"""CTC acoustic model: log-mel frames -> per-frame log-probabilities over tokens + blank."""

from __future__ import annotations

import torch
from torch import nn


class ConvFrontend(nn.Module):
    """1-D convolutions over time for local spectral context; ``log2(subsample)`` of them have stride 2.

    (B, T, n_mels) -> (B, ceil(T / subsample), channels)
    """

    def __init__(self, n_mels: int, channels: int, subsample: int = 4, kernel_size: int = 5) -> None:
        super().__init__()
        if subsample not in (1, 2, 4, 8):
            raise ValueError(f"subsample must be 1, 2, 4 or 8, got {subsample}")
        self.n_strided = subsample.bit_length() - 1
        layers: list[nn.Module] = []
        for i in range(max(self.n_strided, 1)):
            stride = 2 if i < self.n_strided else 1
            layers += [
                nn.Conv1d(n_mels if i == 0 else channels, channels, kernel_size, stride=stride, padding=kernel_size // 2),
                nn.BatchNorm1d(channels),
                nn.GELU(),
            ]
        self.layers = nn.Sequential(*layers)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        for _ in range(self.n_strided):  # each stride-2 conv with 'same' padding maps n -> ceil(n / 2)
            lengths = (lengths + 1) // 2
        return lengths

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.layers(mel.transpose(1, 2)).transpose(1, 2)  # (B, T, n_mels) -> (B, T', C)


class CTCAcousticModel(nn.Module):
    """Convolutional front end + bidirectional LSTM + linear classifier (Deep Speech 2 in miniature).

    Args:
        n_mels: input feature bins (linked from the feature config).
        n_tokens: output classes including the blank at index 0 (the tokenizer's ``vocab_size``).
        conv_channels: channels of the strided conv front end.
        hidden: LSTM hidden units per direction.
        num_layers: stacked BiLSTM layers.
        dropout: dropout between layers and before the classifier.
        subsample: time reduction of the conv front end (1, 2, 4 or 8); each output frame must be shorter than
            half a character for CTC to separate doubled letters.
    """

    def __init__(
        self,
        n_mels: int,
        n_tokens: int,
        conv_channels: int = 256,
        hidden: int = 256,
        num_layers: int = 3,
        dropout: float = 0.1,
        subsample: int = 4,
    ) -> None:
        super().__init__()
        self.n_tokens = n_tokens
        self.frontend = ConvFrontend(n_mels, conv_channels, subsample)
        self.rnn = nn.LSTM(
            conv_channels, hidden, num_layers=num_layers, batch_first=True, bidirectional=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(2 * hidden, n_tokens)

    def forward(self, mel: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """mel (B, T, n_mels), lengths (B,) -> log_probs (B, T', n_tokens) float32, out_lengths (B,)."""
        x = self.frontend(mel)  # (B, T', C)
        out_lengths = self.frontend.output_lengths(lengths).clamp(min=1, max=x.shape[1])
        packed = nn.utils.rnn.pack_padded_sequence(x, out_lengths.cpu(), batch_first=True, enforce_sorted=False)
        x, _ = self.rnn(packed)
        x, _ = nn.utils.rnn.pad_packed_sequence(x, batch_first=True, total_length=out_lengths.max().item())  # (B, T', 2H)
        logits = self.classifier(self.dropout(x))  # (B, T', n_tokens)
        # log_softmax in fp32: CTC's forward-backward sums many small probabilities (fp16/bf16-safe).
        return logits.float().log_softmax(dim=-1), out_lengths

    @torch.no_grad()
    def infer(self, mel: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Same as ``forward`` (CTC has no teacher forcing); kept for the uniform model interface."""
        return self.forward(mel, lengths)
