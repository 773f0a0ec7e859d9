"""Log-mel -> waveform with torchaudio's InverseMelScale + GriffinLim, so any model output can be listened to."""

from __future__ import annotations

import torch
import torchaudio
from torch import nn

from tts_lab.audio.features import FeatureConfig


class GriffinLim(nn.Module):
    """Invert a log-mel spectrogram made with ``config``.

    Input (..., frames, n_mels) log-mel; output (..., samples) with samples = (frames - 1) * hop_length.
    The phase is estimated by ``n_iter`` Griffin-Lim iterations (momentum 0.99), so quality is "good enough to
    hear what the model does", not a vocoder's.
    """

    def __init__(self, config: FeatureConfig, n_iter: int = 32) -> None:
        super().__init__()
        self.config = config
        n_stft = config.n_fft // 2 + 1
        self.inverse_mel = torchaudio.transforms.InverseMelScale(
            n_stft=n_stft,
            n_mels=config.n_mels,
            sample_rate=config.sample_rate,
            f_min=config.f_min,
            f_max=config.f_max,
            norm=config.mel_norm,
            mel_scale=config.mel_scale,
        )
        self.griffin_lim = torchaudio.transforms.GriffinLim(
            n_fft=config.n_fft,
            n_iter=n_iter,
            win_length=config.win_length,
            hop_length=config.hop_length,
            window_fn=config.window_fn,
            power=config.power,
            momentum=0.99,
            rand_init=False,  # deterministic output
        )

    @torch.no_grad()
    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        frames = log_mel.shape[-2]
        # The centred STFT inside Griffin-Lim reflect-pads n_fft/2 samples, so it needs a few frames more than a
        # decoder that stops at once may give: pad with silence, then cut the audio back to its true length.
        short = max(0, self.config.n_fft // (2 * self.config.hop_length) + 2 - frames)
        if short:
            pad = log_mel.new_full((*log_mel.shape[:-2], short, log_mel.shape[-1]), self.config.silence_level)
            log_mel = torch.cat([log_mel, pad], dim=-2)
        mel = torch.exp(log_mel.float()).transpose(-1, -2)  # (..., n_mels, frames), undo the log
        spec = self.inverse_mel(mel).clamp(min=0)  # (..., n_stft, frames)
        return self.griffin_lim(spec)[..., : max(frames - 1, 0) * self.config.hop_length]
