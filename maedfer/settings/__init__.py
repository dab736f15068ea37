"""Typed settings, torch-free: the training recipes and the sections of a params file."""

from maedfer.settings.training import FinetuneConfig, PretrainConfig

__all__ = ["FinetuneConfig", "PretrainConfig"]
