"""MLflow models-from-code entry files, one per served pyfunc (see `anomigan.mlops.serving`).

MLflow copies the file into the logged model and runs it at load time; nothing is pickled.
"""
