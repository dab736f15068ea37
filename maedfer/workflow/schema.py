"""The schema of a params file (params.yaml, params/demo.yaml): structure and types (JSON Schema).

Cross references (an experiment's pretraining, a table's experiments, datasets and folds, the
paper's row keys) are checked by :func:`maedfer.workflow.profile.load_profile` after this schema.
"""

from __future__ import annotations

from typing import Any

_NUM = {"type": "number"}
_INT = {"type": "integer"}
_POS_INT = {"type": "integer", "minimum": 1}
_NONNEG_INT = {"type": "integer", "minimum": 0}
_STR = {"type": "string", "minLength": 1}
_BOOL = {"type": "boolean"}
_NAME = {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_-]*$"}  # used in paths, rule and stage names


def _obj(properties: dict[str, Any], required: tuple[str, ...] = (), extra: bool = False) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required), "additionalProperties": extra}


def _named(value: dict[str, Any]) -> dict[str, Any]:
    """A mapping name -> value whose names are safe in paths and stage names."""
    return {"type": "object", "propertyNames": _NAME, "additionalProperties": value, "minProperties": 1}


RESOURCES = _obj({"gpus": _NONNEG_INT, "cpus": _POS_INT, "mem_mb": _POS_INT, "runtime": _POS_INT},
                 required=("gpus",))

ARCH_KWARGS = {"type": "object"}  # checked against the model factory when the stage builds the model
PRECISION = {"enum": ["bf16", "fp16", "fp32", None]}  # null: bf16 on CUDA, fp32 on CPU

COMPILE = {"enum": ["auto", True, False]}  # maedfer.train.compile
DATA_PATH = {"enum": ["auto", "cpu", "device"]}  # maedfer.data.gpu.select

PRETRAIN_SETTINGS = {
    "arch": _STR,
    "arch_kwargs": ARCH_KWARGS,
    "epochs": _NONNEG_INT,
    "warmup_epochs": _NONNEG_INT,
    "batch_size": _POS_INT,
    "accum_steps": _POS_INT,
    "total_batch": {"type": ["integer", "null"], "minimum": 1},
    "schedule_epochs": {"type": ["integer", "null"], "minimum": 1},
    "precision": PRECISION,
    "decay_region_tokens": _BOOL,
    "base_lr": _NUM,
    "base_min_lr": _NUM,
    "weight_decay": _NUM,
    "clip_grad": {"type": ["number", "null"]},
    "stride": _POS_INT,
    "num_workers": _NONNEG_INT,
    "seed": _INT,
    "save_every_steps": _NONNEG_INT,
    "preview_every_epochs": _NONNEG_INT,
    "compile": COMPILE,
    "data_path": DATA_PATH,
    "cache_mb": _NONNEG_INT,
    "max_steps_per_epoch": {"type": ["integer", "null"], "minimum": 1},
}

FINETUNE_SETTINGS = {
    "arch": _STR,
    "arch_kwargs": ARCH_KWARGS,
    "epochs": _POS_INT,
    "warmup_epochs": _NONNEG_INT,
    "batch_size": _POS_INT,
    "accum_steps": _POS_INT,
    "total_batch": {"type": ["integer", "null"], "minimum": 1},
    "precision": PRECISION,
    "base_lr": _NUM,
    "base_min_lr": _NUM,
    "weight_decay": _NUM,
    "layer_decay": _NUM,
    "drop_path": _NUM,
    "head_init_scale": _NUM,
    "mixup": _NUM,
    "cutmix": _NUM,
    "label_smoothing": _NUM,
    "num_workers": _NONNEG_INT,
    "seed": _INT,
    "test_best": _BOOL,
    "eval_every": _POS_INT,
    "compile": COMPILE,
    "data_path": DATA_PATH,
    "cache_mb": _NONNEG_INT,
    "max_steps_per_epoch": {"type": ["integer", "null"], "minimum": 1},
    "auto_augment": {"type": ["string", "null"]},
    "crop_scale": {"type": "array", "items": _NUM, "minItems": 2, "maxItems": 2},
    "reprob": _NUM,
}

_SHA256 = {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}
# A released checkpoint: a file the user provides (`path`), or one downloaded from `url` (to `path`, or to
# <paths.runs>/released/); `sha256` pins it (without one, the first download's is recorded and checked after);
# `where` tells a user where to get it by hand (named when the file is missing).
CHECKPOINT_FILE = {
    **_obj({"path": _STR, "url": {"type": "string", "pattern": "^https?://"}, "sha256": _SHA256, "where": _STR}),
    "anyOf": [{"required": ["path"]}, {"required": ["url"]}],
}

