"""Log-mel features: one config object shared by data, models and checkpoints.

Every cached feature file and every checkpoint records the `FeatureConfig` it was made with, so a model always
reads features the way it was trained (see `fingerprint`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Literal

import torch
import torchaudio
from torch import nn


@dataclass(frozen=True)
class FeatureConfig:
    """How audio becomes a log-mel spectrogram (Tacotron 2 defaults at 22.05 kHz).

    Args:
        sample_rate: every corpus is resampled to this rate before analysis.
        n_fft: FFT size.
        win_length: analysis window length in samples (``None`` = ``n_fft``).
        hop_length: frame shift in samples.
        window: analysis window type.
        n_mels: number of mel bands.
        f_min: lowest mel filter frequency in Hz.
        f_max: highest mel filter frequency in Hz (``None`` = Nyquist).
        power: 1.0 for magnitude, 2.0 for power spectrogram.
        mel_scale: "slaney" or "htk" mel scale.
        mel_norm: "slaney" area normalisation of the filters, or ``None``.
        log_floor: magnitudes are clamped to this before the log (log(1e-5) ~ -11.5 is silence).
    """

    sample_rate: int = 22050
    n_fft: int = 1024
    win_length: int | None = None
    hop_length: int = 256
    window: Literal["hann", "hamming"] = "hann"
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float | None = 8000.0
    power: float = 1.0
    mel_scale: Literal["slaney", "htk"] = "slaney"
    mel_norm: Literal["slaney"] | None = "slaney"
    log_floor: float = 1e-5

    def __post_init__(self) -> None:
        if self.hop_length <= 0 or self.n_fft <= 0 or self.n_mels <= 0 or self.sample_rate <= 0:
            raise ValueError(f"FeatureConfig sizes must be positive: {self}")
        if (self.win_length or self.n_fft) > self.n_fft:
            raise ValueError(f"win_length {self.win_length} exceeds n_fft {self.n_fft}")
        f_max = self.f_max if self.f_max is not None else self.sample_rate / 2
        if not 0 <= self.f_min < f_max <= self.sample_rate / 2:
            raise ValueError(f"need 0 <= f_min < f_max <= sample_rate/2, got {self.f_min}, {f_max}, {self.sample_rate}")

    @property
    def window_fn(self):
        """The torch window constructor named by ``window``."""
        return {"hann": torch.hann_window, "hamming": torch.hamming_window}[self.window]

    @property
    def silence_level(self) -> float:
        """The log-mel value of digital silence."""
        return float(torch.log(torch.tensor(self.log_floor)))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FeatureConfig:
        return cls(**d)

    def fingerprint(self) -> str:
        """A short stable hash: changes whenever any field changes (cache keys, checkpoint checks)."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha1(blob).hexdigest()[:12]


class LogMel(nn.Module):
    """Waveform -> log-mel spectrogram, time-major.

    Input: (..., samples) float waveform at ``config.sample_rate``.
    Output: (..., frames, n_mels) with frames = samples // hop_length + 1 (centred STFT).
    """

    def __init__(self, config: FeatureConfig) -> None:
        super().__init__()
        self.config = config
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=config.sample_rate,
            n_fft=config.n_fft,
            win_length=config.win_length,
            hop_length=config.hop_length,
            f_min=config.f_min,
            f_max=config.f_max,
            n_mels=config.n_mels,
            window_fn=config.window_fn,
            power=config.power,
            norm=config.mel_norm,
            mel_scale=config.mel_scale,
            center=True,
        )

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        mel = self.mel(wave.float())  # (..., n_mels, frames)
        return torch.log(torch.clamp(mel, min=self.config.log_floor)).transpose(-1, -2)  # (..., frames, n_mels)
