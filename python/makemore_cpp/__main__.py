"""``python -m makemore_cpp <command>``: the same as the ``makemore-cpp`` console script."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
