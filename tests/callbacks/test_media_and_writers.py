"""Media and prediction callbacks work with wandb (offline), TensorBoard, and with no logger at all."""

from pathlib import Path

import pytest

from tts_lab.cli import build_cli

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TINY = [
    "--model.init_args.network.init_args.conv_channels=16",
    "--model.init_args.network.init_args.hidden=16",
    "--model.init_args.network.init_args.num_layers=1",
    "--trainer.max_steps=1", "--trainer.limit_train_batches=1", "--trainer.limit_val_batches=1",
    "--trainer.num_sanity_val_steps=0",  # media render at epoch 0 (every_n_epochs divides 0)
]


def fit(demo_root, tmp_path, *extra) -> "object":
    return build_cli(["fit", "--config", str(CONFIGS / "ctc_asr.yaml"), "--data.root", str(demo_root),
                      "--trainer.default_root_dir", str(tmp_path), *TINY, *extra])


def media_files(root: Path) -> set[str]:
    return {p.name for p in root.rglob("media/epoch_000/*")}


@pytest.mark.parametrize("logger", ["wandb", "tensorboard"])
def test_media_reach_the_logger_and_the_run_folder(demo_root, cache_dir, tmp_path, logger, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    cli = fit(demo_root, tmp_path, "--trainer.logger", str(CONFIGS / "logger" / f"{logger}.yaml"),
              f"--trainer.logger.init_args.save_dir={tmp_path}")
    assert {"0_input.png", "0_ctc_posteriors.png", "0_input.wav", "1_input.png"} <= media_files(tmp_path)
    if logger == "wandb":
        run_dirs = list(tmp_path.glob("wandb/offline-run-*"))
        assert run_dirs, "no offline wandb run"
        logged = {p.suffix for p in run_dirs[0].rglob("media/**/*") if p.is_file()}
        assert {".png", ".wav"} <= logged
    else:
        events = list(tmp_path.rglob("events.out.tfevents.*"))
        assert events and max(p.stat().st_size for p in events) > 10_000  # images and audio, not just scalars
    cli.trainer.loggers[0].finalize("success")


def test_media_without_any_logger(demo_root, cache_dir, tmp_path):
    fit(demo_root, tmp_path, "--trainer.logger=false")
    assert {"0_input.png", "0_ctc_posteriors.png", "0_input.wav"} <= media_files(tmp_path)
