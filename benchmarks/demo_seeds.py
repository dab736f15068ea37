#!/usr/bin/env python
"""Seed study of the demo: pre-trained vs from-scratch fine-tuning over several seeds and the 5 folds.

    python benchmarks/demo_seeds.py                                 # seeds 0 1 2, folds 1-5, both arms
    python benchmarks/demo_seeds.py --seeds 0 1 2 --folds 1         # a subset (fold 1 only)
    python benchmarks/demo_seeds.py --summary-only                  # the table of what has finished

Runs the demo DAG's own stage commands (``python -m pipeline.pretrain`` / ``python -m pipeline.finetune``
with ``--params params/demo.yaml``, ``OMP_NUM_THREADS`` = the stage's ``resources.cpus``), changing only
``--seed``. The pre-trained arm is the table's experiment (``mae_dfer``); the scratch arm is the same
experiment with ``pretraining: null`` (a copy of the params file with one more experiment, written to the
work folder), as the README's scratch numbers. Each seed pre-trains again with its own seed (the demo's
whole randomness moves with the seed; pre-training is ~1/6 of the demo's time); ``--shared-pretraining``
uses one pre-training (the profile's seed) for every seed instead, isolating the fine-tuning's noise.

Needs the demo's shards (``data/shards/demo`` from the demo, or ``--shards``). Resumable: a finished run
(its metrics.json / model.pt) is skipped, an interrupted one resumes from its checkpoint. Prints, and writes
to ``<work>/summary.json`` / ``summary.md``: UAR and WAR mean ± std (sample std) over all seeds x folds,
each seed's fold mean, the seed-to-seed spread of the fold mean, and the pre-trained - scratch gap per seed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
ARMS = ("pretrained", "scratch")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--params", type=Path, default=REPO / "params" / "demo.yaml")
    p.add_argument("--experiment", default="mae_dfer", help="the pre-trained fine-tuning experiment")
    p.add_argument("--dataset", default="dfew")
    p.add_argument("--shards", type=Path, default=None, help="folder of <dataset>/index.parquet (paths.shards)")
    p.add_argument("--work", type=Path, default=REPO / "runs" / "demo_seeds", help="output folder of the study")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--folds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    p.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    p.add_argument("--shared-pretraining", action="store_true",
                   help="one pre-training (the profile's seed) for every seed, instead of one per seed")
    p.add_argument("--threads", type=int, default=None,
                   help="OMP_NUM_THREADS of every run (default: the stage's resources.cpus, as the DAG); on a "
                        "loaded machine 1 thread wastes less time waiting (other floats, same statistics)")
    p.add_argument("--jobs", type=int, default=1,
                   help="fine-tunings run at once (as `snakemake --cores` runs them when each needs fewer cores than "
                        "it has); pre-trainings run first, one at a time")
    p.add_argument("--summary-only", action="store_true", help="run nothing; summarise the finished runs")
    return p.parse_args(argv)


def study_params(args: argparse.Namespace) -> tuple[Path, dict, str]:
    """Write the params copy with the scratch experiment; returns its path, the params and the pretraining name."""
    params = yaml.safe_load(args.params.read_text())
    experiments = params["finetune"]["experiments"]
    if args.experiment not in experiments:
        sys.exit(f"demo_seeds: {args.params}: no finetune.experiments.{args.experiment}; pass --experiment")
    pretraining = experiments[args.experiment].get("pretraining")
    if pretraining is None:
        sys.exit(f"demo_seeds: {args.params}: experiment {args.experiment} is already from scratch")
    experiments[f"{args.experiment}_scratch"] = {**experiments[args.experiment], "pretraining": None}
    args.work.mkdir(parents=True, exist_ok=True)
    path = args.work / "params.yaml"
    text = f"# {args.params} plus the scratch experiment (benchmarks/demo_seeds.py)\n" + yaml.safe_dump(params)
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)
    return path, params, pretraining


def run(cmd: list[str], threads: int, log: Path) -> None:
    """One stage command as the DAG runs it (OMP_NUM_THREADS = resources.cpus), its output into ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    print(f"$ {' '.join(cmd)}", flush=True)
    with open(log, "a") as f:
        done = subprocess.run(cmd, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": str(threads)}, stdout=f,
                              stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise SystemExit(f"demo_seeds: exit status {done.returncode}; see {log}")
    print(f"  done in {time.perf_counter() - start:.0f} s", flush=True)


def run_study(args: argparse.Namespace) -> None:
    """Pre-train (per seed or shared) and fine-tune every (arm, seed, fold) not finished yet."""
    params_path, params, pretraining = study_params(args)
    shards = args.shards.resolve() if args.shards else REPO / params["paths"]["shards"]
    index = {name: shards / name / "index.parquet" for name in (params["pretrain"]["dataset"], args.dataset)}
    for path in index.values():
        if not path.is_file():
            sys.exit(f"demo_seeds: {path} missing; build the demo's shards first (snakemake --cores 2 demo, "
                     "or its demo_data and ingest jobs), or name them with --shards")
    pre_threads = args.threads or params["pretrain"]["resources"]["cpus"]
    ft_threads = args.threads or params["finetune"]["resources"]["cpus"]
    profile_seed = params["pretrain"]["defaults"].get("seed", 0)
    todo = []
    for seed in args.seeds:
        pre_seed = profile_seed if args.shared_pretraining else seed
        pre_dir = args.work / f"pretrain-seed{pre_seed}"
        if "pretrained" in args.arms and not (pre_dir / "model.pt").is_file():
            run([sys.executable, "-m", "pipeline.pretrain", "--params", str(params_path), "--pretraining",
                 pretraining, "--index", str(index[params["pretrain"]["dataset"]]), "--out", str(pre_dir),
                 "--seed", str(pre_seed), "--no-tracking"], pre_threads, pre_dir.with_suffix(".log"))
        for fold in args.folds:
            for arm in args.arms:
                out = run_dir(args, arm, seed, fold)
                if (out / "metrics.json").is_file():
                    continue
                cmd = [sys.executable, "-m", "pipeline.finetune", "--params", str(params_path), "--dataset",
                       args.dataset, "--fold", str(fold), "--index", str(index[args.dataset]), "--out", str(out),
                       "--seed", str(seed), "--no-tracking"]
                if arm == "pretrained":
                    cmd += ["--experiment", args.experiment, "--init", str(pre_dir / "model.pt")]
                else:
                    cmd += ["--experiment", f"{args.experiment}_scratch"]
                todo.append((cmd, out.with_suffix(".log")))
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:  # each job is its own process with ft_threads threads
        for _ in pool.map(lambda job: run(job[0], ft_threads, job[1]), todo):
            pass


def run_dir(args: argparse.Namespace, arm: str, seed: int, fold: int) -> Path:
    """The fold run folder of one arm and seed (the pre-training's seed is in the name when shared)."""
    tag = "-shared" if args.shared_pretraining and arm == "pretrained" else ""
    return args.work / f"{arm}{tag}" / f"seed{seed}" / f"fold{fold}"


def _mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.fmean(values):.1f} ± {statistics.stdev(values):.1f}"


