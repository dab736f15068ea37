"""The authors' released checkpoints in the DAG: files instead of training runs, and evaluate-only targets.

A released checkpoint (a ``pretrain.runs`` entry with ``checkpoint``, or a fold of ``released.finetuned``)
is either a file the user provides (``path``: an input from outside the DAG, checked before a run like
a raw dataset folder, with a one-line message saying where to get it) or a download job
(``url``: ``python -m pipeline.download``, resumed, sha256-verified, the checksum recorded on the first
download when the params file gives none).

``released.finetuned.<dataset>`` adds one evaluation per fold (``python -m pipeline.evaluate --released
<dataset>``: the 2-clip test of the checkpoint on our copy of the fold) and a table of them beside the
authors' numbers (``python -m pipeline.aggregate --released <dataset>``); the targets are
``evaluate_released_<dataset>`` and ``reproduce_released``. Built by :mod:`maedfer.workflow.plan`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from maedfer.workflow.jobs import Job, Template, stage_cmd

if TYPE_CHECKING:
    from maedfer.workflow.plan import _Builder

AUTHORS_README = "the authors' README (github.com/sunlicai/MAE-DFER)"


def download_job(b: _Builder, spec: dict[str, Any], key: str, name: str) -> Job:
    """The job that downloads ``spec['url']`` to ``spec['path']`` (sha256 pinned or recorded).

    The stage reads url, sha256 and where from the params entry ``key`` (``--entry``), so every download
    is one command template: one DVC ``foreach`` group, ``download@<name>``.
    """
    path = spec["path"]
    template = Template(group="download", key="{name}",
                        cmd=(*stage_cmd("download", 0), "--params", b.plan.params_file, "--entry", "{entry}",
                             "--out", "{path}"),
                        inputs=(), outputs=("{path}",), params_keys=("{entry}",))
    item = {"name": name.removeprefix("download_"), "entry": key, "path": path}
    return b.plan.add(Job(name=name, stage="download", rule="download", wildcards={"download": path},
                          template=template, item=item, **template.fill(item), settings=spec))


def checkpoint_file(b: _Builder, spec: dict[str, Any], key: str, name: str) -> dict[str, str]:
    """Plan how the released file ``spec['path']`` comes to be; returns the ``provided`` entry of its consumers.

    A URL: a download job named ``name`` (nothing provided). A path only: the file is the user's, and the
    returned ``{path: message}`` is what a run that needs it stops with when it is absent.
    """
    if spec.get("url"):
        download_job(b, spec, key, name)
        return {}
    where = spec.get("where") or AUTHORS_README
    return {spec["path"]: f"{spec['path']}: released checkpoint ({key}) not found; download it from {where} "
                          f"and put it there (or set {key}.path to where it is, or {key}.url to download it)."}


def evaluate_released(b: _Builder, dataset: str) -> Job:
    """One evaluation per released fold of ``dataset`` and the table of them; returns the table's job."""
    spec = b.p.released_finetuned[dataset]
    resources = b.p.resources("finetune")
    index = b.ingest(dataset).outputs[0]
    out = str(Path(b.runs, "evaluate_released", "{dataset}", "fold{fold}"))
    workers = str(b.p.params.finetune.defaults.get("num_workers", 4))
    template = Template(
        group="evaluate_released", key="{dataset}-fold{fold}",
        cmd=(*stage_cmd("evaluate", resources.get("gpus", 0)), "--params", b.plan.params_file, "--released",
             "{dataset}", "--checkpoint", "{checkpoint}", "--index", b.p.index_path("{dataset}"), "--fold", "{fold}",
             "--num-workers", workers, "--out", out),
        inputs=(b.p.index_path("{dataset}"), "{checkpoint}"), outputs=(f"{out}/metrics.json", f"{out}/predictions.csv"),
        params_keys=("released.finetuned.{dataset}", "datasets.{dataset}"))
    folds, inputs = [], []
    for k, ckpt in spec["folds"].items():
        key = f"released.finetuned.{dataset}.folds.fold{k}"
        provided = checkpoint_file(b, {"where": spec.get("where"), **ckpt}, key, f"download_released_{dataset}_fold{k}")
        item = {"dataset": dataset, "fold": k, "checkpoint": ckpt["path"]}
        job = b.plan.add(Job(name=f"evaluate_released_{dataset}_fold{k}", stage="evaluate", rule="evaluate_released",
                             wildcards={"runs": b.runs, "dataset": dataset, "fold": str(k)}, template=template,
                             item=item, **template.fill(item), settings={**spec, "folds": {k: ckpt}},
                             resources=resources, provided=provided))
        assert job.inputs[0] == index
        folds += ["--fold-run", f"{k}:{Path(job.outputs[0]).parent}"]
        inputs += job.outputs
    results = b.p.results_dir("released", dataset)
    outputs = [f"{results}/released_{dataset}.md", f"{results}/released_{dataset}.csv", f"{results}/metrics.json"]
    return b.plan.add(Job(
        name=f"aggregate_released_{dataset}", stage="aggregate", rule="aggregate_released",
        wildcards={"results": b.results, "dataset": dataset},
        cmd=[*stage_cmd("aggregate", 0), "--params", b.plan.params_file, "--released", dataset, "--out", results,
             *folds], inputs=inputs, outputs=outputs, params_keys=[f"released.finetuned.{dataset}"], settings=spec,
        metrics=[outputs[2]]))
