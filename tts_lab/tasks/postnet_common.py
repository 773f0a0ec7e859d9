"""What the postnet GAN and WGAN tasks share, by composition: normalisation, whole-utterance inference, the
"sharper" metrics, media, predictions, gradient clipping and the DDP rule for two networks in one module.

Both tasks hold a ``generator`` (e.g. `UNet`) and a ``normalizer`` (`MelNormalizer` buffers, saved in the
checkpoint). Batches come from `tts_lab.data.postnet.PostnetDataModule`; every mel entering or leaving a task is a
raw log-mel, the networks only ever see normalised values.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from tts_lab.data.postnet_transforms import MelNormalizer
from tts_lab.metrics.spectral import FrameWasserstein, GVRatio, MelL1


# -- normaliser -------------------------------------------------------------------------------------------------
def adopt_normalizer(task: pl.LightningModule) -> None:
    """Give ``task.normalizer`` the data module's training statistics unless it already has fitted ones.

    Called from the task's ``on_fit_start`` / ``on_{validation,test,predict}_start``: checkpoints are restored
    before those hooks, so a loaded model keeps the statistics it was trained with (its buffers), and a fresh
    one takes those the data module fitted on the training split's ground truth. No CLI link is needed.
    """
    if bool(task.normalizer.fitted):
        return
    trainer = task._trainer  # noqa: SLF001 -- None outside a Trainer; the `trainer` property raises there
    datamodule = getattr(trainer, "datamodule", None) if trainer is not None else None
    source = getattr(datamodule, "normalizer", None)
    if not isinstance(source, MelNormalizer):
        raise RuntimeError(
            f"{type(task).__name__} has no fitted mel normaliser: train it with "
            "tts_lab.data.postnet.PostnetDataModule (which fits one on the training split) or load a checkpoint"
        )
    if source.mean.shape != task.normalizer.mean.shape:
        raise ValueError(f"data normaliser has {source.mean.numel()} mel bins, the task {task.normalizer.mean.numel()}")
    task.normalizer.load_state_dict(source.state_dict())  # in place: DDP keeps its buffer references


def require_fitted(normalizer: MelNormalizer) -> None:
    if not bool(normalizer.fitted):
        raise RuntimeError("the mel normaliser is not fitted (no PostnetDataModule statistics, no checkpoint)")


# -- inference --------------------------------------------------------------------------------------------------
def polish(generator: nn.Module, normalizer: MelNormalizer, mel: Tensor, lengths: Tensor, pad_value: float) -> Tensor:
    """Polish whole utterances, one at a time at their exact length.

    Per utterance (not the padded batch) so an output never depends on its batch-mates: padding would enter the
    convolutions near the end and the instance-norm statistics. The generator pads to its own multiple and
    crops back, so each output has exactly its input's frames.

    Args:
        mel: (B, T, n_mels) raw log-mels, padded.
        lengths: (B,) valid frames.
        pad_value: what the padded frames of the output are set to (the silence level).

    Returns:
        (B, T, n_mels) float32 raw log-mels; frames t >= lengths[b] hold ``pad_value``.
    """
    out = torch.full(mel.shape, pad_value, dtype=torch.float32, device=mel.device)
    for b, n in enumerate(lengths.tolist()):
        x = normalizer.normalize(mel[b : b + 1, :n].float())  # (1, n, n_mels)
        out[b, :n] = normalizer.denormalize(generator(x).float())[0]
    return out


# -- metrics ----------------------------------------------------------------------------------------------------
class SharpnessMetrics(nn.Module):
    """The "sharper" metrics of one stage, for the output and (as the reference point) the blurry input.

    ``l1`` (mean |x - y| over valid frames x bins), ``gv_ratio`` (mean over bins of var(x) / var(y) over all valid
    frames: < 1 is over-smoothed, 1 ideal) and ``wasserstein``: the **sliced 2-Wasserstein distance** (POT,
    ``n_projections`` seeded random directions, float64) between the set of valid output frames and the set of
    ground-truth frames, each a point in R^n_mels, subsampled (seeded) to at most ``max_frames`` frames. The same
    projections and subsample are used for the input, so ``wasserstein`` and ``wasserstein_input`` compare
    directly. All on de-normalised log-mels; pooled over the whole stage and over DDP ranks.
    """

    def __init__(self, n_mels: int, n_projections: int = 64, max_frames: int = 4000) -> None:
        super().__init__()
        ot = dict(method="sliced", n_projections=n_projections, max_frames=max_frames, seed=0, n_mels=n_mels)
        self.l1, self.l1_input = MelL1(), MelL1()
        self.gv_ratio, self.gv_ratio_input = GVRatio(n_mels), GVRatio(n_mels)
        self.wasserstein, self.wasserstein_input = FrameWasserstein(**ot), FrameWasserstein(**ot)

    def update(self, output: Tensor, blurry: Tensor, target: Tensor, lengths: Tensor) -> None:
        """All (B, T, n_mels) raw log-mels with valid ``lengths`` (B,)."""
        output, blurry, target = output.float(), blurry.float(), target.float()
        for name, pred in (("", output), ("_input", blurry)):
            for metric in ("l1", "gv_ratio", "wasserstein"):
                getattr(self, metric + name).update(pred, target, lengths)

    def log(self, task: pl.LightningModule, stage: str, batch_size: int) -> None:
        """Log the metric objects: Lightning computes (and syncs across ranks) them at the end of the epoch."""
        for name, metric in self.named_children():
            task.log(f"{stage}/{name}", metric, on_step=False, on_epoch=True, batch_size=batch_size, prog_bar=name == "wasserstein")


def evaluate(task: pl.LightningModule, batch: dict, metrics: SharpnessMetrics, stage: str) -> Tensor:
    """Validation / test step: polish whole utterances, update and log the metrics; returns the output."""
    require_fitted(task.normalizer)
    output = polish(task.generator, task.normalizer, batch["input"], batch["lengths"], task.features.silence_level)
    metrics.update(output, batch["input"], batch["target"], batch["lengths"])
    metrics.log(task, stage, batch_size=len(batch["ids"]))
    return output


# -- media and predictions --------------------------------------------------------------------------------------
@torch.no_grad()
def media_items(task: pl.LightningModule, batch: dict) -> list[dict]:
    """For `MediaLogger`: one image blurry | polished | ground truth (side by side in time, split by a thin
    silence band) and Griffin-Lim audio of each, per utterance."""
    output = polish(task.generator, task.normalizer, batch["input"], batch["lengths"], task.features.silence_level)
    items = []
    for b, uid in enumerate(batch["ids"]):
        n = int(batch["lengths"][b])
        x, y, z = batch["input"][b, :n].float(), output[b, :n], batch["target"][b, :n].float()
        gap = torch.full((max(2, n // 50), x.shape[1]), float(z.min()), device=x.device)
        items.append({
            "id": uid,
            "spectrograms": {"blurry_polished_target": torch.cat([x, gap, y, gap, z])},  # (3n + 2 gap, n_mels)
            "audio": {"blurry": x, "polished": y, "target": z},
            "caption": "left to right: blurry input | polished | ground truth",
        })
    return items


@torch.no_grad()
def predict_items(task: pl.LightningModule, batch: dict) -> list[dict]:
    """Polished mels at the exact input length: [{"id", "mel": (T, n_mels) float32 CPU}] (see `MelWriter`)."""
    require_fitted(task.normalizer)
    output = polish(task.generator, task.normalizer, batch["input"], batch["lengths"], task.features.silence_level)
    return [{"id": uid, "mel": output[b, : int(batch["lengths"][b])].cpu()} for b, uid in enumerate(batch["ids"])]


# -- optimisation -----------------------------------------------------------------------------------------------
def ddp_anchor(module: nn.Module) -> Tensor:
    """0 * (sum of ``module``'s trainable parameters): add it to a loss that does not reach ``module``.

    Under DDP with ``find_unused_parameters=False`` (plain ``strategy: ddp``) every trainable parameter of the
    wrapped LightningModule must receive a gradient in every backward pass, or the reducer waits for it and the
    next step fails ("Expected to have finished reduction in the prior iteration"). A discriminator step does not
    reach the generator (its output is detached); this term gives the generator zero gradients at the cost of a
    sum, with the same communication DDP would spend on it anyway (it all-reduces every bucket). The tasks clear
    gradients right before each backward, so those zeros never reach an optimiser step.
    """
    params = [p for p in module.parameters() if p.requires_grad]
    return 0.0 * sum(p.sum() for p in params) if params else torch.zeros(())


def log_skipped_crops(task: pl.LightningModule, batch: dict, batch_size: int) -> None:
    """The data module's count of crops it skipped (mostly silence or padding), summed over the epoch and ranks."""
    if "skipped_crops" in batch:
        task.log("train/skipped_crops", batch["skipped_crops"].float(), on_step=False, on_epoch=True,
                 reduce_fx="sum", sync_dist=True, batch_size=batch_size)


def clip_for(task: pl.LightningModule, optimizer, clip_vals: dict[int, float | None]) -> None:
    """Norm-clip ``optimizer``'s gradients to ``clip_vals[id(optimizer)]`` (None: no clipping).

    Call from ``on_before_optimizer_step``: Lightning runs it inside ``optimizer.step()`` after AMP's unscaling,
    so the threshold applies to true gradients under 16-mixed too (Trainer-level ``gradient_clip_val`` is not
    allowed with manual optimisation).
    """
    value = clip_vals.get(id(optimizer))
    if value:
        task.clip_gradients(optimizer, gradient_clip_val=value, gradient_clip_algorithm="norm")
