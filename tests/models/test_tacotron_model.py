"""Full Tacotron: every encoder x attention x postnet combination, autocast, inference, GST, config errors."""

import itertools

import pytest
import torch

from tts_lab.models.tacotron import (
    CBHGLinearPostnet,
    CBHGTextEncoder,
    ContentAttention,
    ConvPostnet,
    ConvTextEncoder,
    Decoder,
    GlobalStyleTokens,
    GMMAttention,
    LocationSensitiveAttention,
    PyramidalMelEncoder,
    ReferenceEncoder,
    Tacotron,
)



N_SYMBOLS, N_MELS, N_LINEAR, RNN, R = 9, 4, 7, 8, 2

ENCODERS = {
    "cbhg": lambda: CBHGTextEncoder(N_SYMBOLS, embedding_dim=6, prenet_dims=(6, 4), K=2, bank_channels=3,
                                    projection_channels=4, n_highway=1, gru_dim=3),
    "conv": lambda: ConvTextEncoder(N_SYMBOLS, embedding_dim=6, n_convs=1, kernel_size=3, hidden=6),
    "pyramid": lambda: PyramidalMelEncoder(N_MELS, hidden=6, n_layers=2, n_pyramid=1),
}
ATTENTIONS = {
    "location": lambda d: LocationSensitiveAttention(RNN, d, attention_dim=4, n_filters=2, kernel_size=3),
    "content": lambda d: ContentAttention(RNN, d, attention_dim=4),
    "gmm": lambda d: GMMAttention(RNN, d, n_mixtures=2, hidden_dim=4),
}
POSTNETS = {
    "none": lambda: (None, None),
    "conv": lambda: (ConvPostnet(N_MELS, channels=4, kernel_size=3, n_layers=2), None),
    "cbhg_linear": lambda: (None, CBHGLinearPostnet(N_MELS, N_LINEAR, K=2, bank_channels=3, projection_channels=4,
                                                    highway_dim=4, n_highway=1, gru_dim=3)),
}


def make_model(encoder: str = "conv", attention: str = "location", postnet: str = "conv", gst: bool = False):
    enc = ENCODERS[encoder]()
    style = GlobalStyleTokens(ReferenceEncoder(N_MELS, conv_channels=(2, 2), gru_dim=4), n_tokens=3, token_dim=4,
                              n_heads=2) if gst else None
    memory_dim = enc.out_dim + (style.token_dim if style else 0)
    decoder = Decoder(N_MELS, memory_dim, ATTENTIONS[attention](memory_dim), reduction_factor=R, prenet_dims=(4,),
                      attention_rnn_dim=RNN, decoder_rnn_dims=(RNN, RNN))
    post, linear = POSTNETS[postnet]()
    return Tacotron(enc, decoder, post, linear, style)


def batch(model: Tacotron, t_in: int = 7, t_out: int = 9):
    """Padded batch of 3 (second item shorter on both sides); T_out odd so r = 2 needs padding."""
    in_lengths, mel_lengths = torch.tensor([t_in, t_in - 3, t_in - 1]), torch.tensor([t_out, t_out - 4, t_out - 1])
    if model.input_type == "text":
        inputs = torch.randint(0, N_SYMBOLS, (3, t_in))
    else:
        inputs = torch.randn(3, t_in, N_MELS)
    return inputs, in_lengths, torch.randn(3, t_out, N_MELS), mel_lengths


