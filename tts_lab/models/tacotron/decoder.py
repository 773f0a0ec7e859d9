"""Autoregressive Tacotron decoder: prenet -> attention RNN -> attention -> residual decoder RNNs -> r frames."""

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tts_lab.models.tacotron.utils import decoder_inputs, lengths_to_mask, pad_to_multiple, ungroup_frames


class Prenet(nn.Module):
    """Fully connected ReLU layers with dropout.

    On the decoder input the dropout stays on at inference too (``always_on=True``, as in Tacotron 2): it is the
    decoder's main regulariser, and the noise keeps the decoder from simply copying its previous frame, which would
    otherwise make free-running output drift. The Tacotron 1 encoder prenet uses ordinary dropout (``always_on=False``)
    so that the encoding is deterministic at inference.

    Args:
        in_dim: input size.
        sizes: output size of each layer.
        dropout: dropout probability after every layer.
        always_on: apply dropout in eval mode as well.

    Shapes: (..., in_dim) -> (..., sizes[-1]).
    """

    def __init__(
        self, in_dim: int, sizes: Sequence[int] = (256, 256), dropout: float = 0.5, always_on: bool = True
    ) -> None:
        super().__init__()
        dims = [in_dim, *sizes]
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(dims[:-1], dims[1:]))
        self.dropout = dropout
        self.always_on = always_on
        self.out_dim = dims[-1]

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = F.dropout(F.relu(layer(x)), self.dropout, training=self.training or self.always_on)
        return x


class ZoneoutLSTMCell(nn.LSTMCell):
    """LSTM cell with zoneout (Krueger et al., 2017) and/or dropout on the new hidden state.

    Zoneout keeps each state unit at its previous value with probability ``zoneout`` during training and uses the
    expectation at eval; Tacotron 2 uses 0.1. Dropout on the hidden state is the lighter alternative used by
    common Tacotron 2 implementations.
    """

    def __init__(self, input_size: int, hidden_size: int, zoneout: float = 0.0, dropout: float = 0.0) -> None:
        super().__init__(input_size, hidden_size)
        self.zoneout = zoneout
        self.dropout = dropout

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        h, c = super().forward(x, state)  # (B, H) each
        if self.zoneout > 0:
            h, c = (self._zoneout(new, old) for new, old in zip((h, c), state))
        if self.dropout > 0:
            h = F.dropout(h, self.dropout, self.training)
        return h, c

    def _zoneout(self, new: Tensor, old: Tensor) -> Tensor:
        if self.training:
            keep = torch.rand_like(new) < self.zoneout
            return torch.where(keep, old.to(new.dtype), new)
        return self.zoneout * old + (1 - self.zoneout) * new


@dataclass
class _State:
    """Recurrent state carried between decoder steps."""

    attention_rnn: tuple[Tensor, Tensor]  # (B, attention_rnn_dim) x 2
    decoder_rnns: list[tuple[Tensor, Tensor]]  # (B, decoder_rnn_dims[i]) x 2 per layer
    context: Tensor  # (B, memory_dim)
    attention: dict[str, Tensor]  # mechanism-specific, see attention.py