_MD5 = {"type": "string", "pattern": "^(md5:)?[0-9a-fA-F]{32}$"}
_CHECKSUM = {"type": "string", "pattern": "^((md5:)?[0-9a-fA-F]{32}|(sha256:)?[0-9a-fA-F]{64})$"}
_URL = {"type": "string", "pattern": "^https?://"}
# Where a dataset comes from (maedfer.data.acquire.sources): a folder, files (local or URLs, byte-split parts
# joined) with md5 / sha256, or an entry of the built-in catalogue (a mirror, a subset, pinned checksums, the
# inbox folder of a gated dataset). Credentials never go here: they come from environment variables.
SOURCE_FILE = {"oneOf": [_STR, {
    **_obj({"url": _URL, "path": _STR, "parts": {"type": "array", "items": _STR, "minItems": 1}, "name": _STR,
            "md5": _MD5, "sha256": _SHA256, "checksum": _CHECKSUM, "into": _STR}),
    "oneOf": [{"required": ["url"]}, {"required": ["path"]}, {"required": ["parts", "name"]}]}]}
SOURCE = {
    **_obj({"folder": _STR, "files": {"type": "array", "items": SOURCE_FILE, "minItems": 1}, "catalogue": _NAME,
            "mirror": _URL, "only": {"type": "array", "items": _STR, "minItems": 1},
            "checksums": {"type": "object", "additionalProperties": _CHECKSUM}, "inbox": _STR, "keep": _BOOL}),
    "oneOf": [{"required": ["folder"]}, {"required": ["files"]}, {"required": ["catalogue"]}],
}

FOLDS = {"oneOf": [{"const": "all"}, {"type": "array", "items": _POS_INT, "minItems": 1, "uniqueItems": True}]}

SCHEMA: dict[str, Any] = _obj(
    {
        "profile": _NAME,
        "demo_data": _obj({"out": _STR, "args": {"type": "object"}}, required=("out",)),
        "paths": _obj({"shards": _STR, "runs": _STR, "results": _STR}, required=("shards", "runs", "results")),
        "mlflow": _obj({"experiment": _STR, "tracking": _BOOL}, required=("experiment",)),
        "datasets": _named(_obj(
            {
                "adapter": _STR,
                "root": _STR,
                "folds": {"type": "array", "items": _POS_INT, "minItems": 1, "uniqueItems": True},
                "stride": _POS_INT,
                "ingest": _obj({"size": _POS_INT, "workers": _NONNEG_INT, "use_raw_videos": _BOOL,
                                "jpeg_quality": {"type": "integer", "minimum": 1, "maximum": 100},
                                "shard_mb": _NUM, "margin": _NUM, "device": {"type": ["string", "null"]},
                                "detect_max_side": _POS_INT, "detect_every": _POS_INT, "progress_seconds": _NUM,
                                # None: size x size (today); "source" or an int: stored so, resized at load
                                "store_size": {"oneOf": [{"type": "integer", "minimum": 16}, {"const": "source"},
                                                         {"type": "null"}]}}),
                "finetune": _obj(FINETUNE_SETTINGS),  # this dataset's recipe overrides (FERV39k's batch)
                "source": SOURCE,  # where the root's data comes from: an acquire_<dataset> job fills it
            },
            required=("adapter", "root"),
        )),
        "pretrain": _obj(
            {
                "dataset": _NAME,
                "defaults": _obj(PRETRAIN_SETTINGS, required=("arch", "epochs", "batch_size")),
                "resources": RESOURCES,
                "runs": _named(_obj({**PRETRAIN_SETTINGS, "checkpoint": CHECKPOINT_FILE})),  # or a released one
            },
            required=("dataset", "defaults", "runs"),
        ),
        "finetune": _obj(
            {
                "defaults": _obj(FINETUNE_SETTINGS, required=("arch", "epochs", "batch_size")),
                "resources": RESOURCES,
                "experiments": _named(_obj({"pretraining": {"type": ["string", "null"]}, **FINETUNE_SETTINGS},
                                           required=("pretraining",))),
            },
            required=("defaults", "experiments"),
        ),
        "tables": _named(_obj(
            {"datasets": _named(FOLDS), "rows": _named(_NAME)},
            required=("datasets", "rows"),
        )),
        # The authors' released fine-tuned checkpoints, evaluated fold by fold (targets evaluate_released_<dataset>);
        # `model`: options of the official-checkpoint loader where the geometry differs from the paper's.
        "released": _obj({"finetuned": _named(_obj(
            {"folds": {"type": "object", "propertyNames": {"type": "string", "pattern": "^fold[1-9][0-9]*$"},
                       "additionalProperties": CHECKPOINT_FILE, "minProperties": 1},
             "where": _STR,
             "model": _obj({"num_heads": _POS_INT, "region_size": {"type": "array", "items": _POS_INT,
                                                                   "minItems": 3, "maxItems": 3},
                            "model_kwargs": {"type": "object"}})},
            required=("folds",)))}),
        "figures": _obj({
            "fig4": _obj({"pretraining": _NAME, "ratios": {"type": "array", "items": _NUM, "minItems": 1},
                          "clip_index": _NONNEG_INT, "seed": _INT}, required=("pretraining",)),
            "fig5": _obj({"experiment": _NAME, "dataset": _NAME, "fold": _POS_INT},
                         required=("experiment", "dataset", "fold")),
        }),
    },
    required=("profile", "paths", "mlflow", "datasets", "pretrain", "finetune", "tables"),
)
