"""Training logic for the CTC acoustic model (speech recognition: log-mels -> characters)."""

from __future__ import annotations

from collections.abc import Callable

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torchmetrics.text import CharErrorRate, WordErrorRate

from tts_lab.audio.features import FeatureConfig
from tts_lab.decoding.ctc import BeamSearchDecoder, greedy_decode
from tts_lab.metrics.means import StageMeans
from tts_lab.tasks import checkpoint
from tts_lab.tasks.guard import NonFiniteGuard, load_guards, save_guards
from tts_lab.text import ASR_SYMBOLS, Tokenizer


class CTCTask(pl.LightningModule):
    """Args:
    network: builds the acoustic model from (n_mels, n_tokens), e.g. ``tts_lab.models.CTCAcousticModel``.
    optimizer, scheduler: injected from the config; the scheduler steps every ``scheduler_interval``.
    features: linked from the data module (saved in the checkpoint and checked on load).
    tokenizer: linked from the data module (its symbols are saved and checked the same way); default ASR symbols.
    beam_size: 0 decodes greedily everywhere; > 0 uses beam search for test and predict (val stays greedy: fast).
    lexicon, lm, lm_weight, word_score: optional lexicon / KenLM for beam search.
    max_nonfinite: stop after this many non-finite training losses in a row (each one skips its update).
    """

    def __init__(
        self,
        network: Callable[[int, int], nn.Module],
        optimizer: OptimizerCallable = torch.optim.AdamW,
        scheduler: LRSchedulerCallable | None = None,
        scheduler_interval: str = "epoch",
        features: FeatureConfig = FeatureConfig(),
        tokenizer: Tokenizer | None = None,
        beam_size: int = 0,
        lexicon: str | None = None,
        lm: str | None = None,
        lm_weight: float = 2.0,
        word_score: float = 0.0,
        max_nonfinite: int = 5,
    ) -> None:
        super().__init__()
        self.features = features
        self.tokenizer = tokenizer or Tokenizer(ASR_SYMBOLS)
        self.network = network(features.n_mels, self.tokenizer.vocab_size)
        self.optimizer, self.scheduler, self.scheduler_interval = optimizer, scheduler, scheduler_interval
        self.beam_size = beam_size
        self._beam_args = dict(lexicon=lexicon, lm=lm, lm_weight=lm_weight, word_score=word_score)
        self._beam: BeamSearchDecoder | None = None
        self.val_cer, self.val_wer = CharErrorRate(), WordErrorRate()
        self.test_cer, self.test_wer = CharErrorRate(), WordErrorRate()
        self.val_losses, self.test_losses = StageMeans(), StageMeans()
        self.guard = NonFiniteGuard(max_nonfinite)

    # -- core -------------------------------------------------------------------------------------------------
    def forward(self, mel: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.network(mel, lengths)

    def _loss(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        log_probs, out_lengths = self(batch["mel"], batch["mel_lengths"])  # (B, T', V) fp32
        loss = F.ctc_loss(
            log_probs.transpose(0, 1),  # (T', B, V), as ctc_loss wants
            batch["tokens"],
            out_lengths,
            batch["token_lengths"],
            blank=self.tokenizer.blank_id,
            reduction="mean",  # sum over frames / target length, then batch mean
            zero_infinity=True,  # an utterance too short for its text gives 0, not inf
        )
        return loss, log_probs, out_lengths

    def decode(self, log_probs: torch.Tensor, lengths: torch.Tensor, beam: bool = False) -> list[str]:
        if beam and self.beam_size > 0:
            if self._beam is None:
                self._beam = BeamSearchDecoder(self.tokenizer, self.beam_size, **self._beam_args)
            return self._beam(log_probs, lengths)
        return greedy_decode(log_probs, lengths, self.tokenizer)

    def _references(self, batch: dict) -> list[str]:
        return [self.tokenizer.decode(t[:n]) for t, n in zip(batch["tokens"].cpu(), batch["token_lengths"].cpu())]

    # -- loops ------------------------------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss, _, _ = self._loss(batch)
        # A non-finite loss is counted (train/skipped_nonfinite) and its update dropped (on_before_optimizer_step).
        if self.guard.check(loss, batch, self):
            self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["ids"]))
        return loss

    def on_before_optimizer_step(self, optimizer) -> None:
        self.guard.on_before_optimizer_step(optimizer)

    def _eval_step(self, batch: dict, stage: str, cer, wer, losses: StageMeans, beam: bool) -> None:
        loss, log_probs, out_lengths = self._loss(batch)
        hyps, refs = self.decode(log_probs, out_lengths, beam=beam), self._references(batch)
        cer(hyps, refs)
        wer(hyps, refs)
        n = len(batch["ids"])
        losses.update({"loss": loss}, weight=n)
        self.log(f"{stage}/cer", cer, prog_bar=True, batch_size=n)
        self.log(f"{stage}/wer", wer, batch_size=n)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "val", self.val_cer, self.val_wer, self.val_losses, beam=False)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "test", self.test_cer, self.test_wer, self.test_losses, beam=True)

    def on_validation_epoch_end(self) -> None:
        self.val_losses.log(self, "val")

    def on_test_epoch_end(self) -> None:
        self.test_losses.log(self, "test")

    def predict_step(self, batch: dict, batch_idx: int) -> list[dict]:
        log_probs, out_lengths = self(batch["mel"], batch["mel_lengths"])
        hyps = self.decode(log_probs, out_lengths, beam=True)
        return [{"id": i, "text": h, "reference": r} for i, h, r in zip(batch["ids"], hyps, batch["texts"])]

    # -- media for the logging callbacks ----------------------------------------------------------------------
    @torch.no_grad()
    def media(self, batch: dict) -> list[dict]:
        """Per utterance: input spectrogram, CTC posteriorgram (frames x tokens), transcript vs reference."""
        log_probs, out_lengths = self(batch["mel"], batch["mel_lengths"])
        hyps = self.decode(log_probs, out_lengths)
        out = []
        for b, uid in enumerate(batch["ids"]):
            n, m = int(batch["mel_lengths"][b]), int(out_lengths[b])
            out.append({
                "id": uid,
                "spectrograms": {"input": batch["mel"][b, :n]},
                "alignments": {"ctc_posteriors": log_probs[b, :m].exp().T},  # (V, T')
                "audio": {"input": batch["mel"][b, :n]},
                "caption": f"hyp: {hyps[b]}\nref: {batch['texts'][b]}",
            })
        return out

    # -- optimisation and checkpoints -------------------------------------------------------------------------
    def configure_optimizers(self):
        optimizer = self.optimizer(self.parameters())
        if self.scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler(optimizer), "interval": self.scheduler_interval}}

    def on_save_checkpoint(self, ckpt: dict) -> None:
        checkpoint.stamp(ckpt, "ctc", self.features, symbols=self.tokenizer.symbols)
        save_guards(ckpt, self.guard)

    def on_load_checkpoint(self, ckpt: dict) -> None:
        checkpoint.check(ckpt, "ctc", self.features, symbols=self.tokenizer.symbols)
        load_guards(ckpt, self.guard)
