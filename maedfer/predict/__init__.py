"""Facial-expression prediction for whole videos: ``maedfer.predict(path) -> PredictionResult``.

    import maedfer
    result = maedfer.predict("clip.mp4", checkpoint="model.pt", annotate="clip_annotated.mp4")
    result.label, result.probs            # overall label and probabilities of the largest face
    result.tracks[0].windows[0].label     # one window
    result.to_dict()                      # the JSON schema documented in maedfer.predict.result

This package is callable: ``maedfer.predict(...)`` and ``maedfer.predict.predict(...)`` are the
same function (the package and the function share the name, so the module forwards calls).
:class:`Predictor` loads the model once for several videos.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from maedfer.predict.loading import DEMO_CHECKPOINT, CheckpointError, LoadedModel, load_for_prediction
from maedfer.predict.pipeline import (
    NoFaceInVideoError,
    Predictor,
    PredictSettings,
    VideoTooLongError,
    annotated_path,
    predict,
)
from maedfer.predict.result import PredictionResult, TrackPrediction, WindowPrediction

__all__ = [
    "DEMO_CHECKPOINT",
    "CheckpointError",
    "LoadedModel",
    "NoFaceInVideoError",
    "PredictSettings",
    "PredictionResult",
    "Predictor",
    "TrackPrediction",
    "VideoTooLongError",
    "WindowPrediction",
    "annotated_path",
    "load_for_prediction",
    "predict",
]


class _CallableModule(types.ModuleType):
    """``maedfer.predict`` is both this package and the function: calling the package calls predict()."""

    def __call__(self, *args: Any, **kwargs: Any) -> PredictionResult:
        return predict(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
