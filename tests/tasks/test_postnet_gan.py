"""PostnetGANTask: manual optimisation of generator and discriminator, the L1 baseline, clipping, mixed precision,
exact-length whole-utterance inference, the normaliser in the checkpoint, and the configs through the CLI (also
under two-process DDP)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.tasks.postnet_helpers import (CONFIGS, FEATS, NO_MEDIA, TINY_DATA, TINY_UNET, OptimizerSteps, Poison, changed,
                                         fitted_normalizer,
                                         loader, run_cli_ddp, snapshot, trainer)
from tts_lab.cli import build_cli
from tts_lab.models.discriminators import PatchDiscriminator
from tts_lab.models.unet import UNet
from tts_lab.tasks.checkpoint import CheckpointMismatch
from tts_lab.tasks.guard import NonFiniteLossError
from tts_lab.tasks import postnet_gan
from tts_lab.tasks.postnet_gan import PostnetGANTask

TINY_D = ["--model.init_args.discriminator.init_args.base_channels=4", "--model.init_args.discriminator.init_args.n_layers=2"]


def tiny_task(adversarial_weight: float = 0.1, **kw) -> PostnetGANTask:
    torch.manual_seed(0)
    task = PostnetGANTask(
        generator=UNet(base_channels=4, depth=2),
        discriminator=PatchDiscriminator(in_channels=2, base_channels=4, n_layers=2),
        adversarial_weight=adversarial_weight,
        features=FEATS,
        **kw,
    )
    task.normalizer.load_state_dict(fitted_normalizer().state_dict())
    return task


def test_one_manual_step_changes_generator_and_discriminator():
    task = tiny_task()
    g0, d0 = snapshot(task.generator), snapshot(task.discriminator)
    t = trainer(max_steps=2)  # one batch = a D step and a G step
    t.fit(task, train_dataloaders=loader(1))
    assert changed(g0, task.generator) and changed(d0, task.discriminator)
    logged = t.callback_metrics
    assert {"train/g_loss", "train/l1", "train/g_adv", "train/d_loss", "train/skipped_crops"} <= set(logged)
    assert float(logged["train/skipped_crops"]) == 1.0


def nan_generator_loss(monkeypatch, batches: set[int] | None) -> None:
    """The generator's adversarial loss is NaN in training batches ``batches`` (None: all)."""
    original, calls = postnet_gan.generator_adv_loss, []

    def poisoned(*args, **kwargs):
        calls.append(None)
        loss = original(*args, **kwargs)
        return loss * float("nan") if batches is None or len(calls) - 1 in batches else loss

    monkeypatch.setattr(postnet_gan, "generator_adv_loss", poisoned)


def test_non_finite_losses_skip_that_networks_step(monkeypatch):
    # real_label NaN makes the discriminator loss NaN in batch 1; the generator's loss is NaN in batch 2.
    nan_generator_loss(monkeypatch, {2})
    task = tiny_task()
    counter = OptimizerSteps()
    t = trainer(max_epochs=1, callbacks=[counter, Poison("real_label", {1})])
    t.fit(task, train_dataloaders=loader(4))
    assert counter.per_batch == [[1, 1], [1, 0], [0, 1], [1, 1]]  # [generator steps, discriminator steps]
    assert (task.g_guard.skipped, task.d_guard.skipped) == (1, 1)
    assert float(t.callback_metrics["train/skipped_nonfinite"]) == 1.0
    assert float(t.callback_metrics["train/skipped_nonfinite_d"]) == 1.0
    assert all(torch.isfinite(p).all() for p in task.parameters())


def test_repeated_non_finite_losses_stop_the_run(monkeypatch):
    nan_generator_loss(monkeypatch, None)
    with pytest.raises(NonFiniteLossError, match="2 non-finite losses in a row"):
        trainer(max_epochs=1).fit(tiny_task(max_nonfinite=2), train_dataloaders=loader(4))


