// The avx2 build of the kernels (compile flags in CMakeLists.txt).
#define MM_NS avx2
#define MM_NAME "avx2"
#define MM_TABLE isa_avx2
#define MM_VBYTES 32
#define MM_MR 4
#define MM_NR 3
#include "isa_impl.h"
