import math

import torch

from tts_lab.audio.features import FeatureConfig, LogMel
from tts_lab.audio.griffin_lim import GriffinLim


def test_griffin_lim_length_and_spectral_fidelity():
    cfg = FeatureConfig(sample_rate=16000, n_fft=512, hop_length=128, n_mels=64, f_max=8000.0)
    t = torch.arange(8000) / 16000
    wave = 0.5 * torch.sin(2 * math.pi * 500 * t)
    mel = LogMel(cfg)(wave)  # (T, n_mels)
    audio = GriffinLim(cfg, n_iter=16)(mel)
    assert audio.shape == ((mel.shape[0] - 1) * cfg.hop_length,)
    # The reconstruction has the same spectral envelope where the energy is (bins within ~17 dB of the peak;
    # bins at the log floor only measure leakage, which the log scale magnifies).
    again = LogMel(cfg)(audio)[2:-2]
    ref = mel[2 : again.shape[0] + 2]
    loud = ref > ref.max() - 4
    assert (again - ref)[loud].abs().mean() < 0.5
    # ... and is a tone at 500 Hz, not noise.
    spectrum = torch.fft.rfft(audio).abs()
    assert abs(int(spectrum.argmax()) * 16000 / audio.shape[0] - 500) < 20


def test_griffin_lim_batched():
    cfg = FeatureConfig(sample_rate=16000, n_fft=512, hop_length=128, n_mels=64, f_max=8000.0)
    mel = torch.full((2, 20, 64), -5.0)
    assert GriffinLim(cfg, n_iter=2)(mel).shape == (2, 19 * 128)


def test_griffin_lim_handles_a_decoder_that_stops_at_once():
    cfg = FeatureConfig()
    vocoder = GriffinLim(cfg, n_iter=2)
    for frames in (1, 2, 3):
        assert vocoder(torch.full((frames, cfg.n_mels), -5.0)).shape == ((frames - 1) * cfg.hop_length,)
