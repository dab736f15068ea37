"""Fine-tuned folds as MLflow models: a pyfunc over face clips, logged, registered and loaded back.

Each fold's classifier is logged to its training run as an MLflow model (``mlflow.pyfunc``, models from
code: nothing of ours is pickled) and registered as a new version of ``maedfer-<dataset>-<experiment>``::

    log_fold_model("runs/x/finetune/mae_dfer/dfew/fold1/model.pt", run_id=run_id, dataset="dfew",
                   experiment="mae_dfer", fold=1, params=asdict(cfg))   # -> ("maedfer-dfew-mae_dfer", "1")

The model folder holds the weights as a Hub model folder (``artifacts/model``: ``config.json``,
``model.safetensors``, the card), the signature, an input example and the pinned requirements.

Input: uint8 RGB face crops ``(B, T, H, W, 3)``, T = the model's clip length (16 for the paper's models), any
H and W (each clip is resized and centre-cropped to the model's side and normalised, as the test loader
does). Output: one row per clip, one probability column per class name, and ``label``, the top class.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger("maedfer.tracking")

ARTIFACT_KEY = "model"  # the Hub model folder, under the MLflow model's artifacts/
MODEL_NAME = "model"  # the logged model's name in its run (runs:/<run_id>/model)
CODE_FILE = Path(__file__).with_name("pyfunc_code.py")  # models from code: defines and sets the pyfunc
EXAMPLE_SIDE = 32  # side of the input example's frames (any size is accepted; kept small on disk)
# Third-party distributions the served model imports (maedfer's own code must be installed at the logged commit).
SERVING_DISTRIBUTIONS = ("mlflow", "torch", "torchvision", "numpy", "pandas", "einops", "safetensors",
                         "huggingface_hub", "pyyaml")
MODEL_URI_PREFIXES = ("models:/", "runs:/")


class MlflowModelError(ValueError):
    """A model URI that cannot be loaded or a fold that cannot be logged; the message names it and the fix."""


def registered_model_name(dataset: str, experiment: str) -> str:
    """The registry name of a fine-tuning's folds: ``maedfer-<dataset>-<experiment>``."""
    return f"maedfer-{dataset}-{experiment}"


