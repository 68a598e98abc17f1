"""``python -m mnist_xp.predict``: the command lives in ``mnist_xp.cli.predict``."""

import sys

from .cli.predict import main

if __name__ == "__main__":
    sys.exit(main())
