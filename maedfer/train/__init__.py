"""Training: the engine and its parts (process group, optimiser, schedule, checkpoints), and the two stages.

The modules of this package other than ``pretrain_loop``, ``finetune_loop``, ``evaluate``,
``outputs`` and ``transfer`` do not depend on model or data internals.
"""

from maedfer.train.checkpoint import (
    LAST_NAME,
    CheckpointError,
    TrainingState,
    find_resume_checkpoint,
    list_checkpoints,
    load_training_state,
    mark_finished,
    resume_or_restart,
    save_training_state,
)
from maedfer.train.distributed import (
    DistInfo,
    all_reduce_mean,
    barrier,
    cleanup,
    get_rank,
    get_world_size,
    init_distributed,
    is_main_process,
    seed_everything,
    unwrap_model,
)
from maedfer.train.engine import Engine, EpochStats, Hooks
from maedfer.train.optim import build_optimizer, layer_scales, param_groups, scaled_lr
from maedfer.train.policy import NonFiniteLossError, autocast, check_warmup, resolve_precision
from maedfer.train.recipe import Recipe, UpdatePlan, plan_updates
from maedfer.train.schedule import WarmupCosineSchedule, lr_at

__all__ = [
    "LAST_NAME",
    "CheckpointError",
    "DistInfo",
    "Engine",
    "EpochStats",
    "Hooks",
    "NonFiniteLossError",
    "Recipe",
    "TrainingState",
    "UpdatePlan",
    "WarmupCosineSchedule",
    "all_reduce_mean",
    "autocast",
    "barrier",
    "build_optimizer",
    "check_warmup",
    "cleanup",
    "find_resume_checkpoint",
    "mark_finished",
    "resume_or_restart",
    "get_rank",
    "get_world_size",
    "init_distributed",
    "is_main_process",
    "layer_scales",
    "list_checkpoints",
    "load_training_state",
    "lr_at",
    "param_groups",
    "plan_updates",
    "resolve_precision",
    "save_training_state",
    "scaled_lr",
    "seed_everything",
    "unwrap_model",
]
