"""What goes into and comes out of a Tacotron, for the Tacotron and distillation tasks: the encoder's inputs,
teacher-forced and free-running runs, and the items of media (images/audio) and predictions (synthesis, GTA mels)."""

from __future__ import annotations

import math

import pytorch_lightning as pl
import torch
from torch import Tensor

from tts_lab.audio.features import FeatureConfig
from tts_lab.models.tacotron import Tacotron, TacotronInference, TacotronOutput, lengths_to_mask, n_steps


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
