"""Reading and writing audio with soundfile; mono downmix and resampling with torchaudio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF


class AudioError(ValueError):
    """An audio file that cannot be used; the message names the file and why."""


def load_audio(path: str | Path, sample_rate: int) -> torch.Tensor:
    """Read any soundfile-supported file (8/16/24/32-bit PCM, float), downmix to mono, resample.

    Returns a float32 tensor of shape (samples,) in [-1, 1] at ``sample_rate``.
    Raises AudioError (never a library traceback) for missing, unreadable, truncated or empty files.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: file not found")
    try:
        data, file_rate = sf.read(str(path), dtype="float32", always_2d=True)  # (samples, channels)
    except (sf.LibsndfileError, RuntimeError, ValueError) as err:
        raise AudioError(f"{path}: unreadable audio: {err}") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path}: zero-length audio")
    if not np.isfinite(data).all():
        raise AudioError(f"{path}: audio contains NaN or infinite samples")
    wave = torch.from_numpy(data.mean(axis=1))  # (samples,)
    if file_rate != sample_rate:
        wave = AF.resample(wave, orig_freq=file_rate, new_freq=sample_rate)
    return wave.contiguous()


def save_audio(path: str | Path, wave: torch.Tensor, sample_rate: int) -> None:
    """Write a mono float waveform (samples,) as 16-bit PCM WAV, peak-limited to avoid clipping wrap."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = wave.detach().float().cpu().numpy().reshape(-1)
    peak = float(np.abs(data).max()) if data.size else 0.0
    if peak > 1.0:
        data = data / peak
    sf.write(str(path), data, sample_rate, subtype="PCM_16")
