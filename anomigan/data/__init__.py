"""The data layer: loading and validating patient tables, splitting them, encoding records.

Nothing here knows about networks, attacks or MLflow; every other layer builds on it. The
loaders live in `anomigan.data.loaders` (re-exported here), the record codec in
`anomigan.data.codec`.
"""

from anomigan.data.loaders import (
    ARFF_MISSING,
    CKD_FILE,
    TEST_SIZE,
    VAL_SIZE,
    DataError,
    Dataset,
    Repair,
    load_dataset,
    parse_arff,
    split_dataset,
)

__all__ = [
    "ARFF_MISSING",
    "CKD_FILE",
    "TEST_SIZE",
    "VAL_SIZE",
    "DataError",
    "Dataset",
    "Repair",
    "load_dataset",
    "parse_arff",
    "split_dataset",
]
