import pytest
import torch

from tts_lab.data.postnet_transforms import degrade
from tts_lab.metrics.spectral import FrameWasserstein, GVRatio, MelL1


def _mels(b=2, t=30, f=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, t, f, generator=g)


def test_gv_ratio_identical_and_smoothed():
    target = _mels()
    lengths = torch.tensor([30, 21])
    m = GVRatio(n_mels=8)
    m.update(target, target, lengths)
    torch.testing.assert_close(m.compute(), torch.tensor(1.0))
    m = GVRatio(n_mels=8)
    blurry = torch.stack([degrade(x, noise_std=0.0) for x in target])
    m.update(blurry, target, lengths)
    assert m.compute() < 0.6


def test_gv_ratio_pools_frames_across_updates():
    pred, target = _mels(seed=1), _mels(seed=2)
    lengths = torch.tensor([30, 17])
    single = GVRatio(n_mels=8)
    single.update(pred, target, lengths)
    split = GVRatio(n_mels=8)
    split.update(pred[:1], target[:1], lengths[:1])
    split.update(pred[1:], target[1:], lengths[1:])
    torch.testing.assert_close(split.compute(), single.compute())
    # pooled, not a mean of per-update ratios
    a, b = GVRatio(n_mels=8), GVRatio(n_mels=8)
    a.update(pred[:1], target[:1], lengths[:1])
    b.update(pred[1:], target[1:], lengths[1:])
    assert not torch.isclose(single.compute(), (a.compute() + b.compute()) / 2)
    split.reset()
    with pytest.warns(UserWarning), pytest.raises(RuntimeError):
        split.compute()


def test_mel_l1_masks_padding():
    target = torch.zeros(2, 5, 4)
    pred = torch.zeros(2, 5, 4)
    pred[0, :3] = 1.0  # valid frames of utterance 0
    pred[:, 3:] = 100.0  # padding of utterance 0 (and partly 1): must be ignored
    m = MelL1()
    m.update(pred, target, torch.tensor([3, 3]))
    torch.testing.assert_close(m.compute(), torch.tensor(0.5))
    m.update(pred, target, None)  # no lengths: everything counts
    assert m.compute() > 10


@pytest.mark.parametrize("method", ["sliced", "sinkhorn"])
def test_frame_wasserstein_zero_and_monotone(method):
    target = _mels(b=3, t=40, f=6)
    lengths = torch.tensor([40, 35, 25])

    def dist(shift):
        m = FrameWasserstein(method=method, n_projections=32, max_frames=80)
        half = 2
        m.update(target[:half] + shift, target[:half], lengths[:half])  # two updates: list states
        m.update(target[half:] + shift, target[half:], lengths[half:])
        return m.compute().item()

    assert abs(dist(0.0)) < 1e-6
    d = [dist(s) for s in (0.5, 1.0, 2.0)]
    assert 0 < d[0] < d[1] < d[2]


def test_frame_wasserstein_subsample_ignores_the_order_frames_arrive_in():
    # More frames than max_frames: the subsample must not depend on batch order or on how ranks shared the data.
    pred, target = _mels(b=4, t=50, f=6, seed=1), _mels(b=4, t=50, f=6, seed=2)

    def dist(order):
        m = FrameWasserstein(n_projections=16, max_frames=60)
        for b in order:
            m.update(pred[b : b + 1], target[b : b + 1])
        return m.compute().item()

    assert dist([0, 1, 2, 3]) == dist([3, 1, 0, 2]) == dist([2, 3, 1, 0])
    full = FrameWasserstein(n_projections=16, max_frames=1000)
    full.update(pred, target)
    assert dist([0, 1, 2, 3]) != full.compute().item()  # it did subsample


def test_frame_wasserstein_sees_collapsed_distribution():
    # Same L1 to the target, but one prediction collapses every frame to the mean: OT sees it.
    target = _mels(b=1, t=200, f=4, seed=3)
    collapsed = target.mean(dim=1, keepdim=True).expand_as(target)
    shuffled = target[:, torch.randperm(200, generator=torch.Generator().manual_seed(0))]
    scores = []
    for pred in (collapsed, shuffled):
        m = FrameWasserstein()
        m.update(pred, target)
        scores.append(m.compute().item())
    assert scores[1] < 1e-6 < scores[0]


def test_gv_ratio_states_are_allocated_up_front():
    # A DDP rank that never updates must still hold (n_mels,) states to sync with the others.
    m = GVRatio(n_mels=6)
    assert m.pred_sum.shape == (6,) and m.target_sq.shape == (6,)
    with pytest.raises(ValueError, match="n_mels=6"):
        m.update(torch.zeros(1, 3, 5), torch.zeros(1, 3, 5))


def test_frame_wasserstein_empty_rank_syncs_with_frame_size():
    # Simulate the gather of a rank that saw nothing: its placeholder must be (0, n_mels), not 1-D.
    m = FrameWasserstein(n_mels=6)
    seen = []
    m._sync_dist(dist_sync_fn=lambda t, group=None: seen.append(t.shape) or [t])
    assert seen == [(0, 6), (0, 6)]
