"""Serving: the pyfunc models (`models`), request parsing (`requests`) and the guards that
keep MLflow's scoring server and schema check from quoting records (`guard`)."""

from anomigan.mlops.serving.guard import (
    input_schema,
    install_schema_guard,
    install_server_guard,
    safe_invocations,
)
from anomigan.mlops.serving.models import (
    EncoderModel,
    RecordModel,
    TargetModel,
    log_encoder_model,
    log_target_model,
    pip_requirements,
)
from anomigan.mlops.serving.requests import (
    ALLOW_MISSING_ENV,
    ALLOW_SEED_ENV,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_ROWS,
    MAX_SEED,
    InvalidRecords,
    check_seed,
    parse_invocation,
    parse_request,
)

__all__ = [
    "ALLOW_MISSING_ENV",
    "ALLOW_SEED_ENV",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_ROWS",
    "MAX_SEED",
    "EncoderModel",
    "InvalidRecords",
    "RecordModel",
    "TargetModel",
    "check_seed",
    "input_schema",
    "install_schema_guard",
    "install_server_guard",
    "log_encoder_model",
    "log_target_model",
    "parse_invocation",
    "parse_request",
    "pip_requirements",
    "safe_invocations",
]