def test_guard_counters_travel_in_the_checkpoint(tmp_path, monkeypatch):
    task = tiny_task()
    nan_generator_loss(monkeypatch, {0, 2})
    t = trainer(max_epochs=1, default_root_dir=tmp_path)
    t.fit(task, train_dataloaders=loader(3))
    t.save_checkpoint(tmp_path / "x.ckpt")
    fresh = tiny_task()
    fresh.on_load_checkpoint(torch.load(tmp_path / "x.ckpt", weights_only=True))
    assert (fresh.g_guard.skipped, fresh.d_guard.skipped) == (2, 0)


def test_adversarial_weight_zero_is_the_l1_baseline():
    task = tiny_task(adversarial_weight=0.0)
    g0, d0 = snapshot(task.generator), snapshot(task.discriminator)
    t = trainer(max_steps=1)
    t.fit(task, train_dataloaders=loader(1))
    assert changed(g0, task.generator) and not changed(d0, task.discriminator)
    assert len(t.optimizers) == 1 and "train/d_loss" not in t.callback_metrics
    assert float(t.callback_metrics["train/g_loss"]) == pytest.approx(float(t.callback_metrics["train/l1"]))
    assert PostnetGANTask(adversarial_weight=0.0, features=FEATS).discriminator is None


def test_gradient_clipping_bounds_each_networks_update():
    clip, lr = 1e-6, 1.0
    task = tiny_task(
        generator_optimizer=lambda p: torch.optim.SGD(p, lr=lr),
        discriminator_optimizer=lambda p: torch.optim.SGD(p, lr=lr),
        generator_clip_val=clip, discriminator_clip_val=clip,
    )
    g0, d0 = snapshot(task.generator), snapshot(task.discriminator)
    trainer(max_steps=2).fit(task, train_dataloaders=loader(1))
    for before, net in ((g0, task.generator), (d0, task.discriminator)):
        step = torch.cat([(v - before[k]).flatten() for k, v in net.named_parameters()])
        assert 0 < step.norm() <= clip * lr * 1.001  # SGD step = lr * clipped gradient


def test_bf16_mixed_step_is_finite():
    task = tiny_task()
    t = trainer(max_steps=4, precision="bf16-mixed")
    t.fit(task, train_dataloaders=loader(2))
    assert all(torch.isfinite(v) for k, v in t.callback_metrics.items() if k.startswith("train/"))
    assert all(torch.isfinite(p).all() for p in task.parameters())


@pytest.mark.parametrize("lengths", [[37, 23], [21, 5]])
def test_whole_utterance_inference_keeps_exact_odd_lengths(lengths):
    task = tiny_task().eval()
    T = max(lengths)
    g = torch.Generator().manual_seed(0)
    mel = torch.randn(len(lengths), T, FEATS.n_mels, generator=g) - 5
    lens = torch.tensor(lengths)
    for b, n in enumerate(lengths):
        mel[b, n:] = FEATS.silence_level
    batch = {"ids": [f"u{b}" for b in range(len(lengths))], "input": mel, "target": mel.clone(), "lengths": lens}
    rows = task.predict_step(batch, 0)
    assert [tuple(r["mel"].shape) for r in rows] == [(n, FEATS.n_mels) for n in lengths]
    with torch.no_grad():
        alone = task(mel[1:2, : lengths[1]])  # the same utterance, unpadded: identical output
    torch.testing.assert_close(rows[1]["mel"], alone[0])
    items = task.media(batch)
    assert set(items[0]["audio"]) == {"blurry", "polished", "target"}
    (image,) = items[0]["spectrograms"].values()
    assert image.shape[1] == FEATS.n_mels and image.shape[0] > 3 * lengths[0]


