"""Where encoder and target pyfuncs logged before the layered layout find their classes.

Their models-from-code file (a copy of `anomigan/served/<kind>.py` of that time) says
`from anomigan.serving import EncoderModel`; the classes now live in `anomigan.mlops.serving`.
"""

from anomigan.mlops.serving import EncoderModel, TargetModel

__all__ = ["EncoderModel", "TargetModel"]
