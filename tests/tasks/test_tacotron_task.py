"""TacotronTask: every Tacotron config through the CLI, losses, inputs, init/ASR checkpoints, the network builder."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import pytest
import torch

from tests.tasks import tacotron_helpers as th
from tts_lab.audio.features import FeatureConfig
from tts_lab.models.tacotron import (
    CBHGLinearPostnet,
    ConvPostnet,
    ConvTextEncoder,
    LocationSensitiveAttention,
    PyramidalMelEncoder,
)
from tts_lab.models.tacotron.builder import TacotronBuilder
from tts_lab.tasks.checkpoint import CheckpointMismatch
from tts_lab.tasks.loading import load_asr
from tts_lab.tasks.tacotron import LinearTarget, TacotronLosses, TacotronTask
from tts_lab.tasks.tacotron_runs import network_inputs
from tts_lab.text import Tokenizer

FEATS = FeatureConfig(sample_rate=16000, n_fft=256, hop_length=64, n_mels=12, f_max=8000.0)


def tiny_builder(text: bool = True, linear: bool = False, gst: int = 0, r: int = 2) -> TacotronBuilder:
    return TacotronBuilder(
        text_encoder=functools.partial(ConvTextEncoder, embedding_dim=8, n_convs=1, kernel_size=3, hidden=8) if text else None,
        mel_encoder=None if text else functools.partial(PyramidalMelEncoder, hidden=8, n_layers=2, n_pyramid=1),
        attention=functools.partial(LocationSensitiveAttention, attention_dim=8, n_filters=2, kernel_size=3),
        reduction_factor=r, prenet_dims=(8,), attention_rnn_dim=12, decoder_rnn_dims=(12,),
        postnet=functools.partial(ConvPostnet, channels=8, kernel_size=3, n_layers=2),
        linear_postnet=functools.partial(CBHGLinearPostnet, K=2, bank_channels=4, projection_channels=4,
                                         highway_dim=4, n_highway=1, gru_dim=4) if linear else None,
        gst_tokens=gst, gst_token_dim=4, gst_heads=2, gst_ref_channels=(2, 2), gst_ref_dim=4,
    )


def synthetic_batch(tokenizer: Tokenizer, n_mels: int = FEATS.n_mels, mel_input: bool = False) -> dict:
    g = torch.Generator().manual_seed(0)
    texts = ["hello there", "hi"]
    tokens, token_lengths = tokenizer.pad_batch([tokenizer.encode(t) for t in texts])
    mel_lengths = torch.tensor([13, 8])
    mel = torch.randn(2, 13, n_mels, generator=g) - 5
    mel[1, 8:] = FEATS.silence_level
    batch = {"ids": ["a", "b/c"], "speakers": ["x", "x"], "texts": texts, "tokens": tokens,
             "token_lengths": token_lengths, "mel": mel, "mel_lengths": mel_lengths}
    if mel_input:
        batch["src_mel"], batch["src_mel_lengths"] = mel.clone(), mel_lengths.clone()
    return batch


# -- every config through the CLI -----------------------------------------------------------------------------------
@pytest.mark.parametrize("config", ["tacotron_teacher.yaml", "tacotron_autoencoder.yaml", "tacotron_teacher_vc.yaml"])
def test_teacher_configs_fast_dev_run(config, demo_root, tmp_path_factory, tmp_path):
    extra = []
    if config == "tacotron_teacher_vc.yaml":
        extra.append(f"--model.init_args.init_checkpoint={th.checkpoint('autoencoder', Path(demo_root), tmp_path_factory.getbasetemp())}")
    cli = th.run("fit", config, Path(demo_root), tmp_path, "--trainer.fast_dev_run=1", *extra)
    metrics = cli.trainer.callback_metrics
    for key in ("train/loss", "train/mel_loss", "train/stop_loss", "val/loss", "val/mel_loss", "val/stop_loss",
                "val/attn_diagonal", "val/attn_focus"):
        assert key in metrics and math.isfinite(float(metrics[key])), key
    assert 0.0 <= float(metrics["val/attn_diagonal"]) <= 1.0 and 0.0 < float(metrics["val/attn_focus"]) <= 1.0
    assert list(Path(tmp_path).rglob("media/epoch_000/*_attention_teacher_forced.png")), "no attention image"
    assert list(Path(tmp_path).rglob("media/epoch_000/*_free_running.wav"))


def test_configs_checkpoint_at_a_predictable_path(demo_root, tmp_path_factory):
    ckpt = th.checkpoint("tts", Path(demo_root), tmp_path_factory.getbasetemp())
    assert ckpt.relative_to(ckpt.parents[3]) == Path("runs/tacotron_teacher/checkpoints/last.ckpt")
    meta = torch.load(ckpt, map_location="cpu", weights_only=True)["tts_lab"]
    assert meta["task"] == "tacotron" and meta["input_type"] == "text" and meta["reduction_factor"] == 3


# -- init_checkpoint -------------------------------------------------------------------------------------------------
def test_init_checkpoint_loads_weights_only_and_mismatches_are_clear(demo_root, tmp_path_factory, tmp_path):
    base = tmp_path_factory.getbasetemp()
    init = th.checkpoint("autoencoder", Path(demo_root), base)
    cli = th.run("fit", "tacotron_teacher_vc.yaml", Path(demo_root), tmp_path,
                 f"--model.init_args.init_checkpoint={init}", run=False)
    task: TacotronTask = cli.model
    task.setup("fit")
    saved = torch.load(init, map_location="cpu", weights_only=True)["state_dict"]
    for name, value in task.network.state_dict().items():
        assert torch.equal(value, saved[f"network.{name}"]), name

    bigger = th.run("fit", "tacotron_teacher_vc.yaml", Path(demo_root), tmp_path, f"--model.init_args.init_checkpoint={init}",
                    f"{th.N}.mel_encoder.init_args.hidden=32", run=False).model
    with pytest.raises(CheckpointMismatch, match="does not fit this network.*shape"):
        bigger.setup("fit")
    ctc = th.checkpoint("ctc", Path(demo_root), base)
    wrong = th.run("fit", "tacotron_teacher_vc.yaml", Path(demo_root), tmp_path,
                   f"--model.init_args.init_checkpoint={ctc}", run=False).model
    with pytest.raises(CheckpointMismatch, match="is a 'ctc' checkpoint, expected 'tacotron'"):
        wrong.setup("fit")


# -- ASR intelligibility metric --------------------------------------------------------------------------------------
def test_asr_cer_is_logged_with_an_asr_checkpoint(demo_root, tmp_path_factory, tmp_path):
    ctc = th.checkpoint("ctc", Path(demo_root), tmp_path_factory.getbasetemp())
    cli = th.run("fit", "tacotron_teacher.yaml", Path(demo_root), tmp_path, "--trainer.fast_dev_run=1",
                 f"--model.init_args.asr_checkpoint={ctc}", "--model.init_args.asr_utterances=2")
    cer = float(cli.trainer.callback_metrics["val/asr_cer"])
    assert math.isfinite(cer) and cer >= 0.0
    assert cli.model.asr is not None and not any(m.training for m in cli.model.asr.modules())  # eval after fit
    assert all(not p.requires_grad for p in cli.model.asr.parameters())
    ckpt = {"state_dict": cli.model.state_dict()}
    cli.model.on_save_checkpoint(ckpt)  # the recogniser's weights stay in its own checkpoint
    assert ckpt["state_dict"] and not any(k.startswith("asr.") for k in ckpt["state_dict"])


def test_asr_checkpoint_with_other_features_is_a_clear_error(demo_root, tmp_path_factory):
    ctc = th.checkpoint("ctc", Path(demo_root), tmp_path_factory.getbasetemp())
    with pytest.raises(CheckpointMismatch, match="asr_checkpoint .* other features.*n_mels"):
        load_asr(ctc, FeatureConfig(n_mels=40))
    tts = th.checkpoint("tts", Path(demo_root), tmp_path_factory.getbasetemp())
    with pytest.raises(CheckpointMismatch, match="is a 'tacotron' checkpoint, expected 'ctc'"):
        load_asr(tts, FeatureConfig())


# -- losses, inputs, builder -----------------------------------------------------------------------------------------
def test_losses_have_every_term_and_train_a_step():
    tokenizer = Tokenizer()
    task = TacotronTask(tiny_builder(linear=True, gst=3), features=FEATS, tokenizer=tokenizer,
                        losses=TacotronLosses(guided_attention_weight=0.5))
    batch = synthetic_batch(tokenizer)
    out, terms = task._terms(batch)
    assert set(terms) == {"mel_loss", "postnet_loss", "stop_loss", "linear_loss", "guided_attention_loss", "loss"}
    expected = (terms["mel_loss"] + terms["postnet_loss"] + terms["stop_loss"] + terms["linear_loss"]
                + 0.5 * terms["guided_attention_loss"])
    assert torch.allclose(terms["loss"], expected)
    terms["loss"].backward()
    assert all(torch.isfinite(p.grad).all() for p in task.network.parameters() if p.grad is not None)
    assert out.linear.shape[-1] == FEATS.n_fft // 2 + 1


def test_no_postnet_means_no_postnet_term():
    builder = tiny_builder()
    builder.postnet = None
    task = TacotronTask(builder, features=FEATS, tokenizer=Tokenizer())
    _, terms = task._terms(synthetic_batch(task.tokenizer))
    assert set(terms) == {"mel_loss", "stop_loss", "loss"}


def test_linear_target_inverts_the_mel_filterbank():
    import torchaudio

    target = LinearTarget(FEATS)
    g = torch.Generator().manual_seed(0)
    linear = torch.rand(5, FEATS.n_fft // 2 + 1, generator=g) + 0.1
    fb = torchaudio.functional.melscale_fbanks(FEATS.n_fft // 2 + 1, FEATS.f_min, FEATS.f_max, FEATS.n_mels,
                                               FEATS.sample_rate, FEATS.mel_norm, FEATS.mel_scale)
    log_mel = (linear @ fb).log()
    recovered = target(log_mel)  # least squares: projecting it back through the filterbank gives the mel again
    assert recovered.shape == (5, FEATS.n_fft // 2 + 1)
    assert torch.allclose((recovered.exp() @ fb).log(), log_mel, atol=0.05)


def test_inputs_follow_the_encoder_and_a_mel_network_needs_src_mel():
    tokenizer = Tokenizer()
    text = TacotronTask(tiny_builder(text=True), features=FEATS, tokenizer=tokenizer).network
    mel = TacotronTask(tiny_builder(text=False), features=FEATS, tokenizer=tokenizer).network
    batch = synthetic_batch(tokenizer, mel_input=True)
    assert network_inputs(text, batch)[0] is batch["tokens"]
    assert network_inputs(mel, batch)[0] is batch["src_mel"]
    del batch["src_mel"], batch["src_mel_lengths"]
    with pytest.raises(ValueError, match="no 'src_mel': use data.task 'autoencoder' or 'vc'"):
        network_inputs(mel, batch)
    assert network_inputs(mel, batch, source_fallback=True)[0] is batch["mel"]


def test_builder_derives_sizes_and_refuses_wrong_slots():
    tokenizer = Tokenizer("abc ")
    task = TacotronTask(tiny_builder(gst=2), features=FEATS, tokenizer=tokenizer)
    net = task.network
    assert net.encoder.embedding.num_embeddings == tokenizer.vocab_size == 5
    assert net.decoder.n_mels == FEATS.n_mels and net.decoder.memory_dim == net.encoder.out_dim + 4
    assert net.decoder.attention.query_dim == 12
    with pytest.raises(ValueError, match="exactly one of text_encoder"):
        TacotronBuilder()
    wrong = tiny_builder(text=True)
    wrong.text_encoder = functools.partial(PyramidalMelEncoder, hidden=8, n_layers=1, n_pyramid=0)
    with pytest.raises(ValueError, match="PyramidalMelEncoder reads 'mel' input but was given as text_encoder"):
        wrong(5, 12, 129)
