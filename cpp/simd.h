// simd.h - vectors of the translation unit's width, and the elementwise functions the model needs.
//
// Written with GCC's vector extensions, so one source compiles to AVX-512, AVX2, SSE2 or NEON
// depending on the flags of the translation unit that includes it (isa_*.cpp sets MM_VBYTES).
// Included inside that unit's own namespace: nothing here is shared between instruction sets.
#pragma once

template <class T>
struct VT;
template <>
struct VT<float> {
    typedef float v __attribute__((vector_size(MM_VBYTES)));
    typedef int32_t i __attribute__((vector_size(MM_VBYTES)));
    static constexpr int W = MM_VBYTES / 4;
};
template <>
struct VT<double> {
    typedef double v __attribute__((vector_size(MM_VBYTES)));
    typedef int64_t i __attribute__((vector_size(MM_VBYTES)));
    static constexpr int W = MM_VBYTES / 8;
};
template <class T>
using vec = typename VT<T>::v;
template <class T>
using ivec = typename VT<T>::i;

template <class T>
static inline vec<T> vload(const T* p) {
    vec<T> r;
    __builtin_memcpy(&r, p, sizeof r);
    return r;
}
template <class T>
static inline void vstore(T* p, vec<T> x) {
    __builtin_memcpy(p, &x, sizeof x);
}
// Every lane x. (Not vec{} + x: 0 + x is not x for x = -0, so the compiler keeps that add and
// broadcasts from a register, where a broadcast from memory is one load.)
template <class T>
static inline vec<T> vset(T x) {
    return x - vec<T>{};
}
template <class T>
static inline vec<T> vselect(ivec<T> m, vec<T> a, vec<T> b) {
    return m ? a : b;
}
// Lane indices 0, 1, ..., W-1.
template <class T>
static inline ivec<T> viota() {
    ivec<T> r;
    for (int i = 0; i < VT<T>::W; ++i) r[i] = i;
    return r;
}

// The upper half of x's lanes moved down, then the upper quarter, ...: the steps of a horizontal
// sum or maximum that adds lanes i and i + W/2, then i and i + W/4, ... The shuffle's lane indices
// are constants (a mask built in a loop is built lane by lane at run time).
template <class T, int w, int... I>
static inline vec<T> vfold_lanes(vec<T> x, std::integer_sequence<int, I...>) {
    return __builtin_shuffle(x, ivec<T>{((I + w) % VT<T>::W)...});
}
template <class T, int w>
static inline vec<T> vfold(vec<T> x) {
    return vfold_lanes<T, w>(x, std::make_integer_sequence<int, VT<T>::W>{});
}
template <class T, int w = VT<T>::W / 2>
static inline T hsum(vec<T> x) {
    if constexpr (w >= 1)
        return hsum<T, w / 2>(x + vfold<T, w>(x));
    else
        return x[0];
}
template <class T, int w = VT<T>::W / 2>
static inline T hmax(vec<T> x) {
    if constexpr (w >= 1) {
        const vec<T> y = vfold<T, w>(x);
        return hmax<T, w / 2>(vselect<T>(y > x, y, x));
    } else {
        return x[0];
    }
}

// The number of x[i] <= t in `lines` lines of 8 doubles: with AVX-512 or AVX2, one compare a vector
// and a count of its mask bits (the one place that needs the instruction set's own intrinsics:
// vector extensions give no mask to count); otherwise element by element.
static inline int count_le(const double* x, int lines, double t) {
    int n = 0;
#if MM_VBYTES == 64 && defined(__AVX512F__)
    const __m512d tv = _mm512_set1_pd(t);
    for (int i = 0; i < lines; ++i)
        n += __builtin_popcount(_mm512_cmp_pd_mask(_mm512_loadu_pd(x + 8 * i), tv, _CMP_LE_OQ));
#elif MM_VBYTES == 32 && defined(__AVX2__)
    const __m256d tv = _mm256_set1_pd(t);
    for (int i = 0; i < lines; ++i)
        n += __builtin_popcount(
            _mm256_movemask_pd(_mm256_cmp_pd(_mm256_loadu_pd(x + 8 * i), tv, _CMP_LE_OQ)) |
            _mm256_movemask_pd(_mm256_cmp_pd(_mm256_loadu_pd(x + 8 * i + 4), tv, _CMP_LE_OQ)) << 4);
#else
    for (int i = 0; i < 8 * lines; ++i) n += x[i] <= t;  // vectorised by the compiler (no popcount here)
#endif
    return n;
}

