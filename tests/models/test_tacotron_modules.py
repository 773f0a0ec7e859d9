"""Encoders, prenet, postnets and GST on their own: shapes, lengths, padding."""

import pytest
import torch

from tts_lab.models.tacotron import (
    CBHGLinearPostnet,
    CBHGTextEncoder,
    ConvPostnet,
    ConvTextEncoder,
    GlobalStyleTokens,
    Prenet,
    PyramidalMelEncoder,
    ReferenceEncoder,
)



N_SYMBOLS, N_MELS = 11, 6


def text_encoders():
    return [
        CBHGTextEncoder(N_SYMBOLS, embedding_dim=8, prenet_dims=(8, 6), K=3, bank_channels=4, projection_channels=6,
                        n_highway=1, gru_dim=5),
        ConvTextEncoder(N_SYMBOLS, embedding_dim=8, n_convs=2, kernel_size=3, hidden=10),
    ]


@pytest.mark.parametrize("encoder", text_encoders(), ids=["cbhg", "conv"])
def test_text_encoder_shapes_and_padding(encoder) -> None:
    torch.manual_seed(0)
    encoder.eval()  # deterministic dropout and batch norm, to compare a padded batch with a single item
    tokens = torch.randint(0, N_SYMBOLS, (3, 9))
    lengths = torch.tensor([9, 4, 6])
    memory, memory_lengths = encoder(tokens, lengths)
    assert encoder.input_type == "text" and encoder.time_reduction == 1
    assert memory.shape == (3, 9, encoder.out_dim) and torch.equal(memory_lengths, lengths)
    assert torch.all(memory[1, 4:] == 0) and torch.all(memory[2, 6:] == 0)
    alone, _ = encoder(tokens[1:2, :4], lengths[1:2])
    assert torch.allclose(alone[0], memory[1, :4], atol=1e-5)


@pytest.mark.parametrize("n_pyramid,n_layers", [(1, 2), (2, 2), (0, 1)])
def test_pyramidal_encoder_halves_time_with_odd_lengths(n_pyramid: int, n_layers: int) -> None:
    torch.manual_seed(0)
    encoder = PyramidalMelEncoder(N_MELS, hidden=8, n_layers=n_layers, n_pyramid=n_pyramid).eval()
    mels = torch.randn(3, 11, N_MELS)
    lengths = torch.tensor([11, 5, 8])
    memory, memory_lengths = encoder(mels, lengths)
    factor = 2**n_pyramid
    expected_lengths = torch.ceil(lengths / factor).long()
    assert encoder.input_type == "mel" and encoder.time_reduction == factor
    assert memory.shape == (3, int(expected_lengths.max()), 8)
    assert torch.equal(memory_lengths, expected_lengths)
    assert torch.all(memory[1, expected_lengths[1] :] == 0)
    alone, _ = encoder(mels[1:2, :5], lengths[1:2])  # odd length on its own
    assert torch.allclose(alone[0], memory[1, : expected_lengths[1]], atol=1e-5)


def test_pyramidal_halve_pairs_adjacent_frames() -> None:
    x = torch.arange(5).float().view(1, 5, 1)  # frames 0..4
    y, lengths = PyramidalMelEncoder.halve(x, torch.tensor([5]))
    assert torch.equal(y[0], torch.tensor([[0.0, 1.0], [2.0, 3.0], [4.0, 0.0]]))
    assert lengths.tolist() == [3]


def test_pyramidal_encoder_rejects_bad_config() -> None:
    with pytest.raises(ValueError):
        PyramidalMelEncoder(N_MELS, hidden=8, n_layers=2, n_pyramid=3)


def test_prenet_dropout_always_on_in_eval() -> None:
    torch.manual_seed(0)
    prenet = Prenet(4, (16, 16), dropout=0.5).eval()
    x = torch.ones(2, 4)
    assert not torch.equal(prenet(x), prenet(x))  # stochastic at inference too
    encoder_prenet = Prenet(4, (16, 16), dropout=0.5, always_on=False).eval()
    assert torch.equal(encoder_prenet(x), encoder_prenet(x))


def test_conv_postnet_is_residual() -> None:
    postnet = ConvPostnet(N_MELS, channels=8, kernel_size=3, n_layers=3)
    mel = torch.randn(2, 7, N_MELS)
    out = postnet(mel, torch.tensor([7, 5]))
    assert out.shape == mel.shape
    with torch.no_grad():
        for p in postnet.parameters():
            p.zero_()  # zero residual -> identity
    assert torch.equal(postnet(mel), mel)


def test_cbhg_linear_postnet_shape() -> None:
    postnet = CBHGLinearPostnet(N_MELS, n_linear=17, K=2, bank_channels=4, projection_channels=8, highway_dim=6,
                                n_highway=1, gru_dim=5)
    out = postnet(torch.randn(2, 7, N_MELS), torch.tensor([7, 3]))
    assert out.shape == (2, 7, 17)


def test_gst_style_embedding() -> None:
    torch.manual_seed(0)
    gst = GlobalStyleTokens(ReferenceEncoder(N_MELS, conv_channels=(4, 4, 8), gru_dim=6), n_tokens=5,
                            token_dim=8, n_heads=2).eval()
    reference = torch.randn(3, 13, N_MELS)
    lengths = torch.tensor([13, 6, 9])
    weights = gst.token_weights(reference, lengths)
    assert weights.shape == (3, 2, 5) and torch.allclose(weights.sum(-1), torch.ones(3, 2))
    style = gst(reference, lengths)
    assert style.shape == (3, 8)
    alone = gst(reference[1:2, :6], lengths[1:2])  # padding of the reference does not change the style
    assert torch.allclose(alone[0], style[1], atol=1e-5)
    assert gst.from_weights(torch.full((3, 5), 0.2)).shape == (3, 8)
