"""Benchmarks (figures, not tests): data pipeline, training throughput, Lightning overhead, student real-time factor.

    python scripts/benchmarks.py            # writes docs/benchmarks.md and results/benchmarks.json
    python scripts/benchmarks.py --quick    # fewer repetitions, prints only

Every figure is measured on the machine running it (named in the output). Throughput in mel frames per second
counts target frames processed by a full training step (forward, backward, optimiser step).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch
import yaml
from _results import ROOT, machine
from jsonargparse import ArgumentParser

from tts_lab.audio.features import FeatureConfig, LogMel
from tts_lab.audio.io import load_audio
from tts_lab.data.datamodule import SpeechDataModule
from tts_lab.data.sampler import BucketBatchSampler, padding_fraction
from tts_lab.models.tacotron import ConvPostnet, ConvTextEncoder, LocationSensitiveAttention
from tts_lab.models.tacotron.builder import TacotronBuilder
from tts_lab.text import TTS_SYMBOLS, Tokenizer


def timed(fn, repeat: int, warmup: int = 1) -> float:
    """Median seconds of ``fn()`` over ``repeat`` runs after ``warmup`` runs (CUDA work is waited for)."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


# -- data -------------------------------------------------------------------------------------------------------
def bench_data(root: str, n_files: int, repeat: int) -> dict:
    features = FeatureConfig()
    wavs = sorted((Path(root) / "LJSpeech-1.1" / "wavs").glob("*.wav"))[:n_files]
    waves = [load_audio(w, features.sample_rate) for w in wavs]
    seconds = sum(len(w) for w in waves) / features.sample_rate
    logmel = LogMel(features)
    out: dict = {"audio_seconds": round(seconds, 1)}
    with torch.inference_mode():
        t = timed(lambda: [logmel(w) for w in waves], repeat)
    out["torchaudio_x_realtime"] = round(seconds / t, 1)
    try:
        import librosa
        import numpy as np

        def librosa_mels():
            for w in waves:
                m = librosa.feature.melspectrogram(y=w.numpy(), sr=features.sample_rate, n_fft=features.n_fft, hop_length=features.hop_length,
                                                   n_mels=features.n_mels, fmin=features.f_min, fmax=features.f_max, power=features.power, htk=False, norm="slaney")
                np.log(np.maximum(m, features.log_floor))

        out["librosa_x_realtime"] = round(seconds / timed(librosa_mels, repeat), 1)
    except ImportError:
        out["librosa_x_realtime"] = None  # pip install -e ".[bench]"

    dm = SpeechDataModule(root=root, features=features, demo=True)
    dm.prepare_data()
    dm.setup("fit")
    train = dm.datasets["train"]
    idx = list(range(min(n_files, len(train))))
    cached = timed(lambda: [train[i] for i in idx], repeat)
    on_the_fly = timed(lambda: [logmel(load_audio(train.examples[i].target.audio_path, features.sample_rate)) for i in idx], repeat)
    out["cached_items_per_s"] = round(len(idx) / cached, 1)
    out["on_the_fly_items_per_s"] = round(len(idx) / on_the_fly, 1)

    rng = random.Random(0)
    lj_like = [rng.randint(90, 870) for _ in range(13100)]  # LJSpeech: ~1-10 s clips at hop 256
    for name, lengths in (("demo", train.lengths), ("lj_like", lj_like)):
        order = list(range(len(lengths)))
        rng.shuffle(order)
        out[f"padding_{name}_bucketed"] = round(padding_fraction(BucketBatchSampler(lengths, 32, seed=0).all_batches(), lengths), 4)
        out[f"padding_{name}_random"] = round(padding_fraction([order[i : i + 32] for i in range(0, len(order), 32)], lengths), 4)
    return out


# -- Tacotron throughput ----------------------------------------------------------------------------------------
def tacotron2_sized(reduction_factor: int) -> TacotronBuilder:
    """Our Tacotron at torchaudio Tacotron2's sizes (512-d encoder, 1024 attention/decoder RNN, 5x512 postnet)."""
    return TacotronBuilder(
        text_encoder=lambda n: ConvTextEncoder(n, 512, 3, 5, 512),
        attention=lambda q, m: LocationSensitiveAttention(q, m, 128, 32, 31),
        reduction_factor=reduction_factor, prenet_dims=(256, 256), attention_rnn_dim=1024, decoder_rnn_dims=(1024,),
        postnet=lambda n: ConvPostnet(n, 512, 5, 5),
    )