// One level of the transpose-reduction: A and B each hold W/G accumulators in groups of G lanes;
// the result holds the 2W/G accumulators (A's, then B's) in groups of G/2 lanes, each the sum of
// its group's two halves. G = W, W/2, ..., 2 turns W accumulators into one vector of their sums,
// adding in the same order as hsum.
template <class T, int G>
static inline vec<T> vcombine(vec<T> A, vec<T> B) {
    constexpr int W = VT<T>::W, half = W / 2, g2 = G / 2;
    ivec<T> lo, hi;
    for (int r = 0; r < W; ++r) {
        int rr = r % half;
        lo[r] = (r < half ? 0 : W) + (rr / g2) * G + rr % g2;
        hi[r] = lo[r] + g2;
    }
    return __builtin_shuffle(A, B, lo) + __builtin_shuffle(A, B, hi);
}
template <class T, int G>
static inline vec<T> vreduce(vec<T>* v) {  // v holds G vectors of W lanes; overwritten
    if constexpr (G == 1) {
        return v[0];
    } else {
        for (int p = 0; p < G / 2; ++p) v[p] = vcombine<T, G>(v[2 * p], v[2 * p + 1]);
        return vreduce<T, G / 2>(v);
    }
}

// exp and tanh. float: vector forms (exp: Cephes' expf, about 1 ulp; tanh: see below); double:
// the C library's, lane by lane (double precision is for checking, not for speed).
static inline vec<float> vexp(vec<float> x) {
    // Valid for x <= 88; underflows to 0 below -87.3. Callers pass x <= 18.
    typedef vec<float> V;
    V xc = vselect<float>(x < -87.3f, vset(-87.3f), x);
    xc = vselect<float>(xc > 88.0f, vset(88.0f), xc);
    V fx = xc * 1.44269504088896341f;
    fx = (fx + 12582912.0f) - 12582912.0f;  // round to nearest
    V r = xc - fx * 0.693359375f;
    r = r - fx * -2.12194440e-4f;
    V z = r * r;
    V y = vset(1.9875691500E-4f);
    y = y * r + 1.3981999507E-3f;
    y = y * r + 8.3334519073E-3f;
    y = y * r + 4.1665795894E-2f;
    y = y * r + 1.6666665459E-1f;
    y = y * r + 5.0000001201E-1f;
    y = y * z + r + 1.0f;
    ivec<float> n = __builtin_convertvector(fx, ivec<float>);
    ivec<float> bits = (n + 127) << 23;
    V scale;
    __builtin_memcpy(&scale, &bits, sizeof scale);
    return vselect<float>(x < -87.3f, V{}, y * scale);
}
static inline vec<double> vexp(vec<double> x) {
    for (int i = 0; i < VT<double>::W; ++i) x[i] = __builtin_exp(x[i]);
    return x;
}
// tanh(x) ~ x P(x^2) / Q(x^2) on [-9, 9] (Eigen's rational approximation; tanh(9) rounds to 1
// in float): at most 3 ulp from the true value, one division, no exp.
// vtanh_n does N vectors step by step across them: one tanh is a chain of about 45 cycles of
// dependent operations, and N interleaved chains keep the FMA pipes busy where one would not.
template <int N>
static inline void vtanh_n(vec<float>* x) {
    typedef vec<float> V;
    static constexpr float P[7] = {-2.76076847742355e-16f, 2.00018790482477e-13f, -8.60467152213735e-11f,
                                   5.12229709037114e-08f,  1.48572235717979e-05f, 6.37261928875436e-04f,
                                   4.89352455891786e-03f};
    static constexpr float Q[4] = {1.19825839466702e-06f, 1.18534705686654e-04f, 2.26843463243900e-03f,
                                   4.89352518554385e-03f};
    V z[N], p[N], q[N];
#pragma GCC unroll 8
    for (int j = 0; j < N; ++j) {
        x[j] = vselect<float>(x[j] > 9.0f, vset(9.0f), x[j]);
        x[j] = vselect<float>(x[j] < -9.0f, vset(-9.0f), x[j]);
        z[j] = x[j] * x[j];
        p[j] = vset(P[0]);
        q[j] = vset(Q[0]);
    }
#pragma GCC unroll 8
    for (int i = 1; i < 7; ++i)
#pragma GCC unroll 8
        for (int j = 0; j < N; ++j) {
            p[j] = p[j] * z[j] + P[i];
            if (i < 4) q[j] = q[j] * z[j] + Q[i];
        }
#pragma GCC unroll 8
    for (int j = 0; j < N; ++j) x[j] = (x[j] * p[j]) / q[j];
}
static inline vec<float> vtanh(vec<float> x) {
    vtanh_n<1>(&x);
    return x;
}
template <int N>
static inline void vtanh_n(vec<double>* x) {
    for (int j = 0; j < N; ++j)
        for (int i = 0; i < VT<double>::W; ++i) x[j][i] = __builtin_tanh(x[j][i]);
}
static inline vec<double> vtanh(vec<double> x) {
    vtanh_n<1>(&x);
    return x;
}
