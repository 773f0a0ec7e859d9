import pytest
import torch

from tts_lab.models.discriminators import Critic, PatchDiscriminator


@pytest.mark.parametrize("n_layers,size,out", [(3, 64, 6), (3, 24, 1), (2, 32, 6), (1, 16, 6)])
def test_conditional_patch_map_shape(n_layers, size, out):
    d = PatchDiscriminator(in_channels=2, base_channels=4, n_layers=n_layers)
    x = torch.randn(3, size, size)
    assert d(x, condition=x).shape == (3, 1, out, out)


def test_non_square_input():
    d = PatchDiscriminator(base_channels=4, norm="instance")
    assert d(torch.randn(2, 64, 80), torch.randn(2, 64, 80)).shape == (2, 1, 6, 8)


def test_conditional_requires_condition():
    d = PatchDiscriminator(in_channels=2, base_channels=4)
    with pytest.raises(ValueError, match="condition"):
        d(torch.randn(2, 32, 32))


def test_unconditional():
    d = PatchDiscriminator(in_channels=1, base_channels=4, norm="none")
    assert not d.conditional
    assert d(torch.randn(2, 32, 32)).shape == (2, 1, 2, 2)
    with pytest.raises(ValueError):
        d(torch.randn(2, 32, 32), condition=torch.randn(2, 32, 32))


def test_critic_has_no_batch_norm():
    c = Critic(base_channels=4, norm="layer")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in c.modules())
    assert c(torch.randn(2, 32, 32), torch.randn(2, 32, 32)).shape == (2, 1, 2, 2)
    with pytest.raises(ValueError):
        Critic(norm="batch")
