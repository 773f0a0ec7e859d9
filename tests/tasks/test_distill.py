"""DistillationTask: student configs through the CLI, a frozen teacher, clear mismatch errors, the KL's gradient path."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from tests.tasks import tacotron_helpers as th
from tts_lab.audio.features import FeatureConfig
from tts_lab.models.tacotron import ConvPostnet, ConvTextEncoder, LocationSensitiveAttention, PyramidalMelEncoder
from tts_lab.models.tacotron.builder import TacotronBuilder
from tts_lab.tasks.checkpoint import CheckpointMismatch
from tts_lab.tasks.distill import DistillationTask, TeacherMismatch
from tts_lab.tasks.tacotron_runs import teacher_forced
from tts_lab.text import Tokenizer


def student_builder(text: bool = False, r: int = 3, n_pyramid: int = 2) -> TacotronBuilder:
    return TacotronBuilder(
        text_encoder=functools.partial(ConvTextEncoder, embedding_dim=8, n_convs=1, kernel_size=3, hidden=8) if text else None,
        mel_encoder=None if text else functools.partial(PyramidalMelEncoder, hidden=8, n_layers=2, n_pyramid=n_pyramid),
        attention=functools.partial(LocationSensitiveAttention, attention_dim=8, n_filters=4, kernel_size=5),
        reduction_factor=r, prenet_dims=(8,), attention_rnn_dim=16, decoder_rnn_dims=(8,),
        postnet=functools.partial(ConvPostnet, channels=8, kernel_size=3, n_layers=2),
    )


def student(teacher: Path | None, features: FeatureConfig = FeatureConfig(), tokenizer: Tokenizer | None = None,
            **kw) -> DistillationTask:
    builder = kw.pop("builder", None) or student_builder()
    return DistillationTask(builder, teacher_checkpoint=None if teacher is None else str(teacher), features=features,
                            tokenizer=tokenizer or Tokenizer(), **kw)


@pytest.fixture()
def autoencoder_ckpt(demo_root, tmp_path_factory) -> Path:
    return th.checkpoint("autoencoder", Path(demo_root), tmp_path_factory.getbasetemp())


# -- the student configs through the CLI ----------------------------------------------------------------------------
@pytest.mark.parametrize("config,teacher", [("tacotron_student.yaml", "autoencoder"), ("tacotron_student_tts.yaml", "tts")])
def test_student_configs_fast_dev_run(config, teacher, demo_root, tmp_path_factory, tmp_path):
    ckpt = th.checkpoint(teacher, Path(demo_root), tmp_path_factory.getbasetemp())
    cli = th.run("fit", config, Path(demo_root), tmp_path, "--trainer.fast_dev_run=1",
                 f"--model.init_args.teacher_checkpoint={ckpt}")
    metrics = cli.trainer.callback_metrics
    for key in ("train/loss", "train/mel_loss", "train/distill_loss", "val/loss", "val/attn_diagonal",
                "val/attn_focus", "val/distill_kl"):
        assert key in metrics and math.isfinite(float(metrics[key])), key
    assert list(Path(tmp_path).rglob("media/epoch_000/*_attention_teacher.png")), "no teacher attention image"


def test_distill_weight_zero_is_the_baseline(autoencoder_ckpt, demo_root, tmp_path):
    cli = th.run("fit", "tacotron_student.yaml", Path(demo_root), tmp_path, "--trainer.fast_dev_run=1",
                 f"--model.init_args.teacher_checkpoint={autoencoder_ckpt}", "--model.init_args.distill_weight=0")
    metrics = cli.trainer.callback_metrics
    assert "train/distill_loss" not in metrics  # the teacher is not even run in training
    assert "train/loss" in metrics and "val/distill_kl" in metrics  # ... but how far the student is, is still shown


# -- the teacher is frozen ------------------------------------------------------------------------------------------
class TeacherProbe(pl.Callback):
    """Checks, during a real fit, that the teacher never trains."""

    def __init__(self) -> None:
        self.checks = 0

    def _frozen(self, module: DistillationTask) -> None:
        assert module.teacher is not None
        assert not any(m.training for m in module.teacher.modules()), "teacher left eval mode"
        assert all(not p.requires_grad and p.grad is None for p in module.teacher.parameters())
        self.checks += 1

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self._frozen(module)
        assert module.network.training  # ... while the student does

    def on_before_optimizer_step(self, trainer, module, optimizer) -> None:
        self._frozen(module)
        student = {id(p) for p in module.network.parameters()}
        assert all(id(p) in student for group in optimizer.param_groups for p in group["params"])

    def on_validation_batch_start(self, trainer, module, batch, batch_idx, dataloader_idx=0) -> None:
        self._frozen(module)


def test_teacher_is_frozen_and_kept_out_of_the_students_checkpoint(autoencoder_ckpt, demo_root, tmp_path):
    cli = th.run("fit", "tacotron_student.yaml", Path(demo_root), tmp_path, "--trainer.max_steps=2",
                 "--trainer.limit_val_batches=1", "--trainer.num_sanity_val_steps=1",
                 f"--model.init_args.teacher_checkpoint={autoencoder_ckpt}", run=False)
    probe = TeacherProbe()
    cli.trainer.callbacks.append(probe)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert probe.checks >= 5
    task: DistillationTask = cli.model
    teacher_state = torch.load(autoencoder_ckpt, map_location="cpu", weights_only=True)["state_dict"]
    for name, value in task.teacher.module.state_dict().items():
        assert torch.equal(value, teacher_state[f"network.{name}"]), f"teacher weight {name} changed"

    (last,) = Path(tmp_path).rglob("last.ckpt")
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    assert ckpt["tts_lab"]["task"] == "tacotron_student"
    assert not any(k.startswith("teacher.") for k in ckpt["state_dict"])
    assert any(k.startswith("network.") for k in ckpt["state_dict"])
    task.on_load_checkpoint(ckpt)  # puts the in-memory teacher back: strict loading of the whole task works
    task.load_state_dict(ckpt["state_dict"])

    # Resuming the student: the teacher is loaded again when fitting starts, the student's state comes back.
    resumed = th.run("fit", "tacotron_student.yaml", Path(demo_root), tmp_path / "resume", "--trainer.max_steps=3",
                     "--trainer.limit_val_batches=1", "--trainer.num_sanity_val_steps=0",
                     f"--model.init_args.teacher_checkpoint={autoencoder_ckpt}", "--ckpt_path", str(last))
    assert resumed.trainer.global_step == 3 and resumed.model.teacher is not None


# -- clear errors ---------------------------------------------------------------------------------------------------
def test_mismatched_teacher_and_student_are_refused(autoencoder_ckpt):
    with pytest.raises(TeacherMismatch, match=r"reduction factor r: teacher 3 vs student 2"):
        student(autoencoder_ckpt, builder=student_builder(r=2)).setup("fit")
    with pytest.raises(TeacherMismatch, match=r"input type: teacher 'mel' vs student 'text'"):
        student(autoencoder_ckpt, builder=student_builder(text=True)).setup("fit")
    with pytest.raises(TeacherMismatch, match=r"encoder time reduction: teacher 4 vs student 2"):
        student(autoencoder_ckpt, builder=student_builder(n_pyramid=1)).setup("fit")
    with pytest.raises(CheckpointMismatch, match=r"teacher_checkpoint .* other features.*n_mels"):
        student(autoencoder_ckpt, features=FeatureConfig(n_mels=40)).setup("fit")
    with pytest.raises(ValueError, match="distill_weight > 0 needs model.teacher_checkpoint"):
        student(None).setup("fit")
    with pytest.raises(FileNotFoundError, match="teacher_checkpoint .*missing.ckpt does not exist"):
        student(autoencoder_ckpt.parent / "missing.ckpt").setup("fit")


def test_text_teacher_needs_the_same_symbols(demo_root, tmp_path_factory):
    tts = th.checkpoint("tts", Path(demo_root), tmp_path_factory.getbasetemp())
    with pytest.raises(TeacherMismatch, match="text symbols"):
        student(tts, builder=student_builder(text=True), tokenizer=Tokenizer("abcdefghijklmnopqrstuvwxyz ")).setup("fit")
    student(tts, builder=student_builder(text=True)).setup("fit")  # same symbols: fine


def test_only_a_tacotron_teacher_checkpoint_is_accepted(demo_root, tmp_path_factory):
    base = tmp_path_factory.getbasetemp()
    ctc = th.checkpoint("ctc", Path(demo_root), base)
    with pytest.raises(CheckpointMismatch, match="is a 'ctc' checkpoint, expected 'tacotron'"):
        student(ctc).setup("fit")
    a_student = th.checkpoint("student", Path(demo_root), base)
    with pytest.raises(CheckpointMismatch, match="is a 'tacotron_student' checkpoint, expected 'tacotron'"):
        student(a_student).setup("fit")


# -- the distillation loss itself -----------------------------------------------------------------------------------
def test_distillation_alone_pulls_the_students_attention_to_the_teachers():
    torch.manual_seed(0)
    task = student(None, features=FeatureConfig(n_mels=8), distill_weight=1.0)
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([24, 18])
    src = torch.randn(2, 24, 8, generator=g) - 4
    batch = {"ids": ["a", "b"], "texts": ["", ""], "mel": src.clone(), "mel_lengths": lengths,
             "src_mel": src, "src_mel_lengths": lengths}
    out = teacher_forced(task.network, batch)  # (B, 8 steps, 6 encoder steps)
    steps, n_enc = out.alignments.shape[1:]
    target = torch.zeros(2, steps, n_enc)  # a sharp, monotonic "teacher"
    for b, (s, n) in enumerate(zip((8, 6), (6, 5))):
        for t in range(s):
            target[b, t, min(n - 1, t * n // s)] = 1.0
    task.teacher_alignments = lambda batch: target  # the teacher's part is tested above; here: the student's side
    optimizer = torch.optim.Adam(task.network.parameters(), lr=1e-2)
    kls = []
    for _ in range(60):
        kl = task.distill_kl(teacher_forced(task.network, batch), batch)
        optimizer.zero_grad()
        kl.backward()
        optimizer.step()
        kls.append(kl.item())
    assert kls[-1] < 0.3 * kls[0] and min(kls[-5:]) >= 0.0, kls[::5]
