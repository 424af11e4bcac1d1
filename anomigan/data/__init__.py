"""The data layer: loading and validating patient tables, splitting them, encoding records.

Nothing here knows about networks, attacks or MLflow; every other layer builds on it. The
loaders live in `anomigan.data.loaders` (re-exported here), the record codec in
`anomigan.data.codec`.
"""

# `X as X`: re-exported names (the package is where callers import them from)
from anomigan.data.loaders import ARFF_MISSING as ARFF_MISSING
from anomigan.data.loaders import CKD_FILE as CKD_FILE
from anomigan.data.loaders import TEST_SIZE as TEST_SIZE
from anomigan.data.loaders import VAL_SIZE as VAL_SIZE
from anomigan.data.loaders import DataError as DataError
from anomigan.data.loaders import Dataset as Dataset
from anomigan.data.loaders import Repair as Repair
from anomigan.data.loaders import load_dataset as load_dataset
from anomigan.data.loaders import parse_arff as parse_arff
from anomigan.data.loaders import split_dataset as split_dataset
