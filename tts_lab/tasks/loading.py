"""Trained models a task loads: frozen helpers (a distillation teacher, an ASR model used as a metric) and the
checkpoint readers behind ``teacher_checkpoint``, ``asr_checkpoint`` and ``init_checkpoint`` (``weights_only=True``,
one clear error for a wrong, unreadable or mismatched checkpoint)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from tts_lab.audio.features import FeatureConfig
from tts_lab.decoding.ctc import greedy_decode
from tts_lab.models.tacotron import Tacotron
from tts_lab.tasks import checkpoint
from tts_lab.tasks.checkpoint import CheckpointMismatch
from tts_lab.text import Tokenizer

TACOTRON_TASK = "tacotron"  # the checkpoint stamp of tts_lab.tasks.tacotron.TacotronTask


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
    meta = checkpoint.check(ckpt, TACOTRON_TASK, features, source=f"{what} {path}")
    return _rebuild(path, ckpt).network, meta


def load_asr(path: str | Path, features: FeatureConfig) -> FrozenASR:
    """A frozen CTC recogniser from a ``CTCTask`` checkpoint trained on the same features."""
    ckpt = read_checkpoint(path, "asr_checkpoint")
    meta = checkpoint.check(ckpt, "ctc", features, source=f"asr_checkpoint {path}")
    return FrozenASR(_rebuild(path, ckpt).network, Tokenizer(meta["symbols"]))


def load_network_weights(network: Tacotron, path: str | Path, features: FeatureConfig) -> None:
    """Initialise ``network`` from a TacotronTask checkpoint (weights only); mismatches are listed in the error."""
    ckpt = read_checkpoint(path, "init_checkpoint")
    checkpoint.check(ckpt, TACOTRON_TASK, features, source=f"init_checkpoint {path}")
    prefix = "network."
    state = {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    checkpoint.require_fit(network.state_dict(), state,
                           f"init_checkpoint {path} does not fit this network (is the architecture the same?)")
    network.load_state_dict(state)
