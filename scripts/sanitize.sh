#!/usr/bin/env bash
# The sanitizer job: build the extension with AddressSanitizer and UndefinedBehaviorSanitizer (the
# CMake option MAKEMORE_SANITIZE=ON) into a temporary folder, put it in a temporary copy of the
# package, and run the test suite against that copy with the ASan runtime preloaded into Python.
# Any ASan report or undefined behaviour ends the run with a non-zero status (and a report in the
# log); a clean run ends with pytest's summary and "sanitize: clean".
#
#   scripts/sanitize.sh                      # the whole suite
#   scripts/sanitize.sh -k parity -x         # extra arguments go to pytest
#   scripts/sanitize.sh --core               # CI's selection: the tests that drive the core (below)
#   PYTHON=/path/to/python scripts/sanitize.sh
#   SANITIZE_NO_TORCH=1 scripts/sanitize.sh  # without the tests that need torch (if torch cannot
#                                            # run with ASan preloaded on some machine)
#
# Needs: g++ (or clang++) with the sanitizer runtimes, cmake, and pybind11 in the Python that runs
# the tests (pip install pybind11 cmake ninja). The repository itself is not modified.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python3}"
python="$(command -v "$python")"
cxx="${CXX:-g++}"
work="$(mktemp -d "${TMPDIR:-/tmp}/makemore-sanitize.XXXXXX")"
trap 'rm -rf "$work"' EXIT
start=$(date +%s)

pybind11_dir="$("$python" -m pybind11 --cmakedir 2>/dev/null)" || {
    echo "sanitize: pybind11 is not installed in $python (pip install pybind11 cmake ninja)" >&2
    exit 2
}
generator=()
command -v ninja > /dev/null && generator=(-G Ninja)

# --core tests the generic and AVX-512 kernels only (below): only those are built.
core_isas=generic,avx512
kernels="generic;avx2;avx512"
[ "${1:-}" = --core ] && kernels="${core_isas//,/;}"
# Not stripped (RelWithDebInfo), with line tables only (-g1: a report's file and line, at two thirds
# of -g's compile time).
echo "sanitize: building the extension with -fsanitize=address,undefined in $work/build"
cmake -S "$root" -B "$work/build" "${generator[@]}" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-g1 -DNDEBUG" \
    -DCMAKE_INTERPROCEDURAL_OPTIMIZATION=OFF \
    -DCMAKE_CXX_COMPILER="$cxx" -DMAKEMORE_SANITIZE=ON -DMAKEMORE_KERNELS="$kernels" \
    -DSKBUILD_PROJECT_NAME=makemore_cpp -DPython_EXECUTABLE="$python" -Dpybind11_DIR="$pybind11_dir" > "$work/cmake.log" \
    || { cat "$work/cmake.log"; exit 2; }
cmake --build "$work/build" --parallel > "$work/build.log" 2>&1 || { cat "$work/build.log"; exit 2; }

# A copy of the package with the sanitized extension in place of any other.
mkdir -p "$work/src"
cp -r "$root/python/makemore_cpp" "$work/src/"
find "$work/src/makemore_cpp" -name '_core*.so' -delete
find "$work/src/makemore_cpp" -name '__pycache__' -prune -exec rm -rf {} +
cp "$work/build"/_core*.so "$work/src/makemore_cpp/"

asan="$("$cxx" -print-file-name=libasan.so)"
ubsan="$("$cxx" -print-file-name=libubsan.so)"
[ -e "$asan" ] || { echo "sanitize: no ASan runtime ($asan)" >&2; exit 2; }
preload="$asan"
[ -e "$ubsan" ] && preload="$asan:$ubsan"

export LD_PRELOAD="$preload"
# CPython leaks by design: no leak checking. A failed huge allocation must return null (the core
# turns it into MemoryError), not end the process.
# Reports go to files (pytest captures the tests' stderr, and a halted process never prints it),
# shown at the end.
report="$work/report"
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:halt_on_error=1:abort_on_error=1:detect_stack_use_after_return=0:log_path=$report${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$report${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export PYTHONPATH="$work/src"
export PYTHONMALLOC=malloc        # Python's own objects through the sanitized malloc too
export MAKEMORE_SANITIZE_RUN=1

# The tests must see the sanitized copy, not the source tree.
where="$("$python" -c 'import makemore_cpp, makemore_cpp._core as c; print(c.__file__)')"
case "$where" in
    "$work"/*) echo "sanitize: testing $where" ;;
    *) echo "sanitize: makemore_cpp resolves to $where, not the sanitized copy" >&2; exit 2 ;;
esac

args=(-q -p no:cacheprovider)
paths=(tests)
if [ "${1:-}" = --core ]; then
    shift
    # The tests that call the core with many shapes, options and bad inputs, on the narrowest and
    # the widest vectors (the generic and AVX-512 kernels; AVX2's are the same code at a width
    # between), long trajectories only on the best instruction set (a memory error shows in the
    # first steps). Left out: the command line, notebooks, packaging, timing and subprocess tests,
    # and the lecture's full runs, which reach the core through the same calls.
    export MAKEMORE_TEST_ISAS="$core_isas"
    paths=(tests/test_api.py tests/test_validation.py tests/test_parity.py tests/test_layers.py
           tests/test_properties.py tests/test_diagnostics.py tests/test_divergence.py
           tests/test_concurrency.py tests/test_files.py tests/test_data.py tests/test_generic_isa.py)
    args+=(-k "not replay or avx512")
fi
if [ -n "${SANITIZE_NO_TORCH:-}" ]; then
    args+=(--ignore=tests/test_parity.py --ignore=tests/test_interop.py --ignore=tests/test_properties.py
           -k "not torch")
fi
cd "$root"
status=0
"$python" -m pytest "${args[@]}" "${paths[@]}" "$@" || status=$?
echo "sanitize: pytest exited $status after $(( $(date +%s) - start )) s (build included)"
if compgen -G "$report.*" > /dev/null; then
    echo "sanitize: reports:"
    cat "$report".*
    status=1
fi
[ "$status" -eq 0 ] && echo "sanitize: clean"
exit "$status"
