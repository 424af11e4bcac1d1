"""Model-from-code entry of the target classifier pyfunc."""

import mlflow

from anomigan.mlops.serving import TargetModel

mlflow.models.set_model(TargetModel())