def train_step_fn(model, batch_fn, autocast: torch.dtype | None = None):
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    device = next(model.parameters()).device.type

    def step():
        with torch.autocast(device, dtype=autocast or torch.float32, enabled=autocast is not None):
            loss = batch_fn()
        opt.zero_grad()
        loss.float().backward()
        opt.step()

    return step


def bench_throughput(batch: int, text_len: int, frames: int, repeat: int, device: str = "cpu",
                     autocast: torch.dtype | None = None, torchaudio_too: bool = True) -> dict:
    """Training steps (forward, backward, Adam) of our Tacotron at Tacotron2 sizes (r = 1 and 2) and of torchaudio's
    Tacotron2 on random data; mel frames per second."""
    from torchaudio.models import Tacotron2

    n_symbols = Tokenizer(TTS_SYMBOLS).vocab_size
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(1, n_symbols, (batch, text_len), generator=g).to(device)
    tlen = torch.full((batch,), text_len, device=device)
    mel = torch.randn(batch, frames, 80, generator=g).to(device)
    mlen = torch.full((batch,), frames, device=device)
    out = {"batch": batch, "text_len": text_len, "frames": frames, "device": device,
           "autocast": str(autocast).removeprefix("torch.") if autocast else "fp32"}
    for r in (1, 2):
        ours = tacotron2_sized(r)(n_symbols, 80, 513).to(device)
        step = train_step_fn(ours, lambda: ours(tokens, tlen, mel, mlen).mel_post[:, :frames].float().pow(2).mean(), autocast)
        out[f"tts_lab_r{r}_frames_per_s"] = round(batch * frames / timed(step, repeat), 1)
        out[f"tts_lab_r{r}_params"] = sum(p.numel() for p in ours.parameters())
    if torchaudio_too:
        ta = Tacotron2(n_symbol=n_symbols, n_mels=80).to(device)
        step = train_step_fn(ta, lambda: ta(tokens, tlen, mel.transpose(1, 2), mlen)[1].float().pow(2).mean(), autocast)
        out["torchaudio_tacotron2_frames_per_s"] = round(batch * frames / timed(step, repeat), 1)
        out["torchaudio_tacotron2_params"] = sum(p.numel() for p in ta.parameters())
    return out


# -- Lightning overhead ----------------------------------------------------------------------------------------
class _StepTimes(__import__("pytorch_lightning").Callback):
    def __init__(self) -> None:
        self.stamps: list[float] = []

    def on_train_batch_end(self, *args) -> None:
        self.stamps.append(time.perf_counter())


def bench_lightning_overhead(root: str, steps: int, warmup: int = 3, rounds: int = 2) -> dict:
    """The CTC model and data of configs/ctc_asr.yaml: seconds per step in a plain loop vs in Lightning.

    The two loops alternate ``rounds`` times (plain, Lightning, plain, ...) and each keeps its fastest round, so a
    passing disturbance on the machine does not land on one side only."""
    import functools

    import pytorch_lightning as pl

    from tts_lab.models import CTCAcousticModel
    from tts_lab.tasks import CTCTask

    dm = SpeechDataModule(root=root, task="asr", batch_size=16)
    dm.prepare_data()
    dm.setup("fit")
    net = functools.partial(CTCAcousticModel, conv_channels=128, hidden=128, num_layers=2, subsample=2)

    def plain() -> float:
        torch.manual_seed(0)
        task = CTCTask(network=net, tokenizer=dm.tokenizer)
        opt = torch.optim.AdamW(task.parameters(), lr=2e-3)
        stamps = []
        for i, batch in enumerate(dm.train_dataloader()):
            if i == warmup + steps:
                break
            loss, _, _ = task._loss(batch)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(task.parameters(), 1.0)
            opt.step()
            stamps.append(time.perf_counter())
        return (stamps[-1] - stamps[warmup - 1]) / steps

    def lightning() -> float:
        torch.manual_seed(0)
        timer = _StepTimes()
        trainer = pl.Trainer(accelerator="cpu", max_steps=warmup + steps, logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, limit_val_batches=0, gradient_clip_val=1.0, callbacks=[timer],
                             use_distributed_sampler=False, enable_model_summary=False)
        trainer.fit(CTCTask(network=net, tokenizer=dm.tokenizer), datamodule=dm)
        return (timer.stamps[-1] - timer.stamps[warmup - 1]) / steps

    times: dict[str, list[float]] = {"plain": [], "lightning": []}
    for _ in range(rounds):
        times["plain"].append(plain())
        times["lightning"].append(lightning())
    best = {k: min(v) for k, v in times.items()}
    return {"steps": steps, "rounds": rounds, "plain_s_per_step": round(best["plain"], 4),
            "lightning_s_per_step": round(best["lightning"], 4), "overhead": round(best["lightning"] / best["plain"] - 1, 4),
            "all_rounds_s_per_step": {k: [round(t, 4) for t in v] for k, v in times.items()}}


