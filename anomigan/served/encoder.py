"""Model-from-code entry of the AnomiGAN encoder pyfunc."""

import mlflow

from anomigan.mlops.serving import EncoderModel

mlflow.models.set_model(EncoderModel())
