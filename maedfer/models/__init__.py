"""The MAE-DFER model zoo.

The MAE-DFER model zoo: LGI-Former and ViT encoders, classifiers, the pre-training model,
the authors' checkpoint converter and size/compute statistics.
"""

from maedfer.models.checkpoint import load_model, save_model
from maedfer.models.classifier import VideoClassifier
from maedfer.models.lgi_former import LGIBlock, LGIFormer, MaskLayoutError, RegionLayoutError
from maedfer.models.official import load_official_checkpoint
from maedfer.models.outputs import EncoderOutput
from maedfer.models.pretrain import MAEPretrainModel
from maedfer.models.registry import create_model, list_models, register_model
from maedfer.models.vit import ViTEncoder

__all__ = [
    "EncoderOutput",
    "LGIBlock",
    "LGIFormer",
    "MAEPretrainModel",
    "MaskLayoutError",
    "RegionLayoutError",
    "VideoClassifier",
    "ViTEncoder",
    "create_model",
    "list_models",
    "load_model",
    "load_official_checkpoint",
    "register_model",
    "save_model",
]
