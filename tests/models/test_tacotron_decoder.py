"""Decoder: teacher forcing and free running at r > 1, frame order, feedback of the last frame, stopping."""

import pytest
import torch
from torch import nn

from tts_lab.models.tacotron import Decoder, LocationSensitiveAttention



N_MELS, MEMORY, RNN = 3, 6, 8


def make_decoder(r: int = 2, **kwargs) -> Decoder:
    attention = LocationSensitiveAttention(RNN, MEMORY, attention_dim=4, n_filters=2, kernel_size=3)
    return Decoder(N_MELS, MEMORY, attention, reduction_factor=r, prenet_dims=(4, 4), attention_rnn_dim=RNN,
                   decoder_rnn_dims=(RNN, RNN), **kwargs)


class RecordInputs(nn.Module):
    """Wraps the prenet and records the frames fed to it."""

    def __init__(self, prenet: nn.Module) -> None:
        super().__init__()
        self.prenet, self.seen = prenet, []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return self.prenet(x)


class NumberedFrames(nn.Module):
    """Replaces the mel projection: step t emits frames whose values are t * r + k (k = slot in the group)."""

    def __init__(self, r: int) -> None:
        super().__init__()
        self.r, self.step = r, 0

    def forward(self, x):
        values = torch.arange(self.r).float() + self.step * self.r  # (r,)
        self.step += 1
        return values.repeat_interleave(N_MELS).expand(x.size(0), -1)  # (B, r * n_mels), slot-major


class ScriptedStop(nn.Module):
    """Replaces the stop head: item b fires at step ``stop_at[b]`` (1-based), never if 0."""

    def __init__(self, stop_at) -> None:
        super().__init__()
        self.stop_at, self.step = torch.tensor(stop_at), 0

    def forward(self, x):
        self.step += 1
        return torch.where(self.stop_at == self.step, 10.0, -10.0).unsqueeze(-1)  # (B, 1)


def inputs(batch: int = 2, t_enc: int = 5):
    memory = torch.randn(batch, t_enc, MEMORY)
    return memory, torch.tensor([t_enc] + [t_enc - 2] * (batch - 1))


@pytest.mark.parametrize("r,time", [(1, 5), (2, 6), (3, 7)])
def test_teacher_forced_shapes(r: int, time: int) -> None:
    decoder = make_decoder(r)
    memory, lengths = inputs()
    mel, stop, alignments = decoder(memory, lengths, torch.randn(2, time, N_MELS))
    steps = -(-time // r)
    assert mel.shape == (2, steps * r, N_MELS)
    assert stop.shape == (2, steps) and alignments.shape == (2, steps, 5)
    assert torch.all(alignments[1, :, 3:] == 0)


def test_teacher_forcing_feeds_last_frame_of_each_group() -> None:
    decoder = make_decoder(r=3)
    decoder.prenet = RecordInputs(decoder.prenet)
    mels = torch.arange(9).float().view(1, 9, 1).expand(1, 9, N_MELS)
    decoder(*inputs(batch=1), mels)
    fed = decoder.prenet.seen[0][0, :, 0]  # all steps at once: (T_steps,)
    assert fed.tolist() == [0.0, 2.0, 5.0]  # go frame, then frames 2 and 5


def test_infer_orders_frames_and_feeds_back_last_frame() -> None:
    r = 3
    decoder = make_decoder(r)
    decoder.mel_proj = NumberedFrames(r)
    decoder.prenet = RecordInputs(decoder.prenet)
    with torch.no_grad():
        decoder.stop_proj.bias.fill_(-1e4)
    mel, lengths, stop, alignments = decoder.infer(*inputs(batch=1), max_steps=4)
    assert torch.equal(mel[0, :, 0], torch.arange(12).float())  # frame t * r + k is slot k of step t
    fed = [x[0, 0].item() for x in decoder.prenet.seen]
    assert fed == [0.0, 2.0, 5.0, 8.0]  # go frame, then the last frame of each step
    assert lengths.tolist() == [12] and stop.shape == (1, 4) and alignments.shape == (1, 4, 5)


@pytest.mark.parametrize("bias,expected_steps", [(1e4, 1), (-1e4, 6)])
def test_infer_stop_token_and_max_steps(bias: float, expected_steps: int) -> None:
    decoder = make_decoder(r=2)
    with torch.no_grad():
        decoder.stop_proj.bias.fill_(bias)
    mel, lengths, stop, alignments = decoder.infer(*inputs(), max_steps=6)
    assert stop.shape == (2, expected_steps) and mel.shape == (2, expected_steps * 2, N_MELS)
    assert lengths.tolist() == [expected_steps * 2] * 2


def test_infer_per_item_lengths() -> None:
    decoder = make_decoder(r=2)
    decoder.stop_proj = ScriptedStop([2, 0, 4])  # item 1 never stops
    memory, lengths = inputs(batch=3)
    mel, mel_lengths, stop, alignments = decoder.infer(memory, lengths, max_steps=5)
    assert mel_lengths.tolist() == [4, 10, 8]
    assert mel.shape == (3, 10, N_MELS) and alignments.shape == (3, 5, 5)
    assert torch.all(mel[0, 4:] == 0) and torch.all(mel[2, 8:] == 0) and torch.all(alignments[0, 2:] == 0)
    assert not torch.all(mel[1, 8:] == 0)

    decoder.stop_proj = ScriptedStop([2, 3, 1])  # everyone stops: the loop ends at the last stop
    _, mel_lengths, stop, _ = decoder.infer(memory, lengths, max_steps=50)
    assert mel_lengths.tolist() == [4, 6, 2] and stop.shape == (3, 3)


def test_padded_batch_matches_single_item() -> None:
    torch.manual_seed(0)
    decoder = make_decoder(r=2, prenet_dropout=0.0).eval()
    memory, lengths = inputs(batch=2)
    memory[1, 3:] = 0
    mels = torch.randn(2, 6, N_MELS)
    mel, stop, alignments = decoder(memory, lengths, mels)
    mel_1, stop_1, alignments_1 = decoder(memory[1:, :3], lengths[1:], mels[1:])
    assert torch.allclose(mel[1], mel_1[0], atol=1e-5)
    assert torch.allclose(alignments[1, :, :3], alignments_1[0], atol=1e-5)


def test_attention_size_mismatch_is_reported() -> None:
    attention = LocationSensitiveAttention(RNN, MEMORY + 1, attention_dim=4, kernel_size=3)
    with pytest.raises(ValueError, match="memory_dim"):
        Decoder(N_MELS, MEMORY, attention, attention_rnn_dim=RNN, decoder_rnn_dims=(RNN,))
    attention = LocationSensitiveAttention(RNN + 1, MEMORY, attention_dim=4, kernel_size=3)
    with pytest.raises(ValueError, match="attention_rnn_dim"):
        Decoder(N_MELS, MEMORY, attention, attention_rnn_dim=RNN, decoder_rnn_dims=(RNN,))


def test_zoneout_runs_in_train_and_eval() -> None:
    decoder = make_decoder(r=2, zoneout=0.1, dropout=0.0)
    memory, lengths = inputs()
    mel, _, _ = decoder(memory, lengths, torch.randn(2, 4, N_MELS))
    mel.sum().backward()
    decoder.eval()
    assert torch.isfinite(decoder(memory, lengths, torch.randn(2, 4, N_MELS))[0]).all()
