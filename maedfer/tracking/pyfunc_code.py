"""The code of maedfer's MLflow models ("models from code"): MLflow runs this file to get the pyfunc.

Kept apart from :mod:`maedfer.tracking.models` so that importing that module (``maedfer predict --model``)
does not import and subclass ``mlflow.pyfunc.PythonModel``.
"""

from typing import Any

import mlflow.pyfunc
import numpy as np
from mlflow.models import set_model

from maedfer.tracking.models import ARTIFACT_KEY, classifier_from_folder


class MaedferPyfunc(mlflow.pyfunc.PythonModel):
    """The MLflow pyfunc: loads the Hub folder artifact on CPU; predict = ClipClassifier.frame."""

    def load_context(self, context: Any) -> None:
        """Load the classifier from the model's ``model`` artifact (a Hub model folder)."""
        self.classifier = classifier_from_folder(context.artifacts[ARTIFACT_KEY])

    # np.ndarray: a hint MLflow infers no schema from (the signature is logged explicitly) and does not warn about
    def predict(self, context: Any, model_input: np.ndarray, params: dict[str, Any] | None = None) -> Any:
        """Probabilities per class and the top label of each clip in ``model_input`` (B, T, H, W, 3)."""
        if hasattr(model_input, "to_numpy"):  # a table: one clip per row is not a supported layout
            raise ValueError("expected a uint8 tensor (batch, frames, height, width, 3), got a table")
        return self.classifier.frame(np.asarray(model_input))


set_model(MaedferPyfunc())
