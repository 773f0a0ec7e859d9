"""Train the postnet models on the demo corpus for the same time each and measure how much "sharper" they are.

    python scripts/postnet_results.py                          # 4 models x 5 min; writes docs/results.md + results/postnet.json
    python scripts/postnet_results.py --minutes 1 --no-write   # a quick look
    python scripts/postnet_results.py --gta-dir DIR            # also with a teacher's GTA mels as the blurry inputs
                                                               # (bash scripts/teacher_gta.sh makes them)
    python scripts/postnet_results.py --seeds 0,1,2 --seed-models l1,gan   # repeat the key comparison over seeds

Each model's result is cached in ``<out>/<inputs>/<model>/seed<N>/result.json`` together with what produced it
(minutes, seed, config file contents, overrides); ``--reuse`` takes a cached result when all of that matches instead of training
again. So the runs can be split into one process per model (e.g. on a shared machine) and collected at the end:

    for m in l1 gan wgan wgan_gp; do python scripts/postnet_results.py --models $m --no-write; done
    python scripts/postnet_results.py --reuse

Models (each through the CLI code path, `tts_lab.cli.build_cli`, with its config as-is apart from the time budget and
the output folder): the L1-only U-Net (configs/postnet_l1.yaml), the GAN (configs/postnet_gan.yaml), the WGAN with
weight clipping (configs/postnet_wgan.yaml) and the WGAN-GP (configs/postnet_wgan_gp.yaml). Training skips the
per-epoch validation (it would eat into the budget); afterwards each model is validated once on the whole
validation split: l1, gv_ratio, sliced Wasserstein (see `tts_lab.tasks.postnet_common.SharpnessMetrics`), for its
output and for the blurry input. Targets (issue 4): the GAN moves gv_ratio at least half-way from the input's value
to 1, lowers the Wasserstein distance below the input's and below the L1-only U-Net's, and has an l1 no worse than
the input's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import yaml

from _results import ROOT, machine, write_section

from tts_lab.cli import build_cli

MODELS = {  # name -> (config, label)
    "l1": ("postnet_l1.yaml", "L1-only U-Net"),
    "gan": ("postnet_gan.yaml", "GAN (BCE, conditional PatchGAN)"),
    "wgan": ("postnet_wgan.yaml", "WGAN (weight clipping)"),
    "wgan_gp": ("postnet_wgan_gp.yaml", "WGAN-GP"),
}
METRICS = ("gv_ratio", "wasserstein", "l1")


def train_and_validate(name: str, minutes: float, root: str, run: Path, gta_dir: str | None, extra: list[str]) -> dict:
    config, _ = MODELS[name]
    seconds = int(round(minutes * 60))
    args = [
        "fit", "--config", str(ROOT / "configs" / config), "--data.root", root,
        "--trainer.default_root_dir", str(run), "--trainer.logger.init_args.save_dir", str(run),
        f"--trainer.max_time=00:00:{seconds // 60:02d}:{seconds % 60:02d}", "--trainer.max_epochs=100000",
        "--trainer.check_val_every_n_epoch=100000", "--trainer.num_sanity_val_steps=0",
        "--trainer.enable_progress_bar=false", "--trainer.callbacks=[]",
        *([f"--data.gta_dir={gta_dir}"] if gta_dir else []), *extra,
    ]
    start = time.monotonic()
    cli = build_cli(args)
    train_s = time.monotonic() - start
    loop = cli.trainer.fit_loop
    cli.trainer.save_checkpoint(run / "final.ckpt")  # e.g. to measure again after a metric changes
    (val,) = cli.trainer.validate(cli.model, datamodule=cli.datamodule, verbose=False)
    return {
        "config": f"configs/{config}",
        "train_seconds": round(train_s, 1),
        "epochs": loop.epoch_progress.current.completed,
        "batches": loop.epoch_loop._batches_that_stepped,  # noqa: SLF001 -- training batches seen
        "optimizer_steps": cli.trainer.global_step,
        "val": {k.removeprefix("val/"): round(float(v), 4) for k, v in val.items()},
    }


def cached_or_trained(name: str, seed: int, args, out: Path, gta_dir: str | None) -> dict:
    """One model and training seed (the data, its degradation and the validation split stay the same)."""
    config = ROOT / "configs" / MODELS[name][0]
    key = {"minutes": args.minutes, "root": args.root, "gta_dir": gta_dir, "extra": args.extra, "seed": seed,
           "config_sha1": hashlib.sha1(config.read_bytes()).hexdigest()}
    run = out / name / f"seed{seed}"
    path = run / "result.json"
    if args.reuse and path.is_file():
        cached = json.loads(path.read_text())
        if cached.get("key") == key:
            print(f"== {name} seed {seed}: cached result from {path}", flush=True)
            return cached["result"]
    print(f"== {name} seed {seed} ({args.minutes} min, {'GTA inputs' if gta_dir else 'degraded inputs'})", flush=True)
    start = time.monotonic()
    result = train_and_validate(name, args.minutes, args.root, run, gta_dir, [f"--seed_everything={seed}", *args.extra])
    result["wall_seconds"] = round(time.monotonic() - start, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"key": key, "result": result}, indent=2) + "\n")
    print(json.dumps(result), flush=True)
    return result


def summarise(runs: dict[int, dict]) -> dict:
    """Mean (and sample standard deviation over seeds) of each validation figure, plus the runs themselves."""
    first = next(iter(runs.values()))
    vals = {k: [r["val"][k] for r in runs.values()] for k in first["val"]}
    return {
        "config": first["config"],
        "seeds": list(runs),
        "val": {k: round(statistics.fmean(v), 4) for k, v in vals.items()},
        "val_sd": {k: round(statistics.stdev(v), 4) for k, v in vals.items()} if len(runs) > 1 else {},
        "epochs": round(statistics.fmean(r["epochs"] for r in runs.values())),
        "batches": round(statistics.fmean(r["batches"] for r in runs.values())),
        "runs": {str(seed): r for seed, r in runs.items()},
    }


def verdict(res: dict) -> dict:
    """The issue's targets for the GAN against the input and the L1-only U-Net."""
    inp, gan = res["input"], res["models"]["gan"]["val"]
    out = {
        "gv_ratio_half_way_to_1": abs(gan["gv_ratio"] - 1) <= 0.5 * abs(inp["gv_ratio"] - 1),
        "wasserstein_below_input": gan["wasserstein"] < inp["wasserstein"],
        "l1_no_worse_than_input": gan["l1"] <= inp["l1"],
    }
    if "l1" in res["models"]:
        l1w = res["models"]["l1"]["val"]["wasserstein"]
        out["wasserstein_below_l1_unet"] = gan["wasserstein"] < l1w
        spread = max(res["models"][m]["val_sd"].get("wasserstein", 0.0) for m in ("gan", "l1"))
        out["wasserstein_gap_to_l1_unet_beyond_seed_spread"] = abs(gan["wasserstein"] - l1w) >= spread
    return out


