import math

import numpy as np
import pytest
import torch
import torchaudio

from tts_lab.audio.features import FeatureConfig, LogMel


def sine(freq: float, seconds: float, rate: int, amp: float = 1.0) -> torch.Tensor:
    t = torch.arange(int(seconds * rate), dtype=torch.float64) / rate
    return (amp * torch.sin(2 * math.pi * freq * t)).float()


def test_frame_count_and_layout():
    cfg = FeatureConfig()
    mel = LogMel(cfg)(torch.zeros(22050))
    assert mel.shape == (22050 // cfg.hop_length + 1, cfg.n_mels)  # time-major, centred frames


def test_silence_is_log_floor():
    cfg = FeatureConfig(log_floor=1e-5)
    mel = LogMel(cfg)(torch.zeros(4096))
    assert torch.allclose(mel, torch.full_like(mel, math.log(1e-5)))
    assert cfg.silence_level == pytest.approx(math.log(1e-5))


@pytest.mark.parametrize("freq", [300.0, 1000.0, 4000.0])
def test_sine_peaks_in_the_mel_band_of_its_frequency(freq):
    cfg = FeatureConfig()
    mel = LogMel(cfg)(sine(freq, 0.5, cfg.sample_rate))
    peak_bin = int(mel[5:-5].mean(0).argmax())
    # Centre frequencies of the mel filters, from torchaudio's own scale conversion.
    edges = torchaudio.functional.melscale_fbanks(cfg.n_fft // 2 + 1, cfg.f_min, cfg.f_max, cfg.n_mels, cfg.sample_rate, cfg.mel_norm, cfg.mel_scale)
    centre = float(torch.fft.rfftfreq(cfg.n_fft, 1 / cfg.sample_rate)[edges[:, peak_bin].argmax()])
    assert abs(centre - freq) / freq < 0.1


def test_magnitude_matches_an_independent_numpy_stft():
    """power=1: mel energy = filterbank . |STFT|; check |STFT| of one frame against numpy's FFT."""
    cfg = FeatureConfig()
    wave = sine(1000.0, 0.25, cfg.sample_rate, amp=0.5)
    frame = 10
    seg = wave.numpy()[frame * cfg.hop_length - cfg.n_fft // 2 : frame * cfg.hop_length + cfg.n_fft // 2]
    spec = np.abs(np.fft.rfft(seg * np.hanning(cfg.n_fft + 1)[:-1]))  # periodic Hann, as torch.hann_window
    fb = torchaudio.functional.melscale_fbanks(cfg.n_fft // 2 + 1, cfg.f_min, cfg.f_max, cfg.n_mels, cfg.sample_rate, cfg.mel_norm, cfg.mel_scale).numpy()
    expected = np.log(np.maximum(spec @ fb, cfg.log_floor))
    got = LogMel(cfg)(wave)[frame].numpy()
    assert np.allclose(got, expected, atol=5e-3)  # float32 vs float64 in near-empty bins


def test_fingerprint_changes_with_any_field_and_round_trips():
    cfg = FeatureConfig()
    assert cfg.fingerprint() == FeatureConfig().fingerprint()
    assert cfg.fingerprint() != FeatureConfig(hop_length=200).fingerprint()
    assert cfg.fingerprint() != FeatureConfig(f_max=7600.0).fingerprint()
    assert FeatureConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("kwargs", [dict(hop_length=0), dict(win_length=2048), dict(f_max=20000.0), dict(f_min=9000.0)])
def test_invalid_configs_are_refused(kwargs):
    with pytest.raises(ValueError):
        FeatureConfig(**kwargs)
