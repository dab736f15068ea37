"""The code of maedfer's MLflow models ("models from code"): MLflow runs this file to get the pyfunc."""

from mlflow.models import set_model

from maedfer.tracking.models import MaedferPyfunc

set_model(MaedferPyfunc())
