"""The inference front door: ``tts-lab transcribe`` and ``tts-lab synthesize`` from checkpoints, no config to write."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tts_lab.cli import build_cli, main

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TINY_CTC = [
    "--model.init_args.network.init_args.conv_channels=16",
    "--model.init_args.network.init_args.hidden=16",
    "--model.init_args.network.init_args.num_layers=1",
]
N = "--model.init_args.network.init_args"
TINY_TACOTRON = [
    f"{N}.text_encoder.init_args.embedding_dim=16", f"{N}.text_encoder.init_args.hidden=16",
    f"{N}.text_encoder.init_args.n_convs=1", f"{N}.attention.init_args.attention_dim=8",
    f"{N}.attention.init_args.n_filters=4", f"{N}.prenet_dims=[16,16]", f"{N}.attention_rnn_dim=16",
    f"{N}.decoder_rnn_dims=[16]", f"{N}.postnet.init_args.channels=16", f"{N}.postnet.init_args.n_layers=2",
]


def fit_tiny(config: str, root: Path, out: Path, cache: Path, extra: list[str]) -> Path:
    """Two training steps through the CLI with the config's own checkpointing and logger layout; the last.ckpt."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(out)  # the config's relative checkpoint dirpath lands in ``out``
        build_cli([
            "fit", "--config", str(CONFIGS / config), "--data.root", str(root), "--data.cache_dir", str(cache),
            "--data.batch_size=4", *extra, "--trainer.max_steps=2", "--trainer.limit_val_batches=1",
            "--trainer.enable_progress_bar=false",
        ])
    (ckpt,) = out.rglob("last.ckpt")
    return ckpt


