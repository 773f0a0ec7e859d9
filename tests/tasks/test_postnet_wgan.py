"""PostnetWGANTask: weight clipping after every critic step, the gradient penalty (fp32 under bf16), n_critic,
the logged Wasserstein estimate, and both WGAN configs through the CLI (WGAN-GP also under two-process DDP)."""

from pathlib import Path

import pytest
import torch

from tests.tasks.postnet_helpers import (CONFIGS, FEATS, NO_MEDIA, TINY_DATA, TINY_UNET, OptimizerSteps, Poison, changed,
                                         fitted_normalizer,
                                         loader, run_cli_ddp, snapshot, trainer)
from tts_lab.cli import build_cli
from tts_lab.models.discriminators import Critic, PatchDiscriminator
from tts_lab.models.unet import UNet
from tts_lab.tasks.guard import NonFiniteLossError
from tts_lab.tasks.postnet_wgan import PostnetWGANTask

TINY_C = ["--model.init_args.critic.init_args.base_channels=4", "--model.init_args.critic.init_args.n_layers=2"]


def tiny_task(lipschitz: str = "clip", **kw) -> PostnetWGANTask:
    torch.manual_seed(0)
    args = dict(
        generator=UNet(base_channels=4, depth=2),
        critic=Critic(in_channels=2, base_channels=4, n_layers=2),
        lipschitz=lipschitz,
        n_critic=2,
        features=FEATS,
    )
    if lipschitz == "clip":  # the paper's optimiser; a large lr so unclipped weights would leave [-c, c] at once
        args["critic_optimizer"] = lambda p: torch.optim.RMSprop(p, lr=5e-2)
    args.update(kw)
    task = PostnetWGANTask(**args)
    task.normalizer.load_state_dict(fitted_normalizer().state_dict())
    return task


class CountSteps(OptimizerSteps):
    """Also records the critic's largest |weight| after every batch."""

    def on_fit_start(self, trainer, pl_module):
        super().on_fit_start(trainer, pl_module)
        self.max_abs = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        self.max_abs.append(max(float(p.abs().max()) for p in pl_module.critic.parameters()))


def test_every_clipping_step_leaves_critic_weights_in_range():
    c = 0.01
    task = tiny_task("clip", clip_value=c, n_critic=2)
    counter = CountSteps()
    trainer(max_epochs=1, callbacks=[counter]).fit(task, train_dataloaders=loader(4))
    assert len(counter.max_abs) == 4 and all(m <= c + 1e-8 for m in counter.max_abs)
    # The constraint is active: without clipping the same step leaves the range.
    free = tiny_task("clip", clip_value=c, n_critic=2)
    free.lipschitz = "none"  # the clip branch is skipped, nothing else changes
    unclipped = CountSteps()
    trainer(max_steps=1, callbacks=[unclipped]).fit(free, train_dataloaders=loader(1))
    assert unclipped.max_abs[0] > c


@pytest.mark.parametrize("n_critic", [1, 3])
def test_n_critic_critic_steps_per_generator_step(n_critic):
    task = tiny_task("gp", n_critic=n_critic)
    g0, c0 = snapshot(task.generator), snapshot(task.critic)
    counter = CountSteps()
    trainer(max_epochs=1, callbacks=[counter]).fit(task, train_dataloaders=loader(6))
    g_steps, c_steps = counter.steps
    assert c_steps == 6 and g_steps == 6 // n_critic
    assert changed(g0, task.generator) and changed(c0, task.critic)
    assert task.critic_steps == 6


def test_gradient_penalty_logs_and_stays_finite_under_bf16():
    task = tiny_task("gp", n_critic=1)
    t = trainer(max_steps=4, precision="bf16-mixed")
    t.fit(task, train_dataloaders=loader(2))
    m = t.callback_metrics
    assert {"train/gp", "train/wasserstein", "train/critic_loss", "train/g_loss", "train/l1", "train/g_adv"} <= set(m)
    assert float(m["train/gp"]) > 0 and all(torch.isfinite(v) for k, v in m.items() if k.startswith("train/"))
    assert float(m["train/wasserstein"]) == pytest.approx(-float(m["train/critic_loss"]), abs=1e-5)


