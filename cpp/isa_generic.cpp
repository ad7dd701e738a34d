// The generic build of the kernels (compile flags in CMakeLists.txt).
#define MM_NS generic
#define MM_NAME "generic"
#define MM_TABLE isa_generic
#define MM_VBYTES 16
#define MM_MR 4
#define MM_NR 3
#include "isa_impl.h"
