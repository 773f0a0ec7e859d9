"""Build a :class:`Tacotron` from a config, deriving every size that must agree between its parts.

Hand-wiring a Tacotron means repeating sizes: the embedding needs the vocabulary size, the decoder and its attention
need the encoder's output size (plus the style size with GST), the attention's query size is the attention RNN's,
the postnets need ``n_mels`` and the linear postnet ``n_fft // 2 + 1``. :class:`TacotronBuilder` holds only the
free choices (which parts, how big) and fills in the rest when the task calls it with the data's sizes, so a config
cannot get them wrong:

.. code-block:: yaml

    network:
      class_path: tts_lab.models.tacotron.builder.TacotronBuilder
      init_args:
        mel_encoder:                       # or text_encoder: (exactly one)
          class_path: tts_lab.models.tacotron.PyramidalMelEncoder
          init_args: {hidden: 256, n_layers: 3, n_pyramid: 1}     # n_mels comes from the features
        attention:
          class_path: tts_lab.models.tacotron.LocationSensitiveAttention
          init_args: {attention_dim: 128}  # query_dim, memory_dim are derived
        reduction_factor: 2
        attention_rnn_dim: 256
        decoder_rnn_dims: [256, 256]
        postnet:
          class_path: tts_lab.models.tacotron.ConvPostnet
          init_args: {channels: 256}       # n_mels is derived

Each part is a factory (``Callable``): the config gives its class and free arguments, the builder passes the derived
ones positionally (text encoder: ``n_symbols``; mel encoder: ``n_mels``; attention: ``(query_dim, memory_dim)``;
postnet: ``n_mels``; linear postnet: ``(n_mels, n_linear)``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn

from tts_lab.models.tacotron.attention import LocationSensitiveAttention
from tts_lab.models.tacotron.decoder import Decoder
from tts_lab.models.tacotron.gst import GlobalStyleTokens, ReferenceEncoder
from tts_lab.models.tacotron.tacotron import Tacotron


class TacotronBuilder:
    """The free choices of a Tacotron; ``builder(n_symbols, n_mels, n_linear)`` returns the network.

    Args:
        text_encoder: factory ``n_symbols -> encoder`` (e.g. ``CBHGTextEncoder``, ``ConvTextEncoder``).
        mel_encoder: factory ``n_mels -> encoder`` (e.g. ``PyramidalMelEncoder``); exactly one of the two.
        attention: factory ``(query_dim, memory_dim) -> mechanism``; default location-sensitive, 128 dims.
        reduction_factor: frames per decoder step (r).
        prenet_dims, prenet_dropout: decoder prenet (dropout always on, also at inference).
        attention_rnn_dim: attention LSTM size (= the attention's query size).
        decoder_rnn_dims: decoder LSTM sizes.
        zoneout, dropout: regularisation of the decoder LSTMs.
        postnet: factory ``n_mels -> mel postnet`` (e.g. ``ConvPostnet``) or None.
        linear_postnet: factory ``(n_mels, n_linear) -> linear postnet`` (e.g. ``CBHGLinearPostnet``) or None.
        gst_tokens: number of Global Style Tokens; 0 disables GST.
        gst_token_dim, gst_heads: style embedding size (appended to every encoder step) and attention heads.
        gst_ref_channels, gst_ref_dim: reference encoder conv channels and GRU size.
    """

    def __init__(
        self,
        text_encoder: Callable[[int], nn.Module] | None = None,
        mel_encoder: Callable[[int], nn.Module] | None = None,
        attention: Callable[[int, int], nn.Module] | None = None,
        reduction_factor: int = 2,
        prenet_dims: Sequence[int] = (256, 256),
        prenet_dropout: float = 0.5,
        attention_rnn_dim: int = 1024,
        decoder_rnn_dims: Sequence[int] = (1024, 1024),
        zoneout: float = 0.0,
        dropout: float = 0.1,
        postnet: Callable[[int], nn.Module] | None = None,
        linear_postnet: Callable[[int, int], nn.Module] | None = None,
        gst_tokens: int = 0,
        gst_token_dim: int = 256,
        gst_heads: int = 4,
        gst_ref_channels: Sequence[int] = (32, 32, 64, 64, 128, 128),
        gst_ref_dim: int = 128,
    ) -> None:
        if (text_encoder is None) == (mel_encoder is None):
            raise ValueError("give exactly one of text_encoder (text input) and mel_encoder (mel input)")
        self.text_encoder, self.mel_encoder = text_encoder, mel_encoder
        self.attention = attention
        self.reduction_factor = reduction_factor
        self.prenet_dims, self.prenet_dropout = tuple(prenet_dims), prenet_dropout
        self.attention_rnn_dim, self.decoder_rnn_dims = attention_rnn_dim, tuple(decoder_rnn_dims)
        self.zoneout, self.dropout = zoneout, dropout
        self.postnet, self.linear_postnet = postnet, linear_postnet
        self.gst_tokens, self.gst_token_dim, self.gst_heads = gst_tokens, gst_token_dim, gst_heads
        self.gst_ref_channels, self.gst_ref_dim = tuple(gst_ref_channels), gst_ref_dim

    @property
    def input_type(self) -> str:
        """"text" or "mel": which factory was given (known before building)."""
        return "text" if self.text_encoder is not None else "mel"

    def __call__(self, n_symbols: int, n_mels: int, n_linear: int) -> Tacotron:
        """Build the network for a vocabulary of ``n_symbols`` ids, ``n_mels`` mel channels (input and output) and
        ``n_linear`` linear-spectrogram bins (``n_fft // 2 + 1``, used only by a linear postnet)."""
        if self.text_encoder is not None:
            encoder, slot = self.text_encoder(n_symbols), "text_encoder"
        else:
            encoder, slot = self.mel_encoder(n_mels), "mel_encoder"
        if getattr(encoder, "input_type", None) != self.input_type:
            raise ValueError(
                f"{type(encoder).__name__} reads {getattr(encoder, 'input_type', '?')!r} input but was given as "
                f"{slot}; use {'mel_encoder' if self.input_type == 'text' else 'text_encoder'} for it"
            )
        gst = None
        if self.gst_tokens > 0:
            reference = ReferenceEncoder(n_mels, self.gst_ref_channels, self.gst_ref_dim)
            gst = GlobalStyleTokens(reference, self.gst_tokens, self.gst_token_dim, self.gst_heads)
        memory_dim = encoder.out_dim + (gst.token_dim if gst is not None else 0)
        if self.attention is not None:
            attention = self.attention(self.attention_rnn_dim, memory_dim)
        else:
            attention = LocationSensitiveAttention(self.attention_rnn_dim, memory_dim)
        decoder = Decoder(
            n_mels,
            memory_dim,
            attention,
            reduction_factor=self.reduction_factor,
            prenet_dims=self.prenet_dims,
            prenet_dropout=self.prenet_dropout,
            attention_rnn_dim=self.attention_rnn_dim,
            decoder_rnn_dims=self.decoder_rnn_dims,
            zoneout=self.zoneout,
            dropout=self.dropout,
        )
        postnet = self.postnet(n_mels) if self.postnet is not None else None
        linear = self.linear_postnet(n_mels, n_linear) if self.linear_postnet is not None else None
        return Tacotron(encoder, decoder, postnet, linear, gst)