def params_hash(params: Mapping[str, Any]) -> str:
    """First 12 hex digits of the sha256 of the params as canonical JSON (sorted keys): equal params, equal hash."""
    text = json.dumps(params, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def exact_requirements() -> list[str]:
    """``name==version`` of the installed distributions the served model imports (see SERVING_DISTRIBUTIONS)."""
    pins = []
    for dist in SERVING_DISTRIBUTIONS:
        try:
            pins.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            logger.debug("%s is not installed: not pinned", dist)
    return pins


def model_signature(class_names: list[str], num_frames: int) -> Any:
    """uint8 tensor (-1, T, -1, -1, 3) in; one double column per class plus a string ``label`` out."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    inputs = Schema([TensorSpec(np.dtype(np.uint8), (-1, int(num_frames), -1, -1, 3))])
    outputs = Schema([ColSpec("double", name) for name in class_names] + [ColSpec("string", "label")])
    return ModelSignature(inputs=inputs, outputs=outputs)


def input_example(num_frames: int, side: int = EXAMPLE_SIDE, seed: int = 0) -> np.ndarray:
    """A deterministic uint8 clip (1, T, side, side, 3): the input example stored with the model."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(1, int(num_frames), side, side, 3), dtype=np.uint8)


class ClipClassifier:
    """A classifier plus the test loader's transform: uint8 clips (B, T, H, W, 3) -> probabilities (B, C)."""

    def __init__(self, model: Any, class_names: list[str], num_frames: int, img_size: int, device: str = "cpu") -> None:
        """Keep the model (eval mode, on ``device``) and build the eval transform for ``img_size``."""
        from maedfer.data.transforms import eval_transform

        self.model = model.to(device).eval()
        self.class_names = list(class_names)
        self.num_frames, self.img_size, self.device = int(num_frames), int(img_size), device
        self.transform = eval_transform(self.img_size)

    def probabilities(self, clips: np.ndarray) -> np.ndarray:
        """Class probabilities (B, C) of uint8 clips (B, T, H, W, 3); ValueError naming the expected shape."""
        import torch

        clips = np.asarray(clips)
        if clips.ndim == 4:
            clips = clips[None]  # one clip (T, H, W, 3)
        if clips.ndim != 5 or clips.shape[1] != self.num_frames or clips.shape[-1] != 3:
            raise ValueError(f"input of shape {tuple(clips.shape)}: expected uint8 RGB face clips "
                             f"(batch, {self.num_frames}, height, width, 3)")
        if clips.dtype != np.uint8:
            if clips.min() < 0 or clips.max() > 255:
                raise ValueError("input values outside 0..255: expected uint8 RGB frames")
            clips = clips.astype(np.uint8)
        frames = torch.from_numpy(np.ascontiguousarray(clips)).permute(0, 1, 4, 2, 3)  # (B, T, 3, H, W)
        batch = torch.stack([self.transform(clip, None) for clip in frames])  # (B, 3, T, S, S)
        with torch.inference_mode():
            logits = self.model(batch.to(self.device))  # (B, C)
        return torch.softmax(logits.float(), dim=-1).cpu().numpy()

    def frame(self, clips: np.ndarray) -> Any:
        """A pandas DataFrame: a probability column per class name and ``label``, one row per clip."""
        import pandas as pd

        probs = self.probabilities(clips)  # (B, C)
        table = pd.DataFrame(probs.astype(np.float64), columns=self.class_names)
        table["label"] = [self.class_names[i] for i in probs.argmax(axis=1)]
        return table


def classifier_from_folder(folder: str | Path, device: str = "cpu") -> ClipClassifier:
    """A :class:`ClipClassifier` of a Hub model folder (JSON and safetensors only)."""
    from maedfer.hub import load_pretrained

    wrapped = load_pretrained(str(folder))
    model = wrapped.model
    if not hasattr(model, "head") or not wrapped.class_names:
        raise MlflowModelError(f"{folder}: not a fine-tuned classifier with class names")
    pe = model.encoder.patch_embed
    return ClipClassifier(model, wrapped.class_names, int(pe.num_frames), int(pe.img_size), device)


def log_fold_model(
    source: str | Path,
    *,
    run_id: str,
    dataset: str,
    experiment: str,
    fold: int | str,
    params: Mapping[str, Any] | None = None,
    table_row: str | None = None,
    tracking_uri: str | None = None,
    register: bool = True,
) -> tuple[str, str] | None:
    """Log a fold's model (a maedfer ``model.pt``, its run folder, or a Hub model folder) to run ``run_id``.

    Registers it as a new version of :func:`registered_model_name` tagged ``fold``, ``table_row``
    (default ``experiment``), ``params_hash`` and ``dataset``; returns (name, version), or None when
    ``register`` is False. Raises on failure: callers that must not fail wrap it.
    """
    import mlflow

    from maedfer.hub import export_folder
    from maedfer.tracking.store import connect, default_tracking_uri

    uri = tracking_uri or default_tracking_uri()
    client = connect(uri, probe_timeout_s=5.0)
    name = registered_model_name(dataset, experiment)
    tags = {"dataset": dataset, "fold": str(fold), "table_row": table_row or experiment,
            "params_hash": params_hash(params or {})}
    with tempfile.TemporaryDirectory(prefix="maedfer-mlflow-") as tmp:
        src = Path(source)
        hub_folder = (src / "config.json").is_file()
        folder = src if hub_folder else export_folder(src, Path(tmp) / ARTIFACT_KEY, dataset=dataset)
        classifier = classifier_from_folder(folder)
        example = input_example(classifier.num_frames)
        previous = mlflow.get_tracking_uri()
        mlflow.set_tracking_uri(uri)  # the registry resolves the logged model through the global tracking URI
        try:
            with mlflow.start_run(run_id=run_id):
                info = mlflow.pyfunc.log_model(
                    name=MODEL_NAME,
                    python_model=str(CODE_FILE),
                    artifacts={ARTIFACT_KEY: str(folder)},
                    signature=model_signature(classifier.class_names, classifier.num_frames),
                    input_example=example,
                    pip_requirements=exact_requirements(),
                    metadata={"maedfer": tags},
                )
            version = _register(client, info.model_uri, name, run_id, tags) if register else None
        finally:
            mlflow.set_tracking_uri(previous)
    if version is None:
        return None
    logger.info("MLflow: registered %s version %s (fold %s) from run %s", name, version, fold, run_id)
    return name, version


def _register(client: Any, model_uri: str, name: str, run_id: str, tags: Mapping[str, str]) -> str:
    """Create the registered model if missing, add a version of ``model_uri``, tag both; the version."""
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name, description="maedfer fine-tuned folds (one version per fold run)")
    except MlflowException as exc:
        if "RESOURCE_ALREADY_EXISTS" not in str(getattr(exc, "error_code", "")) and "already exists" not in str(exc):
            raise
    mv = client.create_model_version(name, model_uri, run_id=run_id, tags=dict(tags))
    client.set_registered_model_tag(name, "dataset", tags["dataset"])
    client.set_registered_model_tag(name, "table_row", tags["table_row"])
    return str(mv.version)