class Decoder(nn.Module):
    """Tacotron decoder emitting ``reduction_factor`` (r) frames per step.

    Each step: prenet(previous frame) + previous context -> attention RNN -> attention over memory -> decoder RNN
    stack (residual where sizes match) -> linear projection to r frames and one stop logit. Only the LAST of the r
    frames is fed back, so the loop is r times shorter than the utterance.

    Args:
        n_mels: mel channels per frame.
        memory_dim: size of each encoder step (encoder ``out_dim``, plus the style size with GST).
        attention: a mechanism from :mod:`~tts_lab.models.tacotron.attention` whose ``query_dim`` equals
            ``attention_rnn_dim`` and ``memory_dim`` equals ``memory_dim``.
        reduction_factor: frames emitted per step (r).
        prenet_dims: prenet layer sizes.
        prenet_dropout: prenet dropout (always on, see :class:`Prenet`).
        attention_rnn_dim: attention LSTM size.
        decoder_rnn_dims: decoder LSTM sizes.
        zoneout: zoneout probability on all LSTM states (0 disables).
        dropout: dropout on the LSTM hidden states (0 disables).
    """

    def __init__(
        self,
        n_mels: int,
        memory_dim: int,
        attention: nn.Module,
        reduction_factor: int = 2,
        prenet_dims: Sequence[int] = (256, 256),
        prenet_dropout: float = 0.5,
        attention_rnn_dim: int = 1024,
        decoder_rnn_dims: Sequence[int] = (1024, 1024),
        zoneout: float = 0.0,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if getattr(attention, "query_dim", attention_rnn_dim) != attention_rnn_dim:
            raise ValueError(
                f"attention.query_dim={attention.query_dim} must equal attention_rnn_dim={attention_rnn_dim}"
            )
        if getattr(attention, "memory_dim", memory_dim) != memory_dim:
            raise ValueError(f"attention.memory_dim={attention.memory_dim} must equal decoder memory_dim={memory_dim}")
        if reduction_factor < 1 or not decoder_rnn_dims:
            raise ValueError("reduction_factor must be >= 1 and decoder_rnn_dims non-empty")
        self.n_mels = n_mels
        self.memory_dim = memory_dim
        self.reduction_factor = reduction_factor
        self.attention = attention
        self.prenet = Prenet(n_mels, prenet_dims, prenet_dropout, always_on=True)
        self.attention_rnn = ZoneoutLSTMCell(self.prenet.out_dim + memory_dim, attention_rnn_dim, zoneout, dropout)
        in_dims = [attention_rnn_dim + memory_dim, *decoder_rnn_dims[:-1]]
        self.decoder_rnns = nn.ModuleList(
            ZoneoutLSTMCell(i, o, zoneout, dropout) for i, o in zip(in_dims, decoder_rnn_dims)
        )
        self.mel_proj = nn.Linear(decoder_rnn_dims[-1] + memory_dim, reduction_factor * n_mels)
        self.stop_proj = nn.Linear(decoder_rnn_dims[-1] + memory_dim, 1)

    def _init_state(self, memory: Tensor, mask: Tensor) -> _State:
        batch = memory.size(0)
        dtype = self.attention_rnn.weight_ih.dtype  # parameter dtype: fp32 under autocast, bf16 for a bf16 model

        def zeros(cell: nn.LSTMCell) -> tuple[Tensor, Tensor]:
            z = memory.new_zeros(batch, cell.hidden_size, dtype=dtype)
            return z, z.clone()

        return _State(
            attention_rnn=zeros(self.attention_rnn),
            decoder_rnns=[zeros(cell) for cell in self.decoder_rnns],
            context=memory.new_zeros(batch, self.memory_dim, dtype=dtype),
            attention=self.attention.init_state(memory, mask),
        )

    def _step(
        self, prenet_out: Tensor, memory: Tensor, processed: Tensor, mask: Tensor, state: _State
    ) -> tuple[Tensor, Tensor, Tensor, _State]:
        """One decoder step.

        Args:
            prenet_out: (B, P) prenet output for the previous frame.
            memory: (B, T_enc, D); processed: the attention's processed memory; mask: (B, T_enc) valid.

        Returns:
            frames (B, r * n_mels), stop logit (B,), attention weights (B, T_enc), new state.
        """
        rnn_in = torch.cat([prenet_out, state.context.to(prenet_out.dtype)], dim=-1)  # (B, P + D)
        attention_rnn = self.attention_rnn(rnn_in, state.attention_rnn)
        query = attention_rnn[0]  # (B, attention_rnn_dim)
        context, weights, attention = self.attention(query, memory, processed, mask, state.attention)

        x = torch.cat([query, context.to(query.dtype)], dim=-1)  # (B, attention_rnn_dim + D)
        decoder_rnns = []
        for cell, cell_state in zip(self.decoder_rnns, state.decoder_rnns):
            h, c = cell(x, cell_state)
            decoder_rnns.append((h, c))
            x = h + x if h.shape == x.shape else h  # residual between equally sized layers

        out = torch.cat([x, context.to(x.dtype)], dim=-1)  # (B, H_last + D)
        frames = self.mel_proj(out)  # (B, r * n_mels)
        stop = self.stop_proj(out).squeeze(-1)  # (B,)
        return frames, stop, weights, _State(attention_rnn, decoder_rnns, context, attention)

    def forward(self, memory: Tensor, memory_lengths: Tensor, mels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Teacher-forced decoding.

        Args:
            memory: (B, T_enc, D) encoder output.
            memory_lengths: (B,) valid encoder steps.
            mels: (B, T, n_mels) target frames; padded (silence) to ``T_pad = ceil(T / r) * r`` internally.

        Returns:
            mel: (B, T_pad, n_mels) predicted frames (before any postnet).
            stop_logits: (B, T_steps) with ``T_steps = T_pad / r``.
            alignments: (B, T_steps, T_enc) attention weights, fp32.
        """
        r = self.reduction_factor
        mask = lengths_to_mask(memory_lengths, memory.size(1))  # (B, T_enc)
        inputs = decoder_inputs(pad_to_multiple(mels, r), r)  # (B, T_steps, n_mels): go frame, then last of groups
        prenet_out = self.prenet(inputs)  # (B, T_steps, P), all steps at once
        processed = self.attention.process_memory(memory)
        state = self._init_state(memory, mask)

        frames, stops, alignments = [], [], []
        for t in range(inputs.size(1)):
            f, s, w, state = self._step(prenet_out[:, t], memory, processed, mask, state)
            frames.append(f)
            stops.append(s)
            alignments.append(w)
        mel = ungroup_frames(torch.stack(frames, dim=1), r)  # (B, T_pad, n_mels)
        return mel, torch.stack(stops, dim=1), torch.stack(alignments, dim=1)

    def infer(
        self, memory: Tensor, memory_lengths: Tensor, max_steps: int, stop_threshold: float = 0.5
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Free-running decoding; each utterance stops on its own stop token.

        An item ends at the first step where ``sigmoid(stop) > stop_threshold`` (that step's frames included); the
        loop ends when every item has stopped or after ``max_steps`` steps (items that never stopped get
        ``max_steps``). Frames and alignments after an item's end are zero. Gradients are not disabled here: wrap
        the call in ``torch.inference_mode()`` when generating.

        Args:
            memory: (B, T_enc, D); memory_lengths: (B,).
            max_steps: hard cap on decoder steps.
            stop_threshold: stop probability threshold.

        Returns:
            mel: (B, S * r, n_mels) with S the number of steps run.
            mel_lengths: (B,) frames per item (= steps * r).
            stop_logits: (B, S).
            alignments: (B, S, T_enc).
        """
        r, batch = self.reduction_factor, memory.size(0)
        mask = lengths_to_mask(memory_lengths, memory.size(1))
        processed = self.attention.process_memory(memory)
        state = self._init_state(memory, mask)
        frame = memory.new_zeros(batch, self.n_mels)  # go frame
        steps = torch.full((batch,), max_steps, dtype=torch.long, device=memory.device)
        done = torch.zeros(batch, dtype=torch.bool, device=memory.device)

        frames, stops, alignments = [], [], []
        for t in range(max_steps):
            f, s, w, state = self._step(self.prenet(frame), memory, processed, mask, state)
            frames.append(f)
            stops.append(s)
            alignments.append(w)
            stopped = (torch.sigmoid(s.float()) > stop_threshold) & ~done
            steps = torch.where(stopped, t + 1, steps)
            done |= stopped
            if bool(done.all()):
                break
            frame = f[:, -self.n_mels :]  # feed back only the last of the r frames

        step_mask = lengths_to_mask(steps, len(frames))  # (B, S)
        mel = ungroup_frames(torch.stack(frames, dim=1), r)  # (B, S * r, n_mels)
        mel = mel * step_mask.repeat_interleave(r, dim=1).unsqueeze(-1).to(mel.dtype)
        alignments = torch.stack(alignments, dim=1) * step_mask.unsqueeze(-1)  # (B, S, T_enc)
        return mel, steps * r, torch.stack(stops, dim=1), alignments
