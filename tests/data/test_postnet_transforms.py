import math

import pytest
import torch

from tts_lab.data.postnet_transforms import MelNormalizer, degrade, sample_crop, silent_frames

SILENCE = math.log(1e-5)


def _logmel(t, f=10, seed=0, silent=()):
    """Bounded, log-mel-like values; frames in `silent` sit at the log floor."""
    g = torch.Generator().manual_seed(seed)
    mel = torch.rand(t, f, generator=g) * 6 - 7 + torch.linspace(1, -2, f)
    for s in silent:
        mel[s] = SILENCE
    return mel


def test_degrade_deterministic_and_shape():
    mel = _logmel(23)
    a = degrade(mel, generator=torch.Generator().manual_seed(7))
    b = degrade(mel, generator=torch.Generator().manual_seed(7))
    c = degrade(mel, generator=torch.Generator().manual_seed(8))
    assert a.shape == mel.shape and torch.equal(a, b) and not torch.equal(a, c)
    # blurrier: smaller frame-to-frame differences
    assert degrade(mel, noise_std=0).diff(dim=0).abs().mean() < 0.5 * mel.diff(dim=0).abs().mean()
    assert degrade(mel[:2], time_sigma=3.0).shape == (2, 10)  # shorter than the kernel radius
    assert degrade(torch.stack([mel, mel]), noise_std=0).shape == (2, 23, 10)


def test_normalizer_fit_range_and_round_trip():
    train = [_logmel(t, seed=i, silent=range(5)) for i, t in enumerate([50, 80, 33])]
    norm = MelNormalizer(n_mels=10).fit(iter(train))  # a one-shot iterator is enough
    assert bool(norm.fitted)
    allx = norm.normalize(torch.cat(train))
    assert allx.abs().max() <= 1.2
    assert (allx.abs() <= 1).float().mean() >= 0.99
    assert allx.abs().max() > 0.8  # uses the range, not squashed
    x = _logmel(17, seed=9)
    torch.testing.assert_close(norm.denormalize(norm.normalize(x)), x)
    restored = MelNormalizer(n_mels=10)
    restored.load_state_dict(norm.state_dict())
    torch.testing.assert_close(restored.normalize(x), norm.normalize(x))
    assert bool(restored.fitted)


def test_normalizer_subsampled_fit_close_to_full():
    train = [_logmel(100, seed=i) for i in range(10)]
    full = MelNormalizer(n_mels=10).fit(train)
    sub = MelNormalizer(n_mels=10).fit(train, max_frames=300)
    torch.testing.assert_close(sub.mean, full.mean)  # mean stays exact
    assert abs(sub.scale.item() / full.scale.item() - 1) < 0.05
    with pytest.raises(ValueError):
        MelNormalizer(n_mels=10).fit([])


def test_silent_frames():
    mel = _logmel(10, silent=[0, 1, 9])
    assert silent_frames(mel).tolist() == [True, True] + [False] * 7 + [True]


def test_sample_crop_property():
    size, max_silence = 8, 0.5
    found = 0
    for seed in range(200):
        g = torch.Generator().manual_seed(seed)
        total = int(torch.randint(4, 40, (), generator=g))
        length = int(torch.randint(1, total + 1, (), generator=g))
        silence = torch.rand(total, generator=g) < 0.4
        silence[length:] = True  # padding
        start = sample_crop(length, size, silence, max_silence, generator=g)
        if start is None:
            continue
        found += 1
        assert 0 <= start and start + size <= length
        assert silence[start : start + size].float().mean() <= max_silence
    assert 50 < found < 200  # non-vacuous: both outcomes occur


def test_sample_crop_edge_cases():
    g = torch.Generator().manual_seed(0)
    assert sample_crop(20, 8, torch.ones(20, dtype=torch.bool), generator=g) is None  # all silent
    assert sample_crop(5, 8, None, generator=g) is None  # shorter than a crop
    assert sample_crop(8, 8, None, generator=g) == 0
    starts = {sample_crop(30, 8, None, generator=g) for _ in range(200)}
    assert starts == set(range(23))  # uniform over every valid start
