"""Tacotron teacher and student networks (plain ``nn.Module``s; training logic lives in ``tts_lab.tasks``)."""

from tts_lab.models.tacotron.attention import ContentAttention, GMMAttention, LocationSensitiveAttention
from tts_lab.models.tacotron.decoder import Decoder, Prenet, ZoneoutLSTMCell
from tts_lab.models.tacotron.encoders import CBHG, CBHGTextEncoder, ConvTextEncoder, PyramidalMelEncoder
from tts_lab.models.tacotron.gst import GlobalStyleTokens, ReferenceEncoder
from tts_lab.models.tacotron.postnets import CBHGLinearPostnet, ConvPostnet
from tts_lab.models.tacotron.tacotron import Tacotron, TacotronInference, TacotronOutput
from tts_lab.models.tacotron.utils import (
    decoder_inputs,
    group_frames,
    lengths_to_mask,
    masked_softmax,
    n_steps,
    pad_to_multiple,
    ungroup_frames,
)

__all__ = [
    "CBHG",
    "CBHGLinearPostnet",
    "CBHGTextEncoder",
    "ContentAttention",
    "ConvPostnet",
    "ConvTextEncoder",
    "Decoder",
    "GMMAttention",
    "GlobalStyleTokens",
    "LocationSensitiveAttention",
    "Prenet",
    "PyramidalMelEncoder",
    "ReferenceEncoder",
    "Tacotron",
    "TacotronInference",
    "TacotronOutput",
    "ZoneoutLSTMCell",
    "decoder_inputs",
    "group_frames",
    "lengths_to_mask",
    "masked_softmax",
    "n_steps",
    "pad_to_multiple",
    "ungroup_frames",
]
