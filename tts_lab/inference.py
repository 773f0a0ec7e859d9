"""Inference from checkpoints on the command line, no config to write: ``tts-lab transcribe`` / ``synthesize``.

::

    tts-lab transcribe CKPT a.wav b.flac [--beam-size N] [--json] [--config RUN/config.yaml]
    tts-lab synthesize CKPT --text "Hello world." --out hello.wav [--postnet CKPT] [--mel hello.npy]
                       [--attention hello.png] [--config RUN/config.yaml]

The network is rebuilt exactly as it was trained: its feature config and symbol set come from the checkpoint's
``tts_lab`` stamp, its architecture from the first of

1. ``--config`` (a config file with a ``model:`` section, e.g. the ``config.yaml`` a run saved);
2. the checkpoint's own hyper-parameters, when the task saved them (Tacotron teacher and student do);
3. the ``config.yaml`` LightningCLI saved in the run's log folder: ``<ckpt>/../../config.yaml`` (checkpoints under
   ``<log dir>/checkpoints/``) or ``<ckpt>/../config.yaml``; else, for a checkpoint folder outside the log folders
   (``ModelCheckpoint(dirpath=<run>/checkpoints)``), the newest ``<run>/<logger name>/<version>/config.yaml``
   written before the checkpoint.

Only the ``model:`` section is used (built with the same parser LightningCLI uses), so a config written for GPUs or
for a corpus that is not on this machine still works. Checkpoints are read with ``torch.load(weights_only=True)``.

Every user error (missing or unreadable audio, wrong kind of checkpoint, features that differ between an acoustic
model and its postnet, ...) is one line on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
import yaml

from tts_lab.audio.features import FeatureConfig, LogMel
from tts_lab.audio.griffin_lim import GriffinLim
from tts_lab.audio.io import AudioError, load_audio, save_audio
from tts_lab.tasks.checkpoint import KEY, CheckpointMismatch, require_fit

CTC_TASKS = ("ctc",)
TACOTRON_TASKS = ("tacotron", "tacotron_student")
POSTNET_TASKS = ("postnet_gan", "postnet_wgan")
# The part of each task that inference runs (its weights must all be in the checkpoint).
NEEDED = {"ctc": ("network.",), "tacotron": ("network.",), "tacotron_student": ("network.",),
          "postnet_gan": ("generator.", "normalizer."), "postnet_wgan": ("generator.", "normalizer.")}


class InferenceError(Exception):
    """A user-facing error: printed as one line, exit status 1."""


# -- checkpoints and the models they hold -----------------------------------------------------------------------
def read_checkpoint(path: str | Path) -> dict:
    """A tts_lab checkpoint, loaded with ``weights_only=True``; clear errors for anything else."""
    path = Path(path)
    if not path.is_file():
        raise InferenceError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        after = text.split("WeightsUnpickler error:", 1)[-1] if "WeightsUnpickler error:" in text else text
        reason = next((line.strip() for line in after.splitlines() if line.strip()), type(err).__name__)
        raise InferenceError(
            f"{path}: not a checkpoint that torch.load(weights_only=True) can read ({reason}); tts-lab's own "
            "checkpoints hold only tensors and plain values"
        ) from None
    except Exception as err:  # noqa: BLE001 -- truncated file, not a torch file, ...
        raise InferenceError(f"{path}: not a readable checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise InferenceError(f"{path}: not a Lightning checkpoint (no state_dict)")
    if KEY not in ckpt:
        raise InferenceError(
            f"{path}: not written by tts_lab (no '{KEY}' entry: which features and symbols it needs is unknown)"
        )
    return ckpt


def checkpoint_task(ckpt: dict) -> str:
    return str(ckpt[KEY].get("task"))


def expect_task(path: str | Path, ckpt: dict, tasks: Sequence[str], what: str) -> str:
    task = checkpoint_task(ckpt)
    if task not in tasks:
        wanted = " or ".join(repr(t) for t in tasks)
        raise CheckpointMismatch(f"{path} is a '{task}' checkpoint; {what} needs a {wanted} checkpoint")
    return task


def _config_candidates(ckpt_path: Path) -> list[Path]:
    exact = [ckpt_path.parent.parent / "config.yaml", ckpt_path.parent / "config.yaml"]
    found = [p for p in exact if p.is_file()]
    if found:
        return found[:1]
    # ModelCheckpoint(dirpath=<run>/checkpoints) beside <run>/<logger name>/version_N/config.yaml
    run_configs = [p for p in ckpt_path.parent.parent.glob("*/*/config.yaml") if p.is_file()]
    written_before = [p for p in run_configs if p.stat().st_mtime <= ckpt_path.stat().st_mtime + 1.0]
    return sorted(written_before or run_configs, key=lambda p: p.stat().st_mtime, reverse=True)[:1]


def model_config(ckpt_path: Path, ckpt: dict, config: str | Path | None) -> tuple[dict, str]:
    """(``{"class_path", "init_args"}`` of the task, where it came from)."""
    if config is not None:
        return _model_section(Path(config)), str(config)
    hparams = dict(ckpt.get("hyper_parameters") or {})
    if "_class_path" in hparams:  # saved by LightningCLI's load_from_checkpoint support
        hparams.pop("_instantiator", None)
        return {"class_path": hparams.pop("_class_path"), "init_args": hparams}, f"{ckpt_path} (hyper-parameters)"
    candidates = _config_candidates(ckpt_path)
    if candidates:
        return _model_section(candidates[0]), str(candidates[0])
    raise InferenceError(
        f"{ckpt_path}: cannot tell how its network was built: the checkpoint has no hyper-parameters and no "
        f"config.yaml was found next to it ({ckpt_path.parent.parent / 'config.yaml'}); pass --config with the "
        "config.yaml LightningCLI saved in the run's log folder"
    )


def _model_section(path: Path) -> dict:
    if not path.is_file():
        raise InferenceError(f"{path}: config not found")
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise InferenceError(f"{path}: not a YAML config ({err})") from None
    model = config.get("model") if isinstance(config, dict) else None
    if not isinstance(model, dict) or "class_path" not in model:
        raise InferenceError(f"{path}: no 'model:' section with a class_path")
    return {"class_path": model["class_path"], "init_args": dict(model.get("init_args") or {})}


def build_task(ckpt_path: str | Path, ckpt: dict, config: str | Path | None = None, **overrides) -> pl.LightningModule:
    """The task of a checkpoint, built as trained (see module docstring) with its weights loaded, in eval mode."""
    from jsonargparse import ArgumentParser

    ckpt_path = Path(ckpt_path)
    meta = ckpt[KEY]
    section, source = model_config(ckpt_path, ckpt, config)
    init = {k: v for k, v in section["init_args"].items() if k not in ("features", "tokenizer")}
    init["features"] = meta["features"]
    if "symbols" in meta:
        init["tokenizer"] = {"class_path": "tts_lab.text.Tokenizer", "init_args": {"symbols": meta["symbols"]}}
    init.update(overrides)
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(pl.LightningModule, "model", fail_untyped=False)
    try:
        cfg = parser.parse_object({"model": {"class_path": section["class_path"], "init_args": init}})
        task = parser.instantiate_classes(cfg).model
    except Exception as err:  # noqa: BLE001 -- jsonargparse's messages are long: keep the first line
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InferenceError(f"cannot build {section['class_path']} from {source}: {first}") from None
    load_weights(task, ckpt, NEEDED.get(checkpoint_task(ckpt), ("",)), f"{ckpt_path} (network built from {source})")
    return task.eval()


def load_weights(task: torch.nn.Module, ckpt: dict, prefixes: Iterable[str], what: str) -> None:
    """Load the checkpoint's weights of the parts under ``prefixes``; every one of them must fit exactly."""
    prefixes = tuple(prefixes)
    own = {k: v for k, v in task.state_dict().items() if k.startswith(prefixes)}
    theirs = {k: v for k, v in ckpt["state_dict"].items() if k.startswith(prefixes)}
    require_fit(own, theirs, f"{what}: the weights do not fit (a config other than the one it was trained with?)")
    task.load_state_dict(theirs, strict=False)


