// isa_impl.h - one instruction set's kernels. Included by isa_<name>.cpp, which defines
//   MM_NS      the namespace (mm::<MM_NS>) that keeps this unit's code apart from the others'
//   MM_NAME    the name users see ("avx512", "avx2", "generic")
//   MM_TABLE   the name of the mm::Isa table it defines
//   MM_VBYTES  the vector width in bytes
//   MM_MR, MM_NR  the register tile of gemm_bcast (rows, vectors)
// and is compiled with that instruction set's flags (CMakeLists.txt).
#include <time.h>

#include <cstdint>
#include <type_traits>
#include <utility>
#if defined(__AVX2__)
#include <immintrin.h>  // simd.h: count_le
#endif

#include "common.h"
#include "rng.h"
#include "threadpool.h"

namespace mm {
namespace MM_NS {

#include "simd.h"
#include "kernels.h"
#include "embed.h"
#include "mlp.h"
#include "layers.h"
#include "train.h"
#include "eval.h"
#include "sample.h"

template <class T>
static void dropout_mask(uint64_t seed, int64_t step, int layer, int L, int B, int H, double p, T* out) {
    dropout_fill<T>(seed, step, layer, L, B, H, H, p, 0, B, 0, H, out);
}

}  // namespace MM_NS

extern const Isa MM_TABLE;
const Isa MM_TABLE = {
    MM_NAME,
    {&MM_NS::loss_and_grad<float>, &MM_NS::train<float>, &MM_NS::evaluate<float>, &MM_NS::sample<float>,
     &MM_NS::dropout_mask<float>, &MM_NS::net_loss_and_grad<float>, &MM_NS::net_train<float>,
     &MM_NS::net_evaluate<float>, &MM_NS::net_sample<float>},
    {&MM_NS::loss_and_grad<double>, &MM_NS::train<double>, &MM_NS::evaluate<double>, &MM_NS::sample<double>,
     &MM_NS::dropout_mask<double>, &MM_NS::net_loss_and_grad<double>, &MM_NS::net_train<double>,
     &MM_NS::net_evaluate<double>, &MM_NS::net_sample<double>},
};

}  // namespace mm
