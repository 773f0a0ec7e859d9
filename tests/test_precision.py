"""16-mixed (fp16 autocast + gradient scaler) for every model family, on CPU.

Lightning turns ``precision: 16-mixed`` on CPU into bf16-mixed, so these runs pass the fp16 `MixedPrecision`
plugin explicitly: the same scaler code path as on a GPU (scaled backward, unscale before clipping, skipped steps on
overflow), with CPU autocast. bf16-mixed is covered by the 2-process DDP tests (tests/test_ddp.py,
tests/tasks/test_postnet_*.py).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from tests.tasks import tacotron_helpers as th
from tests.tasks.postnet_helpers import TINY_DATA, TINY_UNET
from tts_lab.cli import build_cli

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
FP16 = ["--trainer.accelerator=cpu", "--trainer.precision=null", "--trainer.plugins=" + json.dumps(
    [{"class_path": "pytorch_lightning.plugins.MixedPrecision", "init_args": {"precision": "16-mixed", "device": "cpu"}}])]
STEPS = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1",
         "--trainer.num_sanity_val_steps=0", "--trainer.log_every_n_steps=1", "--trainer.callbacks=[]"]


def check(cli, keys: tuple[str, ...]) -> None:
    scaler = cli.trainer.precision_plugin.scaler
    assert isinstance(scaler, torch.amp.GradScaler) and scaler.is_enabled()
    assert scaler.get_scale() > 0  # it ran (a first-step overflow would lower it, not zero it)
    metrics = cli.trainer.callback_metrics
    for key in keys:
        assert key in metrics and math.isfinite(float(metrics[key])), key
    assert all(torch.isfinite(p).all() for p in cli.model.parameters())


def test_ctc_16_mixed(demo_root, cache_dir, tmp_path):
    cli = th.run("fit", "ctc_asr.yaml", Path(demo_root), tmp_path, *th.TINY_CTC, *FP16, *STEPS)
    check(cli, ("train/loss", "val/loss", "val/cer"))


def test_tacotron_teacher_and_student_16_mixed(demo_root, cache_dir, tmp_path, tmp_path_factory):
    cli = th.run("fit", "tacotron_teacher.yaml", Path(demo_root), tmp_path / "teacher", *FP16, *STEPS)
    check(cli, ("train/loss", "val/loss", "val/attn_diagonal"))
    teacher = th.checkpoint("tts", Path(demo_root), tmp_path_factory.getbasetemp())
    cli = th.run("fit", "tacotron_student_tts.yaml", Path(demo_root), tmp_path / "student", *FP16, *STEPS,
                 f"--model.init_args.teacher_checkpoint={teacher}")
    check(cli, ("train/loss", "train/distill_loss", "val/distill_kl"))


@pytest.mark.parametrize("config", ["postnet_gan.yaml", "postnet_wgan_gp.yaml"])
def test_postnet_16_mixed(config, demo_root, cache_dir, tmp_path):
    # Manual optimisation: manual_backward scales, each optimiser step unscales (then clips, see clip_for).
    args = ["fit", "--config", str(CONFIGS / config), "--data.root", str(demo_root), *TINY_UNET, *TINY_DATA, *FP16,
            *STEPS, "--trainer.enable_progress_bar=false", "--trainer.default_root_dir", str(tmp_path),
            "--trainer.logger.init_args.save_dir", str(tmp_path)]
    if "wgan" in config:
        args.append("--model.init_args.n_critic=2")  # a generator step within the 2 batches
    check(build_cli(args), ("train/l1", "val/l1", "val/wasserstein"))
