"""``python -m makemore_cpp <command>``: the same as the ``makemore-cpp`` console script."""

from .cli import console

if __name__ == "__main__":
    console()