def run_all(args, gta_dir: str | None) -> dict:
    out = Path(args.out) / ("gta" if gta_dir else "degraded")
    models = {}
    for name in args.models:
        seeds = args.seeds if name in args.seed_models else args.seeds[:1]
        models[name] = summarise({seed: cached_or_trained(name, seed, args, out, gta_dir) for seed in seeds})
    first = models[args.models[0]]["val"]
    inputs = [{m: r["val"][f"{m}_input"] for m in METRICS} for model in models.values() for r in model["runs"].values()]
    assert all(i == inputs[0] for i in inputs), f"the models saw different validation inputs: {inputs}"
    if gta_dir:
        inputs = f"GTA mels from {gta_dir}"
    else:
        data = yaml.safe_load((ROOT / "configs" / MODELS[args.models[0]][0]).read_text())["data"]["init_args"]
        inputs = (f"ground truth smoothed with Gaussians of {data['time_sigma']} frames (time) and {data['freq_sigma']} mel "
                  f"bins (frequency), plus noise of std {data['noise_std']} (log-mel units)")
        inputs += f", with overrides {args.extra}" if args.extra else ""
    res = {"inputs": inputs,
           "input": {m: first[f"{m}_input"] for m in METRICS}, "models": models}
    if "gan" in models:
        res["targets"] = verdict(res)
    return res


