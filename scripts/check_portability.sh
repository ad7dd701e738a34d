#!/usr/bin/env bash
# Portability checks of the C++ core (run by hand; see README "Portability"):
#  1. every source compiles warning-free (-Wall -Wextra) for x86-64;
#  2. the generic kernels use no AVX registers (they are the baseline path);
#  3. the per-ISA objects define no mergeable symbol outside their own namespace (an inline
#     function compiled with AVX-512 must never be picked by the linker for another path);
#  4. the portable sources compile for aarch64 (needs Debian's g++-aarch64-linux-gnu).
set -euo pipefail
cd "$(dirname "$0")/../cpp"
py=${PYTHON:-python3}
inc="-I$($py -c 'import sysconfig; print(sysconfig.get_paths()["include"])') -I$($py -c 'import pybind11; print(pybind11.get_include())')"
out=$(mktemp -d)
declare -A flags=([isa_generic.cpp]="" [isa_avx2.cpp]="-mavx2 -mfma"
                  [isa_avx512.cpp]="-mavx512f -mavx512vl -mavx512bw -mavx512dq -mavx2 -mfma"
                  [core.cpp]="" [threadpool.cpp]="" [bindings.cpp]="")
for f in "${!flags[@]}"; do
  g++ -std=c++17 -O3 -fPIC ${flags[$f]} -Wall -Wextra -Werror $inc -c "$f" -o "$out/$f.o"
done
echo "1. x86-64: all sources compile with -Wall -Wextra -Werror"
if objdump -d "$out/isa_generic.cpp.o" | grep -qE '%[yz]mm'; then echo "2. FAIL: generic kernels use AVX registers"; exit 1; fi
echo "2. generic kernels: SSE2 only"
for isa in avx2 avx512; do
  bad=$(nm -C "$out/isa_$isa.cpp.o" | awk '$2 ~ /^[WVu]$/' | grep -v -e "mm::$isa::" -e "DW.ref.__gxx_personality_v0" || true)  # the EH personality reference is data
  if [ -n "$bad" ]; then echo "3. FAIL: $isa defines shared symbols:"; echo "$bad"; exit 1; fi
done
echo "3. per-ISA objects: every mergeable symbol is in its own namespace"
if command -v aarch64-linux-gnu-g++ >/dev/null; then
  for f in isa_generic.cpp core.cpp threadpool.cpp; do
    aarch64-linux-gnu-g++ -std=c++17 -O3 -Wall -Wextra -Werror -c "$f" -o "$out/arm_$f.o"
  done
  echo "4. aarch64: the generic kernels, core and thread pool compile ($(aarch64-linux-gnu-objdump -d "$out/arm_isa_generic.cpp.o" | grep -c fmla) NEON fmla)"
else
  echo "4. skipped: no aarch64-linux-gnu-g++ (apt-get install g++-aarch64-linux-gnu)"
fi
rm -rf "$out"
