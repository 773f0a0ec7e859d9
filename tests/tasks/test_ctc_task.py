import functools

import pytest
import torch

from tts_lab.audio.features import FeatureConfig
from tts_lab.models import CTCAcousticModel
from tts_lab.tasks import CTCTask
from tts_lab.tasks.checkpoint import CheckpointMismatch
from tts_lab.text import ASR_SYMBOLS, Tokenizer

FEATS = FeatureConfig(sample_rate=16000, n_fft=512, hop_length=160, n_mels=40, f_max=8000.0)


def tiny_task(**kw) -> CTCTask:
    torch.manual_seed(0)
    net = functools.partial(CTCAcousticModel, conv_channels=32, hidden=32, num_layers=1, subsample=2, dropout=0.0)
    return CTCTask(network=net, features=FEATS, tokenizer=Tokenizer(ASR_SYMBOLS), **kw)


def tiny_batch(task: CTCTask) -> dict:
    g = torch.Generator().manual_seed(0)
    texts = ["abc", "hello"]
    tokens, token_lengths = task.tokenizer.pad_batch([task.tokenizer.encode(t) for t in texts])
    mel_lengths = torch.tensor([40, 60])
    mel = torch.randn(2, 60, 40, generator=g)
    return {"ids": ["a", "b"], "texts": texts, "tokens": tokens, "token_lengths": token_lengths, "mel": mel, "mel_lengths": mel_lengths}


def test_output_lengths_follow_subsampling():
    net = CTCAcousticModel(40, 10, conv_channels=8, hidden=8, num_layers=1, subsample=4)
    lp, lengths = net(torch.randn(3, 37, 40), torch.tensor([37, 20, 5]))
    assert lengths.tolist() == [10, 5, 2] and lp.shape == (3, 10, 10)
    assert torch.allclose(lp.exp().sum(-1), torch.ones(3, 10), atol=1e-5)


def test_ctc_loss_decreases_on_a_tiny_batch():
    task = tiny_task()
    batch = tiny_batch(task)
    opt = torch.optim.Adam(task.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        loss, _, _ = task._loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]


def test_loss_is_finite_under_bf16_autocast_and_padding():
    task = tiny_task()
    batch = tiny_batch(task)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, log_probs, _ = task._loss(batch)
    assert log_probs.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in task.parameters() if p.grad is not None)


def test_impossible_alignment_gives_zero_not_inf():
    task = tiny_task()
    batch = tiny_batch(task)
    batch["mel_lengths"] = torch.tensor([2, 60])  # 1 output frame cannot hold "abc"
    loss, _, _ = task._loss(batch)
    assert torch.isfinite(loss)


def test_checkpoint_records_and_checks_features_and_symbols():
    task = tiny_task()
    ckpt: dict = {}
    task.on_save_checkpoint(ckpt)
    task.on_load_checkpoint(ckpt)  # same: fine
    other = CTCTask(network=functools.partial(CTCAcousticModel, conv_channels=8, hidden=8, num_layers=1), features=FeatureConfig(), tokenizer=Tokenizer(ASR_SYMBOLS))
    with pytest.raises(CheckpointMismatch, match="other features"):
        other.on_load_checkpoint(ckpt)
    with pytest.raises(CheckpointMismatch, match="'tacotron' checkpoint"):
        task.on_load_checkpoint({"tts_lab": {**ckpt["tts_lab"], "task": "tacotron"}})
