"""``python -m mnist_xp.show``: the command lives in ``mnist_xp.cli.show``."""

import sys

from .cli.show import main

if __name__ == "__main__":
    sys.exit(main())
