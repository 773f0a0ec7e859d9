import pytest
import torch
from torch import nn

from tts_lab.losses.adversarial import (
    clip_weights_,
    critic_loss,
    discriminator_loss,
    generator_adv_loss,
    gradient_penalty,
    wasserstein_estimate,
)
from tts_lab.models.discriminators import Critic, PatchDiscriminator
from tts_lab.models.unet import UNet


class LinearCritic(nn.Module):
    """f(x) = scale * <w, x> with ||w|| = 1: gradient norm is exactly |scale| everywhere."""

    def __init__(self, dim: int, scale: float) -> None:
        super().__init__()
        w = torch.randn(dim)
        self.w = nn.Parameter(scale * w / w.norm())

    def forward(self, x):  # (B, T, F) -> (B,)
        return x.flatten(1) @ self.w


def test_gan_losses_values():
    z = torch.zeros(4, 1, 3, 3)
    log2 = torch.log(torch.tensor(2.0))
    torch.testing.assert_close(generator_adv_loss(z, "bce"), log2)
    torch.testing.assert_close(discriminator_loss(z, z, "bce"), 2 * log2)
    torch.testing.assert_close(generator_adv_loss(z, "lsgan"), torch.tensor(1.0))
    torch.testing.assert_close(discriminator_loss(z, z, "lsgan", real_label=0.9), torch.tensor(0.81))
    # label smoothing: a real logit of logit(0.9) is now optimal
    real = torch.full((4,), 0.9).logit().requires_grad_()
    discriminator_loss(real, torch.full((4,), -20.0), "bce", real_label=0.9).backward()
    assert real.grad.abs().max() < 1e-6
    with pytest.raises(ValueError):
        generator_adv_loss(z, "hinge")


def test_wasserstein_terms():
    real, fake = torch.tensor([3.0, 5.0]), torch.tensor([1.0, 1.0])
    assert critic_loss(real, fake).item() == -3.0
    assert wasserstein_estimate(real, fake).item() == 3.0


def test_clip_weights():
    torch.manual_seed(0)
    critic = Critic(base_channels=4, norm="layer")
    with torch.no_grad():
        for p in critic.parameters():
            p.mul_(100)
    clip_weights_(critic, 0.01)
    assert all(p.abs().max() <= 0.01 for p in critic.parameters())
    assert any(p.abs().max() == 0.01 for p in critic.parameters())


def test_gradient_penalty_linear_critic():
    torch.manual_seed(0)
    real, fake = torch.randn(8, 5, 4), torch.randn(8, 5, 4)
    assert gradient_penalty(LinearCritic(20, 1.0), real, fake).item() < 1e-10
    gp = gradient_penalty(LinearCritic(20, 3.0), real, fake)
    torch.testing.assert_close(gp, torch.tensor(4.0))  # (3 - 1)^2


def test_gradient_penalty_under_bf16_autocast_trains_critic():
    torch.manual_seed(0)
    critic = Critic(in_channels=2, base_channels=4, n_layers=1)
    real, fake, cond = torch.randn(3, 16, 16), torch.randn(3, 16, 16), torch.randn(3, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        gp = gradient_penalty(critic, real, fake.requires_grad_(), condition=cond)
    assert gp.dtype == torch.float32 and gp.dim() == 0 and gp.item() > 0
    gp.backward()  # create_graph=True: the penalty reaches the critic's weights
    weights = [p for p in critic.parameters() if p.dim() > 1]  # biases do not affect grad_x
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in weights)
    assert fake.grad is None  # but not the generator


def test_one_adam_step_changes_generator_and_discriminator():
    torch.manual_seed(0)
    gen = UNet(base_channels=4, depth=2)
    disc = PatchDiscriminator(base_channels=4, n_layers=1)
    opt_g = torch.optim.Adam(gen.parameters(), lr=1e-3)
    opt_d = torch.optim.Adam(disc.parameters(), lr=1e-3)
    blurry, target = torch.randn(2, 16, 16), torch.randn(2, 16, 16)
    g0 = [p.detach().clone() for p in gen.parameters()]
    d0 = [p.detach().clone() for p in disc.parameters()]

    fake = gen(blurry)
    loss_d = discriminator_loss(disc(target, blurry), disc(fake.detach(), blurry), "bce", real_label=0.9)
    opt_d.zero_grad()
    loss_d.backward()
    opt_d.step()

    loss_g = (fake - target).abs().mean() + 0.1 * generator_adv_loss(disc(fake, blurry), "lsgan")
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()

    assert all(not torch.equal(p, q) for p, q in zip(disc.parameters(), d0))
    assert all(not torch.equal(p, q) for p, q in zip(gen.parameters(), g0))