def summarise(args: argparse.Namespace) -> dict:
    """Collect the finished runs; print and write the summary (percentages)."""
    results: dict[str, dict[int, dict[int, dict[str, float]]]] = {}
    for arm in args.arms:
        for seed in args.seeds:
            for fold in args.folds:
                path = run_dir(args, arm, seed, fold) / "metrics.json"
                if path.is_file():
                    m = json.loads(path.read_text())
                    results.setdefault(arm, {}).setdefault(seed, {})[fold] = {k: 100 * m[k] for k in ("uar", "war")}
    threads = f"{args.threads} thread(s)" if args.threads else "the DAG's threads"
    lines = [f"Demo seed study ({args.params.name}; seeds {args.seeds}, folds {args.folds}; "
             f"pre-training {'shared' if args.shared_pretraining else 'per seed'}; {threads}). UAR / WAR in %, "
             "mean ± sample std.", "",
             "| arm | seed | folds done | per fold UAR | fold mean UAR | fold mean WAR |", "|---|---|---|---|---|---|"]
    summary: dict = {"seeds": args.seeds, "folds": args.folds, "shared_pretraining": args.shared_pretraining,
                     "arms": {}}
    for arm, by_seed in results.items():
        seed_means = {}
        for seed, by_fold in sorted(by_seed.items()):
            uar = [by_fold[f]["uar"] for f in sorted(by_fold)]
            war = [by_fold[f]["war"] for f in sorted(by_fold)]
            seed_means[seed] = statistics.fmean(uar)
            lines.append(f"| {arm} | {seed} | {len(uar)} | {' / '.join(f'{u:.1f}' for u in uar)} | "
                         f"{_mean_std(uar)} | {_mean_std(war)} |")
        every = [v for by_fold in by_seed.values() for v in by_fold.values()]
        means = list(seed_means.values())
        summary["arms"][arm] = {
            "runs": results[arm], "seed_fold_mean_uar": seed_means,
            "uar_over_seeds_and_folds": _mean_std([v["uar"] for v in every]),
            "war_over_seeds_and_folds": _mean_std([v["war"] for v in every]),
            "seed_spread_of_fold_mean": max(means) - min(means) if means else None,
        }
        lines.append(f"| {arm} | all | {len(every)} runs | | {summary['arms'][arm]['uar_over_seeds_and_folds']} | "
                     f"{summary['arms'][arm]['war_over_seeds_and_folds']} |")
    lines.append("")
    for arm, s in summary["arms"].items():
        if s["seed_spread_of_fold_mean"] is not None:
            lines.append(f"{arm}: seed-to-seed spread (max - min) of the fold mean UAR: "
                         f"{s['seed_spread_of_fold_mean']:.1f} points")
    if len(summary["arms"]) == 2:
        pre, scr = (summary["arms"][a]["seed_fold_mean_uar"] for a in ARMS)
        gaps = {s: pre[s] - scr[s] for s in pre if s in scr
                and results["pretrained"][s].keys() == results["scratch"][s].keys()}  # same folds finished
        summary["gap_uar_per_seed"] = gaps
        if gaps:
            lines.append("pre-trained - scratch, fold mean UAR per seed: "
                         + ", ".join(f"seed {s}: {g:+.1f}" for s, g in sorted(gaps.items()))
                         + f" (smallest {min(gaps.values()):+.1f} points)")
    text = "\n".join(lines)
    print(text)
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / "summary.md").write_text(text + "\n")
    (args.work / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    """Run what is missing (unless --summary-only), then summarise."""
    args = parse_args(argv)
    args.work = args.work.resolve()
    if not args.summary_only:
        run_study(args)
    summarise(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
