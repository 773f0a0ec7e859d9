"""Postnet WGAN: the U-Net generator against a Wasserstein critic (weight clipping or gradient penalty).

    critic:     L_C = E[f(G(x) | x)] - E[f(y | x)]  (+ gp_weight * GP)     f: critic score map, averaged
    generator:  L_G = E|G(x) - y| + adversarial_weight * (-E[f(G(x) | x)])

The critic must be 1-Lipschitz for E[f(y)] - E[f(G(x))] to estimate the Wasserstein-1 distance (logged as
``train/wasserstein``). ``lipschitz`` selects how:

- ``clip`` (Arjovsky et al.): every critic weight is clamped to [-clip_value, clip_value] right after **every**
  critic step; use RMSprop, lr 5e-5 (see configs/postnet_wgan.yaml);
- ``gp`` (Gulrajani et al.): gradient penalty (||grad f(x_hat)|| - 1)^2 at random interpolates, weight 10,
  computed in fp32 with autocast off (`gradient_penalty`); the critic must have no batch norm; use Adam with
  betas (0.5, 0.9) (see configs/postnet_wgan_gp.yaml).

Each training batch is one critic step; every ``n_critic``-th critic step is followed by a generator step on the
same batch (so the critic sees ``n_critic`` fresh batches per generator update, as in the papers). DDP and mixed
precision as in `tts_lab.tasks.postnet_gan`. Validation, metrics, media and predictions are shared with it
(`tts_lab.tasks.postnet_common`).
"""

from __future__ import annotations

from typing import Literal

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.cli import OptimizerCallable
from torch import Tensor, nn

from tts_lab.audio.features import FeatureConfig
from tts_lab.data.postnet_transforms import MelNormalizer
from tts_lab.losses.adversarial import clip_weights_, critic_loss, gradient_penalty, wasserstein_estimate
from tts_lab.models.discriminators import Critic
from tts_lab.models.unet import UNet
from tts_lab.tasks import checkpoint
from tts_lab.tasks import postnet_common as common
from tts_lab.tasks.guard import NonFiniteGuard, load_guards, save_guards


