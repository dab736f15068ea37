"""A maedfer model in the Hugging Face Hub convention: ``config.json``, ``model.safetensors``, ``README.md``.

:class:`MaedferModel` wraps any model of :mod:`maedfer.models` (a fine-tuned classifier or a pre-trained
encoder) in huggingface_hub's :class:`~huggingface_hub.PyTorchModelHubMixin`, which writes ``config.json``
from the constructor's arguments, downloads from the Hub and generates the model card. Two things differ
from the mixin's defaults:

* the weights file holds the wrapped model's own state dict (the keys of a maedfer ``model.pt``), and
* loading reads ``model.safetensors`` and nothing else: a folder or Hub repository without it is refused,
  even when it has a pickled ``pytorch_model.bin`` (the mixin would fall back to ``torch.load`` there).

``config.json``::

    {"arch": "lgi_former_base", "arch_kwargs": {...}, "class_names": [...] | null, "provenance": {...} | null}

``provenance`` records where the weights come from (dataset, fold, fold results, recipe) for the card.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from huggingface_hub import ModelCard, PyTorchModelHubMixin, constants, hf_hub_download
from torch import nn

from maedfer.hub.card import CARD_TEMPLATE, card_context, card_data
from maedfer.io_utils import atomic_path
from maedfer.models import create_model

log = logging.getLogger(__name__)

CONFIG_NAME = constants.CONFIG_NAME  # config.json
WEIGHTS_NAME = constants.SAFETENSORS_SINGLE_FILE  # model.safetensors
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
PAPER_URL = "https://doi.org/10.1145/3581783.3612365"


class HubFolderError(ValueError):
    """A model folder or Hub repository that cannot be loaded; the message names the file and the fix."""


class MaedferModel(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="maedfer",
    paper_url=PAPER_URL,
    pipeline_tag="video-classification",
    tags=["maedfer", "mae-dfer", "dynamic-facial-expression-recognition", "video-classification"],
    model_card_template=CARD_TEMPLATE,
):
    """A maedfer model (``create_model(arch, **arch_kwargs)``) that saves and loads as a Hub model folder.

    Args:
        arch: registered model name (``maedfer.models.list_models()``).
        arch_kwargs: the constructor arguments the model was built with.
        class_names: output class names in order (None for a pre-trained encoder).
        provenance: plain-JSON record of the training (dataset, fold, fold results, recipe) for the card.
    """

    def __init__(
        self,
        arch: str,
        arch_kwargs: dict[str, Any] | None = None,
        class_names: list[str] | None = None,
        provenance: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        kwargs = {k: v for k, v in (arch_kwargs or {}).items() if k != "init"}
        self.model = create_model(arch, init=False, **kwargs)
        self.model.class_names = list(class_names) if class_names is not None else None
        self.arch, self.arch_kwargs = arch, kwargs
        self.class_names = self.model.class_names
        self.provenance = dict(provenance or {})

    @classmethod
    def from_model(
        cls, model: nn.Module, class_names: list[str] | None = None, provenance: dict[str, Any] | None = None
    ) -> MaedferModel:
        """Wrap a model built by :func:`maedfer.models.create_model` (weights copied)."""
        model = getattr(model, "module", model)  # unwrap DDP
        arch = getattr(model, "arch", None)
        if arch is None:
            raise ValueError("model was not built with maedfer.models.create_model; its architecture is unknown")
        names = class_names if class_names is not None else getattr(model, "class_names", None)
        kwargs = {k: v for k, v in getattr(model, "arch_kwargs", {}).items() if k != "init"}
        wrapped = cls(arch, kwargs, list(names) if names else None, provenance)
        wrapped.model.load_state_dict(model.state_dict(), strict=True)
        return wrapped.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The wrapped model's forward: clips (B, C, T, H, W) -> logits (B, classes) for a classifier."""
        return self.model(x)

    # ------------------------------------------------------------------------------------------
    # huggingface_hub hooks

    def _save_pretrained(self, save_directory: Path) -> None:
        """Write the wrapped model's state dict to ``model.safetensors`` (shared tensors handled by safetensors)."""
        with atomic_path(Path(save_directory) / WEIGHTS_NAME) as tmp:
            mode = tmp.stat().st_mode  # the umask's mode: safetensors' own file would be 0600
            safetensors.torch.save_model(self.model, str(tmp), metadata={"format": "pt"})
            tmp.chmod(mode)

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | Path | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        map_location: str = "cpu",
        strict: bool = True,
        **model_kwargs: Any,
    ) -> MaedferModel:
        """Build the model from config.json's arguments and load ``model.safetensors`` (never a pickle)."""
        if os.path.isdir(model_id):
            weights = Path(model_id) / WEIGHTS_NAME
        else:
            weights = Path(
                hf_hub_download(
                    repo_id=model_id,
                    filename=WEIGHTS_NAME,
                    revision=revision,
                    cache_dir=cache_dir,
                    force_download=force_download,
                    token=token,
                    local_files_only=local_files_only,
                )
            )
        model = cls(**model_kwargs)
        missing, unexpected = safetensors.torch.load_model(
            model.model, str(weights), strict=strict, device=map_location
        )
        if missing or unexpected:
            log.warning("%s: missing keys %s, unexpected keys %s", weights, missing, unexpected)
        return model.eval()

    def generate_model_card(self, *args: Any, **kwargs: Any) -> ModelCard:
        """The model card: architecture, training data, fold results, usage and the paper's citation."""
        context = card_context(self.model, self.arch, self.arch_kwargs, self.class_names, self.provenance)
        return ModelCard.from_template(
            card_data=card_data(self._hub_mixin_info.model_card_data, self.provenance, context),
            template_str=self._hub_mixin_info.model_card_template,
            **{**context, **kwargs},
        )


