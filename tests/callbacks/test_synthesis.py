"""SynthesisWriter and ``tts-lab predict`` of Tacotron checkpoints: mel/attention/audio per item, and GTA dumps."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import soundfile as sf
import torch

from tests.tasks import tacotron_helpers as th
from tts_lab.audio.features import FeatureConfig
from tts_lab.callbacks.synthesis import SynthesisWriter, file_stem

FEATS = FeatureConfig(sample_rate=16000, n_fft=256, hop_length=64, n_mels=12, f_max=8000.0)


def write(rows: list[dict], out: Path, mode: str) -> SynthesisWriter:
    writer = SynthesisWriter(output_dir=str(out), griffin_lim_iters=2)
    module = SimpleNamespace(features=FEATS, predict_mode=mode)
    writer.on_predict_start(SimpleNamespace(), module)
    writer.write_on_batch_end(SimpleNamespace(), module, rows, None, None, 0, 0)
    return writer


def test_synthesize_rows_become_npy_png_and_wav(tmp_path):
    g = torch.Generator().manual_seed(0)
    rows = [
        {"id": "df1/arctic_a0001", "mode": "synthesize", "text": "hi", "mel": torch.randn(30, 12, generator=g) - 5,
         "alignment": torch.rand(10, 7, generator=g), "frames": 30, "stopped": True},
        {"id": "short", "mode": "synthesize", "text": "a", "mel": torch.randn(3, 12, generator=g) - 5,  # one step
         "alignment": torch.rand(1, 2, generator=g), "frames": 3, "stopped": True},
    ]
    write(rows, tmp_path, "synthesize")
    for stem, frames in (("df1__arctic_a0001", 30), ("short", 3)):
        mel = np.load(tmp_path / f"{stem}.npy")
        assert mel.dtype == np.float32 and mel.shape == (frames, 12)
        assert (tmp_path / f"{stem}_attention.png").stat().st_size > 0
        audio, rate = sf.read(tmp_path / f"{stem}.wav")
        assert rate == 16000 and len(audio) > 0
    # The rows the predict loop keeps now hold paths, not arrays.
    assert rows[0]["mel"] == str(tmp_path / "df1__arctic_a0001.npy") and "alignment" not in rows[0]
    assert rows[0]["audio"].endswith(".wav") and rows[0]["attention"].endswith("_attention.png")


def test_gta_rows_become_only_npy(tmp_path):
    rows = [{"id": "dm1/arctic_b0002", "mode": "gta", "mel": torch.zeros(17, 12), "frames": 17}]
    write(rows, tmp_path, "gta")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dm1__arctic_b0002.npy"]
    assert np.load(tmp_path / "dm1__arctic_b0002.npy").shape == (17, 12)
    assert file_stem("a/b/c") == "a__b__c"


def predict(config: str, kind: str, demo_root, tmp_path_factory, tmp_path, *extra: str):
    ckpt = th.checkpoint(kind, Path(demo_root), tmp_path_factory.getbasetemp())
    return th.run("predict", config, Path(demo_root), tmp_path, "--ckpt_path", str(ckpt),
                  "--data.predict_split=val", "--trainer.limit_predict_batches=1", *extra)


def test_predict_synthesizes_mel_attention_and_audio(demo_root, tmp_path_factory, tmp_path):
    cli = predict("tacotron_teacher.yaml", "tts", demo_root, tmp_path_factory, tmp_path)
    (folder,) = {p.parent for p in Path(tmp_path).rglob("synthesis/*.npy")}
    stems = sorted(p.stem for p in folder.glob("*.npy"))
    assert len(stems) == min(4, len(cli.datamodule.datasets["val"]))  # one batch of (up to) 4 val utterances
    for stem in stems:
        mel = np.load(folder / f"{stem}.npy")
        assert mel.dtype == np.float32 and mel.shape[1] == 80 and 0 < mel.shape[0] <= 4 * 3  # max_decoder_steps x r
        assert (folder / f"{stem}_attention.png").is_file() and (folder / f"{stem}.wav").is_file()
    assert cli.model.predict_mode == "synthesize"


def test_predict_gta_dumps_frame_aligned_mels(demo_root, tmp_path_factory, tmp_path):
    # Voice conversion: ids are "<speaker>/<prompt>", dumps are named with "__"; each has the target's frame count.
    cli = predict("tacotron_teacher_vc.yaml", "vc", demo_root, tmp_path_factory, tmp_path,
                  "--model.init_args.predict_mode=gta")  # the config's init_checkpoint is only read to fit
    dumps = {p.stem: p for p in Path(tmp_path).rglob("gta/*.npy")}
    val = cli.datamodule.datasets["val"]
    assert len(dumps) == min(4, len(val)) and not list(Path(tmp_path).rglob("gta/*.wav"))
    targets = {file_stem(ex.target.id): ex.frames for ex in val.examples}
    for stem, path in dumps.items():
        assert "__" in stem and stem.startswith("df1__")
        mel = np.load(path)
        assert mel.dtype == np.float32 and mel.shape == (targets[stem], 80)
