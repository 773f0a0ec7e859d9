import numpy as np
import pytest
import soundfile as sf
import torch

from tts_lab.audio.io import AudioError, load_audio, save_audio


def tone(rate: int, seconds: float = 0.2) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return 0.5 * np.sin(2 * np.pi * 440 * t)


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT"])
def test_bit_depths_load_as_float(tmp_path, subtype):
    path = tmp_path / "x.wav"
    sf.write(path, tone(16000), 16000, subtype=subtype)
    wave = load_audio(path, 16000)
    assert wave.dtype == torch.float32 and wave.shape == (3200,)
    assert np.allclose(wave.numpy(), tone(16000), atol=1e-2)  # 8-bit is coarse


def test_stereo_is_downmixed(tmp_path):
    path = tmp_path / "st.wav"
    left = tone(16000)
    sf.write(path, np.stack([left, -left * 0 + 0.25], axis=1), 16000)
    wave = load_audio(path, 16000)
    assert np.allclose(wave.numpy(), (left + 0.25) / 2, atol=1e-4)


def test_other_rates_are_resampled(tmp_path):
    path = tmp_path / "r.wav"
    sf.write(path, tone(16000, 1.0), 16000)
    wave = load_audio(path, 22050)
    assert abs(wave.shape[0] - 22050) <= 1
    spectrum = np.abs(np.fft.rfft(wave.numpy()))
    assert abs(np.argmax(spectrum) * 22050 / wave.shape[0] - 440) < 3  # pitch kept


def test_bad_files_raise_audio_error_naming_the_file(tmp_path):
    missing = tmp_path / "missing.wav"
    with pytest.raises(AudioError, match="missing.wav: file not found"):
        load_audio(missing, 16000)
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises(AudioError, match="garbage.wav: unreadable audio"):
        load_audio(garbage, 16000)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0), 16000)
    with pytest.raises(AudioError, match="empty.wav: zero-length audio"):
        load_audio(empty, 16000)


def test_save_round_trip_and_peak_limit(tmp_path):
    path = tmp_path / "out" / "y.wav"
    save_audio(path, torch.tensor(tone(8000)) * 4, 8000)  # peak 2.0: scaled, not wrapped
    data, rate = sf.read(path)
    assert rate == 8000 and abs(np.abs(data).max() - 1.0) < 1e-3
