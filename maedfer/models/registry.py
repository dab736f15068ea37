"""Named model factories (timm style): ``create_model("lgi_former_base_patch16_160", num_classes=7)``.

Every created model remembers its factory name and keyword arguments (``model.arch`` and
``model.arch_kwargs``), so checkpoints carry their own configuration.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from maedfer.models.classifier import VideoClassifier
from maedfer.models.lgi_former import LGIFormer
from maedfer.models.pretrain import MAEPretrainModel
from maedfer.models.vit import ViTEncoder
from maedfer.settings.arch_names import PRETRAIN_ONLY_KEYS

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}

# Encoder sizes of the paper (Table 9) and the VideoMAE baseline; "test" is a tiny CPU variant.
LGI_SIZES: dict[str, dict[str, Any]] = {
    "base": dict(embed_dim=512, depth=16, num_heads=8),
    "small": dict(embed_dim=384, depth=16, num_heads=6),
    "tiny": dict(embed_dim=256, depth=16, num_heads=4),
    "test": dict(embed_dim=64, depth=2, num_heads=2),
}
VIT_SIZES: dict[str, dict[str, Any]] = {
    "base": dict(embed_dim=768, depth=12, num_heads=12),
    "test": dict(embed_dim=64, depth=2, num_heads=2),
}
DECODER_SIZES: dict[str, dict[str, Any]] = {
    "base": dict(decoder_dim=384, decoder_depth=4, decoder_heads=6),
    "test": dict(decoder_dim=32, decoder_depth=1, decoder_heads=2),
}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator: register a model factory under its function name."""
    _REGISTRY[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    """Names of the registered model factories, sorted."""
    return sorted(_REGISTRY)


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build model ``name`` with ``kwargs``; the model remembers both (``arch``, ``arch_kwargs``)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    model = _REGISTRY[name](**kwargs)
    model.arch = name
    model.arch_kwargs = dict(kwargs)
    return model


_CLIP_KEYS = ("img_size", "patch_size", "num_frames", "tubelet_size")


def _split(kwargs: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: kwargs.pop(k) for k in list(kwargs) if k in keys}


def _lgi_classifier(
    size: str, num_classes: int = 7, pool: str = "region", drop_path_rate: float = 0.1, init: bool = True,
    head_init_scale: float = 0.001, **kwargs: Any
) -> VideoClassifier:
    encoder = LGIFormer(**{**LGI_SIZES[size], **kwargs}, drop_path_rate=drop_path_rate, final_norm=False)
    model = VideoClassifier(encoder, num_classes=num_classes, pool=pool, head_init_scale=head_init_scale)
    if init:
        model.init_weights()
    return model


def _vit_classifier(
    size: str, num_classes: int = 7, drop_path_rate: float = 0.1, init: bool = True, head_init_scale: float = 0.001,
    **kwargs: Any
) -> VideoClassifier:
    encoder = ViTEncoder(**{**VIT_SIZES[size], **kwargs}, drop_path_rate=drop_path_rate, final_norm=False)
    model = VideoClassifier(encoder, num_classes=num_classes, pool="local", head_init_scale=head_init_scale)
    if init:
        model.init_weights()
    return model


def _lgi_pretrain(size: str, decoder: str = "base", init: bool = True, **kwargs: Any) -> MAEPretrainModel:
    head_kwargs = {**DECODER_SIZES[decoder], **_split(kwargs, PRETRAIN_ONLY_KEYS)}
    encoder = LGIFormer(**{**LGI_SIZES[size], **kwargs}, final_norm=True)
    model = MAEPretrainModel(encoder, **head_kwargs)
    if init:
        model.init_weights()
    return model


def _vit_pretrain(size: str, decoder: str = "base", init: bool = True, **kwargs: Any) -> MAEPretrainModel:
    head_kwargs = {**DECODER_SIZES[decoder], **_split(kwargs, PRETRAIN_ONLY_KEYS)}
    encoder = ViTEncoder(**{**VIT_SIZES[size], **kwargs}, final_norm=True)
    model = MAEPretrainModel(encoder, **head_kwargs)
    if init:
        model.init_weights()
    return model


@register_model
def lgi_former_base_patch16_160(**kwargs: Any) -> VideoClassifier:
    """LGI-Former base (512-d, 16 blocks, 8 heads), region 2x5x10: the paper's model."""
    return _lgi_classifier("base", **kwargs)


@register_model
def lgi_former_small_patch16_160(**kwargs: Any) -> VideoClassifier:
    """LGI-Former small (384-d, 16 blocks, 6 heads), region 2x5x10 (Table 9)."""
    return _lgi_classifier("small", **kwargs)


@register_model
def lgi_former_tiny_patch16_160(**kwargs: Any) -> VideoClassifier:
    """LGI-Former tiny (256-d, 16 blocks, 4 heads), region 2x5x10 (Table 9)."""
    return _lgi_classifier("tiny", **kwargs)


@register_model
def lgi_former_test(**kwargs: Any) -> VideoClassifier:
    """A 64-d, 2-block LGI-Former for tests and the CPU demo."""
    return _lgi_classifier("test", **kwargs)


@register_model
def vit_base_patch16_160(**kwargs: Any) -> VideoClassifier:
    """VideoMAE ViT-B with global space-time attention at 160 px (the paper's baseline)."""
    return _vit_classifier("base", **kwargs)


@register_model
def vit_test(**kwargs: Any) -> VideoClassifier:
    """A 64-d, 2-block ViT for tests."""
    return _vit_classifier("test", **kwargs)


@register_model
def pretrain_lgi_former_base_patch16_160(**kwargs: Any) -> MAEPretrainModel:
    """MAE-DFER pre-training model: LGI-Former base encoder + 4-block 384-d decoder."""
    return _lgi_pretrain("base", **kwargs)


@register_model
def pretrain_lgi_former_small_patch16_160(**kwargs: Any) -> MAEPretrainModel:
    """Pre-training model with the LGI-Former small encoder."""
    return _lgi_pretrain("small", **kwargs)


@register_model
def pretrain_lgi_former_tiny_patch16_160(**kwargs: Any) -> MAEPretrainModel:
    """Pre-training model with the LGI-Former tiny encoder."""
    return _lgi_pretrain("tiny", **kwargs)


@register_model
def pretrain_lgi_former_test(**kwargs: Any) -> MAEPretrainModel:
    """Pre-training model with the 64-d test LGI-Former and a 1-block 32-d decoder."""
    kwargs.setdefault("decoder", "test")
    return _lgi_pretrain("test", **kwargs)


@register_model
def pretrain_vit_base_patch16_160(**kwargs: Any) -> MAEPretrainModel:
    """VideoMAE ViT-B pre-training model at 160 px (Table 10), with the same decoder."""
    return _vit_pretrain("base", **kwargs)


@register_model
def pretrain_vit_test(**kwargs: Any) -> MAEPretrainModel:
    """Pre-training model with the 64-d test ViT and a 1-block 32-d decoder."""
    kwargs.setdefault("decoder", "test")
    return _vit_pretrain("test", **kwargs)

