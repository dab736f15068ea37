"""The classifier behind a prediction: checkpoint resolution, loading and class names."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from maedfer.data.adapters.dfew import DFEWAdapter

log = logging.getLogger(__name__)

# The demo pipeline's fine-tuned model (``snakemake --cores 2 demo``), relative to the working folder.
DEMO_CHECKPOINT = Path("runs/demo/finetune/mae_dfer/dfew/fold1/model.pt")
# One line wherever the demo model is used by default (maedfer predict, maedfer app): what it is and the way out.
DEMO_NOTICE = (
    f"the demo model ({DEMO_CHECKPOINT}) is trained on synthesised expressions of a few faces, not on real data, "
    "so its labels on real videos mean little; for a real model, convert the authors' released fine-tuned "
    "checkpoint (links: github.com/sunlicai/MAE-DFER) with 'maedfer convert mae_dfer_dfew_fold1.pth "
    "dfew_fold1.pt --dataset dfew' and pass --checkpoint dfew_fold1.pt"
)


class CheckpointError(ValueError):
    """A checkpoint that cannot be found, loaded or used for classification; the message says why."""


@dataclass
class LoadedModel:
    """A classifier in eval mode on ``device`` with what prediction needs to know about it."""

    model: nn.Module
    path: Path
    arch: str
    class_names: list[str]
    num_frames: int  # frames per clip (the encoder's patch embedding)
    img_size: int  # model input side in pixels
    device: torch.device
    notes: list[str] = field(default_factory=list)
    demo: bool = False  # the demo model, used because no checkpoint was given (see DEMO_NOTICE)


def resolve_checkpoint(checkpoint: str | Path | None) -> Path:
    """``checkpoint``, or the demo run's model when None; CheckpointError when neither exists."""
    if checkpoint is None:
        if DEMO_CHECKPOINT.is_file():
            return DEMO_CHECKPOINT
        raise CheckpointError(
            f"no checkpoint given and the demo model {DEMO_CHECKPOINT} does not exist (in {Path.cwd()}): "
            "pass --checkpoint PATH (a maedfer model file or an official fine-tuned checkpoint) "
            "or train the demo model first with 'snakemake --cores 2 demo'"
        )
    path = Path(checkpoint)
    if not path.is_file():
        raise CheckpointError(
            f"{path}: checkpoint file not found; pass --checkpoint with an existing model file, "
            "a model folder (maedfer export-hf) or a Hub id owner/name"
        )
    return path


def is_hub_source(checkpoint: str | Path | None) -> bool:
    """True for a model folder (config.json + model.safetensors) or an ``owner/name`` Hub id not found locally."""
    if checkpoint is None or is_mlflow_uri(checkpoint):
        return False
    from maedfer.hub import looks_like_repo_id

    path = Path(checkpoint)
    return path.is_dir() or (not path.exists() and looks_like_repo_id(str(checkpoint)))


def is_mlflow_uri(checkpoint: str | Path | None) -> bool:
    """True for an MLflow model URI (``models:/<name>/<version>``, ``runs:/<run_id>/model``)."""
    return checkpoint is not None and str(checkpoint).startswith(("models:/", "runs:/"))


def _mlflow_folder(uri: str) -> Path:
    """The Hub model folder inside the MLflow model ``uri`` (downloaded from ``MLFLOW_TRACKING_URI``'s store)."""
    from maedfer.tracking.models import MlflowModelError, hub_folder_of

    try:
        return hub_folder_of(uri)
    except MlflowModelError as exc:
        raise CheckpointError(str(exc)) from exc


def _load_hub(source: str | Path) -> nn.Module:
    """The classifier of a Hub model folder or Hub id (JSON and safetensors only, nothing unpickled)."""
    from maedfer.hub import HubFolderError, load_pretrained

    try:
        model = load_pretrained(source).model
    except HubFolderError as exc:
        raise CheckpointError(str(exc)) from exc
    if not hasattr(model, "head"):
        raise CheckpointError(f"{source}: is a pre-training model; predict with a fine-tuned (classification) model")
    return model


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Cuda when available and ``device`` is None; a clear error when cuda is asked for but absent."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
    return dev


def choose_class_names(path: Path, stored: list[str] | None, num_classes: int, given: list[str] | None):
    """(class names, notes): ``given`` > names stored in the checkpoint > DFEW's 7 names for 7 classes."""
    if given:
        names = [str(n).strip() for n in given]
        if len(names) != num_classes:
            raise CheckpointError(
                f"{path}: the model has {num_classes} classes but {len(names)} class names were given "
                f"({', '.join(names)}); pass exactly {num_classes} to --class-names"
            )
        return names, []
    if stored:
        if len(stored) != num_classes:
            raise CheckpointError(f"{path}: stores {len(stored)} class names for {num_classes} outputs")
        return list(stored), []
    if num_classes == len(DFEWAdapter.class_names):
        note = "checkpoint stores no class names: assumed DFEW's 7 classes (override with --class-names)"
        return list(DFEWAdapter.class_names), [note]
    raise CheckpointError(
        f"{path}: the checkpoint stores no class names and has {num_classes} classes; "
        f"name them with --class-names a,b,c ({num_classes} names, in output order)"
    )


def load_for_prediction(
    checkpoint: str | Path | None,
    class_names: list[str] | None = None,
    device: str | torch.device | None = None,
    trust_pickle: bool = False,
) -> LoadedModel:
    """Load a model for prediction.

    Load a maedfer model file, a model folder in the Hub convention (or an ``owner/name`` Hub id), a registered
    MLflow model (``models:/<name>/<version>``) or a converted-on-the-fly official fine-tuned checkpoint
    (``trust_pickle`` allows full unpickling of official files that need it: only files you trust).
    """
    from maedfer.train.evaluate import load_classifier

    mlflow_uri = is_mlflow_uri(checkpoint)
    hub = mlflow_uri or is_hub_source(checkpoint)
    path = Path(checkpoint) if hub else resolve_checkpoint(checkpoint)
    dev = resolve_device(device)
    try:
        if hub:
            model = _load_hub(_mlflow_folder(str(checkpoint)) if mlflow_uri else checkpoint)
        else:
            model = load_classifier(path, class_names=class_names, trust_pickle=trust_pickle)
    except (CheckpointError, FileNotFoundError):
        raise
    except Exception as exc:  # unpickling errors, shape mismatches, foreign files: one line for the user
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: cannot load this checkpoint ({type(exc).__name__}: {reason})") from exc
    pe = model.encoder.patch_embed
    names, notes = choose_class_names(path, getattr(model, "class_names", None), int(model.num_classes), class_names)
    model.class_names = names
    model = model.to(dev).eval()
    arch = getattr(model, "arch", type(model).__name__)
    log.info("loaded %s (%s, %d classes) on %s", path, arch, len(names), dev)
    demo = checkpoint is None
    if demo:
        log.info("%s", DEMO_NOTICE)
    return LoadedModel(model, path, arch, names, int(pe.num_frames), int(pe.img_size), dev, notes, demo)
