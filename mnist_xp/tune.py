"""``python -m mnist_xp.tune``: the command lives in ``mnist_xp.cli.tune``."""

import sys

from .cli.tune import main

if __name__ == "__main__":
    sys.exit(main())