@pytest.fixture(scope="module")
def ctc_ckpt(demo_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ctc_run")
    return fit_tiny("ctc_asr.yaml", Path(demo_root), out, out / "cache", TINY_CTC)


@pytest.fixture(scope="module")
def tacotron_ckpt(demo_root, tmp_path_factory) -> Path:
    if not (CONFIGS / "tacotron_teacher.yaml").is_file():
        pytest.skip("no Tacotron config yet")
    out = tmp_path_factory.mktemp("tacotron_run")
    # The config's ModelCheckpoint writes to a fixed folder: move it under the run.
    return fit_tiny("tacotron_teacher.yaml", Path(demo_root), out, out / "cache", [
        *TINY_TACOTRON, "--model.init_args.max_decoder_steps=20",
        "--trainer.callbacks=" + json.dumps([{"class_path": "pytorch_lightning.callbacks.ModelCheckpoint",
                                              "init_args": {"dirpath": str(out / "checkpoints"), "save_last": True}}]),
    ])


@pytest.fixture(scope="module")
def postnet_ckpt(demo_root, tmp_path_factory) -> Path:
    if not (CONFIGS / "postnet_gan.yaml").is_file():
        pytest.skip("no postnet config yet")
    out = tmp_path_factory.mktemp("postnet_run")
    g, d = "--model.init_args.generator.init_args", "--model.init_args.discriminator.init_args"
    return fit_tiny("postnet_gan.yaml", Path(demo_root), out, out / "cache",
                    [f"{g}.base_channels=4", f"{g}.depth=2", f"{d}.base_channels=4", f"{d}.n_layers=1"])


def wavs(demo_root, n: int = 2) -> list[str]:
    return [str(p) for p in sorted((Path(demo_root) / "LJSpeech-1.1" / "wavs").glob("*.wav"))[:n]]


def run_main(args: list[str], capsys) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


# -- transcribe -------------------------------------------------------------------------------------------------
def test_transcribe_prints_one_tab_separated_line_per_file(ctc_ckpt, demo_root, capsys):
    files = wavs(demo_root)
    code, out, err = run_main(["transcribe", str(ctc_ckpt), *files], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert [line.split("\t")[0] for line in lines] == files
    assert all(line.count("\t") == 1 for line in lines)


def test_transcribe_json_and_greedy(ctc_ckpt, demo_root, capsys):
    files = wavs(demo_root)
    code, out, err = run_main(["transcribe", str(ctc_ckpt), *files, "--json", "--beam-size", "0"], capsys)
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["path"] for r in rows] == files and all(isinstance(r["text"], str) for r in rows)


def test_transcribe_bad_audio_is_a_clear_error_not_a_traceback(ctc_ckpt, demo_root, tmp_path, capsys):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF....not really a wav")
    files = wavs(demo_root, 1)
    code, out, err = run_main(["transcribe", str(ctc_ckpt), str(tmp_path / "missing.wav"), *files, str(broken)], capsys)
    assert code == 1
    assert f"{tmp_path / 'missing.wav'}: file not found" in err and f"{broken}: unreadable audio" in err
    assert "Traceback" not in err
    assert [line.split("\t")[0] for line in out.splitlines()] == files  # the good file is still transcribed


def test_transcribe_finds_the_run_config_or_takes_config(ctc_ckpt, demo_root, tmp_path, capsys):
    # runs/ctc_asr/checkpoints/last.ckpt next to runs/ctc_asr/logs/version_N/config.yaml (saved by LightningCLI)
    (config,) = (ctc_ckpt.parent.parent / "logs").glob("version_*/config.yaml")
    alone = tmp_path / "elsewhere" / "model.ckpt"
    alone.parent.mkdir()
    shutil.copy(ctc_ckpt, alone)
    code, _, err = run_main(["transcribe", str(alone), *wavs(demo_root, 1)], capsys)
    assert code == 1 and "pass --config" in err and "Traceback" not in err
    code, out, err = run_main(["transcribe", str(alone), *wavs(demo_root, 1), "--config", str(config)], capsys)
    assert code == 0 and len(out.splitlines()) == 1, err
    # A config of another size: the weights do not fit, and the message says so.
    code, _, err = run_main(["transcribe", str(alone), *wavs(demo_root, 1), "--config", str(CONFIGS / "ctc_asr.yaml")],
                            capsys)
    assert code == 1 and "the weights do not fit" in err and "shapes (checkpoint vs model)" in err
    # ModelCheckpoint(dirpath=<run>/checkpoints) next to <run>/logs/version_N/config.yaml: the newest config
    # written before the checkpoint is used.
    run = tmp_path / "run"
    (run / "logs" / "version_0").mkdir(parents=True)
    shutil.copy(config, run / "logs" / "version_0" / "config.yaml")
    (run / "checkpoints").mkdir()
    shutil.copy(ctc_ckpt, run / "checkpoints" / "last.ckpt")
    code, out, err = run_main(["transcribe", str(run / "checkpoints" / "last.ckpt"), *wavs(demo_root, 1)], capsys)
    assert code == 0 and len(out.splitlines()) == 1, err


def test_transcribe_refuses_other_checkpoints(tmp_path, demo_root, capsys, tacotron_ckpt):
    code, _, err = run_main(["transcribe", str(tacotron_ckpt), *wavs(demo_root, 1)], capsys)
    assert code == 1 and "is a 'tacotron' checkpoint; transcribe needs a 'ctc' checkpoint" in err
    junk = tmp_path / "junk.ckpt"
    junk.write_text("not a checkpoint")
    code, _, err = run_main(["transcribe", str(junk), *wavs(demo_root, 1)], capsys)
    assert code == 1 and "not a checkpoint that torch.load(weights_only=True) can read" in err
    assert "Traceback" not in err


# -- synthesize -------------------------------------------------------------------------------------------------
def test_synthesize_writes_wav_mel_and_attention(tacotron_ckpt, tmp_path, capsys):
    out = tmp_path / "hello.wav"
    code, _, err = run_main(["synthesize", str(tacotron_ckpt), "--text", "Hello world.", "--out", str(out),
                             "--mel", str(tmp_path / "hello.npy"), "--attention", str(tmp_path / "hello.png"),
                             "--max-decoder-steps", "12", "--griffin-lim-iters", "4"], capsys)
    assert code == 0, err
    audio, rate = sf.read(out)
    mel = np.load(tmp_path / "hello.npy")
    assert rate == 22050 and mel.dtype == np.float32 and mel.shape[1] == 80
    assert 0 < mel.shape[0] <= 12 * 3
    assert len(audio) == (mel.shape[0] - 1) * 256  # frames -> samples (hop 256), also for very short outputs
    assert (tmp_path / "hello.png").stat().st_size > 0
    assert "no stop token" in err or "frames" in err


def test_synthesize_with_a_postnet_checkpoint(tacotron_ckpt, postnet_ckpt, tmp_path, capsys):
    common = ["synthesize", str(tacotron_ckpt), "--text", "Hello.", "--max-decoder-steps", "6", "--griffin-lim-iters", "2"]
    code, _, err = run_main([*common, "--out", str(tmp_path / "a.wav"), "--mel", str(tmp_path / "a.npy")], capsys)
    assert code == 0, err
    code, _, err = run_main([*common, "--out", str(tmp_path / "b.wav"), "--mel", str(tmp_path / "b.npy"),
                             "--postnet", str(postnet_ckpt)], capsys)
    assert code == 0, err
    plain, polished = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    assert plain.shape == polished.shape and not np.allclose(plain, polished)


def test_synthesize_errors_are_one_line(tacotron_ckpt, ctc_ckpt, tmp_path, capsys):
    code, _, err = run_main(["synthesize", str(ctc_ckpt), "--text", "hi", "--out", str(tmp_path / "x.wav")], capsys)
    assert code == 1 and "is a 'ctc' checkpoint; synthesize needs" in err
    code, _, err = run_main(["synthesize", str(tacotron_ckpt), "--text", "@#%", "--out", str(tmp_path / "x.wav")], capsys)
    assert code == 1 and "none of the model's symbols" in err
    code, _, err = run_main(["synthesize", str(tacotron_ckpt), "--text", "hi", "--out", str(tmp_path / "x.wav"),
                             "--postnet", str(ctc_ckpt)], capsys)
    assert code == 1 and "is a 'ctc' checkpoint; --postnet needs" in err
    assert "Traceback" not in err and not (tmp_path / "x.wav").exists()


def test_help_names_the_front_door(capsys):
    code, out, _ = run_main(["--help"], capsys)
    assert code == 0 and "tts-lab transcribe CKPT" in out and "tts-lab synthesize CKPT" in out
    code, out, _ = run_main(["transcribe", "--help"], capsys)
    assert code == 0 and "--beam-size" in out