@pytest.mark.parametrize("encoder,attention,postnet", list(itertools.product(ENCODERS, ATTENTIONS, POSTNETS)))
def test_forward_and_infer_shapes(encoder: str, attention: str, postnet: str) -> None:
    torch.manual_seed(0)
    model = make_model(encoder, attention, postnet)
    inputs, in_lengths, mels, mel_lengths = batch(model)
    out = model(inputs, in_lengths, mels, mel_lengths)
    t_enc = -(-7 // model.time_reduction)
    assert out.mel.shape == out.mel_post.shape == (3, 10, N_MELS)  # T_pad = ceil(9 / 2) * 2
    assert out.stop_logits.shape == (3, 5) and out.alignments.shape == (3, 5, t_enc)
    assert torch.equal(out.memory_lengths, -(-in_lengths // model.time_reduction))
    valid = torch.arange(t_enc) < out.memory_lengths.view(-1, 1, 1)  # (B, 1, T_enc)
    assert torch.allclose(out.alignments.sum(-1), torch.ones(3, 5), atol=1e-5)
    assert torch.all(out.alignments.masked_select(~valid.expand_as(out.alignments)) == 0)
    assert (out.linear is None) == (postnet != "cbhg_linear")
    if out.linear is not None:
        assert out.linear.shape == (3, 10, N_LINEAR)

    model.eval()
    with torch.inference_mode():
        model.decoder.stop_proj.bias.fill_(-1e4)  # never stop: output length is fixed by max_steps
        result = model.infer(inputs, in_lengths, max_steps=3)
    assert result.mel_post.shape == (3, 6, N_MELS) and result.alignments.shape == (3, 3, t_enc)
    assert result.mel_lengths.tolist() == [6, 6, 6] and torch.isfinite(result.mel_post).all()


@pytest.mark.parametrize(
    "encoder,attention,gst", [("conv", "location", True), ("cbhg", "gmm", False), ("pyramid", "content", False)]
)
def test_bf16_autocast_padded_batch_no_nan(encoder: str, attention: str, gst: bool) -> None:
    torch.manual_seed(0)
    model = make_model(encoder, attention, "conv", gst)
    inputs, in_lengths, mels, mel_lengths = batch(model)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(inputs, in_lengths, mels, mel_lengths)
        loss = (out.mel_post.float()[:, :9] - mels).abs().mean() + out.stop_logits.float().mean()
    loss.backward()
    assert torch.isfinite(out.mel_post.float()).all() and torch.isfinite(out.alignments).all()
    assert torch.allclose(out.alignments.sum(-1), torch.ones(3, 5), atol=1e-3)
    assert torch.all(out.alignments[1, :, out.memory_lengths[1] :] == 0)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("encoder", ["cbhg", "pyramid"])
def test_bf16_weights_without_autocast(encoder: str) -> None:
    """A model cast to bf16 ("bf16-true" precision) runs: recurrent states follow the parameter dtype."""
    torch.manual_seed(0)
    model = make_model(encoder, "location", "cbhg_linear", gst=True).to(torch.bfloat16)
    inputs, in_lengths, mels, mel_lengths = batch(model)
    inputs = inputs.bfloat16() if inputs.is_floating_point() else inputs
    out = model(inputs, in_lengths, mels.bfloat16(), mel_lengths)
    out.mel_post.float().sum().backward()
    assert out.mel_post.dtype == torch.bfloat16 and torch.isfinite(out.mel_post).all()
    with torch.no_grad():
        assert torch.isfinite(model.eval().infer(inputs, in_lengths, max_steps=2).mel_post).all()


def test_infer_stops_on_stop_token_and_honours_max_steps() -> None:
    model = make_model().eval()
    inputs, in_lengths, _, _ = batch(model)
    with torch.no_grad():
        model.decoder.stop_proj.bias.fill_(1e4)
        assert model.infer(inputs, in_lengths, max_steps=20).mel_lengths.tolist() == [R] * 3
        model.decoder.stop_proj.bias.fill_(-1e4)
        result = model.infer(inputs, in_lengths, max_steps=4)
    assert result.mel_lengths.tolist() == [4 * R] * 3 and result.stop_logits.shape == (3, 4)


def test_gst_model_with_and_without_reference() -> None:
    torch.manual_seed(0)
    model = make_model(gst=True)
    inputs, in_lengths, mels, mel_lengths = batch(model)
    out = model(inputs, in_lengths, mels, mel_lengths)  # reference defaults to the targets
    assert out.mel_post.shape == (3, 10, N_MELS)
    model.eval()
    with torch.no_grad():
        with_ref = model.infer(inputs, in_lengths, max_steps=2, reference=mels, reference_lengths=mel_lengths)
        without_ref = model.infer(inputs, in_lengths, max_steps=2)  # uniform token weights
    assert with_ref.mel_post.shape == without_ref.mel_post.shape == (3, 4, N_MELS)


def test_properties_and_memory_dim_check() -> None:
    model = make_model("pyramid")
    assert (model.input_type, model.reduction_factor, model.time_reduction) == ("mel", R, 2)
    encoder = ENCODERS["conv"]()
    decoder = Decoder(N_MELS, encoder.out_dim, ATTENTIONS["content"](encoder.out_dim), attention_rnn_dim=RNN,
                      decoder_rnn_dims=(RNN,), prenet_dims=(4,))
    gst = GlobalStyleTokens(ReferenceEncoder(N_MELS, conv_channels=(2,), gru_dim=4), n_tokens=3, token_dim=4, n_heads=2)
    with pytest.raises(ValueError, match="gst.token_dim=4"):
        Tacotron(encoder, decoder, gst=gst)
    with pytest.raises(ValueError, match="encoder.out_dim=6"):
        Tacotron(ENCODERS["pyramid"](), Decoder(N_MELS, 5, ATTENTIONS["content"](5), attention_rnn_dim=RNN,
                                                decoder_rnn_dims=(RNN,), prenet_dims=(4,)))
