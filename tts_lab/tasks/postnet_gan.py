"""Postnet GAN (pix2pix for mel spectrograms): a U-Net sharpens blurry mels, a PatchGAN judges them.

    L_G = E|G(x) - y| + adversarial_weight * adv(D(G(x) | x))      adv: non-saturating BCE, or LSGAN
    L_D = BCE(D(y | x), real_label) + BCE(D(G(x) | x), 0)           (or the LSGAN squares)

x is the blurry input, y the ground truth, both normalised (`MelNormalizer`, fitted on the training data and stored
in the checkpoint). ``adversarial_weight: 0`` is the L1-only U-Net baseline: the discriminator is frozen, never
run and has no optimiser.

Manual optimisation, one discriminator step then one generator step per batch (same G(x)), separate optimisers
and learning rates. Works under DDP with plain ``strategy: ddp`` (every backward reaches every trainable
parameter, see `ddp_anchor`; no ``find_unused_parameters`` needed) and under mixed precision (``manual_backward``
scales; norm clipping per network in ``on_before_optimizer_step``, after unscaling).
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
from tts_lab.losses.adversarial import discriminator_loss, generator_adv_loss
from tts_lab.models.discriminators import PatchDiscriminator
from tts_lab.models.unet import UNet
from tts_lab.tasks import checkpoint
from tts_lab.tasks import postnet_common as common
from tts_lab.tasks.guard import NonFiniteGuard, load_guards, save_guards


class PostnetGANTask(pl.LightningModule):
    """Args:
    generator: mel -> mel network, (B, T, n_mels) in and out (default `UNet()`).
    discriminator: scores (candidate, condition) as patch logits (default conditional `PatchDiscriminator()`;
        none with ``adversarial_weight: 0``); conditional when its ``conditional`` is True (it then sees the
        blurry input too).
    generator_optimizer, discriminator_optimizer: injected from the config (separate learning rates).
    adversarial_weight: lambda in L_G; 0 trains the L1-only U-Net baseline.
    gan_loss: "bce" (non-saturating) or "lsgan".
    real_label: target of real samples in L_D (< 1: one-sided label smoothing, e.g. 0.9).
    generator_clip_val, discriminator_clip_val: gradient-norm clipping per network (None: off).
    features: linked from the data module (stored in the checkpoint and checked on load).
    ot_projections, ot_max_frames: the sliced-Wasserstein metric (see `SharpnessMetrics`).
    max_nonfinite: stop after this many non-finite losses in a row, per network (each one skips that network's
        backward and step, on every rank: ``train/skipped_nonfinite`` for G, ``train/skipped_nonfinite_d`` for D).
    """

    def __init__(
        self,
        generator: nn.Module | None = None,
        discriminator: nn.Module | None = None,
        generator_optimizer: OptimizerCallable = torch.optim.Adam,
        discriminator_optimizer: OptimizerCallable = torch.optim.Adam,
        adversarial_weight: float = 0.05,
        gan_loss: Literal["bce", "lsgan"] = "bce",
        real_label: float = 1.0,
        generator_clip_val: float | None = None,
        discriminator_clip_val: float | None = None,
        features: FeatureConfig = FeatureConfig(),
        ot_projections: int = 64,
        ot_max_frames: int = 4000,
        max_nonfinite: int = 5,
    ) -> None:
        super().__init__()
        if adversarial_weight < 0:
            raise ValueError(f"adversarial_weight must be >= 0, got {adversarial_weight}")
        if gan_loss not in ("bce", "lsgan"):
            raise ValueError(f"unknown gan_loss {gan_loss!r}")
        self.automatic_optimization = False
        self.features = features
        self.generator = generator if generator is not None else UNet()
        if discriminator is None and adversarial_weight > 0:
            discriminator = PatchDiscriminator()
        self.discriminator = discriminator  # None is fine for the L1 baseline
        self.normalizer = MelNormalizer(features.n_mels)
        self.generator_optimizer, self.discriminator_optimizer = generator_optimizer, discriminator_optimizer
        self.adversarial_weight, self.gan_loss, self.real_label = adversarial_weight, gan_loss, float(real_label)
        self.generator_clip_val, self.discriminator_clip_val = generator_clip_val, discriminator_clip_val
        if not self.adversarial and discriminator is not None:  # L1 baseline: D takes no part (DDP must not wait for it)
            self.discriminator.requires_grad_(False)
        self.val_metrics = common.SharpnessMetrics(features.n_mels, ot_projections, ot_max_frames)
        self.test_metrics = common.SharpnessMetrics(features.n_mels, ot_projections, ot_max_frames)
        self._clip_vals: dict[int, float | None] = {}
        self.g_guard = NonFiniteGuard(max_nonfinite)
        self.d_guard = NonFiniteGuard(max_nonfinite, name="train/skipped_nonfinite_d")

    @property
    def adversarial(self) -> bool:
        return self.adversarial_weight > 0

    def forward(self, mel: Tensor) -> Tensor:
        """(B, T, n_mels) raw log-mel -> polished raw log-mel of the same shape (as in training: batched)."""
        return self.normalizer.denormalize(self.generator(self.normalizer.normalize(mel)).float())

    def _judge(self, candidate: Tensor, condition: Tensor) -> Tensor:
        return self.discriminator(candidate, condition if getattr(self.discriminator, "conditional", False) else None)

    # -- training ---------------------------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> None:
        common.require_fitted(self.normalizer)
        opts = self.optimizers()
        g_opt, d_opt = opts if isinstance(opts, list) else (opts, None)
        x = self.normalizer.normalize(batch["input"])  # (N, crop, F) blurry
        y = self.normalizer.normalize(batch["target"])  # (N, crop, F) ground truth
        n = x.shape[0]
        fake = self.generator(x)  # (N, crop, F)

        if self.adversarial:
            # Discriminator: real vs detached fake. The anchor keeps DDP's reducer whole (see ddp_anchor).
            d_loss = discriminator_loss(self._judge(y, x), self._judge(fake.detach(), x), self.gan_loss, self.real_label)
            if self.d_guard.check(d_loss, batch, self):  # all ranks skip a non-finite step together
                d_opt.zero_grad(set_to_none=True)
                self.manual_backward(d_loss + common.ddp_anchor(self.generator))
                d_opt.step()
                self.log("train/d_loss", d_loss, batch_size=n)

        # Generator: L1 to the ground truth (+ fooling the just-updated D). D's gradients from this pass are
        # discarded (cleared before D's next backward).
        l1 = F.l1_loss(fake.float(), y.float())
        g_adv = generator_adv_loss(self._judge(fake, x), self.gan_loss) if self.adversarial else torch.zeros_like(l1)
        g_loss = l1 + self.adversarial_weight * g_adv
        if self.g_guard.check(g_loss, batch, self):
            g_opt.zero_grad(set_to_none=True)
            self.manual_backward(g_loss)
            g_opt.step()
            self.log_dict({"train/g_loss": g_loss, "train/l1": l1, "train/g_adv": g_adv}, prog_bar=False, batch_size=n)
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
        self._clip_vals = {id(g_opt): self.generator_clip_val}
        if not self.adversarial:
            return g_opt
        d_opt = self.discriminator_optimizer(self.discriminator.parameters())
        self._clip_vals[id(d_opt)] = self.discriminator_clip_val
        return [g_opt, d_opt]

    def on_save_checkpoint(self, ckpt: dict) -> None:
        checkpoint.stamp(ckpt, "postnet_gan", self.features)
        save_guards(ckpt, self.g_guard, self.d_guard)

    def on_load_checkpoint(self, ckpt: dict) -> None:
        checkpoint.check(ckpt, "postnet_gan", self.features)
        load_guards(ckpt, self.g_guard, self.d_guard)