def table(res: dict) -> str:
    def cell(r: dict, metric: str, digits: int) -> str:
        sd = r["val_sd"].get(metric)
        return f"{r['val'][metric]:.{digits}f}" + (f" ± {sd:.{digits}f}" if sd is not None else "")

    rows = ["| | gv_ratio (ideal 1) | wasserstein (lower is better) | l1 (lower is better) | seeds | epochs | batches |",
            "|---|---|---|---|---|---|---|",
            "| blurry input | {gv_ratio:.3f} | {wasserstein:.4f} | {l1:.4f} | | | |".format(**res["input"])]
    for name, r in res["models"].items():
        rows.append(f"| {MODELS[name][1]} | {cell(r, 'gv_ratio', 3)} | {cell(r, 'wasserstein', 4)} | {cell(r, 'l1', 4)} "
                    f"| {len(r['seeds'])} | {r['epochs']} | {r['batches']} |")
    return "\n".join(rows)


def per_seed(res: dict, name: str, metric: str) -> str:
    return ", ".join(f"{r['val'][metric]:.4f}" for r in res["models"][name]["runs"].values())


def targets_text(res: dict) -> str:
    if "targets" not in res:
        return "(no GAN in this run: targets not evaluated)"
    t, inp, gan = res["targets"], res["input"], res["models"]["gan"]["val"]
    half = inp["gv_ratio"] + 0.5 * (1 - inp["gv_ratio"])
    lines = [
        f"- gv_ratio at least half-way from the input's {inp['gv_ratio']:.3f} to 1 (i.e. within {abs(half - 1):.3f} of 1): "
        f"GAN {gan['gv_ratio']:.3f} -> **{'met' if t['gv_ratio_half_way_to_1'] else 'not met'}**",
        f"- Wasserstein below the input's ({inp['wasserstein']:.4f}): GAN {gan['wasserstein']:.4f} -> "
        f"**{'met' if t['wasserstein_below_input'] else 'not met'}**",
    ]
    if "wasserstein_below_l1_unet" in t:
        l1w = res["models"]["l1"]["val"]["wasserstein"]
        unconfirmed = not t["wasserstein_gap_to_l1_unet_beyond_seed_spread"]
        lines.append(f"- Wasserstein below the L1-only U-Net's ({l1w:.4f}): GAN {gan['wasserstein']:.4f} -> "
                     f"**{'met' if t['wasserstein_below_l1_unet'] else 'not met'}**"
                     + (" on the means, but by less than their spread over seeds: **not confirmed**" if unconfirmed else "")
                     + f" (per seed: GAN {per_seed(res, 'gan', 'wasserstein')}; L1-only {per_seed(res, 'l1', 'wasserstein')})")
    lines.append(f"- l1 no worse than the input's ({inp['l1']:.4f}): GAN {gan['l1']:.4f} -> "
                 f"**{'met' if t['l1_no_worse_than_input'] else 'not met'}**")
    return "\n".join(lines)


