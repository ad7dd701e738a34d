"""The benchmark suite: makemore_cpp against PyTorch eager and JAX. See makemore_cpp/bench/.

python benchmarks/bench.py [--quick] [-w step -w eval ...] [--json benchmarks/results.json]
"""

import sys

from makemore_cpp.bench import main

if __name__ == "__main__":
    sys.exit(main())
