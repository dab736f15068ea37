"""Typed sections of a params file (params.yaml, params/demo.yaml), built once from the validated data.

:class:`Params` mirrors the file: ``paths``, ``mlflow``, ``datasets`` (each with its ``ingest``
settings), ``pretrain`` and ``finetune`` (defaults, resources, named runs and experiments),
``tables``, ``figures`` and ``demo_data``. Defaults here are the ones the stage commands use when
the file leaves a key out. The training settings of a named run or experiment are resolved by
:mod:`maedfer.settings.resolve`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from typing import Any

from maedfer.constants import DEFAULT_STRIDE


@dataclass(frozen=True)
class PathsSettings:
    """Where a profile's outputs live (``paths``)."""

    shards: str  # <shards>/<dataset>/index.parquet
    runs: str  # <runs>/pretrain/<pretraining>/, <runs>/finetune/<experiment>/<dataset>/fold<k>/
    results: str  # <results>/<table>/...


@dataclass(frozen=True)
class MlflowSettings:
    """The profile's MLflow experiment and whether to track at all (``mlflow``)."""

    experiment: str
    tracking: bool = True


@dataclass(frozen=True)
class IngestSettings:
    """How ``python -m pipeline.ingest`` stores a dataset (``datasets.<name>.ingest``)."""

    size: int = 160  # stored frame size in pixels (square)
    workers: int = 0  # decoding processes (0: in the calling process)
    jpeg_quality: int = 90
    shard_mb: float = 256.0  # bound on the JPEG bytes of one shard, in MiB
    margin: float = 0.25  # MTCNN crop margin: side = (1 + margin) * box side
    device: str | None = None  # MTCNN device (None: cuda when available, else cpu)
    use_raw_videos: bool = False  # detect faces in the raw videos instead of using the owners' crops
    # Stored frame size (opt-in): None stores size x size (today); "source" keeps the source's resolution and an
    # int N stores N x N; either way the loaders resize to the model input with PIL bilinear (the authors' way).
    store_size: int | str | None = None
    # MTCNN (raw videos) at scale: detection runs on a copy whose longer side is at most detect_max_side pixels
    # (boxes mapped back), and on every detect_every-th frame only (1: every frame; k > 1: the frames between two
    # agreeing detections take interpolated boxes). progress_seconds: a progress line in the log this often when
    # the output is not a terminal (0: none).
    detect_max_side: int = 640
    detect_every: int = 1
    progress_seconds: float = 30.0


@dataclass(frozen=True)
class DatasetSpec:
    """A raw dataset: its adapter, folder, folds, temporal stride and ingest settings (``datasets.<name>``)."""

    adapter: str
    root: str
    folds: tuple[int, ...] = ()  # empty: unlabelled (pre-training data)
    stride: int = DEFAULT_STRIDE
    ingest: IngestSettings = field(default_factory=IngestSettings)


@dataclass(frozen=True)
class Resources:
    """What one job of a training stage asks the scheduler for (``<stage>.resources``)."""

    gpus: int = 0
    cpus: int | None = None  # also torch's threads per process
    mem_mb: int | None = None
    runtime: int | None = None  # minutes


@dataclass(frozen=True)
class PretrainSection:
    """The ``pretrain`` section: the pre-training dataset, the recipe defaults and the named runs.

    ``defaults`` and each run's overrides stay mappings of :class:`~maedfer.settings.PretrainConfig`
    fields; :func:`maedfer.settings.resolve.pretrain_settings` merges them.
    """

    dataset: str
    defaults: dict[str, Any]
    runs: dict[str, dict[str, Any]]
    resources: Resources = field(default_factory=Resources)


@dataclass(frozen=True)
class FinetuneSection:
    """The ``finetune`` section: the recipe defaults and the named experiments (each names a pretraining).

    ``per_dataset`` holds each dataset's recipe overrides, written as ``datasets.<name>.finetune``
    (e.g. FERV39k's total batch); :func:`maedfer.settings.resolve.finetune_settings` applies them.
    """

    defaults: dict[str, Any]
    experiments: dict[str, dict[str, Any]]
    resources: Resources = field(default_factory=Resources)
    per_dataset: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class TableSpec:
    """A paper table: the folds per dataset (``"all"`` or a list) and its rows (paper row key -> experiment)."""

    datasets: dict[str, str | tuple[int, ...]]
    rows: dict[str, str]


@dataclass(frozen=True)
class Fig4Spec:
    """Fig. 4, reconstructions of a pretraining's model (``figures.fig4``)."""

    pretraining: str
    ratios: tuple[float, ...] = (0.75, 0.9)
    clip_index: int = 0
    seed: int = 0


@dataclass(frozen=True)
class Fig5Spec:
    """Fig. 5, t-SNE of one fold run's test set (``figures.fig5``)."""

    experiment: str
    dataset: str
    fold: int


@dataclass(frozen=True)
class FiguresSpec:
    """The figures a profile makes (``figures``); None: not made."""

    fig4: Fig4Spec | None = None
    fig5: Fig5Spec | None = None


@dataclass(frozen=True)
class DemoDataSpec:
    """``maedfer demo-data`` output folder and its arguments (``demo_data``)."""

    out: str
    args: dict[str, Any] = field(default_factory=dict)


def _build(cls: type, data: dict[str, Any] | None, **nested: Any) -> Any:
    """``cls`` from a mapping already checked by the schema; lists become tuples for tuple fields."""
    if data is None:
        return None
    values = {}
    for f in fields(cls):
        if f.name not in data:
            continue
        value = nested[f.name](data[f.name]) if f.name in nested else copy.deepcopy(data[f.name])
        if isinstance(value, list) and "tuple" in str(f.type):
            value = tuple(value)
        values[f.name] = value
    return cls(**values)


def _folds(value: Any) -> str | tuple[int, ...]:
    return value if value == "all" else tuple(value)


@dataclass(frozen=True)
class Params:
    """A whole params file, typed; build it with :meth:`from_dict` from validated data."""

    profile: str
    paths: PathsSettings
    mlflow: MlflowSettings
    datasets: dict[str, DatasetSpec]
    pretrain: PretrainSection
    finetune: FinetuneSection
    tables: dict[str, TableSpec]
    figures: FiguresSpec = field(default_factory=FiguresSpec)
    demo_data: DemoDataSpec | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Params:
        """The typed view of a params mapping that passed :data:`maedfer.workflow.schema.SCHEMA`."""
        datasets = {name: _build(DatasetSpec, spec, ingest=lambda d: _build(IngestSettings, d))
                    for name, spec in data["datasets"].items()}
        figures = data.get("figures", {})
        return cls(
            profile=data["profile"],
            paths=_build(PathsSettings, data["paths"]),
            mlflow=_build(MlflowSettings, data["mlflow"]),
            datasets=datasets,
            pretrain=_build(PretrainSection, data["pretrain"], resources=lambda d: _build(Resources, d)),
            finetune=_build(FinetuneSection, {**data["finetune"], "per_dataset": {
                name: spec["finetune"] for name, spec in data["datasets"].items() if spec.get("finetune")}},
                resources=lambda d: _build(Resources, d)),
            tables={name: TableSpec(datasets={d: _folds(f) for d, f in spec["datasets"].items()},
                                    rows=dict(spec["rows"]))
                    for name, spec in data["tables"].items()},
            figures=FiguresSpec(fig4=_build(Fig4Spec, figures.get("fig4")), fig5=_build(Fig5Spec, figures.get("fig5"))),
            demo_data=_build(DemoDataSpec, data.get("demo_data")),
        )