def tag_table_row(client: Any, training_run_id: str, table: str, row: str) -> int:
    """Tag the model versions logged by run ``training_run_id`` with ``table`` and ``table_row``; their count."""
    versions = client.search_model_versions(f"run_id = '{training_run_id}'")
    for mv in versions:
        client.set_model_version_tag(mv.name, mv.version, "table", table)
        client.set_model_version_tag(mv.name, mv.version, "table_row", row)
    return len(versions)


def is_model_uri(text: str | Path | None) -> bool:
    """True for an MLflow model URI: ``models:/<name>/<version or @alias>`` or ``runs:/<run_id>/model``."""
    return text is not None and str(text).startswith(MODEL_URI_PREFIXES)


def hub_folder_of(model_uri: str, dst: str | Path | None = None, tracking_uri: str | None = None) -> Path:
    """Download the Hub model folder of an MLflow model URI (its ``artifacts/model``); MlflowModelError if none."""
    import mlflow

    from maedfer.tracking.store import default_tracking_uri

    uri = tracking_uri or default_tracking_uri()
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri.rstrip("/"),
                                                         dst_path=str(dst) if dst else None))
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MlflowModelError(f"{model_uri}: cannot load this MLflow model from the store {uri} ({first}); "
                               "check the name and version (mlflow models list) or set MLFLOW_TRACKING_URI") from exc
    finally:
        mlflow.set_tracking_uri(previous)
    return _artifact_folder(local, model_uri)


def _artifact_folder(local: Path, model_uri: str) -> Path:
    """The Hub folder that the MLmodel file of a downloaded model names as its ``model`` artifact."""
    import yaml

    try:
        conf = yaml.safe_load((local / "MLmodel").read_text())
        rel = conf["flavors"]["python_function"]["artifacts"][ARTIFACT_KEY]["path"]
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        rel = None
    if rel is None or not (local / rel / "config.json").is_file():
        raise MlflowModelError(f"{model_uri}: is not a maedfer MLflow model (no '{ARTIFACT_KEY}' artifact with a "
                               "config.json); log folds with maedfer.tracking.models.log_fold_model")
    return local / rel


def log_fold_model_quietly(source: str | Path, *, timeout_s: float = 600.0, **kwargs: Any) -> tuple[str, str] | None:
    """:func:`log_fold_model` for a training stage: bounded in time, one warning instead of an error; None then."""
    from maedfer.tracking.store import run_bounded

    result, error = run_bounded(lambda: log_fold_model(source, **kwargs), timeout_s, "mlflow-log-model")
    if error:
        logger.warning("MLflow: the fold model %s was not logged or registered: %s; the stage goes on without it",
                       source, error)
        return None
    return result
