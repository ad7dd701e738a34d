"""Benchmarks against PyTorch and JAX, side by side in one process.

    python -m makemore_cpp.bench                  # the default workloads: a table of medians, JSON
    python -m makemore_cpp.bench --quick          # a smoke test: tiny sizes, checks that everything runs
    python -m makemore_cpp.bench -w step -w eval --repeats 9
    python -m makemore_cpp.bench --markdown speed.md   # also the Speed table, with its header line

Each workload runs its implementations interleaved (A B C, C B A, ...) for several repeats and reports
medians, with the thread count pinned on every side: the process's CPU affinity, torch's and this
package's thread counts, and XLA's flags (set before jax is imported). PyTorch is compared as a
competent user writes it, at its better thread count, beside the lecture's own loops (labelled).
Timings are for reading, not for pass/fail: the machine may be shared.

Modules: timing (pinning, interleaving), datasets, torch_mlp and jax_models (the other sides),
lecture_layers and layer_specs (the lecture's layer classes and models), mlp_workloads and
layer_workloads (what is timed), report (text, markdown, summary), command (the command line).
"""

from __future__ import annotations

import os
import sys

if "jax" not in sys.modules:  # one XLA thread, unless the caller chose otherwise
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

from .command import WORKLOADS, main  # noqa: E402
from .report import split_by_cores  # noqa: E402
from .timing import core_round_trip_ns, interleave  # noqa: E402

__all__ = ["main", "WORKLOADS", "core_round_trip_ns", "interleave", "split_by_cores"]
