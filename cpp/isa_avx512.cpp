// The avx512 build of the kernels (compile flags in CMakeLists.txt).
#define MM_NS avx512
#define MM_NAME "avx512"
#define MM_TABLE isa_avx512
#define MM_VBYTES 64
#define MM_MR 6
#define MM_NR 4
#include "isa_impl.h"
