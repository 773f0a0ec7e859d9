"""Training logic for one Tacotron: the teacher of attention distillation, or any single Tacotron.

The same task trains text-to-speech (``data.task: tts``), mel autoencoding (``autoencoder``) and voice conversion
(``vc``): the network's encoder decides what it reads (``tokens`` for text encoders, ``src_mel`` for mel encoders),
the target is always ``mel``. The pieces here (losses, logging and optimiser hooks), in
:mod:`tts_lab.tasks.tacotron_runs` (inputs, inference, media, predictions) and in :mod:`tts_lab.tasks.loading` (frozen
helper models, checkpoint readers) are plain functions and small classes so that the distillation task
(:mod:`tts_lab.tasks.distill`) reuses them by composition.

Checkpoints record the feature config, symbols, input type, reduction factor and encoder time reduction
(``checkpoint["tts_lab"]``, task ``"tacotron"``) plus the hyper-parameters the CLI saw, so a checkpoint alone rebuilds
its network (:func:`load_tacotron`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytorch_lightning as pl
import torch
import torchaudio
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn
from torchmetrics.text import CharErrorRate

from tts_lab.audio.features import FeatureConfig
from tts_lab.losses.tacotron import guided_attention_loss, masked_mel_loss, stop_loss
from tts_lab.metrics.attention import AttentionDiagonal, AttentionFocus
from tts_lab.metrics.means import StageMeans
from tts_lab.models.tacotron import Tacotron, TacotronOutput, n_steps
from tts_lab.models.tacotron.builder import TacotronBuilder
from tts_lab.tasks import checkpoint
from tts_lab.tasks.guard import NonFiniteGuard, load_guards, save_guards
from tts_lab.tasks.loading import TACOTRON_TASK, FrozenASR, drop_frozen, load_asr, load_network_weights, restore_frozen
from tts_lab.tasks.tacotron_runs import (eval_max_steps, free_running, gta_items, media_items, media_runs, slice_batch,
                                         synthesis_items, teacher_forced, with_silence)
from tts_lab.text import Tokenizer

TASK_NAME = TACOTRON_TASK
PredictMode = Literal["synthesize", "gta"]
# Arguments that are not part of the trained model (the tokenizer is recorded in the checkpoint stamp instead).
INFERENCE_ARGS = [
    "tokenizer", "init_checkpoint", "asr_checkpoint", "asr_utterances", "max_decoder_steps", "stop_threshold",
    "predict_mode", "media_utterances",
]


# -- losses ---------------------------------------------------------------------------------------------------------
@dataclass
class TacotronLosses:
    """The Tacotron objective; ``losses(output, batch, r, linear_target)`` returns named terms and their total.

    Args:
        mel: "l1" or "mse" reconstruction on valid frames, before and (with a postnet) after the postnet.
        stop_weight: weight of the stop-token BCE.
        stop_pos_weight: weight of the positive ("stop") class; ~1 positive per utterance makes it rare.
        linear_weight: weight of the linear-spectrogram loss (only with a linear postnet).
        guided_attention_weight: weight of the diagonal prior (Tachibana et al.); 0 disables it.
        guided_attention_g: width of its band.
    """

    mel: Literal["l1", "mse"] = "l1"
    stop_weight: float = 1.0
    stop_pos_weight: float = 5.0
    linear_weight: float = 1.0
    guided_attention_weight: float = 0.0
    guided_attention_g: float = 0.2

    def __call__(self, out: TacotronOutput, batch: dict, r: int, linear_target: Tensor | None = None) -> dict[str, Tensor]:
        """Terms: ``mel_loss`` (before the postnet), ``postnet_loss`` (after, with a postnet), ``stop_loss``,
        ``linear_loss`` (with a linear postnet), ``guided_attention_loss`` (when weighted) and their sum ``loss``."""
        mel, lengths = batch["mel"], batch["mel_lengths"]
        terms = {"mel_loss": masked_mel_loss(out.mel, mel, lengths, self.mel)}
        total = terms["mel_loss"]
        if out.mel_post is not out.mel:  # a postnet is present
            terms["postnet_loss"] = masked_mel_loss(out.mel_post, mel, lengths, self.mel)
            total = total + terms["postnet_loss"]
        terms["stop_loss"] = stop_loss(out.stop_logits, lengths, r, self.stop_pos_weight)
        total = total + self.stop_weight * terms["stop_loss"]
        if out.linear is not None:
            if linear_target is None:
                raise ValueError("the network has a linear postnet: pass the linear target")
            terms["linear_loss"] = masked_mel_loss(out.linear, linear_target, lengths, self.mel)
            total = total + self.linear_weight * terms["linear_loss"]
        if self.guided_attention_weight > 0:
            dec_steps = n_steps(lengths, r)
            terms["guided_attention_loss"] = guided_attention_loss(
                out.alignments, out.memory_lengths, dec_steps, self.guided_attention_g
            )
            total = total + self.guided_attention_weight * terms["guided_attention_loss"]
        terms["loss"] = total
        return terms


class LinearTarget(nn.Module):
    """Log-mel (..., T, n_mels) -> log linear magnitude (..., T, n_fft // 2 + 1), the target of a linear postnet.

    Batches carry log-mels only, so the linear magnitude is recovered by least squares through the mel filterbank
    (the pseudo-inverse, as ``torchaudio.transforms.InverseMelScale`` / Griffin-Lim here do), clamped to the log
    floor. This is an approximation: detail finer than the mel resolution, and everything above ``f_max``, is not in
    a mel spectrogram. A true linear target needs the data module to cache linear spectrograms too.
    """

    def __init__(self, features: FeatureConfig) -> None:
        super().__init__()
        fb = torchaudio.functional.melscale_fbanks(
            n_freqs=features.n_fft // 2 + 1,
            f_min=features.f_min,
            f_max=features.f_max if features.f_max is not None else features.sample_rate / 2,
            n_mels=features.n_mels,
            sample_rate=features.sample_rate,
            norm=features.mel_norm,
            mel_scale=features.mel_scale,
        )  # (n_freqs, n_mels): mel = linear @ fb
        self.register_buffer("pinv", torch.linalg.pinv(fb), persistent=False)  # (n_mels, n_freqs)
        self.log_floor = features.log_floor

    @torch.no_grad()
    def forward(self, log_mel: Tensor) -> Tensor:
        linear = log_mel.float().exp() @ self.pinv  # (..., T, n_freqs)
        return linear.clamp_min(self.log_floor).log()


# -- the task -------------------------------------------------------------------------------------------------------
class TacotronTask(pl.LightningModule):
    """Args:
    network: the architecture (:class:`~tts_lab.models.tacotron.builder.TacotronBuilder`); vocabulary size,
        ``n_mels`` and the linear size are filled in from the tokenizer and features.
    losses: loss terms and weights (:class:`TacotronLosses`).
    optimizer, scheduler, scheduler_interval: injected from the config.
    features: linked from the data module (stamped in checkpoints and checked on load).
    tokenizer: linked from the data module (its symbols size the text encoder and are stamped).
    init_checkpoint: initialise the network from another TacotronTask checkpoint (weights only; the optimiser
        starts fresh), e.g. the autoencoder before voice-conversion fine-tuning. Loaded when fitting starts, so
        resuming with ``--ckpt_path`` still restores the resumed weights.
    asr_checkpoint: a CTCTask checkpoint (same features); validation then logs ``val/asr_cer``, the CER of greedy
        transcripts of free-running outputs for the first ``asr_utterances`` validation utterances.
    max_decoder_steps: cap on free-running steps for ``predict`` (validation caps at 1.5 x the target length).
    stop_threshold: stop-token probability that ends free-running decoding.
    predict_mode: "synthesize" (free-running mel + attention per item) or "gta" (teacher-forced mel cropped to the
        target's exact length, for the postnet GAN).
    media_utterances: utterances of the first validation batch that ``media`` renders.
    max_nonfinite: stop after this many non-finite training losses in a row (each one skips its update).
    """

    def __init__(
        self,
        network: TacotronBuilder,
        losses: TacotronLosses = TacotronLosses(),
        optimizer: OptimizerCallable = torch.optim.Adam,
        scheduler: LRSchedulerCallable | None = None,
        scheduler_interval: str = "epoch",
        features: FeatureConfig = FeatureConfig(),
        tokenizer: Tokenizer | None = None,
        init_checkpoint: str | None = None,
        asr_checkpoint: str | None = None,
        asr_utterances: int = 8,
        max_decoder_steps: int = 1000,
        stop_threshold: float = 0.5,
        predict_mode: PredictMode = "synthesize",
        media_utterances: int = 2,
        max_nonfinite: int = 5,
    ) -> None:
        super().__init__()
        # Inference-time knobs and paths to other files are not hyper-parameters of the model: a checkpoint must not
        # override them on the command line (LightningCLI applies a checkpoint's hyper-parameters over the CLI's).
        self.save_hyperparameters(ignore=INFERENCE_ARGS)
        self.features = features
        self.tokenizer = tokenizer or Tokenizer()
        self.network = network(self.tokenizer.vocab_size, features.n_mels, features.n_fft // 2 + 1)
        self.losses = losses
        self.linear_target = LinearTarget(features) if self.network.linear_postnet is not None else None
        self.optimizer, self.scheduler, self.scheduler_interval = optimizer, scheduler, scheduler_interval
        self.init_checkpoint, self.asr_checkpoint, self.asr_utterances = init_checkpoint, asr_checkpoint, asr_utterances
        self.max_decoder_steps, self.stop_threshold = max_decoder_steps, stop_threshold
        self.predict_mode, self.media_utterances = predict_mode, media_utterances
        self.val_diagonal, self.val_focus = AttentionDiagonal(), AttentionFocus()
        self.val_asr_cer = CharErrorRate()
        self.asr: FrozenASR | None = None
        self.guard = NonFiniteGuard(max_nonfinite)
        self.val_losses = StageMeans()
        self._initialised = False
        self._asr_scored = 0

    @property
    def r(self) -> int:
        return self.network.reduction_factor

    # -- setup: files named in the config are read when a run starts, not when a checkpoint is rebuilt ----------
    def setup(self, stage: str) -> None:
        if stage == "fit" and self.init_checkpoint and not self._initialised:
            load_network_weights(self.network, self.init_checkpoint, self.features)
            self._initialised = True
        if stage in ("fit", "validate") and self.asr_checkpoint and self.asr is None:
            self.asr = load_asr(self.asr_checkpoint, self.features)

    # -- steps ------------------------------------------------------------------------------------------------
    def _terms(self, batch: dict) -> tuple[TacotronOutput, dict[str, Tensor]]:
        out = teacher_forced(self.network, batch)
        target = self.linear_target(batch["mel"]) if self.linear_target is not None else None
        return out, self.losses(out, batch, self.r, target)

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        _, terms = self._terms(batch)
        return log_training_terms(self, terms, batch)

    def on_before_optimizer_step(self, optimizer) -> None:
        self.guard.on_before_optimizer_step(optimizer)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        out, terms = self._terms(batch)
        n = len(batch["ids"])
        self.val_losses.update(terms, weight=n)
        log_attention_metrics(self, out, batch)
        score_asr(self, batch)

    def on_validation_epoch_start(self) -> None:
        self._asr_scored = 0

    def on_validation_epoch_end(self) -> None:
        self.val_losses.log(self, "val")

    def predict_step(self, batch: dict, batch_idx: int) -> list[dict]:
        return predict(self, batch)

    @torch.no_grad()
    def media(self, batch: dict) -> list[dict]:
        """Attention, target vs teacher-forced vs free-running mel and their audio for the first utterances."""
        batch, out, inf = media_runs(self, batch)
        return media_items(batch, out, inf, self.r, self.features)

    # -- optimisation and checkpoints -------------------------------------------------------------------------
    def configure_optimizers(self):
        return build_optimizers(self, self.network.parameters())

    def on_save_checkpoint(self, ckpt: dict) -> None:
        stamp(ckpt, TASK_NAME, self)
        save_guards(ckpt, self.guard)
        drop_frozen(ckpt, ("asr.",))

    def on_load_checkpoint(self, ckpt: dict) -> None:
        checkpoint.check(ckpt, TASK_NAME, self.features, symbols=self.tokenizer.symbols)
        load_guards(ckpt, self.guard)
        restore_frozen(ckpt, self, ("asr.",))


# -- hooks shared with the distillation task ------------------------------------------------------------------------
def stamp(ckpt: dict, task: str, module: pl.LightningModule) -> None:
    network: Tacotron = module.network
    checkpoint.stamp(
        ckpt, task, module.features, symbols=module.tokenizer.symbols, input_type=network.input_type,
        reduction_factor=network.reduction_factor, time_reduction=network.time_reduction,
    )


def log_training_terms(module: pl.LightningModule, terms: dict[str, Tensor], batch: dict) -> Tensor:
    """Log ``train/<term>``; a non-finite loss is counted (``train/skipped_nonfinite``) and its update dropped by the
    task's guard instead of being logged."""
    loss = terms["loss"]
    if module.guard.check(loss, batch, module):
        n = len(batch["ids"])
        for name, value in terms.items():
            module.log(f"train/{name}", value, prog_bar=name in ("loss", "distill_loss"), batch_size=n)
    return loss


def build_optimizers(module: pl.LightningModule, parameters):
    optimizer = module.optimizer(parameters)
    if module.scheduler is None:
        return optimizer
    return {"optimizer": optimizer,
            "lr_scheduler": {"scheduler": module.scheduler(optimizer), "interval": module.scheduler_interval}}


def log_attention_metrics(module: pl.LightningModule, out: TacotronOutput, batch: dict) -> None:
    """``val/attn_diagonal`` and ``val/attn_focus`` of teacher-forced attention, over valid steps only."""
    dec_lengths = n_steps(batch["mel_lengths"], module.network.reduction_factor)
    module.val_diagonal(out.alignments, dec_lengths, out.memory_lengths)
    module.val_focus(out.alignments, dec_lengths, out.memory_lengths)
    n = len(batch["ids"])
    module.log("val/attn_diagonal", module.val_diagonal, prog_bar=True, batch_size=n)
    module.log("val/attn_focus", module.val_focus, batch_size=n)


def score_asr(module: pl.LightningModule, batch: dict) -> None:
    """Transcribe free-running outputs of the first ``asr_utterances`` validation utterances; log ``val/asr_cer``."""
    if module.asr is None or module.trainer.sanity_checking or module._asr_scored >= module.asr_utterances:
        return
    sub = slice_batch(batch, module.asr_utterances - module._asr_scored)
    r = module.network.reduction_factor
    with torch.no_grad():
        inf = free_running(module.network, sub, eval_max_steps(sub, r, module.max_decoder_steps), module.stop_threshold)
        mel = with_silence(inf.mel_post, inf.mel_lengths, module.features.silence_level)
        hyps = module.asr.transcribe(mel, inf.mel_lengths.clamp_min(1))
    refs = [module.asr.reference(text) for text in sub["texts"]]
    module.val_asr_cer(hyps, refs)
    module.log("val/asr_cer", module.val_asr_cer, batch_size=len(refs))
    module._asr_scored += len(refs)


def predict(module: pl.LightningModule, batch: dict) -> list[dict]:
    network: Tacotron = module.network
    if module.predict_mode == "gta":
        return gta_items(batch, teacher_forced(network, batch))
    if network.input_type == "text" and not int(batch["token_lengths"].min()):
        raise ValueError("text-input network: predict needs a split with texts, not predict_files")
    inf = free_running(network, batch, module.max_decoder_steps, module.stop_threshold, source_fallback=True)
    return synthesis_items(batch, inf, network.reduction_factor, module.max_decoder_steps)
