"""maedfer: reproducible MAE-DFER for dynamic facial expression recognition."""

__version__ = "0.1.0"


def __getattr__(name: str):
    """``maedfer.predict`` is imported on first use, so that ``import maedfer`` stays light."""
    if name == "predict":
        import importlib

        return importlib.import_module("maedfer.predict")  # a callable package: maedfer.predict(path)
    raise AttributeError(f"module 'maedfer' has no attribute {name!r}")
