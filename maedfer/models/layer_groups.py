"""Optimiser hooks shared by every model that wraps an encoder under ``encoder.``."""

from __future__ import annotations


class EncoderLayerGroups:
    """``no_weight_decay``, ``num_layers`` and ``layer_id`` for layer-wise lr decay, delegated to ``self.encoder``.

    Layer ids run 0 (patch embedding) .. depth + 1 (everything outside the encoder's blocks: head, norms,
    decoder): depth + 2 ids in all.
    """

    extra_no_weight_decay: frozenset[str] = frozenset()

    def no_weight_decay(self) -> set[str]:
        """Parameter names trained without weight decay."""
        return {f"encoder.{n}" for n in self.encoder.no_weight_decay()} | set(self.extra_no_weight_decay)

    @property
    def num_layers(self) -> int:
        """Layer-wise lr decay groups: patch embedding, the blocks, the rest."""
        return self.encoder.depth + 2

    def layer_id(self, name: str) -> int:
        """Layer-decay group of parameter ``name``."""
        if name.startswith("encoder."):
            return self.encoder.layer_id(name[len("encoder.") :])
        return self.encoder.depth + 1
