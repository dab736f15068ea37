"""Model-name facts shared by the model registry and the params files (torch-free).

A pre-training factory is named ``pretrain_X``; the classifier fine-tuned from it is ``X``, built
with the same constructor arguments less the pre-training-only ones (the decoder and the loss).
"""

from __future__ import annotations

from typing import Any

PRETRAIN_PREFIX = "pretrain_"

# Constructor arguments of a pre-training model that its classifier does not take.
PRETRAIN_ONLY_KEYS: tuple[str, ...] = (
    "mask_ratio", "appearance_weight", "token_order", "decoder_dim", "decoder_depth", "decoder_heads", "target",
)


def is_pretrain_arch(name: str) -> bool:
    """Whether ``name`` is a pre-training factory name (``pretrain_...``)."""
    return name.startswith(PRETRAIN_PREFIX)


def classifier_arch(pretrain_arch: str) -> str:
    """The fine-tuning factory of a pre-training factory (``pretrain_X`` -> ``X``).

    Raises ValueError for a name that is not a pre-training factory name.
    """
    if not is_pretrain_arch(pretrain_arch):
        raise ValueError(f"{pretrain_arch!r} is not a pre-training model name ({PRETRAIN_PREFIX}...)")
    return pretrain_arch[len(PRETRAIN_PREFIX):]


def classifier_kwargs(pretrain_kwargs: dict[str, Any]) -> dict[str, Any]:
    """A pre-training model's constructor arguments less the pre-training-only ones (the classifier's)."""
    return {k: v for k, v in pretrain_kwargs.items() if k not in PRETRAIN_ONLY_KEYS}
