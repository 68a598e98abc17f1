"""``python -m mnist_xp.train``: the command lives in ``mnist_xp.cli.train``."""

import sys

from .cli.train import main

if __name__ == "__main__":
    sys.exit(main())