def seeds_text(args) -> str:
    if len(args.seeds) == 1:
        return f"One run per model (seed {args.seeds[0]})."
    others = [m for m in args.models if m not in args.seed_models]
    text = f"Training seeds {', '.join(map(str, args.seeds))} for {', '.join(args.seed_models)}"
    return text + (f"; seed {args.seeds[0]} only for {', '.join(others)}." if others else ".")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.0, help="training time per model")
    parser.add_argument("--models", default="l1,gan,wgan,wgan_gp", type=lambda s: s.split(","))
    parser.add_argument("--seeds", default=[0], type=lambda s: [int(x) for x in s.split(",")],
                        help="training seeds (seed_everything); the data and its degradation stay the same")
    parser.add_argument("--seed-models", default=None, type=lambda s: s.split(","),
                        help="models trained with every seed in --seeds (default: all); the others use the first only")
    parser.add_argument("--root", default="data/demo")
    parser.add_argument("--gta-dir", default=None, help="also evaluate with these GTA mel dumps as the blurry inputs")
    parser.add_argument("--out", default="runs/postnet_results")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/ and results/ alone")
    parser.add_argument("--reuse", action="store_true", help="take cached per-model results made with the same settings")
    parser.add_argument("--note", default="", help="free text added to the docs section (caveats, history)")
    parser.add_argument("extra", nargs="*", help="extra CLI overrides for every model, after --")
    args = parser.parse_args()
    args.seed_models = args.models if args.seed_models is None else args.seed_models
    torch.set_num_threads(args.threads)
    command = ("python scripts/postnet_results.py " + " ".join(
        a for i, a in enumerate(sys.argv[1:]) if not a.startswith("--note") and sys.argv[i] != "--note")).strip()
    if args.reuse:  # say how the cached parts were made
        argv, kept = sys.argv[1:], []
        while argv:
            a = argv.pop(0)
            if a in ("--models", "--note", "--seeds", "--seed-models"):
                argv.pop(0)
            elif a not in ("--reuse", "--no-write") and not a.startswith(("--models=", "--note=", "--seeds=", "--seed-models=")):
                kept.append(a)
        flags = " ".join(kept)
        loops = [f"for m in {' '.join(args.models)}; do python scripts/postnet_results.py {flags} --seeds {args.seeds[0]} --models $m --no-write; done; "]
        loops += [f"for m in {' '.join(args.seed_models)}; do python scripts/postnet_results.py {flags} --seeds {seed} --models $m --no-write; done; "
                  for seed in args.seeds[1:]]
        command = ("".join(loops) + command).replace("  ", " ")

    result = {"machine": machine(), "threads": args.threads, "command": command, "minutes_per_model": args.minutes,
              "note": args.note,
              "degraded": run_all(args, None)}
    if args.gta_dir:
        if Path(args.gta_dir).is_dir():
            result["gta"] = run_all(args, args.gta_dir)
        else:
            result["gta"] = {"unavailable": f"{args.gta_dir} is not a folder"}
    runs = [r for part in ("degraded", "gta") for model in result.get(part, {}).get("models", {}).values()
            for r in model["runs"].values()]
    result["wall_minutes"] = round(sum(r["wall_seconds"] for r in runs) / 60, 1)  # training + validation, all models
    print(json.dumps(result, indent=2))
    if args.no_write:
        return
    (ROOT / "results").mkdir(exist_ok=True)
    (ROOT / "results" / "postnet.json").write_text(json.dumps(result, indent=2) + "\n")

    deg = result["degraded"]
    if "gta" in result and "models" in result["gta"]:
        gta_text = f"### GTA inputs: {result['gta']['inputs']}\n\n{table(result['gta'])}\n\n{targets_text(result['gta'])}"
    else:
        why = result.get("gta", {}).get("unavailable", "no --gta-dir given")
        gta_text = (f"### GTA inputs\n\nNot measured: no teacher GTA dump was available ({why}). With one (`tts-lab predict` of a Tacotron config with `predict_mode: gta`), "
                    "add `--gta-dir DIR`.")
    write_section("postnet", f"""
## Postnet GAN / WGAN: sharpening blurry mel spectrograms (demo corpus)

Each model trained for {args.minutes:g} min of wall-clock time on the same data, then validated once on the whole
validation split ({'; '.join(f"{k}: {v['config']}" for k, v in deg['models'].items())}). Metrics on de-normalised
log-mels, valid frames only: `gv_ratio` = mean over mel bins of var(output) / var(ground truth) (blurry < 1, ideal 1);
`wasserstein` = sliced 2-Wasserstein distance (POT, 64 seeded projections, at most 4000 frames per set) between the set
of output frames and the set of ground-truth frames; `l1` = mean |output - ground truth|. "epochs" / "batches" show how
far each got in the same time (a WGAN makes one generator step per `n_critic` = 5 batches).

Machine: {result['machine']} ({args.threads} torch thread(s), machine shared with other jobs).
Command: `{result['command']}` ({result['wall_minutes']} min of training and validation in all; see the script's
docstring for running one model per process and collecting with `--reuse`).

### Degraded inputs: {deg['inputs']}

{table(deg)}

Targets for the GAN:

{targets_text(deg)}

{seeds_text(args)} Each model's final weights (no checkpoint selection). Values are means over the training seeds
(± the sample standard deviation where a model ran with several); the data, the degradation and the validation split are
the same for every seed. Adversarial training does not settle at a fixed point: differences smaller than the spread
over seeds are not confirmed.
{(chr(10) + args.note + chr(10)) if args.note else ""}
{gta_text}
""")


if __name__ == "__main__":
    main()
