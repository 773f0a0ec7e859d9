import pytest
import torch

from tts_lab.models.unet import UNet


@pytest.mark.parametrize("shape", [(2, 37, 80), (1, 13, 20), (1, 1, 3), (1, 64, 64)])
def test_full_length_inference_keeps_exact_shape(shape):
    net = UNet(base_channels=4, depth=4).eval()
    with torch.no_grad():
        assert net(torch.randn(shape)).shape == shape


def test_4d_input_and_non_residual():
    net = UNet(in_channels=1, out_channels=1, base_channels=4, depth=2, residual=False, norm="batch")
    x = torch.randn(2, 1, 9, 11)
    assert net(x).shape == (2, 1, 9, 11)


def test_residual_output_is_input_plus_correction():
    torch.manual_seed(0)
    net = UNet(base_channels=4, depth=3).eval()
    x = torch.randn(1, 16, 24)
    with torch.no_grad():
        # N(0, 0.02) init: the untrained correction is small next to the input
        assert (net(x) - x).abs().mean() < 0.5 * x.abs().mean()


def test_is_fully_convolutional_per_frame():
    # Far from the padded edge, a frame's output does not depend on how much signal follows it.
    torch.manual_seed(0)
    net = UNet(base_channels=4, depth=2, norm="none").eval()
    x = torch.randn(1, 40, 16)
    with torch.no_grad():
        full, part = net(x), net(x[:, :32])
    torch.testing.assert_close(full[:, :16], part[:, :16])


def test_residual_needs_matching_channels():
    with pytest.raises(ValueError):
        UNet(in_channels=1, out_channels=2, residual=True)
