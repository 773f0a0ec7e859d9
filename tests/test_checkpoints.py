"""Checkpoints load with ``weights_only=True``; a checkpoint of another task or feature config is a clear error
through the command line, not a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.test_inference import CONFIGS, TINY_CTC, run_main
from tests.test_inference import ctc_ckpt, postnet_ckpt, tacotron_ckpt  # noqa: F401 -- module-scoped fixtures


def validate_args(config: str, ckpt: Path, demo_root, tmp_path, *extra: str) -> list[str]:
    return ["validate", "--config", str(CONFIGS / config), "--data.root", str(demo_root),
            "--data.cache_dir", str(tmp_path / "cache"), *extra, "--ckpt_path", str(ckpt),
            "--trainer.limit_val_batches=1", "--trainer.enable_progress_bar=false",
            "--trainer.default_root_dir", str(tmp_path), "--trainer.logger.init_args.save_dir", str(tmp_path)]


@pytest.mark.parametrize("which", ["ctc_ckpt", "tacotron_ckpt", "postnet_ckpt"])
def test_checkpoints_load_with_weights_only(which, request):
    path = request.getfixturevalue(which)
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert {"state_dict", "optimizer_states", "loops", "tts_lab"} <= set(ckpt)
    assert ckpt["tts_lab"]["features"]["n_mels"] == 80


def test_ctc_checkpoint_validates_with_its_own_config(ctc_ckpt, demo_root, tmp_path, capsys):  # noqa: F811
    code, _, err = run_main(validate_args("ctc_asr.yaml", ctc_ckpt, demo_root, tmp_path, *TINY_CTC), capsys)
    assert code == 0, err[-2000:]


def test_other_features_are_a_clear_error(ctc_ckpt, demo_root, tmp_path, capsys):  # noqa: F811
    args = validate_args("ctc_asr.yaml", ctc_ckpt, demo_root, tmp_path, *TINY_CTC, "--data.features.n_mels=40")
    code, _, err = run_main(args, capsys)
    assert code == 1
    assert f"tts-lab: error: checkpoint {ctc_ckpt} cannot be used" in err
    assert "trained with other features (checkpoint vs now): {'n_mels': (80, 40)}" in err
    assert "Traceback" not in err


def test_a_ctc_checkpoint_in_a_tacotron_config_is_a_clear_error(ctc_ckpt, demo_root, tmp_path, capsys):  # noqa: F811
    if not (CONFIGS / "tacotron_teacher.yaml").is_file():
        pytest.skip("no Tacotron config yet")
    code, _, err = run_main(validate_args("tacotron_teacher.yaml", ctc_ckpt, demo_root, tmp_path), capsys)
    assert code == 1 and "is a 'ctc' checkpoint, expected 'tacotron'" in err and "Traceback" not in err


def test_a_tacotron_checkpoint_in_the_ctc_config_is_a_clear_error(tacotron_ckpt, demo_root, tmp_path, capsys):  # noqa: F811
    # LightningCLI builds the model class a checkpoint's hyper-parameters name (here TacotronTask, on ASR data):
    # the message must say so rather than only report the symbol sets that then differ.
    code, _, err = run_main(validate_args("ctc_asr.yaml", tacotron_ckpt, demo_root, tmp_path, *TINY_CTC), capsys)
    assert code == 1 and "Traceback" not in err
    assert f"checkpoint {tacotron_ckpt} is a 'tacotron' checkpoint of tts_lab.tasks.tacotron.TacotronTask" in err
    assert "but the config's model is tts_lab.tasks.CTCTask: use the config it was trained with" in err