# -- student vs teacher -----------------------------------------------------------------------------------------
def builder_from_config(path: Path, key: str) -> TacotronBuilder:
    parser = ArgumentParser()
    parser.add_argument("--network", type=TacotronBuilder)
    node = yaml.safe_load(path.read_text())["model"]["init_args"][key]
    return parser.instantiate(parser.parse_object({"network": node})).network


def bench_rtf(teacher_cfg: Path, student_cfg: Path, seconds_of_audio: float) -> dict:
    features = FeatureConfig()
    tok = Tokenizer(TTS_SYMBOLS)
    text = torch.tensor([tok.encode("the quick brown fox jumps over the lazy dog, and then it rests in the warm sun.")])
    out = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    for name, cfg in (("teacher", teacher_cfg), ("student", student_cfg)):
        net = builder_from_config(cfg, "network")(tok.vocab_size, features.n_mels, features.n_fft // 2 + 1).eval()
        frames = int(seconds_of_audio * features.sample_rate / features.hop_length)
        steps = frames // net.reduction_factor
        with torch.inference_mode():
            t = timed(lambda: net.infer(text, torch.tensor([text.shape[1]]), max_steps=steps, stop_threshold=2.0), 3)
        audio = steps * net.reduction_factor * features.hop_length / features.sample_rate
        out[f"{name}_params"] = sum(p.numel() for p in net.parameters())
        out[f"{name}_rtf_1_thread"] = round(t / audio, 4)
    torch.set_num_threads(threads)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="data/demo")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions; prints only")
    parser.add_argument("--render", action="store_true", help="rewrite docs/benchmarks.md from results/benchmarks.json")
    args = parser.parse_args()
    if args.render:
        render(json.loads((ROOT / "results" / "benchmarks.json").read_text()))
        return
    repeat = 1 if args.quick else 3
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True  # as NVIDIA's figure (TF32)
    threads = torch.get_num_threads()
    results = {"machine": machine(), "torch_threads": threads, "command": "python scripts/benchmarks.py"}
    results["data"] = bench_data(args.root, 20 if args.quick else 60, repeat)
    results["throughput"] = bench_throughput(4, 40 if args.quick else 60, 100 if args.quick else 200, repeat)
    results["lightning"] = bench_lightning_overhead(args.root, 5 if args.quick else 20)
    configs = ROOT / "configs"
    results["student_vs_teacher"] = bench_rtf(configs / "tacotron_teacher.yaml", configs / "tacotron_student_tts.yaml", 3.0)
    if torch.cuda.is_available():  # NVIDIA's Tacotron2 setting: batch 128; LJSpeech-like 150 tokens -> 800 frames
        results["gpu"] = {precision: bench_throughput(32 if args.quick else 128, 150, 800, repeat, "cuda", dtype)
                          for precision, dtype in (("fp32_tf32", None), ("bf16_mixed", torch.bfloat16))}
    print(json.dumps(results, indent=2))
    if args.quick:
        return
    (ROOT / "results").mkdir(exist_ok=True)
    (ROOT / "results" / "benchmarks.json").write_text(json.dumps(results, indent=2) + "\n")
    render(results)


