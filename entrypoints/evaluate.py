"""MLproject entry point `evaluate`: a thin wrapper over `anomigan evaluate --help`."""

import sys

from anomigan.cli import main

sys.exit(main(["evaluate", *sys.argv[1:]]))
