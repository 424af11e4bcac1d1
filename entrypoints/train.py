"""MLproject entry point `train`: a thin wrapper over `anomigan train --help`."""

import sys

from anomigan.cli import main

sys.exit(main(["train", *sys.argv[1:]]))
