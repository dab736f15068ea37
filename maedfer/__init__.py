"""maedfer: reproducible MAE-DFER for dynamic facial expression recognition."""

__version__ = "0.1.0"
