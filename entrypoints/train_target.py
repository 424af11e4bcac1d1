"""MLproject entry point `train_target`: a thin wrapper over `anomigan train_target --help`."""

import sys

from anomigan.cli import main

sys.exit(main(["train_target", *sys.argv[1:]]))