# -- transcribe -------------------------------------------------------------------------------------------------
def transcribe(ckpt_path: str | Path, paths: Sequence[str | Path], beam_size: int | None = None,
               config: str | Path | None = None, device: str = "cpu") -> Iterable[tuple[str, str | None, str | None]]:
    """Yields ``(path, text, None)`` per readable file and ``(path, None, error)`` per unreadable one."""
    ckpt = read_checkpoint(ckpt_path)
    expect_task(ckpt_path, ckpt, CTC_TASKS, "transcribe")
    task = build_task(ckpt_path, ckpt, config).to(device)
    if beam_size is not None:
        task.beam_size, task._beam = beam_size, None  # noqa: SLF001 -- rebuilt lazily with the new width
    logmel = LogMel(task.features).to(device)
    for path in paths:
        try:
            wave = load_audio(path, task.features.sample_rate)
        except AudioError as err:
            yield str(path), None, str(err)
            continue
        with torch.inference_mode():
            mel = logmel(wave.to(device))[None]  # (1, T, n_mels)
            log_probs, lengths = task(mel, torch.tensor([mel.shape[1]], device=device))
            (text,) = task.decode(log_probs.float().cpu(), lengths.cpu(), beam=task.beam_size > 0)
        yield str(path), text, None


def _transcribe_cli(args: argparse.Namespace) -> int:
    failed = 0
    for path, text, error in transcribe(args.checkpoint, args.audio, args.beam_size, args.config, args.device):
        if error is not None:
            failed += 1
            print(f"tts-lab transcribe: {error}", file=sys.stderr)
            if args.json:
                print(json.dumps({"path": path, "error": error}), flush=True)
        elif args.json:
            print(json.dumps({"path": path, "text": text}), flush=True)
        else:
            print(f"{path}\t{text}", flush=True)
    if failed:
        print(f"tts-lab transcribe: {failed} of {len(args.audio)} files could not be read", file=sys.stderr)
    return 1 if failed else 0


