"""Tacotron: encoder + attention decoder + optional postnets and Global Style Tokens.

One class covers the teacher and the student of attention distillation (they differ only in sizes), Tacotron 1
(CBHG encoder + CBHG linear postnet) and Tacotron 2 (conv encoder + conv postnet), text or mel input.
"""

from typing import NamedTuple

import torch
from torch import Tensor, nn

from tts_lab.models.tacotron.decoder import Decoder
from tts_lab.models.tacotron.gst import GlobalStyleTokens
from tts_lab.models.tacotron.postnets import CBHGLinearPostnet


class TacotronOutput(NamedTuple):
    """Teacher-forced outputs. ``T_pad = ceil(T / r) * r``, ``T_steps = T_pad / r``."""

    mel: Tensor  # (B, T_pad, n_mels), decoder output before the postnet
    mel_post: Tensor  # (B, T_pad, n_mels), after the postnet (= mel without one)
    stop_logits: Tensor  # (B, T_steps)
    alignments: Tensor  # (B, T_steps, T_enc), fp32
    memory_lengths: Tensor  # (B,) valid encoder steps
    linear: Tensor | None  # (B, T_pad, n_linear) with a linear postnet


class TacotronInference(NamedTuple):
    """Free-running outputs; frames past ``mel_lengths`` are zero (before the postnet)."""

    mel_post: Tensor  # (B, T_out, n_mels)
    mel_lengths: Tensor  # (B,) frames, a multiple of r
    alignments: Tensor  # (B, T_out / r, T_enc)
    mel: Tensor  # (B, T_out, n_mels) before the postnet
    stop_logits: Tensor  # (B, T_out / r)
    memory_lengths: Tensor  # (B,)
    linear: Tensor | None  # (B, T_out, n_linear)


class Tacotron(nn.Module):
    """Attention-based sequence-to-spectrogram model.

    Args:
        encoder: one of :mod:`~tts_lab.models.tacotron.encoders` (``forward(x, lengths) -> (memory, lengths)``).
        decoder: the attention decoder; its ``memory_dim`` must equal ``encoder.out_dim`` (+ ``gst.token_dim``).
        postnet: mel -> refined mel, e.g. :class:`~tts_lab.models.tacotron.postnets.ConvPostnet`.
        linear_postnet: mel -> linear spectrogram (Tacotron 1), applied to the post-postnet mel.
        gst: Global Style Tokens; the style embedding is concatenated to every encoder step.
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: Decoder,
        postnet: nn.Module | None = None,
        linear_postnet: CBHGLinearPostnet | None = None,
        gst: GlobalStyleTokens | None = None,
    ) -> None:
        super().__init__()
        style_dim = gst.token_dim if gst is not None else 0
        expected = encoder.out_dim + style_dim
        if decoder.memory_dim != expected:
            raise ValueError(
                f"decoder.memory_dim={decoder.memory_dim} does not match encoder.out_dim={encoder.out_dim}"
                + (f" + gst.token_dim={style_dim}" if gst is not None else "")
                + f" = {expected}; set the decoder's (and its attention's) memory_dim to {expected}"
            )
        self.encoder = encoder
        self.decoder = decoder
        self.postnet = postnet
        self.linear_postnet = linear_postnet
        self.gst = gst

    @property
    def input_type(self) -> str:
        """"text" (inputs are (B, T) symbol ids) or "mel" (inputs are (B, T, n_mels) frames)."""
        return self.encoder.input_type

    @property
    def reduction_factor(self) -> int:
        """Frames per decoder step (r)."""
        return self.decoder.reduction_factor

    @property
    def time_reduction(self) -> int:
        """Input steps per encoder (memory) step."""
        return self.encoder.time_reduction

    def encode(
        self, inputs: Tensor, input_lengths: Tensor, reference: Tensor | None = None,
        reference_lengths: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Encoder memory (B, T_enc, memory_dim) and lengths (B,), with the style appended when GST is used.

        Without a reference, GST uses uniform token weights (the average style).
        """
        memory, memory_lengths = self.encoder(inputs, input_lengths)  # (B, T_enc, out_dim)
        if self.gst is not None:
            if reference is not None:
                style = self.gst(reference, reference_lengths)  # (B, token_dim)
            else:
                uniform = memory.new_full((memory.size(0), self.gst.n_tokens), 1.0 / self.gst.n_tokens)
                style = self.gst.from_weights(uniform)
            style = style.unsqueeze(1).expand(-1, memory.size(1), -1).to(memory.dtype)  # (B, T_enc, token_dim)
            memory = torch.cat([memory, style], dim=-1)
        return memory, memory_lengths

    def _postnets(self, mel: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor | None]:
        mel_post = self.postnet(mel, lengths) if self.postnet is not None else mel
        linear = self.linear_postnet(mel_post, lengths) if self.linear_postnet is not None else None
        return mel_post, linear

    def forward(
        self,
        inputs: Tensor,
        input_lengths: Tensor,
        mels: Tensor,
        mel_lengths: Tensor,
        reference: Tensor | None = None,
        reference_lengths: Tensor | None = None,
    ) -> TacotronOutput:
        """Teacher-forced pass.

        Args:
            inputs: (B, T_in) symbol ids or (B, T_in, n_mels_in) source frames (see ``input_type``).
            input_lengths: (B,).
            mels: (B, T, n_mels) target frames (also the GST reference when ``reference`` is None).
            mel_lengths: (B,) valid target frames.
            reference: (B, T_ref, n_mels) style reference for GST.
            reference_lengths: (B,) for ``reference``.
        """
        if self.gst is not None and reference is None:
            reference, reference_lengths = mels, mel_lengths
        memory, memory_lengths = self.encode(inputs, input_lengths, reference, reference_lengths)
        mel, stop_logits, alignments = self.decoder(memory, memory_lengths, mels)
        mel_post, linear = self._postnets(mel, mel_lengths)
        return TacotronOutput(mel, mel_post, stop_logits, alignments, memory_lengths, linear)

    def infer(
        self,
        inputs: Tensor,
        input_lengths: Tensor,
        max_steps: int = 1000,
        stop_threshold: float = 0.5,
        reference: Tensor | None = None,
        reference_lengths: Tensor | None = None,
    ) -> TacotronInference:
        """Free-running generation (wrap in ``torch.inference_mode()``); see :meth:`Decoder.infer` for stopping."""
        memory, memory_lengths = self.encode(inputs, input_lengths, reference, reference_lengths)
        mel, mel_lengths, stop_logits, alignments = self.decoder.infer(
            memory, memory_lengths, max_steps, stop_threshold
        )
        mel_post, linear = self._postnets(mel, mel_lengths)
        return TacotronInference(mel_post, mel_lengths, alignments, mel, stop_logits, memory_lengths, linear)
