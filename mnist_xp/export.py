"""``python -m mnist_xp.export``: the command lives in ``mnist_xp.cli.export``."""

import sys

from .cli.export import main

if __name__ == "__main__":
    sys.exit(main())