def test_non_finite_losses_skip_that_networks_step_on_schedule():
    # gp_weight NaN makes the critic loss NaN in batch 0; adversarial_weight NaN the generator loss in batch 3.
    task = tiny_task("gp", n_critic=2)
    counter = CountSteps()
    t = trainer(max_epochs=1, callbacks=[counter, Poison("gp_weight", {0}), Poison("adversarial_weight", {3})])
    t.fit(task, train_dataloaders=loader(4))
    # [generator steps, critic steps] per batch: the generator's turns (batches 1, 3) stay on schedule.
    assert counter.per_batch == [[0, 0], [1, 1], [0, 1], [0, 1]]
    assert (task.g_guard.skipped, task.critic_guard.skipped) == (1, 1)
    assert float(t.callback_metrics["train/skipped_nonfinite"]) == 1.0
    assert float(t.callback_metrics["train/skipped_nonfinite_critic"]) == 1.0
    assert all(torch.isfinite(p).all() for p in task.parameters())
    with pytest.raises(NonFiniteLossError, match="2 non-finite losses in a row"):
        trainer(max_epochs=1, callbacks=[Poison("gp_weight", None)]).fit(
            tiny_task("gp", max_nonfinite=2), train_dataloaders=loader(4))


def test_gradient_penalty_refuses_a_batch_norm_critic():
    with pytest.raises(ValueError, match="without batch norm"):
        PostnetWGANTask(critic=PatchDiscriminator(norm="batch"), lipschitz="gp", features=FEATS)
    PostnetWGANTask(critic=PatchDiscriminator(norm="batch"), lipschitz="clip", features=FEATS)  # clipping tolerates it


def test_critic_step_count_survives_a_checkpoint():
    task = tiny_task()
    task.critic_steps = 7
    ckpt = {}
    task.on_save_checkpoint(ckpt)
    other = tiny_task()
    other.on_load_checkpoint(ckpt)
    assert other.critic_steps == 7


def cli_args(config: str, root, tmp_path, *extra: str) -> list[str]:
    return ["--config", str(CONFIGS / config), "--data.root", str(root), "--trainer.default_root_dir", str(tmp_path),
            "--trainer.logger.init_args.save_dir", str(tmp_path), "--trainer.enable_progress_bar=false", *TINY_UNET,
            *TINY_C, *TINY_DATA, "--model.init_args.n_critic=1", *extra]


@pytest.mark.parametrize("config", ["postnet_wgan.yaml", "postnet_wgan_gp.yaml"])
def test_wgan_configs_fast_dev_run_through_the_cli(config, demo_root, cache_dir, tmp_path):
    cli = build_cli(["fit", *cli_args(config, demo_root, tmp_path), f"--trainer.callbacks={NO_MEDIA}", "--trainer.fast_dev_run=1"])
    m = cli.trainer.callback_metrics
    assert {"train/wasserstein", "train/g_loss", "val/wasserstein", "val/gv_ratio_input"} <= set(m)
    assert ("train/gp" in m) == (config == "postnet_wgan_gp.yaml")
    assert cli.model.lipschitz == ("gp" if config == "postnet_wgan_gp.yaml" else "clip")
    if cli.model.lipschitz == "clip":
        assert max(float(p.abs().max()) for p in cli.model.critic.parameters()) <= cli.model.clip_value


def test_wgan_gp_ddp_two_cpu_processes_bf16(demo_root, cache_dir, tmp_path):
    """Plain `strategy: ddp`, bf16-mixed; the penalty's double backward inside a DDP-wrapped module."""
    out = run_cli_ddp([
        "fit", *cli_args("postnet_wgan_gp.yaml", demo_root, tmp_path), "--trainer", str(CONFIGS / "trainer" / "cpu_ddp.yaml"),
        "--trainer.max_steps=4", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=2",
        f"--trainer.callbacks={NO_MEDIA}",
    ], cache_dir)
    assert "val/wasserstein" in out
    assert list(Path(tmp_path).rglob("last.ckpt"))