def render(results: dict) -> None:
    """docs/benchmarks.md from the figures of one run."""
    threads = results["torch_threads"]
    d, tp, st, lo = results["data"], results["throughput"], results["student_vs_teacher"], results["lightning"]
    lib = f"{d['librosa_x_realtime']} x real time" if d["librosa_x_realtime"] else "not installed (`pip install -e '.[bench]'`)"
    (ROOT / "docs" / "benchmarks.md").write_text(f"""# Benchmarks

Command: `{results['command']}`. Machine: {results['machine']} ({threads} torch threads unless noted).
Raw numbers: `results/benchmarks.json`.

## Data pipeline ({d['audio_seconds']} s of demo audio, 22.05 kHz, 80 mels, hop 256)

| what | figure |
|---|---|
| log-mel extraction, torchaudio | {d['torchaudio_x_realtime']} x real time |
| log-mel extraction, librosa (same parameters) | {lib} |
| items/s from the feature cache (.npy) | {d['cached_items_per_s']} |
| items/s decoding WAV + resampling + log-mel on the fly | {d['on_the_fly_items_per_s']} |
| padded frames, demo lengths, batch 32: bucketed / random | {d['padding_demo_bucketed']:.1%} / {d['padding_demo_random']:.1%} |
| padded frames, LJSpeech-like lengths (13,100 clips of 1-10 s), batch 32: bucketed / random | {d['padding_lj_like_bucketed']:.1%} / {d['padding_lj_like_random']:.1%} |

## Training throughput (mel frames/s, fp32, batch {tp['batch']}, {tp['text_len']} tokens -> {tp['frames']} frames)

| model | params | mel frames/s |
|---|---:|---:|
| torchaudio Tacotron2 (r = 1) | {tp['torchaudio_tacotron2_params']:,} | {tp['torchaudio_tacotron2_frames_per_s']} |
| tts_lab Tacotron at Tacotron2 sizes, r = 1 | {tp['tts_lab_r1_params']:,} | {tp['tts_lab_r1_frames_per_s']} |
| tts_lab Tacotron at Tacotron2 sizes, r = 2 (the full-size configs' default) | {tp['tts_lab_r2_params']:,} | {tp['tts_lab_r2_frames_per_s']} |

## Lightning overhead (CTC model and data of configs/ctc_asr.yaml, {lo['steps']} steps after warm-up, fastest of {lo['rounds']} alternating rounds)

| loop | s/step |
|---|---:|
| plain PyTorch (same model, data, optimiser, gradient clipping) | {lo['plain_s_per_step']} |
| Lightning Trainer | {lo['lightning_s_per_step']} |
| overhead | {lo['overhead']:.1%} (target <= 5 %) |

Every round (s/step): plain {lo['all_rounds_s_per_step']['plain']}, Lightning {lo['all_rounds_s_per_step']['lightning']}.{noise_note(lo)}

## Student vs teacher (configs/tacotron_teacher.yaml vs configs/tacotron_student_tts.yaml, demo sizes)

Real-time factor = synthesis time / audio duration for 3 s of mel frames (free-running decoder, one CPU thread,
Griffin-Lim excluded).

| network | params | RTF (1 thread) |
|---|---:|---:|
| teacher | {st['teacher_params']:,} | {st['teacher_rtf_1_thread']} |
| student | {st['student_params']:,} | {st['student_rtf_1_thread']} |

{gpu_section(results)}
""")


def noise_note(lo: dict) -> str:
    spread = max(max(v) - min(v) for v in lo["all_rounds_s_per_step"].values())
    if abs(lo["lightning_s_per_step"] - lo["plain_s_per_step"]) >= spread:
        return ""
    return ("\nThe rounds of one loop vary by more than the two loops differ: on this machine Lightning's overhead is below "
            "what these runs can resolve.")


def gpu_section(results: dict) -> str:
    if "gpu" not in results:
        return ("## GPU\n\nNot measured: no GPU on this machine. On one, the same command adds the full-size (Tacotron2-sized) "
                "teacher's training throughput at fp32/TF32 and bf16-mixed, batch 128, against NVIDIA's published Tacotron2 "
                "figure of 31,499 mel frames/s on one A100 (TF32, batch 128).")
    rows = []
    for precision, g in results["gpu"].items():
        for key, label in (("torchaudio_tacotron2", "torchaudio Tacotron2 (r = 1)"), ("tts_lab_r1", "tts_lab, r = 1"),
                           ("tts_lab_r2", "tts_lab, r = 2")):
            rows.append(f"| {label} | {precision} | {g[key + '_frames_per_s']:,.0f} |")
    g = next(iter(results["gpu"].values()))
    return (f"## GPU ({g['batch']} x {g['text_len']} tokens -> {g['frames']} frames per step)\n\n| model | precision | mel frames/s |\n"
            "|---|---|---:|\n" + "\n".join(rows) + "\n\nNVIDIA's published Tacotron2 figure: 31,499 mel frames/s on one A100 "
            "(TF32, batch 128); target: beyond it at bf16-mixed.")


if __name__ == "__main__":
    main()
