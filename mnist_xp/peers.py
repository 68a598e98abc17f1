"""``python -m mnist_xp.peers``: the command lives in ``mnist_xp.cli.peers``."""

import sys

from .cli.peers import main

if __name__ == "__main__":
    sys.exit(main())