def test_normaliser_travels_in_the_checkpoint():
    task = tiny_task()
    ckpt = {"state_dict": task.state_dict()}
    task.on_save_checkpoint(ckpt)
    fresh = PostnetGANTask(generator=UNet(base_channels=4, depth=2),
                           discriminator=PatchDiscriminator(in_channels=2, base_channels=4, n_layers=2), features=FEATS)
    assert not bool(fresh.normalizer.fitted)
    fresh.on_load_checkpoint(ckpt)
    fresh.load_state_dict(ckpt["state_dict"])
    assert bool(fresh.normalizer.fitted)
    torch.testing.assert_close(fresh.normalizer.mean, task.normalizer.mean)
    torch.testing.assert_close(fresh.normalizer.scale, task.normalizer.scale)
    with pytest.raises(CheckpointMismatch, match="'postnet_gan' checkpoint"):
        from tts_lab.tasks.postnet_wgan import PostnetWGANTask

        PostnetWGANTask(features=FEATS).on_load_checkpoint(ckpt)


def test_training_without_statistics_fails_clearly():
    task = PostnetGANTask(generator=UNet(base_channels=4, depth=2), features=FEATS,
                          discriminator=PatchDiscriminator(in_channels=2, base_channels=4, n_layers=2))
    with pytest.raises(RuntimeError, match="no fitted mel normaliser"):
        trainer(max_steps=2).fit(task, train_dataloaders=loader(1))


def cli_args(config: str, root, tmp_path, *extra: str) -> list[str]:
    return ["--config", str(CONFIGS / config), "--data.root", str(root), "--trainer.default_root_dir", str(tmp_path),
            "--trainer.logger.init_args.save_dir", str(tmp_path), "--trainer.enable_progress_bar=false", *TINY_UNET,
            *TINY_DATA, *extra]


def test_gan_config_fast_dev_run_then_predict_through_the_cli(demo_root, cache_dir, tmp_path):
    common = cli_args("postnet_gan.yaml", demo_root, tmp_path, *TINY_D)
    cli = build_cli(["fit", *common, "--trainer.fast_dev_run=1"])
    metrics = cli.trainer.callback_metrics
    for name in ("l1", "gv_ratio", "wasserstein"):
        assert f"val/{name}" in metrics and f"val/{name}_input" in metrics
    assert list(Path(tmp_path).rglob("media/*/0_blurry_polished_target.png"))
    assert list(Path(tmp_path).rglob("media/*/0_polished.wav"))
    # A real (tiny) checkpoint, then polish the test split from it: one .npy per utterance, exact lengths.
    cli = build_cli(["fit", *common, "--trainer.max_steps=2", "--trainer.limit_val_batches=1", "--trainer.limit_train_batches=1"])
    ckpt = cli.trainer.checkpoint_callback.last_model_path
    assert Path(ckpt).is_file()
    stats = torch.load(ckpt, weights_only=False)["state_dict"]
    assert bool(stats["normalizer.fitted"]) and stats["normalizer.scale"] > 0
    cli = build_cli(["predict", *common, "--ckpt_path", ckpt])
    test = cli.datamodule.pairs["test"]
    written = sorted(Path(cli.trainer.log_dir, "mels").glob("*.npy"))
    assert len(written) == len(test)
    lengths = dict(zip((ex.target.id for ex in test.examples), test.lengths))
    for path in written:
        assert np.load(path).shape == (lengths[path.stem.replace("__", "/")], cli.datamodule.features.n_mels)


def test_l1_config_fast_dev_run_through_the_cli(demo_root, cache_dir, tmp_path):
    cli = build_cli(["fit", *cli_args("postnet_l1.yaml", demo_root, tmp_path), "--trainer.fast_dev_run=1"])
    assert cli.model.discriminator is None and "val/gv_ratio" in cli.trainer.callback_metrics


def test_gan_ddp_two_cpu_processes_bf16(demo_root, cache_dir, tmp_path):
    """Plain `strategy: ddp` (find_unused_parameters=False), bf16-mixed, manual optimisation of two networks."""
    out = run_cli_ddp([
        "fit", *cli_args("postnet_gan.yaml", demo_root, tmp_path, *TINY_D), "--trainer", str(CONFIGS / "trainer" / "cpu_ddp.yaml"),
        "--trainer.max_steps=4", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=2",
        f"--trainer.callbacks={NO_MEDIA}",
    ], cache_dir)
    assert "val/wasserstein" in out
    assert list(Path(tmp_path).rglob("last.ckpt"))
