"""The privacy layer: what a release costs and what it hides, measured.

Utility metrics (`metrics`), the attacks (`attacks`), the evaluation protocol over splits and
sweeps (`evaluation`), the figures (`plots`) and the written report (`report`). Builds on
`anomigan.method` and `anomigan.data`; logs nothing to MLflow.
"""
