"""Model folders in the Hugging Face Hub convention: ``config.json``, ``model.safetensors``, a model card.

    from maedfer.hub import MaedferModel, export_folder
    export_folder("runs/demo/finetune/mae_dfer/dfew/fold1", "hub/maedfer-demo-dfew-fold1")  # model.pt -> folder
    model = MaedferModel.from_pretrained("hub/maedfer-demo-dfew-fold1")  # a folder, or a Hub id owner/name
    model.save_pretrained("copy")  # the same three files

Built on huggingface_hub's ``PyTorchModelHubMixin`` (config, download, card); loading reads JSON and
safetensors only, never a pickle. ``maedfer export-hf`` is the command; ``maedfer predict --checkpoint``
and ``maedfer app --checkpoint`` take such a folder or Hub id.
"""

from __future__ import annotations

from maedfer.hub.export import export_folder
from maedfer.hub.model import HubFolderError, MaedferModel, check_folder, load_pretrained, looks_like_repo_id

__all__ = ["HubFolderError", "MaedferModel", "check_folder", "export_folder", "load_pretrained", "looks_like_repo_id"]