# -- synthesize -------------------------------------------------------------------------------------------------
def synthesize(ckpt_path: str | Path, text: str | None = None, source: str | Path | None = None,
               postnet: str | Path | None = None, config: str | Path | None = None,
               postnet_config: str | Path | None = None, max_decoder_steps: int | None = None,
               stop_threshold: float | None = None, device: str = "cpu") -> dict:
    """Free-running Tacotron (text, or a source recording for a mel-input network), optionally polished by a postnet
    checkpoint. Returns ``{"mel": (T, n_mels), "alignment": (steps, encoder steps), "features", "stopped", "r"}``."""
    ckpt = read_checkpoint(ckpt_path)
    expect_task(ckpt_path, ckpt, TACOTRON_TASKS, "synthesize")
    task = build_task(ckpt_path, ckpt, config).to(device)
    network, features = task.network, task.features
    max_steps = max_decoder_steps or getattr(task, "max_decoder_steps", 1000)
    threshold = stop_threshold if stop_threshold is not None else getattr(task, "stop_threshold", 0.5)
    if network.input_type == "text":
        if text is None or source is not None:
            raise InferenceError(f"{ckpt_path} reads text: give --text (not --source)")
        ids = task.tokenizer.encode(text)
        if not ids:
            raise InferenceError(f"--text {text!r} has none of the model's symbols ({task.tokenizer.symbols!r})")
        inputs = torch.tensor([ids], dtype=torch.long, device=device)
    else:
        if source is None or text is not None:
            raise InferenceError(f"{ckpt_path} reads speech (a mel encoder): give --source AUDIO (not --text)")
        try:
            wave = load_audio(source, features.sample_rate)
        except AudioError as err:
            raise InferenceError(str(err)) from None
        inputs = LogMel(features).to(device)(wave.to(device))[None]
    with torch.inference_mode():
        inf = network.infer(inputs, torch.tensor([inputs.shape[1]], device=device), max_steps=max_steps,
                            stop_threshold=threshold)
    r = network.reduction_factor
    n = max(int(inf.mel_lengths[0]), r)
    mel = inf.mel_post[0, :n].float()
    alignment = inf.alignments[0, : n // r, : int(inf.memory_lengths[0])].float().cpu()
    if postnet is not None:
        mel = polish(postnet, mel, features, postnet_config, device)
    return {"mel": mel.cpu(), "alignment": alignment, "features": features, "stopped": n // r < max_steps, "r": r,
            "max_steps": max_steps}


def polish(postnet_path: str | Path, mel: torch.Tensor, features: FeatureConfig, config: str | Path | None,
           device: str = "cpu") -> torch.Tensor:
    """Run a postnet GAN / WGAN checkpoint trained on the same features over one (T, n_mels) mel."""
    from tts_lab.tasks import checkpoint
    from tts_lab.tasks.postnet_common import polish as polish_batch

    ckpt = read_checkpoint(postnet_path)
    task_name = expect_task(postnet_path, ckpt, POSTNET_TASKS, "--postnet")
    checkpoint.check(ckpt, task_name, features, source=f"--postnet {postnet_path} (vs the acoustic model)")
    task = build_task(postnet_path, ckpt, config).to(device)
    with torch.inference_mode():
        lengths = torch.tensor([mel.shape[0]], device=device)
        return polish_batch(task.generator, task.normalizer, mel[None].to(device), lengths, features.silence_level)[0]


def _synthesize_cli(args: argparse.Namespace) -> int:
    out = synthesize(args.checkpoint, args.text, args.source, args.postnet, args.config, args.postnet_config,
                     args.max_decoder_steps, args.stop_threshold, args.device)
    features: FeatureConfig = out["features"]
    if not out["stopped"]:
        print(f"tts-lab synthesize: warning: no stop token within {out['max_steps']} decoder steps "
              "(raise --max-decoder-steps, or the model is undertrained)", file=sys.stderr)
    wave = GriffinLim(features, n_iter=args.griffin_lim_iters)(out["mel"])
    save_audio(args.out, wave, features.sample_rate)
    written = [args.out]
    if args.mel:
        Path(args.mel).parent.mkdir(parents=True, exist_ok=True)
        np.save(args.mel, out["mel"].numpy().astype(np.float32))
        written.append(args.mel)
    if args.attention:
        from tts_lab.callbacks.media import plot_matrix

        plot_matrix(out["alignment"].T, Path(args.attention), "attention", "decoder step", "encoder step")
        written.append(args.attention)
    seconds = wave.numel() / features.sample_rate
    print(f"tts-lab synthesize: {out['mel'].shape[0]} frames, {seconds:.2f} s -> {', '.join(map(str, written))}",
          file=sys.stderr)
    return 0


# -- command line -----------------------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tts-lab", description="Inference from tts_lab checkpoints.")
    commands = parser.add_subparsers(dest="command", required=True)

    t = commands.add_parser("transcribe", help="speech -> text with a CTC checkpoint",
                            description="Print '<path><TAB><text>' per audio file (any soundfile format, resampled "
                                        "to the model's rate). Unreadable files are reported on stderr; the exit "
                                        "status is then 1.")
    t.add_argument("checkpoint", help="a CTCTask checkpoint (.ckpt)")
    t.add_argument("audio", nargs="+", help="audio files")
    t.add_argument("--beam-size", type=int, default=None,
                   help="CTC beam width; 0 = greedy (default: the model's configured beam_size)")
    t.add_argument("--json", action="store_true", help='print JSON lines {"path", "text"} (or {"path", "error"})')

    s = commands.add_parser("synthesize", help="text -> speech with a Tacotron (teacher or student) checkpoint",
                            description="Free-running Tacotron, optional postnet GAN checkpoint, Griffin-Lim vocoder.")
    s.add_argument("checkpoint", help="a TacotronTask or DistillationTask checkpoint (.ckpt)")
    s.add_argument("--text", help="the text to speak (text-input networks)")
    s.add_argument("--source", help="source recording (mel-input networks: autoencoder, voice conversion)")
    s.add_argument("--out", required=True, help="output WAV")
    s.add_argument("--postnet", help="a postnet GAN / WGAN checkpoint trained on the same features")
    s.add_argument("--postnet-config", help="config of the postnet checkpoint (default: found next to it)")
    s.add_argument("--mel", help="also save the (polished) log-mel as .npy, float32 (frames, n_mels)")
    s.add_argument("--attention", help="also save the attention as a PNG")
    s.add_argument("--max-decoder-steps", type=int, default=None, help="default: the model's max_decoder_steps")
    s.add_argument("--stop-threshold", type=float, default=None, help="default: the model's stop_threshold")
    s.add_argument("--griffin-lim-iters", type=int, default=32)

    for sub in (t, s):
        sub.add_argument("--config", help="config the checkpoint was trained with (default: the checkpoint's own "
                                          "hyper-parameters or the run's config.yaml, <ckpt>/../../config.yaml)")
        sub.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1 (default: cpu)")
    return parser


def run(argv: Sequence[str]) -> int:
    """``tts-lab transcribe|synthesize ...``; returns the exit status (user errors: one line on stderr, 1)."""
    args = _parser().parse_args(list(argv))
    try:
        return _transcribe_cli(args) if args.command == "transcribe" else _synthesize_cli(args)
    except (InferenceError, CheckpointMismatch, AudioError) as err:
        print(f"tts-lab {args.command}: error: {err}", file=sys.stderr)
        return 1


def explain_mismatch(argv: Sequence[str], err: CheckpointMismatch) -> str:
    """The message of a CheckpointMismatch raised inside the LightningCLI, with the checkpoint named and, when
    LightningCLI swapped in the checkpoint's own model class (it applies a checkpoint's saved hyper-parameters over
    the config), the two model classes."""
    ckpt_path = _flag_value(argv, "--ckpt_path")
    if ckpt_path is None or not Path(ckpt_path).is_file():
        return str(err)
    message = f"checkpoint {ckpt_path} cannot be used: {err}"
    try:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 -- only to improve a message
        return message
    theirs = (ckpt.get("hyper_parameters") or {}).get("_class_path")
    ours = _config_model_class(argv)
    if theirs and ours and _resolve(theirs) is not _resolve(ours):
        task = (ckpt.get(KEY) or {}).get("task", "?")
        message = (
            f"checkpoint {ckpt_path} is a '{task}' checkpoint of {theirs}, but the config's model is {ours}: use the "
            "config it was trained with\n"
            f"  (LightningCLI built the checkpoint's own model class, whose check says: {err})"
        )
    return message


def _flag_value(argv: Sequence[str], flag: str) -> str | None:
    value = None
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(flag + "="):
            value = arg.split("=", 1)[1]
    return value


def _config_model_class(argv: Sequence[str]) -> str | None:
    """Best effort: the model class_path the command line's configs and flags give (the last one wins)."""
    found = None
    for i, arg in enumerate(argv):
        flag, _, value = arg.partition("=")
        if not value and i + 1 < len(argv):
            value = argv[i + 1]
        if flag in ("--config", "-c", "--model") and value:
            if Path(value).is_file():
                try:
                    config = yaml.safe_load(Path(value).read_text()) or {}
                except yaml.YAMLError:
                    continue
                section = config.get("model", config) if flag != "--model" else config
                if isinstance(section, dict) and "class_path" in section:
                    found = section["class_path"]
            elif flag == "--model" and "." in value:
                found = value
        elif flag == "--model.class_path" and value:
            found = value
    return found


def _resolve(class_path: str) -> object:
    import importlib

    module, _, name = class_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return class_path


USAGE = """\
tts-lab: train and evaluate with the LightningCLI subcommands below, or run inference from a checkpoint:
  tts-lab transcribe CKPT AUDIO... [--beam-size N] [--json]          speech -> text (CTC checkpoint)
  tts-lab synthesize CKPT --text TEXT --out OUT.wav [--postnet CKPT]  text -> speech (Tacotron checkpoint)
  (see `tts-lab transcribe --help` and `tts-lab synthesize --help`)
"""
