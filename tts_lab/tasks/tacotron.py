"""Training logic for one Tacotron: the teacher of attention distillation, or any single Tacotron.

The same task trains text-to-speech (``data.task: tts``), mel autoencoding (``autoencoder``) and voice conversion
(``vc``): the network's encoder decides what it reads (``tokens`` for text encoders, ``src_mel`` for mel encoders),
the target is always ``mel``. The pieces here (losses, input selection, inference, media, predictions, frozen
helper models, checkpoint loading) are plain functions and small classes so that the distillation task
(:mod:`tts_lab.tasks.distill`) reuses them by composition.

Checkpoints record the feature config, symbols, input type, reduction factor and encoder time reduction
(``checkpoint["tts_lab"]``, task ``"tacotron"``) plus the hyper-parameters the CLI saw, so a checkpoint alone rebuilds
its network (:func:`load_tacotron`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytorch_lightning as pl
import torch
import torchaudio
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn
from torchmetrics.text import CharErrorRate

from tts_lab.audio.features import FeatureConfig
from tts_lab.decoding.ctc import greedy_decode
from tts_lab.losses.tacotron import guided_attention_loss, masked_mel_loss, stop_loss
from tts_lab.metrics.attention import AttentionDiagonal, AttentionFocus
from tts_lab.metrics.means import StageMeans
from tts_lab.models.tacotron import Tacotron, TacotronInference, TacotronOutput, lengths_to_mask, n_steps
from tts_lab.models.tacotron.builder import TacotronBuilder
from tts_lab.tasks import checkpoint
from tts_lab.tasks.checkpoint import CheckpointMismatch
from tts_lab.tasks.guard import NonFiniteGuard, load_guards, save_guards
from tts_lab.text import Tokenizer

TASK_NAME = "tacotron"
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


# -- batches and inference ------------------------------------------------------------------------------------------
def network_inputs(network: Tacotron, batch: dict, source_fallback: bool = False) -> tuple[Tensor, Tensor]:
    """What the encoder reads: ``tokens`` (text encoders) or ``src_mel`` (mel encoders).

    With ``source_fallback`` a mel encoder reads ``mel`` when the batch has no ``src_mel`` (``predict_files``: the
    files are the source speech).
    """
    if network.input_type == "text":
        return batch["tokens"], batch["token_lengths"]
    if "src_mel" in batch:
        return batch["src_mel"], batch["src_mel_lengths"]
    if source_fallback:
        return batch["mel"], batch["mel_lengths"]
    raise ValueError(
        "this network reads mels (a mel encoder) but the batch has no 'src_mel': use data.task 'autoencoder' or 'vc'"
    )


def slice_batch(batch: dict, k: int) -> dict:
    """The first ``k`` items of a batch (tensors and lists), trimmed to the longest kept item."""
    if k >= len(batch["ids"]):
        return batch
    out = {key: value[:k] for key, value in batch.items()}
    for name, lengths in (("tokens", "token_lengths"), ("mel", "mel_lengths"), ("src_mel", "src_mel_lengths")):
        if name in out:
            out[name] = out[name][:, : int(out[lengths].max())]
    return out


def teacher_forced(network: Tacotron, batch: dict) -> TacotronOutput:
    inputs, lengths = network_inputs(network, batch)
    return network(inputs, lengths, batch["mel"], batch["mel_lengths"])


def free_running(
    network: Tacotron, batch: dict, max_steps: int, stop_threshold: float, source_fallback: bool = False
) -> TacotronInference:
    inputs, lengths = network_inputs(network, batch, source_fallback)
    return network.infer(inputs, lengths, max_steps=max_steps, stop_threshold=stop_threshold)


def eval_max_steps(batch: dict, r: int, cap: int, ratio: float = 1.5) -> int:
    """Free-running cap for validation: ``ratio`` x the longest target, at most ``cap`` steps."""
    return max(1, min(cap, math.ceil(ratio * int(n_steps(int(batch["mel_lengths"].max()), r)))))


def with_silence(mel: Tensor, lengths: Tensor, level: float) -> Tensor:
    """Set frames past each length to the silence level (free-running outputs are zero-padded)."""
    return mel.masked_fill(~lengths_to_mask(lengths, mel.size(1)).unsqueeze(-1), level)


def audible(mel: Tensor, features: FeatureConfig) -> Tensor:
    """Pad a (T, n_mels) log-mel with silence to the few frames Griffin-Lim needs (its STFT pads by n_fft / 2):
    an undertrained model may stop after one decoder step."""
    shortfall = features.n_fft // features.hop_length + 1 - mel.size(0)
    if shortfall <= 0:
        return mel
    return torch.cat([mel, mel.new_full((shortfall, mel.size(1)), features.silence_level)])


def media_items(batch: dict, out: TacotronOutput, inf: TacotronInference, r: int, features: FeatureConfig,
                extra_alignments: dict[str, Tensor] | None = None) -> list[dict]:
    """Per utterance, for :class:`~tts_lab.callbacks.MediaLogger`: attention (teacher-forced and free-running, plus
    ``extra_alignments`` such as a teacher's), target vs teacher-forced vs free-running mel, and their audio."""
    items = []
    for b, uid in enumerate(batch["ids"]):
        n, steps = int(batch["mel_lengths"][b]), int(n_steps(int(batch["mel_lengths"][b]), r))
        n_enc, n_inf = int(out.memory_lengths[b]), int(inf.mel_lengths[b])
        alignments = {"attention_teacher_forced": out.alignments[b, :steps, :n_enc].T}  # (enc, dec) rows bottom-up
        alignments["attention_free_running"] = inf.alignments[b, : max(n_inf // r, 1), :n_enc].T
        for name, matrix in (extra_alignments or {}).items():
            alignments[name] = matrix[b, :steps, :n_enc].T
        mels = {"target": batch["mel"][b, :n], "teacher_forced": out.mel_post[b, :n],
                "free_running": inf.mel_post[b, : max(n_inf, 1)]}
        items.append({
            "id": uid,
            "spectrograms": mels,
            "alignments": alignments,
            "audio": {name: audible(mel, features) for name, mel in mels.items()},
            "caption": f"{batch['texts'][b]}\nframes: target {n}, free-running {n_inf}",
        })
    return items


def media_runs(task: pl.LightningModule, batch: dict) -> tuple[dict, TacotronOutput, TacotronInference]:
    """The first ``task.media_utterances`` of ``batch``, their teacher-forced and their free-running outputs."""
    batch = slice_batch(batch, task.media_utterances)
    out = teacher_forced(task.network, batch)
    inf = free_running(task.network, batch, eval_max_steps(batch, task.r, task.max_decoder_steps), task.stop_threshold)
    return batch, out, inf


def gta_items(batch: dict, out: TacotronOutput) -> list[dict]:
    """Teacher-forced ("ground-truth aligned") predictions cropped to each target's exact length."""
    items = []
    for b, uid in enumerate(batch["ids"]):
        n = int(batch["mel_lengths"][b])
        items.append({"id": uid, "mode": "gta", "mel": out.mel_post[b, :n].float().cpu(), "frames": n})
    return items


def synthesis_items(batch: dict, inf: TacotronInference, r: int, max_steps: int) -> list[dict]:
    """Free-running predictions: mel (and linear) up to each item's stop, and its attention."""
    items = []
    for b, uid in enumerate(batch["ids"]):
        n, n_enc = int(inf.mel_lengths[b]), int(inf.memory_lengths[b])
        item = {
            "id": uid,
            "mode": "synthesize",
            "text": batch["texts"][b],
            "mel": inf.mel_post[b, :n].float().cpu(),
            "alignment": inf.alignments[b, : n // r, :n_enc].float().cpu(),  # (decoder steps, encoder steps)
            "frames": n,
            "stopped": n // r < max_steps,
        }
        if inf.linear is not None:
            item["linear"] = inf.linear[b, :n].float().cpu()  # log linear magnitude
        items.append(item)
    return items


# -- frozen helper models and checkpoints ---------------------------------------------------------------------------
class Frozen(nn.Module):
    """Holds a module that never trains: no gradients, eval mode whatever ``.train()`` is called with.

    Used for a distillation teacher and for the ASR model that scores intelligibility. Tasks drop its weights from
    their own checkpoints (they live in the checkpoint it was loaded from) and never give it to an optimiser.
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module.requires_grad_(False)
        self.train(False)  # also this wrapper's own flag: Lightning restores recorded flags directly after eval loops

    def train(self, mode: bool = True) -> Frozen:
        return super().train(False)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)


def drop_frozen(ckpt: dict, prefixes: tuple[str, ...]) -> None:
    """Remove frozen submodules' weights from a checkpoint's state dict."""
    ckpt["state_dict"] = {k: v for k, v in ckpt["state_dict"].items() if not k.startswith(prefixes)}


def restore_frozen(ckpt: dict, module: nn.Module, prefixes: tuple[str, ...]) -> None:
    """Put the in-memory weights of frozen submodules back, so strict loading matches the module."""
    state = ckpt.setdefault("state_dict", {})
    for key, value in module.state_dict().items():
        if key.startswith(prefixes):
            state[key] = value


class FrozenASR(nn.Module):
    """A trained CTC recogniser used as a metric: greedy transcripts of (generated) log-mels."""

    def __init__(self, network: nn.Module, tokenizer: Tokenizer) -> None:
        super().__init__()
        self.model = Frozen(network)
        self.tokenizer = tokenizer
        self.train(False)

    def train(self, mode: bool = True) -> FrozenASR:
        return super().train(False)

    @torch.no_grad()
    def transcribe(self, mel: Tensor, lengths: Tensor) -> list[str]:
        log_probs, out_lengths = self.model(mel.float(), lengths)
        return greedy_decode(log_probs, out_lengths, self.tokenizer)

    def reference(self, text: str) -> str:
        """The text as the recogniser spells it (normalised, its symbols only)."""
        return self.tokenizer.decode(self.tokenizer.encode(text))


def read_checkpoint(path: str | Path, what: str) -> dict:
    """A checkpoint named in a config (``what``: which option), read with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 -- unpicklable, truncated, not a torch file: one clear line
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise CheckpointMismatch(f"{what} {path} is not a readable tts_lab checkpoint ({first})") from None


def _rebuild(path: str | Path, ckpt: dict) -> pl.LightningModule:
    """The task of a checkpoint, built as trained, weights loaded (the inference front door's loader: architecture from
    the checkpoint's hyper-parameters or the run's saved config.yaml, features and symbols from its stamp)."""
    from tts_lab.inference import build_task

    return build_task(path, ckpt)


def load_tacotron(path: str | Path, features: FeatureConfig, what: str = "teacher_checkpoint") -> tuple[Tacotron, dict]:
    """The network of a ``TacotronTask`` checkpoint and its stamp (``checkpoint["tts_lab"]``: symbols, input type,
    reduction factor...). Any other checkpoint, or other features, is a clear error."""
    ckpt = read_checkpoint(path, what)
    meta = checkpoint.check(ckpt, TASK_NAME, features, source=f"{what} {path}")
    return _rebuild(path, ckpt).network, meta


def load_asr(path: str | Path, features: FeatureConfig) -> FrozenASR:
    """A frozen CTC recogniser from a ``CTCTask`` checkpoint trained on the same features."""
    ckpt = read_checkpoint(path, "asr_checkpoint")
    meta = checkpoint.check(ckpt, "ctc", features, source=f"asr_checkpoint {path}")
    return FrozenASR(_rebuild(path, ckpt).network, Tokenizer(meta["symbols"]))


def load_network_weights(network: Tacotron, path: str | Path, features: FeatureConfig) -> None:
    """Initialise ``network`` from a TacotronTask checkpoint (weights only); mismatches are listed in the error."""
    ckpt = read_checkpoint(path, "init_checkpoint")
    checkpoint.check(ckpt, TASK_NAME, features, source=f"init_checkpoint {path}")
    prefix = "network."
    state = {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    own = network.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        def show(keys: list[str]) -> str:
            return ", ".join(keys[:5]) + (f" ... ({len(keys)} in all)" if len(keys) > 5 else "")
        raise CheckpointMismatch(
            f"init_checkpoint {path} does not fit this network (is the architecture the same?)"
            + (f"; missing: {show(missing)}" if missing else "")
            + (f"; unexpected: {show(unexpected)}" if unexpected else "")
            + (f"; shape (checkpoint vs network): {show(shapes)}" if shapes else "")
        )
    network.load_state_dict(state)


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
