"""anomigan: anonymise tabular medical records with a learned encoder (AnomiGAN), in MLflow."""

__version__ = "0.1.0"
