"""The method layer: AnomiGAN itself and the anonymisers it is compared with.

Networks (`networks`), the adversarial training (`gan`), the layer noise (`noise`), the
folded inference graphs (`inference`), the target classifier D2 (`target`) and the release
mechanisms behind one interface (`anonymizers`). Builds on `anomigan.data` only; knows nothing
of attacks, MLflow or Optuna.
"""
