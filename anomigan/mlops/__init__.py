"""The MLOps layer: the only place that talks to MLflow (and Optuna, Spark).

Tracking and the registry (`tracking`), the jobs behind the CLI (`prepare`, `jobs`), the
Optuna study (`tuning`), the pyfunc models and their HTTP guard (`serving`), batch and Spark
anonymisation (`batch`, `spark`) and model cards (`card`).
"""