def check_folder(folder: str | os.PathLike) -> Path:
    """A local model folder ready to load: config.json and model.safetensors present, config readable.

    Raises HubFolderError naming the folder and what is missing (a pickled weights file is never loaded).
    """
    folder = Path(folder)
    if not (folder / WEIGHTS_NAME).is_file():
        pickles = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
        found = f" (found {', '.join(pickles)}: pickled weights are never loaded)" if pickles else ""
        raise HubFolderError(
            f"{folder}: no {WEIGHTS_NAME}{found}; export a model folder with 'maedfer export-hf MODEL.pt OUT_DIR'"
        )
    config_path = folder / CONFIG_NAME
    if not config_path.is_file():
        raise HubFolderError(f"{folder}: no {CONFIG_NAME}; export a model folder with 'maedfer export-hf'")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HubFolderError(f"{config_path}: not valid JSON ({exc})") from None
    if not isinstance(config, dict) or not isinstance(config.get("arch"), str):
        raise HubFolderError(f"{config_path}: key 'arch' (the maedfer model name) is missing")
    if not isinstance(config.get("arch_kwargs", {}), dict):
        raise HubFolderError(f"{config_path}: key 'arch_kwargs' must be a mapping of constructor arguments")
    return folder


def looks_like_repo_id(text: str) -> bool:
    """True for ``owner/name`` Hub ids (two parts, no file suffix), which are fetched from the Hub."""
    parts = str(text).split("/")
    return len(parts) == 2 and all(parts) and not Path(text).suffix and not str(text).startswith(".")


def load_pretrained(source: str | os.PathLike, **kwargs: Any) -> MaedferModel:
    """:meth:`MaedferModel.from_pretrained` of a local folder (checked first) or a Hub id (downloaded).

    Every failure is a HubFolderError naming the source.
    """
    text = str(source)
    if Path(text).is_dir():
        check_folder(text)
    elif not looks_like_repo_id(text):
        raise HubFolderError(f"{text}: not a model folder, and not a Hub id of the form owner/name")
    try:
        return MaedferModel.from_pretrained(text, **kwargs)
    except HubFolderError:
        raise
    except Exception as exc:  # network, unknown repo, wrong shapes, unknown arch: one line
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise HubFolderError(f"{text}: cannot load this model folder ({type(exc).__name__}: {reason})") from exc
