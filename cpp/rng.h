// rng.h - counter-based random numbers.
//
// Every draw is a pure function of (seed, stream, counter):
//
//     key(seed, stream) = mix64(mix64(seed) + stream)
//     draw(key, c)      = mix64(key + c * 0x9E3779B97F4A7C15)
//
// where mix64 is SplitMix64's output function (Steele, Lea & Flood 2014). The counters are
//     minibatch row i of step s                    c = s * B + i              row = (draw * N) >> 64
//     dropout unit j of row b, hidden layer l      c = ((s * L + l) * B + b) * H_l + j
//                                                  kept when (draw >> 40) >= round(p * 2^24)
//     character k of name i (sampling)             c = i * 2^20 + k           u = (draw >> 11) * 2^-53
//     element e of parameter q (initialisation)    c = q * 2^40 + 2e, 2e + 1  (Box-Muller)
// so a run needs no generator state (a checkpoint stores the seed and the step), any thread can
// draw any number, and makemore_cpp.reference reproduces every draw in a few lines of NumPy.
#pragma once
#include <cstdint>

namespace mm {
namespace rng {

static constexpr uint64_t GOLDEN = 0x9E3779B97F4A7C15ull;
enum Stream : uint64_t { BATCH = 1, DROPOUT = 2, SAMPLE = 3, INIT = 4 };

static inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static inline uint64_t key(uint64_t seed, uint64_t stream) { return mix64(mix64(seed) + stream); }
static inline uint64_t draw(uint64_t k, uint64_t counter) { return mix64(k + counter * GOLDEN); }
// An integer in [0, n): the high word of draw * n (Lemire's multiply-shift; bias below n / 2^64).
static inline uint64_t below(uint64_t u, uint64_t n) { return (uint64_t)(((unsigned __int128)u * n) >> 64); }
// A double in [0, 1).
static inline double uniform(uint64_t u) { return (double)(u >> 11) * 0x1.0p-53; }

}  // namespace rng
}  // namespace mm