class PostnetWGANTask(pl.LightningModule):
    """Args:
    generator: mel -> mel network (default `UNet()`).
    critic: scores (candidate, condition) (default conditional `Critic()`: no sigmoid, no batch norm).
    generator_optimizer, critic_optimizer: injected from the config.
    lipschitz: "clip" (weight clipping after every critic step) or "gp" (gradient penalty).
    clip_value: c of the weight clipping.
    gp_weight: lambda of the gradient penalty.
    n_critic: critic steps per generator step.
    adversarial_weight: lambda of the generator's adversarial term.
    generator_clip_val, critic_clip_val: gradient-norm clipping per network (None: off).
    features: linked from the data module (stored in the checkpoint and checked on load).
    ot_projections, ot_max_frames: the sliced-Wasserstein metric (see `SharpnessMetrics`).
    max_nonfinite: stop after this many non-finite losses in a row, per network (each one skips that network's
        backward and step, on every rank: ``train/skipped_nonfinite`` for G, ``train/skipped_nonfinite_critic``).
    """

    def __init__(
        self,
        generator: nn.Module | None = None,
        critic: nn.Module | None = None,
        generator_optimizer: OptimizerCallable = torch.optim.Adam,
        critic_optimizer: OptimizerCallable = torch.optim.Adam,
        lipschitz: Literal["clip", "gp"] = "gp",
        clip_value: float = 0.01,
        gp_weight: float = 10.0,
        n_critic: int = 5,
        adversarial_weight: float = 0.05,
        generator_clip_val: float | None = None,
        critic_clip_val: float | None = None,
        features: FeatureConfig = FeatureConfig(),
        ot_projections: int = 64,
        ot_max_frames: int = 4000,
        max_nonfinite: int = 5,
    ) -> None:
        super().__init__()
        if lipschitz not in ("clip", "gp"):
            raise ValueError(f"lipschitz must be 'clip' or 'gp', got {lipschitz!r}")
        if n_critic < 1 or clip_value <= 0 or gp_weight < 0 or adversarial_weight < 0:
            raise ValueError("need n_critic >= 1, clip_value > 0, gp_weight >= 0, adversarial_weight >= 0")
        self.automatic_optimization = False
        self.features = features
        self.generator = generator if generator is not None else UNet()
        self.critic = critic if critic is not None else Critic()
        if lipschitz == "gp" and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.critic.modules()):
            raise ValueError("the gradient penalty needs a critic without batch norm (per-sample gradients)")
        self.normalizer = MelNormalizer(features.n_mels)
        self.generator_optimizer, self.critic_optimizer = generator_optimizer, critic_optimizer
        self.lipschitz, self.clip_value, self.gp_weight = lipschitz, clip_value, gp_weight
        self.n_critic, self.adversarial_weight = n_critic, adversarial_weight
        self.generator_clip_val, self.critic_clip_val = generator_clip_val, critic_clip_val
        self.val_metrics = common.SharpnessMetrics(features.n_mels, ot_projections, ot_max_frames)
        self.test_metrics = common.SharpnessMetrics(features.n_mels, ot_projections, ot_max_frames)
        self.critic_steps = 0  # saved in checkpoints: the n_critic cycle continues across a resume
        self._clip_vals: dict[int, float | None] = {}
        self.g_guard = NonFiniteGuard(max_nonfinite)
        self.critic_guard = NonFiniteGuard(max_nonfinite, name="train/skipped_nonfinite_critic")

    def forward(self, mel: Tensor) -> Tensor:
        """(B, T, n_mels) raw log-mel -> polished raw log-mel of the same shape (as in training: batched)."""
        return self.normalizer.denormalize(self.generator(self.normalizer.normalize(mel)).float())

    @property
    def _conditional(self) -> bool:
        return bool(getattr(self.critic, "conditional", False))

    def _score(self, candidate: Tensor, condition: Tensor) -> Tensor:
        return self.critic(candidate, condition if self._conditional else None)

    # -- training ---------------------------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> None:
        common.require_fitted(self.normalizer)
        g_opt, c_opt = self.optimizers()
        x = self.normalizer.normalize(batch["input"])  # (N, crop, F) blurry
        y = self.normalizer.normalize(batch["target"])  # (N, crop, F) ground truth
        n = x.shape[0]
        generator_turn = (self.critic_steps + 1) % self.n_critic == 0
        with torch.set_grad_enabled(generator_turn):  # the generator's graph is only needed on its turn
            fake = self.generator(x)  # (N, crop, F)

        # Critic step. The anchor keeps DDP's reducer whole (see ddp_anchor).
        real_scores, fake_scores = self._score(y, x), self._score(fake.detach(), x)
        c_loss = critic_loss(real_scores, fake_scores)
        loss = c_loss
        if self.lipschitz == "gp":
            gp = gradient_penalty(self.critic, y, fake, x if self._conditional else None)  # fp32, autocast off
            loss = loss + self.gp_weight * gp
            self.log("train/gp", gp, batch_size=n)
        if self.critic_guard.check(loss, batch, self):  # all ranks skip a non-finite step together
            c_opt.zero_grad(set_to_none=True)
            self.manual_backward(loss + common.ddp_anchor(self.generator))
            c_opt.step()
            if self.lipschitz == "clip":
                clip_weights_(self.critic, self.clip_value)
            self.log_dict({"train/critic_loss": c_loss, "train/wasserstein": wasserstein_estimate(real_scores, fake_scores)},
                          batch_size=n)
        self.critic_steps += 1  # counts batches, skipped or not: the generator's turns stay on schedule

        if generator_turn:
            l1 = F.l1_loss(fake.float(), y.float())
            g_adv = -self._score(fake, x).float().mean()
            g_loss = l1 + self.adversarial_weight * g_adv
            if self.g_guard.check(g_loss, batch, self):
                g_opt.zero_grad(set_to_none=True)
                self.manual_backward(g_loss)  # also fills the critic's gradients: cleared before its next step
                g_opt.step()
                self.log_dict({"train/g_loss": g_loss, "train/l1": l1, "train/g_adv": g_adv}, batch_size=n)
        common.log_skipped_crops(self, batch, n)

    def on_before_optimizer_step(self, optimizer) -> None:
        common.clip_for(self, optimizer, self._clip_vals)

    # -- evaluation -------------------------------------------------------------------------------------------
    def validation_step(self, batch: dict, batch_idx: int) -> None:
        common.evaluate(self, batch, self.val_metrics, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        common.evaluate(self, batch, self.test_metrics, "test")

    def predict_step(self, batch: dict, batch_idx: int) -> list[dict]:
        return common.predict_items(self, batch)

    def media(self, batch: dict) -> list[dict]:
        return common.media_items(self, batch)

    def on_fit_start(self) -> None:
        common.adopt_normalizer(self)

    def on_validation_start(self) -> None:
        common.adopt_normalizer(self)

    def on_test_start(self) -> None:
        common.adopt_normalizer(self)

    def on_predict_start(self) -> None:
        common.adopt_normalizer(self)

    # -- optimisers and checkpoints ---------------------------------------------------------------------------
    def configure_optimizers(self):
        g_opt = self.generator_optimizer(self.generator.parameters())
        c_opt = self.critic_optimizer(self.critic.parameters())
        self._clip_vals = {id(g_opt): self.generator_clip_val, id(c_opt): self.critic_clip_val}
        return [g_opt, c_opt]

    def on_save_checkpoint(self, ckpt: dict) -> None:
        checkpoint.stamp(ckpt, "postnet_wgan", self.features)
        ckpt["postnet_wgan"] = {"critic_steps": self.critic_steps}
        save_guards(ckpt, self.g_guard, self.critic_guard)

    def on_load_checkpoint(self, ckpt: dict) -> None:
        checkpoint.check(ckpt, "postnet_wgan", self.features)
        self.critic_steps = ckpt.get("postnet_wgan", {}).get("critic_steps", 0)
        load_guards(ckpt, self.g_guard, self.critic_guard)
