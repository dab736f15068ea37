"""Building blocks shared by the encoders and the decoder (one concern per file, timm style)."""

from maedfer.models.layers.attention import CrossAttention, SelfAttention
from maedfer.models.layers.drop_path import DropPath
from maedfer.models.layers.mlp import Mlp
from maedfer.models.layers.patch_embed import PatchEmbed3D
from maedfer.models.layers.pos_embed import sincos_table
from maedfer.models.layers.transformer_block import Block

__all__ = ["Block", "CrossAttention", "DropPath", "Mlp", "PatchEmbed3D", "SelfAttention", "sincos_table"]
