"""MLproject entry point `tune`: a thin wrapper over `anomigan tune --help`."""

import sys

from anomigan.cli import main

if __name__ == "__main__":  # tune's spawned workers re-import this file: never rerun it there
    sys.exit(main(["tune", *sys.argv[1:]]))
